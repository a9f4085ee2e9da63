//! keepalived.conf (+ ExaBGP) -> a commented vipd TOML.
//!
//! The translation never drops a construct silently: what has a vipd equivalent is written
//! (with explicit values where keepalived's defaults differ from vipd's: `alpha`,
//! `on_failure`, the mh flags, the accepted HTTP statuses), what has none is an
//! [`Omission`] reported with its file:line and marked in the output where it was.

mod checks;
mod emit;
mod exabgp;
mod keepalived;
mod model;
mod out;

use std::path::Path;

pub use model::Omission;

/// Where the BGP half comes from.
#[derive(Clone, Copy, Debug)]
pub enum Exabgp<'a> {
    /// No ExaBGP: the services are written with `announce.enabled = false`.
    None,
    /// An exabgp.conf, with its healthcheck `process` lines.
    File(&'a Path),
    /// The healthcheck's arguments alone (as on its command line), no neighbors.
    Healthcheck(&'a str),
}

/// A translation.
#[derive(Clone, Debug)]
pub struct Import {
    /// The vipd configuration, with its header.
    pub toml: String,
    /// What was not translated, in source order.
    pub omissions: Vec<Omission>,
    /// Behaviour that differs although translated (one line each).
    pub differences: Vec<String>,
    /// One line: what was translated.
    pub summary: String,
}

/// Why nothing could be translated.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// keepalived.conf could not be read or parsed.
    #[error(transparent)]
    Keepalived(#[from] crate::keepalived::ParseError),
    /// exabgp.conf could not be read or parsed.
    #[error(transparent)]
    Exabgp(#[from] crate::exabgp::ParseError),
    /// The healthcheck arguments could not be split like a shell would.
    #[error("the healthcheck arguments: {0}")]
    Split(#[from] crate::exabgp::SplitError),
    /// The healthcheck arguments are not ExaBGP healthcheck options.
    #[error("{origin}: {source}")]
    Healthcheck {
        /// Where they were.
        origin: String,
        /// What is wrong.
        #[source]
        source: crate::exabgp::HealthcheckError,
    },
    /// keepalived.conf has no virtual server vipd can program.
    #[error("{0}: no virtual_server could be translated: nothing for vipd to do")]
    NoService(String),
}

/// Reads and translates.
pub fn import(keepalived_conf: &Path, exabgp: Exabgp<'_>) -> Result<Import, ImportError> {
    let stmts = crate::keepalived::parse_file(keepalived_conf)?;
    let mut out = model::Out::default();
    keepalived::translate(&stmts, &mut out);
    let mut sources = vec![keepalived_conf.display().to_string()];
    let hcs = match exabgp {
        Exabgp::None => Vec::new(),
        Exabgp::File(p) => {
            sources.push(p.display().to_string());
            let stmts = crate::exabgp::parse_file(p)?;
            exabgp::translate(&stmts, &mut out)?
        }
        Exabgp::Healthcheck(args) => {
            sources.push("the healthcheck arguments given".into());
            let words = crate::exabgp::shell_split(args)?;
            let origin = crate::Origin::new(
                std::sync::Arc::new(std::path::PathBuf::from("--exabgp-healthcheck")),
                1,
            );
            let opts = crate::exabgp::parse_healthcheck_args(&words).map_err(|e| {
                ImportError::Healthcheck {
                    origin: origin.to_string(),
                    source: e,
                }
            })?;
            vec![exabgp::Hc { opts, origin }]
        }
    };
    if out.services.is_empty() {
        return Err(ImportError::NoService(
            keepalived_conf.display().to_string(),
        ));
    }
    exabgp::apply(&hcs, &mut out);
    if out.bgp.is_none() {
        for s in &mut out.services {
            if s.announce.enabled.is_none() {
                s.announce.enabled = Some(false);
            }
        }
    }
    let (toml, summary) = emit::emit(&mut out, &sources);
    Ok(Import {
        toml,
        omissions: out.omissions,
        differences: out.differences,
        summary,
    })
}

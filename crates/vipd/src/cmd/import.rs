//! `vipd import`: another tool's configuration as a vipd one (the translation itself is the
//! pure `vipd-import` crate; this writes it, checks it and reports).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status of a translation that left something out: the output is usable, but an
/// operator must read what is missing. (2 is clap's usage error.)
pub const WITH_OMISSIONS: u8 = 3;

/// What to import from.
#[derive(Debug, clap::Subcommand)]
pub enum From {
    /// keepalived.conf (its LVS half), and optionally ExaBGP's side (neighbors, healthcheck).
    #[command(
        after_help = "Examples:\n  vipd import keepalived /etc/keepalived/keepalived.conf --exabgp /etc/exabgp/exabgp.conf -o vipd.toml\n  vipd import keepalived keepalived.conf --exabgp-healthcheck '--withdraw-on-down --disable /etc/lb/disable --ip 198.51.100.1'"
    )]
    Keepalived {
        /// keepalived.conf (its includes are followed).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// exabgp.conf: its neighbors fill [bgp], its healthcheck process the announce keys.
        #[arg(long, value_name = "FILE", conflicts_with = "exabgp_healthcheck")]
        exabgp: Option<PathBuf>,
        /// The arguments of ExaBGP's healthcheck program, as on its command line.
        #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
        exabgp_healthcheck: Option<String>,
        /// Write here (mode 600: it may hold BGP passwords) instead of standard output.
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
    },
}

/// Runs the import and reports.
pub fn run(from: From) -> ExitCode {
    let From::Keepalived {
        file,
        exabgp,
        exabgp_healthcheck,
        output,
    } = from;
    let source = match (&exabgp, &exabgp_healthcheck) {
        (Some(p), _) => vipd_import::Exabgp::File(p),
        (None, Some(a)) => vipd_import::Exabgp::Healthcheck(a),
        (None, None) => vipd_import::Exabgp::None,
    };
    let imp = match vipd_import::import(&file, source) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("vipd import: {e}");
            return ExitCode::FAILURE;
        }
    };
    let name = output
        .as_ref()
        .map_or("(output)".to_string(), |p| p.display().to_string());
    // The translation must be a configuration vipd accepts: a refused one is a failure.
    if let Err(e) = vipd_config::load_str(&imp.toml, &name) {
        eprintln!("{e}");
        eprintln!("vipd import: the translation is not a valid configuration; nothing written");
        return ExitCode::FAILURE;
    }
    let written = match &output {
        Some(p) => write_private(p, &imp.toml),
        None => std::io::stdout().write_all(imp.toml.as_bytes()),
    };
    if let Err(e) = written {
        eprintln!("vipd import: {name}: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("vipd import: translated {}", imp.summary);
    for d in &imp.differences {
        eprintln!("  differs: {d}");
    }
    if imp.omissions.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "vipd import: {} construct(s) not translated:",
        imp.omissions.len()
    );
    for o in &imp.omissions {
        eprintln!("  {o}");
    }
    ExitCode::from(WITH_OMISSIONS)
}

fn write_private(p: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(p)?;
    f.write_all(text.as_bytes())
}

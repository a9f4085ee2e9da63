//! Cross-field validation: the rules serde cannot express.
//!
//! Every rule pushes a [`Diagnostic`] naming the offending value by path and keeps going, so
//! one run reports every problem in the file. Rules are grouped by section; each has a unit
//! test in `tests*.rs` (`tests.rs`, `tests_usage.rs`, `tests_rules.rs`), or in the crate's
//! `tests/` when it needs files, that fails when the rule is removed.

mod backend;
mod bgp;
mod checks;
mod probes;
mod services;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_backend;
#[cfg(test)]
mod tests_fleet;
#[cfg(test)]
mod tests_rules;
#[cfg(test)]
mod tests_usage;
mod usage;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path as FsPath;

use crate::diag::{Diagnostic, Path};
use crate::model::{Config, Role};

/// Collects findings while the rules run.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub(crate) diags: Vec<Diagnostic>,
}

impl Sink {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }
}

/// Runs every rule over a deserialized config.
pub(crate) fn validate(cfg: &Config) -> Vec<Diagnostic> {
    let mut s = Sink::default();
    global(cfg, &mut s);
    role(cfg, &mut s);
    let defined: BTreeSet<&str> = checks::named(cfg, &mut s);
    if let Some(b) = &cfg.bgp {
        bgp::bgp(cfg, b, &mut s);
    }
    services::services(cfg, &defined, &mut s);
    if let Some(b) = &cfg.backend {
        backend::backend(b, &defined, &mut s);
    }
    if let Some(f) = &cfg.fleet {
        fleet(cfg, f, &mut s);
    }
    probes::probes(cfg, &mut s);
    usage::usage(cfg, &mut s);
    s.diags
}

fn fleet(cfg: &Config, f: &crate::model::Fleet, s: &mut Sink) {
    let p = Path::root().key("fleet");
    if cfg.global.role == Role::Backend {
        s.push(
            Diagnostic::error(
                p.clone(),
                "[fleet] compares directors' tables; a backend has none",
            )
            .hint("remove [fleet] from the backend's file"),
        );
    }
    if cfg.global.listen.is_none() {
        s.push(
            Diagnostic::error(p.clone(), "[fleet] is shown on the status page, and global.listen is \"off\"")
                .hint("set global.listen (the page is served there), or remove [fleet]; `vipd fleet --peer URL` needs no [fleet]"),
        );
    }
    if f.peers.is_empty() {
        s.push(
            Diagnostic::error(p.key("peers"), "[fleet] lists no peers").hint(
                "list the other directors' status URLs, e.g. peers = [\"http://10.8.0.2:9180\"]",
            ),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, url) in f.peers.iter().enumerate() {
        if crate::fleet::peer_authority(url).is_none() {
            s.push(
                Diagnostic::error(p.key("peers").idx(i), format!("invalid peer URL {url:?}"))
                    .hint("write http://ADDRESS:PORT of the peer's global.listen, e.g. \"http://10.8.0.2:9180\" or \"http://[2001:db8::2]:9180\""),
            );
        } else if crate::fleet::peer_authority(url).is_some_and(|(host, port)| {
            cfg.global.listen.is_some_and(|l| {
                l.port() == port
                    && host.trim_start_matches('[').trim_end_matches(']') == l.ip().to_string()
            })
        }) {
            s.push(
                Diagnostic::error(
                    p.key("peers").idx(i),
                    format!("peer {url:?} is this director's own global.listen"),
                )
                .hint("list the other directors only: this one is always part of the view"),
            );
        } else if !seen.insert(url.trim_end_matches('/')) {
            s.push(
                Diagnostic::error(
                    p.key("peers").idx(i),
                    format!("peer {url:?} is listed twice"),
                )
                .hint("list each director once"),
            );
        }
    }
    if f.interval.get() < std::time::Duration::from_secs(1) {
        s.push(
            Diagnostic::error(p.key("interval"), "fleet.interval must be at least 1s")
                .hint("the view is for people and monitoring, e.g. \"5s\""),
        );
    }
    if f.timeout.is_zero() || f.timeout >= f.interval {
        s.push(
            Diagnostic::error(
                p.key("timeout"),
                format!("fleet.timeout {} must be above 0 and shorter than fleet.interval {}", f.timeout, f.interval),
            )
            .hint("a fetch must end before the next one starts, e.g. timeout = \"2s\" with interval = \"5s\""),
        );
    }
}

fn global(cfg: &Config, s: &mut Sink) {
    let g = &cfg.global;
    let p = Path::root().key("global");
    absolute(&g.drain_file, p.key("drain_file"), s);
    absolute(&g.control_socket, p.key("control_socket"), s);
    absolute(&g.state_dir, p.key("state_dir"), s);
    if let Some(rid) = g.router_id {
        if rid.is_unspecified() || rid.is_broadcast() || rid.is_multicast() {
            s.push(
                Diagnostic::error(
                    p.key("router_id"),
                    format!("router_id {rid} is not a usable identifier"),
                )
                .hint("use one of this node's own unicast IPv4 addresses"),
            );
        }
    }
    if g.resync_interval.get() < std::time::Duration::from_secs(1) {
        s.push(
            Diagnostic::error(
                p.key("resync_interval"),
                "resync_interval must be at least 1s",
            )
            .hint("a full IPVS dump every few seconds to minutes is plenty, e.g. \"30s\""),
        );
    }
    if let Some(t) = &g.ipvs_timeouts {
        for (key, d) in [("tcp", t.tcp), ("tcp_fin", t.tcp_fin), ("udp", t.udp)] {
            if d.get() < std::time::Duration::from_secs(1) || d.get().subsec_nanos() != 0 {
                s.push(
                    Diagnostic::error(
                        p.key("ipvs_timeouts").key(key),
                        format!("IPVS {key} timeout {d} is not a whole number of seconds >= 1s"),
                    )
                    .hint("IPVS counts timeouts in seconds, e.g. \"15m\", \"120s\""),
                );
            }
        }
    }
    for (name, value, max) in g.sysctl.entries() {
        if value > max {
            s.push(
                Diagnostic::error(
                    p.key("sysctl").key(name),
                    format!("net.ipv4.vs.{name} = {value} is out of range"),
                )
                .hint(format!("the kernel accepts 0..={max}")),
            );
        }
    }
}

fn role(cfg: &Config, s: &mut Sink) {
    match cfg.global.role {
        Role::Director => {
            if cfg.services.is_empty() {
                s.push(
                    Diagnostic::error(Path::root(), "a director needs at least one [[service]]")
                        .hint("add a [[service]] table, or set global.role = \"backend\" for an L7 node"),
                );
            }
            if cfg.backend.is_some() {
                s.push(
                    Diagnostic::error(
                        Path::root().key("backend"),
                        "[backend] is only used with role = \"backend\"",
                    )
                    .hint("set global.role = \"backend\" or remove [backend]"),
                );
            }
        }
        Role::Backend => {
            if cfg.backend.is_none() {
                s.push(
                    Diagnostic::error(
                        Path::root().key("global").key("role"),
                        "role = \"backend\" needs a [backend] table",
                    )
                    .hint("add [backend] with its [[backend.tunnel]] devices"),
                );
            }
            if !cfg.services.is_empty() {
                s.push(
                    Diagnostic::error(
                        Path::root().key("service").idx(0),
                        "a backend does not program IPVS services",
                    )
                    .hint("remove [[service]], or set global.role = \"director\""),
                );
            }
        }
    }
}

/// A path-like setting must be absolute: vipd runs from `/` under systemd.
fn absolute(path: &FsPath, at: Path, s: &mut Sink) {
    if !path.is_absolute() {
        s.push(
            Diagnostic::error(at, format!("{} is not an absolute path", path.display()))
                .hint("write the full path, starting with /"),
        );
    }
}

/// An address that can name a host (not 0.0.0.0, ::, multicast or broadcast).
fn unicast(a: IpAddr) -> bool {
    !a.is_unspecified() && !a.is_multicast() && !matches!(a, IpAddr::V4(v4) if v4.is_broadcast())
}

/// `name` is usable in logs, metrics labels and file names.
fn good_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

const NAME_HINT: &str = "use 1 to 64 characters from A-Z a-z 0-9 - _ .";

/// The candidate closest to `word` by edit distance, if close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

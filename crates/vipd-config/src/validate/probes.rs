//! Rules of tunnel-path checks (`via = "tunnel"`) and of the marks they reserve.

use super::Sink;
use crate::diag::{Diagnostic, Path};
use crate::model::{Config, Forwarding, Role, Via};
use crate::probes::{PROBE_MARK_BASE, PROBE_MARKS};

pub(super) fn probes(cfg: &Config, s: &mut Sink) {
    for (i, svc) in cfg.services.iter().enumerate() {
        if svc.fwmark.is_some_and(|m| PROBE_MARKS.contains(&m)) {
            s.push(
                Diagnostic::error(
                    Path::root().key("service").idx(i).key("fwmark"),
                    format!(
                        "fwmark {:#x} is in the range vipd's tunnel-path checks use",
                        svc.fwmark.unwrap_or_default()
                    ),
                )
                .hint(format!(
                    "use a mark outside {PROBE_MARK_BASE:#x}..={:#x}",
                    PROBE_MARKS.end - 1
                )),
            );
        }
    }
    let probes = cfg.tunnel_probes();
    let mut seen = std::collections::BTreeSet::new();
    for p in &probes {
        if !seen.insert(p.service_index) {
            continue;
        }
        let svc = &cfg.services[p.service_index];
        let at = Path::root().key("service").idx(p.service_index);
        if svc.forwarding != Forwarding::Tunnel {
            s.push(
                Diagnostic::error(
                    at.key("forwarding"),
                    "a check with via = \"tunnel\" needs forwarding = \"tunnel\"",
                )
                .hint("the probe rides the service's own encapsulation: use via = \"direct\" here"),
            );
        }
        if svc.fwmark.is_some() {
            s.push(
                Diagnostic::error(
                    at.key("fwmark"),
                    "a check with via = \"tunnel\" cannot probe a firewall-mark service",
                )
                .hint("it connects to the VIP and a port; use via = \"direct\" here"),
            );
        }
    }
    if probes.len() > PROBE_MARKS.len() {
        s.push(
            Diagnostic::error(
                Path::root(),
                format!(
                    "{} real servers have tunnel-path checks; at most {} can",
                    probes.len(),
                    PROBE_MARKS.len()
                ),
            )
            .hint("use via = \"direct\" for some"),
        );
    }
    if cfg.global.role == Role::Backend {
        for (i, c) in cfg.checks.iter().enumerate() {
            if c.via == Via::Tunnel {
                s.push(
                    Diagnostic::error(
                        Path::root().key("check").idx(i).key("via"),
                        "a backend's local checks probe 127.0.0.1, not through a tunnel",
                    )
                    .hint("remove via, or set it to \"direct\""),
                );
            }
        }
    }
}

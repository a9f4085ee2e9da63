//! Outputs as readable text: the golden scenario files and debug logs.

use std::fmt::Write as _;
use std::time::Instant;

use crate::{IpvsIntent, Output};

/// Scheduler and flags as `ipvsadm` prints them.
pub(crate) fn scheduler(s: &vipd_config::Service) -> String {
    let mut out = s.scheduler.as_str().to_string();
    if s.mh_port() && s.scheduler == vipd_config::Scheduler::Mh {
        out.push_str(" mh-port");
    }
    if s.mh_fallback() {
        out.push_str(" mh-fallback");
    }
    out
}

fn intent(i: &IpvsIntent) -> String {
    let mut o = format!("#{}{}", i.seq, if i.full { " full" } else { "" });
    for d in &i.services {
        let _ = write!(o, "\n       set {} {}:", d.service.key, d.service.scheduler);
        if d.service.flags != 0 {
            let _ = write!(o, " flags {:#x}", d.service.flags);
        }
        let mut dests = d.dests.clone();
        vipd_reconcile::canonical_order(&mut dests);
        if dests.is_empty() {
            o.push_str(" (no destination)");
        }
        for x in &dests {
            let _ = write!(
                o,
                " {} w{}",
                std::net::SocketAddr::new(x.addr, x.port),
                x.weight
            );
        }
    }
    for k in &i.removed {
        let _ = write!(o, "\n       del {k}");
    }
    if let Some(t) = &i.timeouts {
        let _ = write!(
            o,
            "\n       timeouts tcp {} tcpfin {} udp {}",
            t.tcp, t.tcp_fin, t.udp
        );
    }
    o
}

impl Output {
    /// One line (or a few) per output; times relative to `base`.
    pub fn render(&self, base: Instant) -> String {
        match self {
            Output::Event(e) => format!("event  {e}"),
            Output::Sysctls(s) => {
                let e: Vec<String> = s
                    .entries()
                    .into_iter()
                    .map(|(n, v, _)| format!("{n}={v}"))
                    .collect();
                format!("sysctl {}", e.join(" "))
            }
            Output::Checks(j) => {
                let mut names: Vec<String> = j
                    .jobs
                    .values()
                    .map(|x| format!("{}@{}", x.name, x.server))
                    .collect();
                names.sort();
                format!("checks {} jobs: {}", names.len(), names.join(" "))
            }
            Output::Bgp(None) => "bgp    no [bgp]".to_string(),
            Output::Bgp(Some(b)) => {
                let n: Vec<String> = b
                    .neighbors
                    .iter()
                    .map(|n| format!("{} AS{}", n.address, n.remote_as))
                    .collect();
                format!("bgp    AS{} neighbors {}", b.local_as, n.join(", "))
            }
            Output::Routes(r) if r.is_empty() => "routes (none)".to_string(),
            Output::Routes(r) => {
                let v: Vec<String> = r
                    .iter()
                    .map(|(p, a)| {
                        let mut s = p.to_string();
                        if let Some(m) = a.med {
                            let _ = write!(s, " med {m}");
                        }
                        if let Some(l) = a.local_pref {
                            let _ = write!(s, " local-pref {l}");
                        }
                        for c in &a.communities {
                            let _ = write!(s, " {}:{}", c >> 16, c & 0xffff);
                        }
                        for (g, l1, l2) in &a.large_communities {
                            let _ = write!(s, " {g}:{l1}:{l2}");
                        }
                        for e in &a.extended_communities {
                            let _ = write!(s, " {}", vipd_config::ExtCommunity(*e));
                        }
                        if a.prepend > 0 {
                            let _ = write!(s, " prepend {}", a.prepend);
                        }
                        s
                    })
                    .collect();
                format!("routes {}", v.join("; "))
            }
            Output::EndOfRib => "end-of-rib".to_string(),
            Output::Ipvs(i) => format!("ipvs   {}", intent(i)),
            Output::Vips(v) => {
                let v: Vec<String> = v.iter().map(ToString::to_string).collect();
                format!("vips   {}", v.join(" "))
            }
            Output::Wake(at) => format!(
                "wake   at {:.3}s",
                at.saturating_duration_since(base).as_secs_f64()
            ),
        }
    }
}

//! The firewall marks of tunnel-path checks (`via = "tunnel"`): one per (service, real
//! server) that has such a check. The director programs a firewall-mark IPVS service per
//! mark holding only that real server, and the probe marks its socket with it: IPVS then
//! encapsulates the probe to that real server exactly as it does the service's traffic.
//!
//! Marks are handed out in configuration order from [`PROBE_MARK_BASE`], so the health
//! engine and the director compute the same ones from the same configuration.

use std::net::{IpAddr, SocketAddr};

use crate::model::{Config, Via};

/// The first mark of tunnel-path probes ("vi" in the high bytes). Firewall-mark services of
/// the configuration may not use [`PROBE_MARKS`].
pub const PROBE_MARK_BASE: u32 = 0x7669_0000;

/// The reserved range.
pub const PROBE_MARKS: std::ops::Range<u32> = PROBE_MARK_BASE..PROBE_MARK_BASE + 0x1_0000;

/// One real server probed through its tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelProbe {
    /// Service name.
    pub service: String,
    /// Index of the service in the configuration.
    pub service_index: usize,
    /// The real server (address and service port).
    pub server: SocketAddr,
    /// The VIP the probe connects to.
    pub vip: IpAddr,
    /// The mark of its socket and of its firewall-mark service.
    pub mark: u32,
}

impl Config {
    /// The real servers that have a check with `via = "tunnel"`, with their marks.
    pub fn tunnel_probes(&self) -> Vec<TunnelProbe> {
        let mut out = Vec::new();
        for (si, s) in self.services.iter().enumerate() {
            for r in &s.real_servers {
                let names = r.checks.as_ref().unwrap_or(&s.checks);
                let named = names.iter().filter_map(|n| {
                    self.checks
                        .iter()
                        .find(|c| c.name.as_deref() == Some(n.as_str()))
                });
                let tunnel = named
                    .chain(r.inline_checks.iter())
                    .any(|c| c.via == Via::Tunnel);
                if tunnel {
                    let n = u32::try_from(out.len()).unwrap_or(u32::MAX);
                    out.push(TunnelProbe {
                        service: s.name.clone(),
                        service_index: si,
                        server: SocketAddr::new(r.address, s.port_of(r)),
                        vip: s.vip,
                        mark: PROBE_MARK_BASE.saturating_add(n),
                    });
                }
            }
        }
        out
    }
}

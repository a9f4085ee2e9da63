//! The firewall marks of tunnel-path checks (`via = "tunnel"`): one per (service, real
//! server) that has such a check. The director programs a firewall-mark IPVS service per
//! mark holding only that real server, and the probe marks its socket with it: IPVS then
//! encapsulates the probe to that real server exactly as it does the service's traffic.
//!
//! A mark is [`PROBE_MARK_BASE`] plus a 16-bit hash of the service's name and the server's
//! address and port (the next free one on a collision, in configuration order): the health
//! engine and the director compute the same ones from the same configuration, and adding or
//! removing a server leaves the others' marks alone (a moved mark would restart their checks
//! and move their firewall-mark services).

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
                    let server = SocketAddr::new(r.address, s.port_of(r));
                    out.push(TunnelProbe {
                        service: s.name.clone(),
                        service_index: si,
                        server,
                        vip: s.vip,
                        mark: 0,
                    });
                }
            }
        }
        let mut used = std::collections::BTreeSet::new();
        for p in &mut out {
            let mut slot = fnv16(&format!("{} {}", p.service, p.server));
            // More probes than slots is refused at load; stop rather than loop forever.
            for _ in 0..=u16::MAX {
                if used.insert(slot) {
                    break;
                }
                slot = slot.wrapping_add(1);
            }
            p.mark = PROBE_MARK_BASE + u32::from(slot);
        }
        out
    }
}

/// FNV-1a folded to 16 bits.
fn fnv16(text: &str) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    ((h >> 16) ^ (h & 0xffff)) as u16
}

#[cfg(test)]
mod tests {
    const SRC: &str = r#"
[[check]]
name = "t"
kind = "tcp"
via = "tunnel"
[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
checks = ["t"]
[[service.real_server]]
address = "10.9.0.10"
[[service.real_server]]
address = "10.9.0.11"
"#;

    fn marks(src: &str) -> Vec<(String, u32)> {
        crate::load_str(src, "t.toml")
            .unwrap()
            .config
            .tunnel_probes()
            .into_iter()
            .map(|p| (p.server.to_string(), p.mark))
            .collect()
    }

    #[test]
    fn a_servers_mark_does_not_move_when_another_is_added() {
        let before = marks(SRC);
        let after = marks(&SRC.replace(
            "[[service.real_server]]\naddress = \"10.9.0.10\"",
            "[[service.real_server]]\naddress = \"10.9.0.9\"\n[[service.real_server]]\naddress = \"10.9.0.10\"",
        ));
        assert_eq!(after.len(), 3);
        for m in &before {
            assert!(after.contains(m), "{m:?} moved: {after:?}");
        }
        let all: std::collections::BTreeSet<u32> = after.iter().map(|(_, m)| *m).collect();
        assert_eq!(all.len(), 3, "distinct");
        assert!(all.iter().all(|m| crate::PROBE_MARKS.contains(m)));
    }
}

//! What a backend reports of itself (`vipd status`, `/status`, the page, `/metrics`,
//! `/healthcheck`): the set-up `[backend]` asks for as the kernel holds it now, the agent's
//! current answer and the local checks. Observed every second by the backend's main task
//! (read-only: links, addresses, sysctls, the nftables table); repairs stay with the resync.

use serde::{Deserialize, Serialize};

use super::Health;

/// A backend's own state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    /// What keeps the node from receiving tunnelled traffic, in words (a device missing or
    /// down, a VIP missing, a sysctl, the filter, a set-up error). Empty: nothing found.
    pub problems: Vec<String>,
    /// The tunnel devices of `[[backend.tunnel]]`.
    pub tunnels: Vec<TunnelView>,
    /// `backend.loopback_vips` (direct routing) on `lo`.
    pub loopback_vips: Vec<VipView>,
    /// The sysctls the set-up needs, with their values now.
    pub sysctls: Vec<SysctlView>,
    /// The nftables director filter, when `allowed_directors` is set.
    pub filter: Option<FilterView>,
    /// The agent, when `[backend.agent]` is set.
    pub agent: Option<AgentView>,
    /// The local checks (`[backend.agent] checks`).
    pub local_checks: Vec<LocalCheckView>,
    /// The errors of the last set-up (retried at each resync).
    pub setup_errors: Vec<String>,
}

/// A tunnel device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelView {
    /// Device name.
    pub name: String,
    /// `ipip`, `ip6ip6`, `gre` or `ip6gre`.
    pub mode: String,
    /// The configured local address (None: the catch-all device, from any remote).
    pub local: Option<String>,
    /// The device exists.
    pub present: bool,
    /// The device is up.
    pub up: bool,
    /// Its VIPs.
    pub vips: Vec<VipView>,
    /// ip6ip6 with an IPv4 VIP: whether the device takes IPv4 inside IPv6 (`mode any`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takes_ipv4: Option<bool>,
    /// The GUE listener feeding this device, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gue: Option<GueView>,
}

/// A GUE (FOU) listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GueView {
    /// The UDP port.
    pub port: u16,
    /// The kernel has a GUE listener on it (of the device's outer family).
    pub listening: bool,
}

/// A VIP on a device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipView {
    /// The address.
    pub address: String,
    /// On the device now.
    pub present: bool,
}

/// A sysctl the set-up needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlView {
    /// `net.ipv4.conf.all.rp_filter`.
    pub name: String,
    /// The value the set-up writes.
    pub want: String,
    /// The value now (None: unreadable).
    pub value: Option<String>,
}

/// The director filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterView {
    /// The directors allowed to send encapsulated packets.
    pub allowed_directors: Vec<String>,
    /// vipd's nftables table is loaded (None: `nft` did not answer in time).
    pub present: Option<bool>,
}

/// The agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    /// Where it listens.
    pub listen: String,
    /// The line a director gets now (`up`, `drain #...`, `down #...`, the state file's).
    pub answer: String,
}

/// A local check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalCheckView {
    /// Check name.
    pub name: String,
    /// Its state.
    pub health: Health,
    /// Its last reason.
    pub reason: String,
}

impl BackendStatus {
    /// The problems that keep tunnelled traffic from this node's listeners (a missing or
    /// down tunnel device, a missing VIP, strict reverse-path filtering): the agent answers
    /// `down` with the first. Not the filter (a missing filter lets more in, not less), the
    /// ARP sysctls (they do not stop traffic arriving) nor the set-up errors (their effect,
    /// if any, is among these).
    pub fn blackholes(&self) -> Vec<String> {
        let mut p = Vec::new();
        for t in &self.tunnels {
            if !t.present {
                p.push(format!("tunnel device {} is missing", t.name));
            } else if !t.up {
                p.push(format!("tunnel device {} is down", t.name));
            }
            for v in t.vips.iter().filter(|v| !v.present) {
                p.push(format!("VIP {} is missing on {}", v.address, t.name));
            }
            if t.takes_ipv4 == Some(false) {
                p.push(format!(
                    "tunnel device {} takes IPv6 inside IPv6 only: its IPv4 VIPs get nothing",
                    t.name
                ));
            }
            if let Some(g) = t.gue.as_ref().filter(|g| !g.listening) {
                p.push(format!(
                    "no GUE listener on UDP port {} for {}: GUE traffic is dropped",
                    g.port, t.name
                ));
            }
        }
        for v in self.loopback_vips.iter().filter(|v| !v.present) {
            p.push(format!("VIP {} is missing on lo", v.address));
        }
        // The kernel applies the larger of `all` and the device's value: 1 (strict) drops
        // the decapsulated packets, 2 (loose) does not.
        let rp = |name: &str| {
            self.sysctls
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.value.as_deref()?.parse::<u8>().ok())
        };
        let all = rp("net.ipv4.conf.all.rp_filter");
        for s in &self.sysctls {
            let Some(dev) = s
                .name
                .strip_prefix("net.ipv4.conf.")
                .and_then(|r| r.strip_suffix(".rp_filter"))
                .filter(|d| *d != "all")
            else {
                continue;
            };
            if all.max(rp(&s.name)) == Some(1) {
                p.push(format!(
                    "rp_filter is strict (1) on {dev}: decapsulated packets are dropped"
                ));
            }
        }
        p
    }

    /// Why the node cannot take traffic now (`/healthcheck` answers 503 with it): traffic
    /// would be lost ([`BackendStatus::blackholes`]), the set-up failed, or the agent tells
    /// the directors to stop (`down`, `drain`, `maint`, `stopped`, `fail`).
    pub fn unavailable(&self) -> Option<String> {
        if let Some(b) = self.blackholes().into_iter().next() {
            return Some(b);
        }
        if let Some(e) = self.setup_errors.first() {
            return Some(format!("set-up: {e}"));
        }
        let agent = self.agent.as_ref()?;
        let word = agent.answer.split([' ', '#']).next().unwrap_or("");
        matches!(word, "down" | "drain" | "maint" | "stopped" | "fail")
            .then(|| format!("the agent answers {:?}", agent.answer))
    }

    /// Fills `problems` from what was observed.
    pub fn find_problems(&mut self) {
        let mut p = self.blackholes();
        for s in &self.sysctls {
            let rp = s.name.ends_with(".rp_filter");
            match s.value.as_deref() {
                None => p.push(format!("{} is unreadable", s.name)),
                // rp_filter: judged above with `all`; 2 (loose) works as well as 0.
                Some(v) if !rp && v != s.want => {
                    p.push(format!("{} is {v} (needs {})", s.name, s.want))
                }
                _ => {}
            }
        }
        match self.filter.as_ref().map(|f| f.present) {
            Some(Some(false)) => p.push(
                "the nftables director filter (table inet vipd_backend) is not loaded".into(),
            ),
            Some(None) => p.push("nft did not answer: the director filter is unknown".into()),
            _ => {}
        }
        p.extend(self.setup_errors.iter().map(|e| format!("set-up: {e}")));
        self.problems = p;
    }
}

/// The human form of `vipd status` on a backend.
pub fn render_text(b: &BackendStatus) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let yes = |v: bool, y: &'static str, n: &'static str| if v { y } else { n };
    if b.problems.is_empty() {
        o.push_str("backend set up: no problem found\n");
    }
    for p in &b.problems {
        let _ = writeln!(o, "PROBLEM {p}");
    }
    for t in &b.tunnels {
        let _ = writeln!(
            o,
            "tunnel {} ({}, local {}): {}",
            t.name,
            t.mode,
            t.local.as_deref().unwrap_or("any"),
            if !t.present {
                "MISSING"
            } else {
                yes(t.up, "up", "DOWN")
            }
        );
        if let Some(g) = &t.gue {
            let _ = writeln!(
                o,
                "  GUE on UDP port {}: {}",
                g.port,
                yes(g.listening, "listening", "NOT LISTENING")
            );
        }
        for v in &t.vips {
            let _ = writeln!(
                o,
                "  VIP {} {}",
                v.address,
                yes(v.present, "present", "MISSING")
            );
        }
    }
    for v in &b.loopback_vips {
        let _ = writeln!(
            o,
            "VIP {} on lo {}",
            v.address,
            yes(v.present, "present", "MISSING")
        );
    }
    for s in &b.sysctls {
        let v = s.value.as_deref().unwrap_or("unreadable");
        let mark = yes(s.value.as_deref() == Some(s.want.as_str()), "", " (needs ");
        let end = if mark.is_empty() {
            String::new()
        } else {
            format!("{})", s.want)
        };
        let _ = writeln!(o, "sysctl {} = {v}{mark}{end}", s.name);
    }
    if let Some(f) = &b.filter {
        let _ = writeln!(
            o,
            "director filter (nftables inet vipd_backend): {}; allowed: {}",
            match f.present {
                Some(true) => "loaded",
                Some(false) => "NOT LOADED",
                None => "unknown (nft did not answer)",
            },
            f.allowed_directors.join(", ")
        );
    }
    if let Some(a) = &b.agent {
        let _ = writeln!(o, "agent on {} answers: {}", a.listen, a.answer);
    }
    for c in &b.local_checks {
        let h = match c.health {
            Health::Up => "up",
            Health::Down => "DOWN",
            Health::Unknown => "unknown",
        };
        let _ = writeln!(o, "local check {}: {h} ({})", c.name, c.reason);
    }
    o
}

/// A backend whose tunl0 lacks its VIP (for tests).
#[cfg(test)]
pub fn missing_vip_example() -> BackendStatus {
    let mut b = BackendStatus {
        tunnels: vec![TunnelView {
            name: "tunl0".into(),
            mode: "ipip".into(),
            present: true,
            up: true,
            vips: vec![VipView {
                address: "198.51.100.10".into(),
                present: false,
            }],
            ..TunnelView::default()
        }],
        ..BackendStatus::default()
    };
    b.find_problems();
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_gue_listener_and_an_ipv6_only_device_are_blackholes() {
        let mut b = BackendStatus {
            tunnels: vec![TunnelView {
                name: "t6".into(),
                mode: "ip6ip6".into(),
                present: true,
                up: true,
                takes_ipv4: Some(false),
                gue: Some(GueView {
                    port: 6080,
                    listening: false,
                }),
                ..TunnelView::default()
            }],
            ..BackendStatus::default()
        };
        let p = b.blackholes();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("t6 takes IPv6 inside IPv6 only"), "{p:?}");
        assert!(p[1].contains("no GUE listener on UDP port 6080"), "{p:?}");
        b.tunnels[0].takes_ipv4 = Some(true);
        b.tunnels[0].gue = Some(GueView {
            port: 6080,
            listening: true,
        });
        assert!(b.blackholes().is_empty());
        b.find_problems();
        assert!(render_text(&b).contains("GUE on UDP port 6080: listening"));
    }

    #[test]
    fn problems_name_what_is_missing() {
        let mut b = BackendStatus {
            tunnels: vec![TunnelView {
                name: "tunl0".into(),
                mode: "ipip".into(),
                present: true,
                up: true,
                vips: vec![VipView {
                    address: "198.51.100.10".into(),
                    present: false,
                }],
                ..TunnelView::default()
            }],
            sysctls: vec![
                SysctlView {
                    name: "net.ipv4.conf.all.rp_filter".into(),
                    want: "0".into(),
                    value: Some("1".into()),
                },
                SysctlView {
                    name: "net.ipv4.conf.tunl0.rp_filter".into(),
                    want: "0".into(),
                    value: Some("0".into()),
                },
            ],
            filter: Some(FilterView {
                allowed_directors: vec!["10.8.0.1".into()],
                present: Some(false),
            }),
            setup_errors: vec!["ip addr add 198.51.100.10/32 dev tunl0: EPERM".into()],
            ..BackendStatus::default()
        };
        b.find_problems();
        assert_eq!(
            b.problems,
            [
                "VIP 198.51.100.10 is missing on tunl0",
                "rp_filter is strict (1) on tunl0: decapsulated packets are dropped",
                "the nftables director filter (table inet vipd_backend) is not loaded",
                "set-up: ip addr add 198.51.100.10/32 dev tunl0: EPERM",
            ]
        );
        // Loose reverse-path filtering works: neither a blackhole nor a problem.
        b.sysctls[0].value = Some("2".into());
        b.find_problems();
        assert!(
            !b.problems.iter().any(|p| p.contains("rp_filter")),
            "{:?}",
            b.problems
        );
        assert_eq!(
            b.unavailable().as_deref(),
            Some("VIP 198.51.100.10 is missing on tunl0")
        );
        b.tunnels[0].up = false;
        b.tunnels[0].vips[0].present = true;
        b.sysctls.clear();
        b.filter = None;
        b.setup_errors.clear();
        b.find_problems();
        assert_eq!(b.problems, ["tunnel device tunl0 is down"]);
        let text = render_text(&b);
        assert!(
            text.contains("PROBLEM tunnel device tunl0 is down"),
            "{text}"
        );
        assert!(
            text.contains("tunnel tunl0 (ipip, local any): DOWN"),
            "{text}"
        );
        assert!(text.contains("  VIP 198.51.100.10 present"), "{text}");
    }
}

//! Which VIP routes to announce, and with which attributes: quorum with hysteresis per
//! service, the first health pass, and the drain file. Pure (time is passed in), owned by
//! the main task; the result goes to the speaker's `set_routes`, which sends only the diff.
//!
//! - A service counts once its IPVS service is programmed and its first health pass is done
//!   (every real server out of `Unknown`): a router must never be attracted to a VIP this
//!   director cannot yet forward, nor to one whose backends are still unknown.
//! - Quorum: the sum of healthy real server weights. It goes up at `quorum + hysteresis` and
//!   down below `quorum - hysteresis`, so a backend flapping at the edge does not flap the
//!   route.
//! - A VIP with several services (ports) is announced only while every announced service of
//!   it has quorum: a director that cannot serve one port leaves the VIP to directors that
//!   can (ECMP spreads flows regardless of port).
//! - Drain (the drain file exists): each announced VIP is re-announced with GRACEFUL_SHUTDOWN
//!   (65535:0, RFC 8326) and `drained_med`, then withdrawn `drain_delay` later; without
//!   `graceful_shutdown` it is withdrawn at once. IPVS is left as it is: existing flows end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use vipd_bgp::rib::RouteAttrs;
use vipd_bgp::wire::Prefix;
use vipd_config::Config;

/// RFC 8326 GRACEFUL_SHUTDOWN.
pub const GRACEFUL_SHUTDOWN: u32 = 0xFFFF_0000;

/// What the health view says of one service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceHealth {
    /// Sum of healthy weights.
    pub healthy_weight: u64,
    /// First health pass complete.
    pub settled: bool,
}

/// Announcement state.
#[derive(Debug, Default)]
pub struct Announcer {
    quorum_up: BTreeMap<String, bool>,
    draining_since: Option<Instant>,
}

/// Why a VIP is or is not announced, for status and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VipState {
    /// Announced normally.
    Announced,
    /// Announced with GRACEFUL_SHUTDOWN, withdrawn at the end of the drain delay.
    Draining,
    /// Not announced, with the reason.
    Withdrawn(String),
}

impl Announcer {
    /// Records the drain file's presence; logs changes.
    pub fn set_drain(&mut self, present: bool, now: Instant) {
        match (present, self.draining_since) {
            (true, None) => {
                warn!(
                    "drain file present: draining this node (routes withdrawn after the drain delay)"
                );
                self.draining_since = Some(now);
            }
            (false, Some(_)) => {
                info!("drain file removed: announcing again");
                self.draining_since = None;
            }
            _ => {}
        }
    }

    /// The drain file is present.
    pub fn drained(&self) -> bool {
        self.draining_since.is_some()
    }

    /// Updates each service's quorum from its health; logs changes.
    pub fn update_quorum(&mut self, cfg: &Config, health: &BTreeMap<String, ServiceHealth>) {
        self.quorum_up
            .retain(|name, _| cfg.services.iter().any(|s| &s.name == name));
        for s in &cfg.services {
            let h = health.get(&s.name).copied().unwrap_or_default();
            let up = self.quorum_up.entry(s.name.clone()).or_insert(false);
            let q = u64::from(s.quorum);
            let hy = u64::from(s.hysteresis);
            let new = if *up {
                h.healthy_weight >= q.saturating_sub(hy)
            } else {
                h.healthy_weight >= q + hy
            };
            if new != *up {
                if new {
                    info!(service = %s.name, healthy_weight = h.healthy_weight, quorum = s.quorum, "quorum up");
                } else {
                    warn!(service = %s.name, healthy_weight = h.healthy_weight, quorum = s.quorum, "quorum down");
                }
                *up = new;
            }
        }
    }

    /// The routes to announce now, each VIP's state, and when to look again (the end of a
    /// drain delay), given whether IPVS is programmed and each service's health.
    pub fn routes(
        &self,
        cfg: &Config,
        programmed: bool,
        health: &BTreeMap<String, ServiceHealth>,
        now: Instant,
    ) -> (
        BTreeMap<Prefix, RouteAttrs>,
        BTreeMap<Prefix, VipState>,
        Option<Instant>,
    ) {
        let mut routes = BTreeMap::new();
        let mut states: BTreeMap<Prefix, VipState> = BTreeMap::new();
        let mut wake = None;
        for s in cfg.services.iter().filter(|s| s.announce.enabled) {
            let p = Prefix::host(s.vip);
            let why_not = if !programmed {
                Some("IPVS not programmed yet".to_string())
            } else if !health.get(&s.name).is_some_and(|h| h.settled) {
                Some(format!(
                    "service {}: first health pass not complete",
                    s.name
                ))
            } else if !self.quorum_up.get(&s.name).copied().unwrap_or(false) {
                Some(format!(
                    "service {}: no quorum (healthy weight {} < {})",
                    s.name,
                    health.get(&s.name).map_or(0, |h| h.healthy_weight),
                    s.quorum
                ))
            } else {
                None
            };
            if let Some(reason) = why_not {
                routes.remove(&p);
                states.insert(p, VipState::Withdrawn(reason));
                continue;
            }
            if matches!(states.get(&p), Some(VipState::Withdrawn(_))) {
                continue; // another service of this VIP has no quorum
            }
            let a = &s.announce;
            let mut attrs = RouteAttrs {
                med: a.med,
                local_pref: a.local_pref,
                communities: a.communities.iter().map(|c| c.0).collect(),
                large_communities: a
                    .large_communities
                    .iter()
                    .map(|l| (l.0, l.1, l.2))
                    .collect(),
            };
            let state = match self.draining_since {
                None => VipState::Announced,
                Some(since) => {
                    let end = since + a.drain_delay.get();
                    if a.graceful_shutdown && now < end {
                        attrs.communities.push(GRACEFUL_SHUTDOWN);
                        attrs.med = a.drained_med.or(a.med);
                        wake = Some(wake.map_or(end, |w: Instant| w.min(end)));
                        VipState::Draining
                    } else {
                        states.insert(p, VipState::Withdrawn("node drained".to_string()));
                        continue;
                    }
                }
            };
            // The first service of a VIP sets its attributes.
            routes.entry(p).or_insert(attrs);
            states.entry(p).or_insert(state);
        }
        (routes, states, wake)
    }
}

/// How often the drain file is looked at.
pub const DRAIN_POLL: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        let src = format!(
            "[global]\nrouter_id = \"192.0.2.1\"\n[[service]]\nname = \"web\"\nvip = \"198.51.100.1\"\nport = 80\nquorum = 2\nhysteresis = 1\n[service.announce]\nmed = 10\ndrained_med = 500\ndrain_delay = \"10s\"\ncommunities = [\"65000:1\"]\n[[service.real_server]]\naddress = \"10.0.0.1\"\n[[service.real_server]]\naddress = \"10.0.0.2\"\n[[service.real_server]]\naddress = \"10.0.0.3\"\n{extra}"
        );
        vipd_config::load_str(&src, "t.toml")
            .unwrap_or_else(|e| panic!("{e}"))
            .config
    }

    fn health(w: u64, settled: bool) -> BTreeMap<String, ServiceHealth> {
        BTreeMap::from([(
            "web".to_string(),
            ServiceHealth {
                healthy_weight: w,
                settled,
            },
        )])
    }

    fn vip() -> Prefix {
        Prefix::host("198.51.100.1".parse().expect("ip"))
    }

    #[test]
    fn announced_only_when_programmed_settled_and_with_quorum() {
        let c = cfg("");
        let now = Instant::now();
        let mut a = Announcer::default();
        a.update_quorum(&c, &health(3, true));
        let (r, s, _) = a.routes(&c, false, &health(3, true), now);
        assert!(r.is_empty());
        assert_eq!(
            s[&vip()],
            VipState::Withdrawn("IPVS not programmed yet".into())
        );
        let (r, s, _) = a.routes(&c, true, &health(3, false), now);
        assert!(r.is_empty());
        assert_eq!(
            s[&vip()],
            VipState::Withdrawn("service web: first health pass not complete".into())
        );
        let (r, s, _) = a.routes(&c, true, &health(3, true), now);
        assert_eq!(s[&vip()], VipState::Announced);
        assert_eq!(r[&vip()].med, Some(10));
        assert_eq!(r[&vip()].communities, vec![0xFDE8_0001]);
    }

    #[test]
    fn quorum_hysteresis() {
        // quorum 2, hysteresis 1: up at >= 3, down below 1.
        let c = cfg("");
        let mut a = Announcer::default();
        let up = |a: &Announcer, w| {
            !a.routes(&c, true, &health(w, true), Instant::now())
                .0
                .is_empty()
        };
        a.update_quorum(&c, &health(2, true));
        assert!(!up(&a, 2), "2 < quorum + hysteresis");
        a.update_quorum(&c, &health(3, true));
        assert!(up(&a, 3));
        a.update_quorum(&c, &health(1, true));
        assert!(up(&a, 1), "1 >= quorum - hysteresis: stays up");
        a.update_quorum(&c, &health(0, true));
        let (r, s, _) = a.routes(&c, true, &health(0, true), Instant::now());
        assert!(r.is_empty());
        assert_eq!(
            s[&vip()],
            VipState::Withdrawn("service web: no quorum (healthy weight 0 < 2)".into())
        );
    }

    #[test]
    fn drain_reannounces_with_graceful_shutdown_then_withdraws() {
        let c = cfg("");
        let t0 = Instant::now();
        let mut a = Announcer::default();
        a.update_quorum(&c, &health(3, true));
        a.set_drain(true, t0);
        let (r, s, wake) = a.routes(&c, true, &health(3, true), t0 + Duration::from_secs(1));
        assert_eq!(s[&vip()], VipState::Draining);
        assert_eq!(r[&vip()].communities, vec![0xFDE8_0001, GRACEFUL_SHUTDOWN]);
        assert_eq!(r[&vip()].med, Some(500));
        assert_eq!(wake, Some(t0 + Duration::from_secs(10)));
        let (r, s, _) = a.routes(&c, true, &health(3, true), t0 + Duration::from_secs(10));
        assert!(r.is_empty());
        assert_eq!(s[&vip()], VipState::Withdrawn("node drained".into()));
        a.set_drain(false, t0 + Duration::from_secs(20));
        let (r, _, _) = a.routes(&c, true, &health(3, true), t0 + Duration::from_secs(20));
        assert_eq!(
            r[&vip()].communities,
            vec![0xFDE8_0001],
            "back, without 65535:0"
        );
    }

    #[test]
    fn drain_without_graceful_shutdown_withdraws_at_once() {
        let c = cfg("");
        let mut c2 = c.clone();
        c2.services[0].announce.graceful_shutdown = false;
        let t0 = Instant::now();
        let mut a = Announcer::default();
        a.update_quorum(&c2, &health(3, true));
        a.set_drain(true, t0);
        assert!(a.routes(&c2, true, &health(3, true), t0).0.is_empty());
    }

    #[test]
    fn a_vip_needs_every_service_of_it() {
        let c = cfg(
            "[[service]]\nname = \"tls\"\nvip = \"198.51.100.1\"\nport = 443\n[[service.real_server]]\naddress = \"10.0.0.1\"\n",
        );
        let mut h = health(3, true);
        h.insert(
            "tls".into(),
            ServiceHealth {
                healthy_weight: 0,
                settled: true,
            },
        );
        let mut a = Announcer::default();
        a.update_quorum(&c, &h);
        let (r, s, _) = a.routes(&c, true, &h, Instant::now());
        assert!(r.is_empty());
        assert_eq!(
            s[&vip()],
            VipState::Withdrawn("service tls: no quorum (healthy weight 0 < 1)".into())
        );
    }
}

//! Which VIP routes to announce, and with which attributes.
//!
//! - A service counts once IPVS holds it as desired ([`Programmed`]) and its first health
//!   pass is done (every real server out of `Unknown`): a router must never be attracted to a
//!   VIP this director cannot forward, nor to one whose backends are still unknown.
//! - Quorum: the sum of healthy real server weights. It goes up at `quorum + hysteresis` and
//!   down below `quorum - hysteresis`, so a backend flapping at the edge does not flap the
//!   route.
//! - A VIP with several services (ports) is announced only while every announced service of
//!   it counts: a director that cannot serve one port leaves the VIP to directors that can
//!   (ECMP spreads flows regardless of port). Its services announce it alike (the config
//!   refuses a VIP whose services' `[service.announce]` differ).
//! - Drain (the node's drain file, or the VIP's own `announce.drain_file`, exists): each
//!   announced VIP is re-announced with GRACEFUL_SHUTDOWN (65535:0, RFC 8326), `drained_med`
//!   and the `[announce.drained]` attributes, then withdrawn `drain_delay` later, at the
//!   instant computed here (the caller wakes the director then); without
//!   `graceful_shutdown` it is withdrawn at once. IPVS is left as it is: existing flows end.
//! - Down metric (`[announce.down]`, ExaBGP's default): a service that loses its quorum keeps
//!   its VIP announced with the down attributes (a worse MED) instead of withdrawing it. Only
//!   the quorum: a VIP IPVS does not hold, or before the first health pass, is withdrawn.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use vipd_bgp::rib::RouteAttrs;
use vipd_bgp::wire::Prefix;
use vipd_config::{Config, Service};

use crate::event::Event;

/// RFC 8326 GRACEFUL_SHUTDOWN.
pub const GRACEFUL_SHUTDOWN: u32 = 0xFFFF_0000;

/// Whether IPVS holds a service as desired, as its owner last reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Programmed {
    /// Not reported yet (just configured, or its first writes are in flight).
    Pending,
    /// In the kernel as desired.
    Yes,
    /// A write failed (the operation and the kernel's error), or the state is unknown.
    Failed(String),
}

/// Why a VIP is not announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Withdrawn {
    /// `announce.enabled = false`.
    Disabled,
    /// IPVS does not hold a service of this VIP as desired.
    NotProgrammed {
        /// The service.
        service: String,
        /// The failure, when one was reported (None: not programmed yet).
        error: Option<String>,
    },
    /// A service's first health pass is not complete.
    FirstPass {
        /// The service.
        service: String,
    },
    /// A service has no quorum.
    NoQuorum {
        /// The service.
        service: String,
        /// Its healthy weight.
        healthy_weight: u64,
        /// The healthy weight it needs to come up (`quorum + hysteresis`).
        needed: u64,
    },
    /// The drain file exists (and the drain delay is over).
    Drained,
    /// The VIP's own drain file (`announce.drain_file`) exists (and the delay is over).
    VipDrained,
}

impl fmt::Display for Withdrawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Withdrawn::Disabled => f.write_str("announce.enabled = false"),
            Withdrawn::NotProgrammed {
                service,
                error: None,
            } => write!(f, "service {service}: IPVS not programmed yet"),
            Withdrawn::NotProgrammed {
                service,
                error: Some(e),
            } => write!(f, "service {service}: IPVS failed: {e}"),
            Withdrawn::FirstPass { service } => {
                write!(f, "service {service}: first health pass not complete")
            }
            Withdrawn::NoQuorum {
                service,
                healthy_weight,
                needed,
            } => write!(
                f,
                "service {service}: no quorum (healthy weight {healthy_weight}, needs {needed})"
            ),
            Withdrawn::Drained => f.write_str("node drained"),
            Withdrawn::VipDrained => f.write_str("VIP drained (announce.drain_file)"),
        }
    }
}

/// A VIP's route decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VipState {
    /// Announced normally.
    Announced,
    /// Announced with GRACEFUL_SHUTDOWN, withdrawn at the end of the drain delay.
    Draining,
    /// Announced with the `[announce.down]` attributes: the quorum is down.
    Down(Withdrawn),
    /// Not announced, and why.
    Withdrawn(Withdrawn),
}

impl VipState {
    /// The route is in the RIB (announced or draining).
    pub fn is_announced(&self) -> bool {
        matches!(
            self,
            VipState::Announced | VipState::Draining | VipState::Down(_)
        )
    }
}

impl fmt::Display for VipState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VipState::Announced => f.write_str("announced"),
            VipState::Draining => {
                f.write_str("draining (GRACEFUL_SHUTDOWN until the drain delay ends)")
            }
            VipState::Withdrawn(w) => write!(f, "withdrawn: {w}"),
            VipState::Down(w) => write!(f, "announced with the down attributes: {w}"),
        }
    }
}

/// What the announcer needs to know of one service.
#[derive(Clone, Debug)]
pub struct ServiceFacts {
    /// IPVS state; for a VIP not announced yet only [`Programmed::Yes`] with every write
    /// acknowledged counts (the caller folds that in).
    pub programmed: Programmed,
    /// Sum of healthy weights.
    pub healthy_weight: u64,
    /// First health pass complete.
    pub settled: bool,
}

/// Quorum per service (with hysteresis) and the drain state.
#[derive(Debug, Default)]
pub struct Announcer {
    quorum_up: BTreeMap<String, bool>,
    draining_since: Option<Instant>,
    /// Services whose own drain file exists, since when.
    service_draining: BTreeMap<String, Instant>,
}

/// The outcome of one decision.
#[derive(Debug, Default)]
pub struct Decision {
    /// Routes to announce.
    pub routes: BTreeMap<Prefix, RouteAttrs>,
    /// Each VIP's state.
    pub states: BTreeMap<Prefix, VipState>,
    /// When to decide again (the end of a drain delay).
    pub wake: Option<Instant>,
}

impl Announcer {
    /// Records the drain file's presence; the event when it changed.
    pub fn set_drain(&mut self, present: bool, now: Instant) -> Option<Event> {
        match (present, self.draining_since) {
            (true, None) => {
                self.draining_since = Some(now);
                Some(Event::Drain { on: true })
            }
            (false, Some(_)) => {
                self.draining_since = None;
                Some(Event::Drain { on: false })
            }
            _ => None,
        }
    }

    /// Records which services' own drain files exist; an event per change.
    pub fn set_service_drains(
        &mut self,
        present: &std::collections::BTreeSet<String>,
        now: Instant,
    ) -> Vec<Event> {
        let mut ev = Vec::new();
        self.service_draining.retain(|name, _| {
            let keep = present.contains(name);
            if !keep {
                ev.push(Event::ServiceDrain {
                    service: name.clone(),
                    on: false,
                });
            }
            keep
        });
        for name in present {
            if !self.service_draining.contains_key(name) {
                self.service_draining.insert(name.clone(), now);
                ev.push(Event::ServiceDrain {
                    service: name.clone(),
                    on: true,
                });
            }
        }
        ev
    }

    /// The drain file is present.
    pub fn drained(&self) -> bool {
        self.draining_since.is_some()
    }

    /// Since when a service drains: the node's drain or its own, the earlier.
    fn draining_since(&self, service: &str) -> Option<Instant> {
        match (self.draining_since, self.service_draining.get(service)) {
            (Some(a), Some(b)) => Some(a.min(*b)),
            (a, b) => a.or(b.copied()),
        }
    }

    /// Whether a service has quorum now.
    pub fn quorum(&self, service: &str) -> bool {
        self.quorum_up.get(service).copied().unwrap_or(false)
    }

    /// Updates one service's quorum from its healthy weight; the event when it changed.
    pub fn update_quorum(&mut self, s: &Service, healthy_weight: u64) -> Option<Event> {
        let up = self.quorum_up.entry(s.name.clone()).or_insert(false);
        let q = u64::from(s.quorum);
        let hy = u64::from(s.hysteresis);
        let new = if *up {
            healthy_weight >= q.saturating_sub(hy)
        } else {
            healthy_weight >= q + hy
        };
        (new != *up).then(|| {
            *up = new;
            Event::Quorum {
                service: s.name.clone(),
                up: new,
                healthy_weight,
                quorum: s.quorum,
            }
        })
    }

    /// Forgets services no longer configured.
    pub fn retain(&mut self, cfg: &Config) {
        self.quorum_up
            .retain(|name, _| cfg.services.iter().any(|s| &s.name == name));
        self.service_draining
            .retain(|name, _| cfg.services.iter().any(|s| &s.name == name));
    }

    /// The routes to announce now and each VIP's state.
    pub fn decide(
        &self,
        cfg: &Config,
        facts: impl Fn(&Service) -> ServiceFacts,
        now: Instant,
    ) -> Decision {
        let mut d = Decision::default();
        for s in cfg.services.iter().filter(|s| s.announce.enabled) {
            let p = Prefix::host(s.vip);
            let f = facts(s);
            // The most telling reason first: a failure, then health, then writes in flight.
            let service = s.name.clone();
            let why_not = match f.programmed {
                Programmed::Failed(e) => Some(Withdrawn::NotProgrammed {
                    service,
                    error: Some(e),
                }),
                _ if !f.settled => Some(Withdrawn::FirstPass { service }),
                _ if !self.quorum(&s.name) => Some(Withdrawn::NoQuorum {
                    service,
                    healthy_weight: f.healthy_weight,
                    needed: u64::from(s.quorum) + u64::from(s.hysteresis),
                }),
                Programmed::Pending => Some(Withdrawn::NotProgrammed {
                    service,
                    error: None,
                }),
                Programmed::Yes => None,
            };
            let a = &s.announce;
            let mut down: Option<Withdrawn> = None;
            if let Some(reason) = why_not {
                match (&reason, &a.down) {
                    // The down metric: announced, worse, instead of withdrawn.
                    (Withdrawn::NoQuorum { .. }, Some(_))
                        if !matches!(d.states.get(&p), Some(VipState::Withdrawn(_))) =>
                    {
                        down = Some(reason);
                    }
                    _ => {
                        d.routes.remove(&p);
                        if !matches!(d.states.get(&p), Some(VipState::Withdrawn(_))) {
                            d.states.insert(p, VipState::Withdrawn(reason));
                        }
                        continue;
                    }
                }
            }
            if matches!(d.states.get(&p), Some(VipState::Withdrawn(_))) {
                continue; // another service of this VIP does not count
            }
            let mut attrs = RouteAttrs {
                med: a.med,
                local_pref: a.local_pref,
                communities: a.communities.iter().map(|c| c.0).collect(),
                large_communities: a
                    .large_communities
                    .iter()
                    .map(|l| (l.0, l.1, l.2))
                    .collect(),
                extended_communities: a.extended_communities.iter().map(|e| e.0).collect(),
                prepend: a.prepend,
            };
            let state = match self.draining_since(&s.name) {
                None => match down {
                    None => VipState::Announced,
                    Some(reason) => {
                        if let Some(st) = &a.down {
                            apply(&mut attrs, st);
                        }
                        // Another service of this VIP may have set the down attributes
                        // already: they are the same (the config makes them so).
                        d.routes.insert(p, attrs);
                        d.states.insert(p, VipState::Down(reason));
                        continue;
                    }
                },
                Some(since) => {
                    // A drain delay too long for the clock never ends (no overflow panic).
                    let end = since.checked_add(a.drain_delay());
                    if a.graceful_shutdown && end.is_none_or(|end| now < end) {
                        if let Some(st) = &a.drained {
                            apply(&mut attrs, st);
                        }
                        attrs.communities.push(GRACEFUL_SHUTDOWN);
                        attrs.med = a.drained_med.or(attrs.med);
                        if let Some(end) = end {
                            d.wake = Some(d.wake.map_or(end, |w: Instant| w.min(end)));
                        }
                        VipState::Draining
                    } else {
                        let why = if self.draining_since.is_some() {
                            Withdrawn::Drained
                        } else {
                            Withdrawn::VipDrained
                        };
                        d.states.insert(p, VipState::Withdrawn(why));
                        continue;
                    }
                }
            };
            d.routes.entry(p).or_insert(attrs);
            d.states.entry(p).or_insert(state);
        }
        d
    }
}

/// A state's attributes over the serving ones.
fn apply(attrs: &mut RouteAttrs, st: &vipd_config::StateAttrs) {
    if let Some(m) = st.med {
        attrs.med = Some(m);
    }
    if let Some(c) = &st.communities {
        attrs.communities = c.iter().map(|c| c.0).collect();
    }
    if let Some(l) = &st.large_communities {
        attrs.large_communities = l.iter().map(|l| (l.0, l.1, l.2)).collect();
    }
    if let Some(e) = &st.extended_communities {
        attrs.extended_communities = e.iter().map(|e| e.0).collect();
    }
    if let Some(p) = st.prepend {
        attrs.prepend = p;
    }
}

//! The BGP session state machine (RFC 4271 section 8), sans I/O.
//!
//! [`Fsm::handle`] takes an [`Event`] (a timer fired, the TCP connection came up or went
//! down, a message arrived) and returns the [`Action`]s to perform (connect, send, arm or
//! stop a timer, close, report the session up or down). It owns no socket and reads no clock,
//! so every behaviour is tested without a runtime; the speaker executes the actions.
//!
//! One `Fsm` drives one connection at a time. When an inbound and an outbound connection race
//! (collision, RFC 4271 6.8), the speaker keeps one with [`resolve_collision`].

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{
    Afi, Capability, GrFamily, Message, Notification, Open, RouteRefresh, RouteRefreshSubtype,
    Safi, Session, WireError, cease,
};

/// Session states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not trying (stopped, or waiting for the connect-retry timer).
    Idle,
    /// Connecting out.
    Connect,
    /// Waiting for the peer to connect (passive).
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the first KEEPALIVE.
    OpenConfirm,
    /// Up.
    Established,
}

/// Timers the FSM arms; the speaker turns each into an [`Event`] when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Time to try connecting again.
    ConnectRetry,
    /// The peer said nothing for the hold time.
    Hold,
    /// Time to send a KEEPALIVE.
    Keepalive,
    /// End of the hold-down between two answers to ROUTE-REFRESH.
    RouteRefresh,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Start the session (configuration loaded).
    Start,
    /// Stop it: send a Cease with this shutdown communication and stay down.
    Stop(String),
    /// A timer fired.
    TimerExpired(Timer),
    /// The TCP connection is up (outbound connect succeeded, or an inbound one was accepted).
    TcpUp,
    /// The connection attempt failed or the connection closed.
    TcpDown(String),
    /// A message arrived.
    Message(Message),
    /// A message could not be decoded: the NOTIFICATION to send.
    Malformed(WireError),
    /// An UPDATE was malformed in a way RFC 7606 handles without a reset (treat-as-withdraw).
    UpdateTreatedAsWithdraw(Vec<String>),
    /// BFD declared the path to the peer dead (not an AdminDown): the session ends at once
    /// with a Cease / BFD Down (RFC 9384) and is retried like a lost connection.
    BfdDown(String),
}

/// What the speaker must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer.
    Connect,
    /// Send a message.
    Send(Message),
    /// (Re)arm a timer.
    StartTimer(Timer, Duration),
    /// Disarm a timer.
    StopTimer(Timer),
    /// Close the TCP connection.
    Close,
    /// The state changed (one log line per change, with the reason).
    StateChange {
        /// Before.
        from: State,
        /// After.
        to: State,
        /// Why.
        reason: String,
    },
    /// The session is up: announce routes with these parameters.
    Established(Negotiated),
    /// The session went down (routes learned from it are gone; ours must be re-sent later).
    Down(String),
    /// The peer asked for our routes again (ROUTE-REFRESH): resend the Adj-RIB-Out.
    ResendRoutes(Afi, Safi),
    /// Something to log that changes nothing (an UPDATE treated as withdraw).
    Warn(String),
}

/// Local settings of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Our AS.
    pub local_as: u32,
    /// The peer's AS.
    pub remote_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Proposed hold time (0 or >= 3).
    pub hold_time: u16,
    /// Keepalive interval; `None`: negotiated hold / 3.
    pub keepalive: Option<u16>,
    /// Wait for the peer to connect.
    pub passive: bool,
    /// First connect-retry delay; doubles on each failure up to [`MAX_RETRY`], jittered.
    pub connect_retry: Duration,
    /// Families to negotiate.
    pub families: Vec<(Afi, Safi)>,
    /// Graceful restart: `Some((restart time, restarting now))`.
    pub graceful_restart: Option<(u16, bool)>,
}

/// Ceiling of the connect-retry backoff.
pub const MAX_RETRY: Duration = Duration::from_secs(120);
/// Hold timer while waiting for OPEN (RFC 4271 suggests 4 minutes).
pub const OPEN_HOLD: Duration = Duration::from_secs(240);

/// Shortest time between two full resends answering ROUTE-REFRESH: the first request is
/// answered at once, later ones within this interval are merged into one resend at its end.
/// A peer looping on ROUTE-REFRESH gets a resend every few seconds, not one per message.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// What both sides agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Peer AS.
    pub peer_as: u32,
    /// Peer BGP identifier.
    pub peer_id: Ipv4Addr,
    /// Hold time in seconds (0: no keepalives).
    pub hold_time: u16,
    /// Keepalive interval in seconds.
    pub keepalive: u16,
    /// Families both sides support.
    pub families: Vec<(Afi, Safi)>,
    /// How to encode messages.
    pub session: Session,
    /// The peer understands ROUTE-REFRESH.
    pub route_refresh: bool,
    /// The peer supports enhanced route refresh.
    pub enhanced_route_refresh: bool,
    /// The peer's graceful restart families, if it advertised the capability.
    pub peer_graceful_restart: Option<Vec<GrFamily>>,
}

/// The state machine of one session.
#[derive(Debug)]
pub struct Fsm {
    cfg: Config,
    state: State,
    negotiated: Option<Negotiated>,
    failures: u32,
    stopped: bool,
    rng: u64,
    /// The ROUTE-REFRESH hold-down is running.
    refresh_held: bool,
    /// Families asked for during the hold-down, resent when it ends.
    refresh_pending: Vec<(Afi, Safi)>,
}

impl Fsm {
    /// A ROUTE-REFRESH from the peer: only a plain request for a family of this session
    /// makes vipd resend. RFC 2918 says to ignore a family that was not negotiated; the
    /// RFC 7313 markers (BoRR/EoRR) frame the peer's own refresh to us, of routes vipd does
    /// not keep; reserved subtypes are ignored too. Each ignored message is reported once
    /// as a warning: a peer cannot make vipd resend everything with any message it likes.
    /// Requests are rate-limited by [`REFRESH_INTERVAL`].
    fn route_refresh(&mut self, rr: RouteRefresh, out: &mut Vec<Action>) {
        let negotiated = self
            .negotiated
            .as_ref()
            .is_some_and(|n| n.families.contains(&(rr.afi, rr.safi)));
        match rr.subtype {
            RouteRefreshSubtype::Request if negotiated => {
                if !self.refresh_held {
                    self.refresh_held = true;
                    out.push(Action::ResendRoutes(rr.afi, rr.safi));
                    out.push(Action::StartTimer(Timer::RouteRefresh, REFRESH_INTERVAL));
                } else if !self.refresh_pending.contains(&(rr.afi, rr.safi)) {
                    self.refresh_pending.push((rr.afi, rr.safi));
                }
            }
            RouteRefreshSubtype::Request => out.push(Action::Warn(format!(
                "ROUTE-REFRESH for {:?}/{:?}, a family this session did not negotiate: ignored (RFC 2918)",
                rr.afi, rr.safi
            ))),
            RouteRefreshSubtype::Begin | RouteRefreshSubtype::End => {}
            RouteRefreshSubtype::Other(t) => out.push(Action::Warn(format!(
                "ROUTE-REFRESH with reserved subtype {t}: ignored (RFC 7313)"
            ))),
        }
    }

    /// A stopped session; `seed` drives the jitter (use something per-peer, e.g. its address).
    pub fn new(cfg: Config, seed: u64) -> Self {
        Self {
            cfg,
            state: State::Idle,
            negotiated: None,
            failures: 0,
            stopped: true,
            rng: seed | 1,
            refresh_held: false,
            refresh_pending: Vec::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What was negotiated, while OpenConfirm or Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The OPEN this speaker sends.
    pub fn open(&self) -> Open {
        let mut capabilities: Vec<Capability> = self
            .cfg
            .families
            .iter()
            .map(|(a, s)| Capability::Multiprotocol(*a, *s))
            .collect();
        capabilities.push(Capability::RouteRefresh);
        capabilities.push(Capability::EnhancedRouteRefresh);
        if let Some((time, restarting)) = self.cfg.graceful_restart {
            capabilities.push(Capability::GracefulRestart {
                restarting,
                notification: false,
                time,
                families: self
                    .cfg
                    .families
                    .iter()
                    .map(|(afi, safi)| GrFamily {
                        afi: *afi,
                        safi: *safi,
                        forwarding: true,
                    })
                    .collect(),
            });
        }
        capabilities.push(Capability::FourOctetAs(self.cfg.local_as));
        Open {
            asn: self.cfg.local_as,
            hold_time: self.cfg.hold_time,
            router_id: self.cfg.router_id,
            capabilities,
        }
    }

    /// Handles one event and returns the actions to perform, in order.
    pub fn handle(&mut self, ev: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match ev {
            Event::Start => {
                self.stopped = false;
                if self.state == State::Idle {
                    self.begin(&mut out, "started");
                }
            }
            Event::Stop(reason) => {
                self.stopped = true;
                if matches!(
                    self.state,
                    State::OpenSent | State::OpenConfirm | State::Established
                ) {
                    out.push(Action::Send(Message::Notification(Notification::shutdown(
                        &reason,
                    ))));
                }
                self.drop_session(&mut out, format!("administratively stopped: {reason}"));
            }
            Event::TimerExpired(Timer::ConnectRetry) => {
                if self.state == State::Idle && !self.stopped {
                    self.begin(&mut out, "connect-retry timer expired");
                }
            }
            Event::TimerExpired(Timer::Hold) => {
                if matches!(
                    self.state,
                    State::OpenSent | State::OpenConfirm | State::Established
                ) {
                    out.push(Action::Send(Message::Notification(Notification {
                        code: 4,
                        subcode: 0,
                        data: vec![],
                    })));
                    self.drop_session(&mut out, "hold timer expired: the peer went silent".into());
                }
            }
            Event::TimerExpired(Timer::RouteRefresh) => {
                let pending = std::mem::take(&mut self.refresh_pending);
                self.refresh_held = !pending.is_empty() && self.state == State::Established;
                if self.refresh_held {
                    out.extend(pending.into_iter().map(|(a, s)| Action::ResendRoutes(a, s)));
                    out.push(Action::StartTimer(Timer::RouteRefresh, REFRESH_INTERVAL));
                }
            }
            Event::TimerExpired(Timer::Keepalive) => {
                if matches!(self.state, State::OpenConfirm | State::Established) {
                    out.push(Action::Send(Message::Keepalive));
                    self.arm_keepalive(&mut out);
                }
            }
            Event::TcpUp => match self.state {
                State::Connect | State::Active => {
                    out.push(Action::Send(Message::Open(self.open())));
                    out.push(Action::StartTimer(Timer::Hold, OPEN_HOLD));
                    self.goto(&mut out, State::OpenSent, "TCP connection up, OPEN sent");
                }
                _ => out.push(Action::Close),
            },
            Event::TcpDown(why) => {
                if self.state != State::Idle {
                    self.drop_session(&mut out, format!("connection lost: {why}"));
                }
            }
            Event::Malformed(e) => {
                out.push(Action::Send(Message::Notification(e.notification())));
                self.drop_session(&mut out, format!("malformed message from the peer: {e}"));
            }
            Event::UpdateTreatedAsWithdraw(reasons) => {
                out.push(Action::Warn(format!(
                    "UPDATE treated as withdraw (RFC 7606): {}",
                    reasons.join("; ")
                )));
                self.refresh_hold(&mut out);
            }
            Event::Message(m) => self.message(m, &mut out),
            Event::BfdDown(why) => {
                if matches!(
                    self.state,
                    State::OpenSent | State::OpenConfirm | State::Established
                ) {
                    out.push(Action::Send(Message::Notification(Notification {
                        code: 6,
                        subcode: cease::BFD_DOWN,
                        data: vec![],
                    })));
                }
                if !matches!(self.state, State::Idle) {
                    self.drop_session(&mut out, format!("BFD down: {why}"));
                }
            }
        }
        out
    }

    fn message(&mut self, m: Message, out: &mut Vec<Action>) {
        match (self.state, m) {
            (_, Message::Notification(n)) => {
                self.drop_session(out, format!("NOTIFICATION from the peer: {n}"));
            }
            (State::OpenSent, Message::Open(o)) => match self.negotiate(&o) {
                Ok(n) => {
                    out.push(Action::Send(Message::Keepalive));
                    self.negotiated = Some(n);
                    self.refresh_hold(out);
                    self.arm_keepalive(out);
                    self.goto(out, State::OpenConfirm, "OPEN received and accepted");
                }
                Err(e) => {
                    out.push(Action::Send(Message::Notification(e.notification())));
                    self.drop_session(out, format!("peer's OPEN refused: {e}"));
                }
            },
            (State::OpenConfirm, Message::Keepalive) => {
                self.refresh_hold(out);
                self.failures = 0;
                self.goto(out, State::Established, "first KEEPALIVE received");
                if let Some(n) = &self.negotiated {
                    out.push(Action::Established(n.clone()));
                }
            }
            (State::Established, Message::Keepalive | Message::Update(_)) => self.refresh_hold(out),
            // Not a hold timer restart (RFC 4271 8.2.2 names KEEPALIVE and UPDATE only): a
            // peer that sends nothing else is not known to be alive, nor to be reading.
            (State::Established, Message::RouteRefresh(rr)) => self.route_refresh(rr, out),
            (state, other) => {
                let subcode = match state {
                    State::OpenSent => 1,
                    State::OpenConfirm => 2,
                    State::Established => 3,
                    _ => 0,
                };
                out.push(Action::Send(Message::Notification(Notification {
                    code: 5,
                    subcode,
                    data: vec![],
                })));
                self.drop_session(out, format!("unexpected {:?} in {state:?}", other.kind()));
            }
        }
    }

    /// Checks the peer's OPEN against the configuration and computes what was agreed.
    fn negotiate(&self, o: &Open) -> Result<Negotiated, WireError> {
        if o.asn != self.cfg.remote_as {
            return Err(WireError::new(
                2,
                2,
                vec![],
                format!("peer AS {} but {} is configured", o.asn, self.cfg.remote_as),
            ));
        }
        if self.cfg.local_as == self.cfg.remote_as && o.router_id == self.cfg.router_id {
            return Err(WireError::new(
                2,
                3,
                vec![],
                format!("iBGP peer uses our BGP identifier {}", o.router_id),
            ));
        }
        let hold = Open::negotiate_hold(self.cfg.hold_time, o.hold_time);
        let keepalive = match (hold, self.cfg.keepalive) {
            (0, _) => 0,
            (h, Some(k)) => k.min(h / 3).max(1),
            (h, None) => (h / 3).max(1),
        };
        let peer_mp: Vec<(Afi, Safi)> = o
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(a, s) => Some((*a, *s)),
                _ => None,
            })
            .collect();
        // A peer without the multiprotocol capability speaks IPv4 unicast only (RFC 4760).
        let peer_mp = if peer_mp.is_empty() {
            vec![(Afi::Ipv4, Safi::Unicast)]
        } else {
            peer_mp
        };
        let families: Vec<(Afi, Safi)> = self
            .cfg
            .families
            .iter()
            .filter(|f| peer_mp.contains(f))
            .copied()
            .collect();
        let has = |f: &dyn Fn(&Capability) -> bool| o.capabilities.iter().any(f);
        Ok(Negotiated {
            peer_as: o.asn,
            peer_id: o.router_id,
            hold_time: hold,
            keepalive,
            families,
            session: Session {
                four_octet_as: has(&|c| matches!(c, Capability::FourOctetAs(_))),
                extended_message: false,
            },
            route_refresh: has(&|c| matches!(c, Capability::RouteRefresh)),
            enhanced_route_refresh: has(&|c| matches!(c, Capability::EnhancedRouteRefresh)),
            peer_graceful_restart: o.capabilities.iter().find_map(|c| match c {
                Capability::GracefulRestart { families, .. } => Some(families.clone()),
                _ => None,
            }),
        })
    }

    fn begin(&mut self, out: &mut Vec<Action>, why: &str) {
        if self.cfg.passive {
            self.goto(
                out,
                State::Active,
                &format!("{why}; waiting for the peer to connect"),
            );
        } else {
            out.push(Action::Connect);
            self.goto(out, State::Connect, &format!("{why}; connecting"));
        }
    }

    fn refresh_hold(&self, out: &mut Vec<Action>) {
        match self.negotiated.as_ref().map(|n| n.hold_time) {
            Some(0) => out.push(Action::StopTimer(Timer::Hold)),
            Some(h) => out.push(Action::StartTimer(
                Timer::Hold,
                Duration::from_secs(u64::from(h)),
            )),
            None => {}
        }
    }

    fn arm_keepalive(&self, out: &mut Vec<Action>) {
        match self.negotiated.as_ref().map(|n| n.keepalive) {
            Some(0) | None => out.push(Action::StopTimer(Timer::Keepalive)),
            Some(k) => out.push(Action::StartTimer(
                Timer::Keepalive,
                Duration::from_secs(u64::from(k)),
            )),
        }
    }

    /// Ends the current attempt: close, stop timers, report, and unless stopped schedule the
    /// next attempt with a jittered exponential backoff.
    fn drop_session(&mut self, out: &mut Vec<Action>, reason: String) {
        let was_up = self.state == State::Established;
        if self.state != State::Idle {
            out.push(Action::Close);
        }
        out.push(Action::StopTimer(Timer::Hold));
        out.push(Action::StopTimer(Timer::Keepalive));
        out.push(Action::StopTimer(Timer::RouteRefresh));
        self.refresh_held = false;
        self.refresh_pending.clear();
        self.negotiated = None;
        if was_up {
            out.push(Action::Down(reason.clone()));
        }
        self.goto(out, State::Idle, &reason);
        if self.stopped {
            out.push(Action::StopTimer(Timer::ConnectRetry));
        } else {
            let delay = self.backoff();
            self.failures = self.failures.saturating_add(1);
            out.push(Action::StartTimer(Timer::ConnectRetry, delay));
        }
    }

    /// `connect_retry * 2^failures`, capped at [`MAX_RETRY`], times a factor in [0.75, 1]:
    /// directors restarting together do not reconnect in lockstep.
    fn backoff(&mut self) -> Duration {
        let base = self
            .cfg
            .connect_retry
            .saturating_mul(1u32 << self.failures.min(16))
            .min(MAX_RETRY);
        // xorshift64: deterministic per seed, good enough for spreading retries.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let frac = 0.75 + 0.25 * ((self.rng % 1000) as f64 / 1000.0);
        base.mul_f64(frac)
    }

    fn goto(&mut self, out: &mut Vec<Action>, to: State, reason: &str) {
        if self.state != to || to == State::Idle {
            out.push(Action::StateChange {
                from: self.state,
                to,
                reason: reason.to_string(),
            });
        }
        self.state = to;
    }
}

/// Which connection survives a collision (RFC 4271 6.8): the one initiated by the speaker
/// with the higher BGP identifier. Returns true when the connection *we* initiated is kept.
pub fn resolve_collision(local_id: Ipv4Addr, remote_id: Ipv4Addr) -> bool {
    u32::from(local_id) > u32::from(remote_id)
}

/// The Cease to send on the connection a collision closes.
pub fn collision_notification() -> Notification {
    Notification {
        code: 6,
        subcode: cease::COLLISION,
        data: vec![],
    }
}

//! One BFD session (RFC 5880 asynchronous mode), sans-IO in the mould of `vipd-bgp`'s FSM:
//! [`Session::on_packet`] and [`Session::on_timer`] take the time and return [`Action`]s;
//! [`Session::next_deadline`] says when to call [`Session::on_timer`] next. Tests drive it
//! with a synthetic clock.
//!
//! Timing rules kept here (section 6.8.3): while not Up, packets go out no faster than one
//! a second; a change of the intervals while Up runs a Poll sequence, a slower transmission
//! interval takes effect only once the peer answered it (Final), and so does a faster
//! receive interval for the detection time, so that neither side ever declares the other
//! down because of the change itself. Periodic packets are jittered to 75-90% of the
//! interval (section 6.8.7), like BIRD.
//!
//! A planned restart of vipd keeps the session (docs/OPERATIONS.md): before stopping, vipd
//! slows the session down with a Poll ([`Session::set_intervals`]), saves it
//! ([`Session::saved`]) and the next process resumes it ([`Session::resume`]) with the same
//! discriminators, then speeds it up again. The router sees one session that was slow for a
//! few seconds; a crash or a dead host still times out in the fast detection time.

use std::time::{Duration, Instant};

use crate::packet::{Diag, Packet, State};

/// While not Up, no faster than this (section 6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// What a session is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Desired minimum transmit interval once Up.
    pub min_tx: Duration,
    /// Required minimum receive interval.
    pub min_rx: Duration,
    /// Detection time multiplier.
    pub multiplier: u8,
}

impl Default for Config {
    /// 100 ms x 3: a dead neighbor is detected in 300 ms.
    fn default() -> Self {
        Config {
            min_tx: Duration::from_millis(100),
            min_rx: Duration::from_millis(100),
            multiplier: 3,
        }
    }
}

/// What the session asks of its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this packet to the neighbor.
    Send(Packet),
    /// The session changed state.
    Changed {
        /// The state before.
        from: State,
        /// The state now.
        to: State,
        /// Why (the local diagnostic).
        diag: Diag,
    },
}

/// Why the session discarded a packet that decoded (section 6.8.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Discard {
    /// Your Discriminator names another session.
    #[error("your discriminator {got} is not this session's {want}")]
    Discriminator {
        /// In the packet.
        got: u32,
        /// This session's.
        want: u32,
    },
    /// The A bit is set and no authentication is configured.
    #[error("authentication present, none configured")]
    Authentication,
    /// The neighbor asks for Demand mode, which vipd does not implement.
    #[error("demand mode requested (not supported)")]
    Demand,
    /// This session is AdminDown.
    #[error("session administratively down")]
    AdminDown,
}

/// A session as saved across a planned restart ([`Session::saved`], [`Session::resume`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Saved {
    /// Ours.
    pub local_disc: u32,
    /// The neighbor's.
    pub remote_disc: u32,
    /// The state when saved.
    pub state: State,
    /// The desired transmit interval the neighbor knows (µs): the slowed-down one.
    pub desired_min_tx: u32,
    /// The required receive interval the neighbor knows (µs).
    pub required_min_rx: u32,
    /// The neighbor's last desired transmit interval (µs).
    pub remote_min_tx: u32,
    /// The neighbor's last required receive interval (µs).
    pub remote_min_rx: u32,
    /// The neighbor's multiplier.
    pub remote_mult: u8,
}

/// What `vipd status` and `/metrics` show of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Local state.
    pub state: State,
    /// The neighbor's state as last heard.
    pub remote_state: State,
    /// Ours.
    pub local_disc: u32,
    /// The neighbor's (0 until heard).
    pub remote_disc: u32,
    /// The interval packets are sent at (before jitter).
    pub tx_interval: Duration,
    /// The interval the neighbor sends at (the larger of its desired TX and our RX).
    pub rx_interval: Duration,
    /// How long without a packet before the neighbor is declared down.
    pub detection_time: Duration,
    /// Why the session last left Up (local diagnostic).
    pub diag: Diag,
    /// The neighbor's diagnostic as last heard.
    pub remote_diag: Diag,
    /// Times the session came Up.
    pub ups: u64,
    /// Times it left Up.
    pub downs: u64,
    /// A Poll sequence is in progress.
    pub polling: bool,
}

/// One session. Intervals are kept in microseconds, as on the wire.
#[derive(Clone, Debug)]
pub struct Session {
    cfg: Config,
    local_disc: u32,
    remote_disc: u32,
    state: State,
    remote_state: State,
    /// Sent in every packet: why the last state change.
    diag: Diag,
    /// Why the session last left Up (kept once Up again, for the status).
    last_down: Diag,
    remote_diag: Diag,
    /// Advertised now.
    desired_min_tx: u32,
    required_min_rx: u32,
    /// In force: the transmit interval and the receive interval of the detection time
    /// (they lag the advertised ones during a Poll sequence, section 6.8.3).
    tx_in_use: u32,
    rx_in_use: u32,
    polling: bool,
    /// The intervals changed again during the Poll: its Final does not cover the newer
    /// values, another Poll round must (section 6.5: one Poll Sequence at a time).
    repoll: bool,
    remote_min_tx: u32,
    remote_min_rx: u32,
    remote_mult: u8,
    next_tx: Instant,
    detect_at: Option<Instant>,
    rng: u64,
    ups: u64,
    downs: u64,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn from_micros(us: u32) -> Duration {
    Duration::from_micros(u64::from(us))
}

impl Session {
    /// A new session, Down, with discriminator `local_disc` (non-zero, unique on this
    /// host). Its first packet is due at once.
    pub fn new(cfg: Config, local_disc: u32, now: Instant) -> Session {
        let slow = micros(cfg.min_tx.max(SLOW_TX));
        Session {
            cfg,
            local_disc: local_disc.max(1),
            remote_disc: 0,
            state: State::Down,
            remote_state: State::Down,
            diag: Diag::None,
            last_down: Diag::None,
            remote_diag: Diag::None,
            desired_min_tx: slow,
            required_min_rx: micros(cfg.min_rx),
            tx_in_use: slow,
            rx_in_use: micros(cfg.min_rx),
            polling: false,
            repoll: false,
            remote_min_tx: 0,
            // Section 6.8.1: 1 until heard, so that the first packets go out.
            remote_min_rx: 1,
            remote_mult: 0,
            next_tx: now,
            detect_at: None,
            rng: u64::from(local_disc) | 1 << 40,
            ups: 0,
            downs: 0,
        }
    }

    /// The session saved by a previous process before a planned restart, resumed: the same
    /// discriminators and state, at the slow intervals the neighbor knows, and a Poll that
    /// brings them back to `cfg` at once.
    pub fn resume(cfg: Config, saved: Saved, now: Instant) -> (Session, Vec<Action>) {
        let mut s = Session::new(cfg, saved.local_disc, now);
        if saved.state != State::Up || saved.remote_disc == 0 {
            return (s, Vec::new());
        }
        s.remote_disc = saved.remote_disc;
        s.state = State::Up;
        s.remote_state = State::Up;
        s.desired_min_tx = saved.desired_min_tx;
        s.required_min_rx = saved.required_min_rx;
        s.tx_in_use = saved.desired_min_tx;
        s.rx_in_use = saved.required_min_rx;
        s.remote_min_tx = saved.remote_min_tx;
        s.remote_min_rx = saved.remote_min_rx;
        s.remote_mult = saved.remote_mult.max(1);
        s.detect_at = Some(now + s.detection_time());
        let out = s.set_intervals(now, cfg.min_tx, cfg.min_rx);
        (s, out)
    }

    /// What to save before a planned stop (after slowing down: [`Session::polling`] false).
    pub fn saved(&self) -> Saved {
        Saved {
            local_disc: self.local_disc,
            remote_disc: self.remote_disc,
            state: self.state,
            desired_min_tx: self.desired_min_tx,
            required_min_rx: self.required_min_rx,
            remote_min_tx: self.remote_min_tx,
            remote_min_rx: self.remote_min_rx,
            remote_mult: self.remote_mult,
        }
    }

    /// The local state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Ours.
    pub fn local_disc(&self) -> u32 {
        self.local_disc
    }

    /// The neighbor's (0 until heard, and after a detection timeout).
    pub fn remote_disc(&self) -> u32 {
        self.remote_disc
    }

    /// A Poll sequence is in progress (a change of intervals not yet acknowledged).
    pub fn polling(&self) -> bool {
        self.polling
    }

    /// The status for `vipd status` and `/metrics`.
    pub fn status(&self) -> Status {
        Status {
            state: self.state,
            remote_state: self.remote_state,
            local_disc: self.local_disc,
            remote_disc: self.remote_disc,
            tx_interval: from_micros(self.tx_interval()),
            rx_interval: from_micros(self.rx_in_use.max(self.remote_min_tx)),
            detection_time: self.detection_time(),
            diag: self.last_down,
            remote_diag: self.remote_diag,
            ups: self.ups,
            downs: self.downs,
            polling: self.polling,
        }
    }

    /// The interval between periodic packets, before jitter (µs; 0: none are sent).
    fn tx_interval(&self) -> u32 {
        if self.remote_min_rx == 0 {
            0
        } else {
            self.tx_in_use.max(self.remote_min_rx)
        }
    }

    /// Section 6.8.4: the neighbor's multiplier times the agreed interval of its packets.
    pub fn detection_time(&self) -> Duration {
        let interval = self.rx_in_use.max(self.remote_min_tx);
        from_micros(interval) * u32::from(self.remote_mult.max(1))
    }

    /// When [`Session::on_timer`] must run next.
    pub fn next_deadline(&self) -> Instant {
        match self.detect_at {
            Some(d) => d.min(self.next_tx),
            None => self.next_tx,
        }
    }

    /// Changes the intervals (a reload, or slowing down before a planned restart). While Up
    /// this runs a Poll sequence: a faster TX and a slower RX apply at once, the others once
    /// the neighbor answered with Final.
    pub fn set_intervals(
        &mut self,
        now: Instant,
        min_tx: Duration,
        min_rx: Duration,
    ) -> Vec<Action> {
        self.cfg.min_tx = min_tx;
        self.cfg.min_rx = min_rx;
        let tx = if self.state == State::Up {
            micros(min_tx)
        } else {
            micros(min_tx.max(SLOW_TX))
        };
        self.change(now, tx, micros(min_rx))
    }

    /// Changes the advertised intervals to `tx`/`rx` (µs) by the rules of section 6.8.3.
    fn change(&mut self, now: Instant, tx: u32, rx: u32) -> Vec<Action> {
        if tx == self.desired_min_tx && rx == self.required_min_rx {
            return Vec::new();
        }
        self.desired_min_tx = tx;
        self.required_min_rx = rx;
        if self.state != State::Up || self.remote_disc == 0 {
            self.tx_in_use = tx;
            self.rx_in_use = rx;
            self.reschedule(now);
            return Vec::new();
        }
        self.tx_in_use = self.tx_in_use.min(tx);
        self.rx_in_use = self.rx_in_use.max(rx);
        self.repoll = self.polling;
        self.polling = true;
        // Like BIRD: the Poll goes out at once, then with every periodic packet until Final.
        self.next_tx = now;
        Vec::new()
    }

    /// A new detection multiplier (sent from the next packet on; no Poll needed: it only
    /// changes the neighbor's detection time, which it recomputes at each packet).
    pub fn set_multiplier(&mut self, multiplier: u8) {
        self.cfg.multiplier = multiplier.max(1);
    }

    /// Holds the session AdminDown (`diag` says why), or releases it (Down, then the usual
    /// handshake). An AdminDown neighbor must not take it for a forwarding failure (RFC
    /// 5882 section 3.2).
    pub fn set_admin_down(&mut self, now: Instant, down: bool, diag: Diag) -> Vec<Action> {
        let mut out = Vec::new();
        match (down, self.state) {
            (true, State::AdminDown) | (false, State::Down | State::Init | State::Up) => {}
            (true, _) => {
                self.transition(now, State::AdminDown, diag, &mut out);
                // At once: the caller may be about to drop the session.
                out.push(Action::Send(self.packet(false, false)));
            }
            (false, State::AdminDown) => self.transition(now, State::Down, Diag::None, &mut out),
        }
        out
    }

    /// A packet from the neighbor (decoded, TTL and source already checked by the caller).
    pub fn on_packet(&mut self, now: Instant, p: &Packet) -> Result<Vec<Action>, Discard> {
        if p.your_disc != 0 && p.your_disc != self.local_disc {
            return Err(Discard::Discriminator {
                got: p.your_disc,
                want: self.local_disc,
            });
        }
        if p.auth {
            return Err(Discard::Authentication);
        }
        if p.demand {
            return Err(Discard::Demand);
        }
        let mut out = Vec::new();
        self.remote_disc = p.my_disc;
        self.remote_state = p.state;
        self.remote_diag = p.diag;
        self.remote_mult = p.detect_mult;
        self.remote_min_tx = p.desired_min_tx;
        let rx_changed = self.remote_min_rx != p.required_min_rx;
        self.remote_min_rx = p.required_min_rx;
        if p.fin && self.polling {
            if std::mem::take(&mut self.repoll) {
                // This Final may answer a Poll sent before the last change: keep polling
                // (the safe values stay in force) until one answers the newest.
                self.next_tx = now;
            } else {
                self.polling = false;
                self.tx_in_use = self.desired_min_tx;
                self.rx_in_use = self.required_min_rx;
            }
        }
        if rx_changed {
            self.reschedule(now);
        }
        self.detect_at = Some(now + self.detection_time());
        if self.state == State::AdminDown {
            return Err(Discard::AdminDown);
        }
        match (self.state, p.state) {
            (State::Init | State::Up, State::AdminDown) | (State::Up, State::Down) => self
                .transition(
                    now,
                    State::Down,
                    Diag::NeighborSignaledSessionDown,
                    &mut out,
                ),
            (State::Down, State::Down) => self.transition(now, State::Init, Diag::None, &mut out),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.transition(now, State::Up, Diag::None, &mut out)
            }
            _ => {}
        }
        if p.poll {
            // Section 6.8.6: answered at once, whatever the transmit timer says.
            out.push(Action::Send(self.packet(false, true)));
        }
        Ok(out)
    }

    /// The time passed: the detection timer and periodic transmission.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.detect_at.is_some_and(|d| d <= now) {
            self.detect_at = None;
            // Section 6.8.1: the neighbor's discriminator is forgotten; section 6.8.18: its
            // receive interval back to 1 (a last word of 0 must not silence us for good).
            self.remote_disc = 0;
            self.remote_state = State::Down;
            self.remote_min_rx = 1;
            if matches!(self.state, State::Init | State::Up) {
                self.transition(
                    now,
                    State::Down,
                    Diag::ControlDetectionTimeExpired,
                    &mut out,
                );
            }
        }
        if self.next_tx <= now {
            let interval = self.tx_interval();
            if interval == 0 {
                // The neighbor wants nothing: look again in a second.
                self.next_tx = now + SLOW_TX;
            } else {
                out.push(Action::Send(self.packet(self.polling, false)));
                self.next_tx = now + self.jittered(interval);
            }
        }
        out
    }

    /// Moves to `to`, adjusting the intervals (slow while not Up, configured once Up) and
    /// sending a packet at once so that the neighbor learns the new state without waiting
    /// for the (possibly one-second) timer.
    fn transition(&mut self, now: Instant, to: State, diag: Diag, out: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.diag = diag;
        out.push(Action::Changed { from, to, diag });
        if to == State::Up {
            self.ups += 1;
            let (tx, rx) = (micros(self.cfg.min_tx), micros(self.cfg.min_rx));
            out.extend(self.change(now, tx, rx));
        } else if from == State::Up {
            self.downs += 1;
            self.last_down = diag;
            self.polling = false;
            self.repoll = false;
            let (tx, rx) = (
                micros(self.cfg.min_tx.max(SLOW_TX)),
                micros(self.cfg.min_rx),
            );
            out.extend(self.change(now, tx, rx));
        }
        self.next_tx = now;
    }

    /// After the transmit interval changed: the next packet no later than one new interval
    /// from now.
    fn reschedule(&mut self, now: Instant) {
        let interval = self.tx_interval();
        if interval > 0 {
            let at = now + self.jittered(interval);
            self.next_tx = self.next_tx.min(at);
        }
    }

    /// 75-90% of `us` (section 6.8.7), from a xorshift generator seeded by the
    /// discriminator (deterministic in tests).
    fn jittered(&mut self, us: u32) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let us = u64::from(us);
        let low = us - us / 4;
        let span = us * 3 / 20;
        Duration::from_micros(low + if span == 0 { 0 } else { self.rng % (span + 1) })
    }

    /// A control packet in the current state.
    fn packet(&self, poll: bool, fin: bool) -> Packet {
        Packet {
            diag: self.diag,
            state: self.state,
            poll,
            fin,
            cpi: false,
            auth: false,
            demand: false,
            detect_mult: self.cfg.multiplier.max(1),
            my_disc: self.local_disc,
            your_disc: self.remote_disc,
            desired_min_tx: self.desired_min_tx,
            required_min_rx: self.required_min_rx,
            required_min_echo_rx: 0,
        }
    }
}

//! The state machine of one check against one target: results in, transitions out.
//!
//! Pure and clock-free: the caller passes `now` with each result and asks for the delay to
//! the next probe, so tests drive it with synthetic instants and no runtime.
//!
//! - The state starts `Unknown`: an `alpha` service reads that as down (nothing is sent to a
//!   server before `rise` passes), other services as up. `rise` consecutive passes make it
//!   `Up`, `fall` consecutive failures `Down`. `ForcedDown`/`Drain` verdicts (an agent or file
//!   said so) apply at once.
//! - While a transition is pending (a streak has started against the current state, or the
//!   state is still unknown) the next probe comes after `fast_interval`.
//! - Damping: more than `max_flaps` Up<->Down changes within `window` holds the check down for
//!   `penalty` (the flapping server takes no traffic), then the current state applies again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::outcome::{Outcome, Verdict};

/// Timing and thresholds of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Consecutive passes to go up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// Normal interval.
    pub interval: Duration,
    /// Interval while a transition is pending.
    pub fast_interval: Duration,
    /// Spread of each interval, in percent of it (0..=50).
    pub jitter_pct: u8,
    /// Flap damping.
    pub damping: Option<Damping>,
}

/// Flap damping parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damping {
    /// Window in which changes are counted.
    pub window: Duration,
    /// More changes than this within the window is flapping.
    pub max_flaps: u32,
    /// How long a flapping check is held down.
    pub penalty: Duration,
}

/// The state of a check as its users see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not enough results yet.
    Unknown,
    /// Up (possibly drained: see [`Fsm::drain`]).
    Up,
    /// Down.
    Down,
}

/// A change worth telling the daemon about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The state, drain flag, weight or damping changed; `reason` says why.
    Changed {
        /// New state.
        state: State,
        /// Why.
        reason: String,
    },
}

/// Results kept for status pages.
pub const HISTORY: usize = 10;

/// What users see of a check: state, drain, (weight %, weight), damped.
type View = (State, bool, (Option<u32>, Option<u32>), bool);

/// One check against one target.
#[derive(Clone, Debug)]
pub struct Fsm {
    params: Params,
    state: State,
    passes: u32,
    fails: u32,
    drain: bool,
    weight_pct: Option<u32>,
    weight_abs: Option<u32>,
    changes: VecDeque<Instant>,
    held_until: Option<Instant>,
    last: Option<Outcome>,
    /// (passed, reason, latency in microseconds). Reasons are shared with the previous entry
    /// when equal (see [`Fsm::keep_last`]).
    history: VecDeque<(bool, Arc<str>, u32)>,
    transitions: u64,
    results: u64,
}

impl Fsm {
    /// A new check in state `Unknown`.
    pub fn new(params: Params) -> Self {
        Fsm {
            params,
            state: State::Unknown,
            passes: 0,
            fails: 0,
            drain: false,
            weight_pct: None,
            weight_abs: None,
            changes: VecDeque::new(),
            held_until: None,
            last: None,
            history: VecDeque::new(),
            transitions: 0,
            results: 0,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The state users see: `Down` while damped.
    pub fn state(&self) -> State {
        if self.held_until.is_some() {
            State::Down
        } else {
            self.state
        }
    }

    /// Drained (up, effective weight 0).
    pub fn drain(&self) -> bool {
        self.drain && self.state() == State::Up
    }

    /// Weight in percent from the last agent/file result that carried one.
    pub fn weight_pct(&self) -> Option<u32> {
        self.weight_pct
    }

    /// The weight a dynamic exec check last set, if any.
    pub fn weight_abs(&self) -> Option<u32> {
        self.weight_abs
    }

    /// Held down for flapping until this instant.
    pub fn damped_until(&self) -> Option<Instant> {
        self.held_until
    }

    /// The last result.
    pub fn last(&self) -> Option<&Outcome> {
        self.last.as_ref()
    }

    /// The last results, oldest first: (passed, reason, how long the probe took).
    pub fn history(&self) -> impl Iterator<Item = (bool, &str, Duration)> {
        self.history
            .iter()
            .map(|(p, r, us)| (*p, &**r, Duration::from_micros(u64::from(*us))))
    }

    /// Keeps `o` as the last result. A steady check repeats the same reason thousands of
    /// times: the stored one is kept instead of the probe's fresh copy, so that results do
    /// not leave a new long-lived allocation behind each time. Those, scattered between the
    /// probes' short-lived ones, kept every heap page in use: 2,200 checks held 43 MB of
    /// heap pages for 10 MB of live data.
    fn keep_last(&mut self, o: Outcome) {
        match &mut self.last {
            Some(l) if l.reason == o.reason => {
                l.verdict = o.verdict;
                l.weight_pct = o.weight_pct;
                l.weight_abs = o.weight_abs;
                l.latency = o.latency;
            }
            _ => self.last = Some(o),
        }
    }

    /// Transitions so far (for metrics).
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// Results so far.
    pub fn results(&self) -> u64 {
        self.results
    }

    /// Whether a transition is pending: the state is unknown or a streak runs against it.
    pub fn pending(&self) -> bool {
        match self.state {
            State::Unknown => true,
            State::Up => self.fails > 0,
            State::Down => self.passes > 0,
        }
    }

    /// Delay before the next probe; `rand01` is a uniform random number in `[0, 1)` that
    /// spreads it by +-`jitter_pct` (no thundering herd of checks in lockstep).
    pub fn next_delay(&self, rand01: f64) -> Duration {
        let base = if self.pending() {
            self.params.fast_interval
        } else {
            self.params.interval
        };
        jittered(base, self.params.jitter_pct, rand01)
    }

    /// Feeds one result. Returns the transition it caused, if any.
    pub fn on_result(&mut self, now: Instant, o: Outcome) -> Option<Transition> {
        let before = self.view();
        if o.verdict == Verdict::NotRun {
            // Says nothing about the server: counters and state stay; the reason is shown.
            self.expire_hold(now);
            self.keep_last(o);
            return self.transition_from(before);
        }
        self.results += 1;
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        let reason = match self.history.back() {
            Some((_, r, _)) if **r == *o.reason => r.clone(),
            _ => Arc::from(o.reason.as_str()),
        };
        let us = u32::try_from(o.latency.as_micros()).unwrap_or(u32::MAX);
        self.history.push_back((o.passed(), reason, us));
        if o.weight_pct.is_some() {
            // An agent's weight stays until it sends another, as in HAProxy.
            self.weight_pct = o.weight_pct;
        }
        if o.weight_abs.is_some() {
            // keepalived's misc_dynamic: exit 0 keeps the weight the last code set.
            self.weight_abs = o.weight_abs;
        }
        let old_state = self.state;
        match o.verdict {
            Verdict::Pass | Verdict::Drain => {
                self.fails = 0;
                self.passes = self.passes.saturating_add(1);
                self.drain = o.verdict == Verdict::Drain;
                if o.verdict == Verdict::Drain || self.passes >= self.params.rise {
                    self.state = State::Up;
                }
            }
            Verdict::Fail => {
                self.passes = 0;
                self.fails = self.fails.saturating_add(1);
                if self.fails >= self.params.fall {
                    self.state = State::Down;
                    self.drain = false;
                }
            }
            Verdict::NotRun => {}
            Verdict::ForcedDown => {
                self.passes = 0;
                self.fails = self.params.fall;
                self.state = State::Down;
                self.drain = false;
            }
        }
        if self.state != old_state && old_state != State::Unknown {
            self.note_change(now);
        }
        self.expire_hold(now);
        self.keep_last(o);
        self.transition_from(before)
    }

    /// Advances time without a result: ends a damping hold whose penalty is over.
    pub fn on_time(&mut self, now: Instant) -> Option<Transition> {
        let before = self.view();
        self.expire_hold(now);
        self.transition_from(before)
    }

    fn note_change(&mut self, now: Instant) {
        let Some(d) = self.params.damping else {
            return;
        };
        self.changes.push_back(now);
        while self
            .changes
            .front()
            .is_some_and(|t| now.duration_since(*t) > d.window)
        {
            self.changes.pop_front();
        }
        if self.changes.len() as u32 > d.max_flaps && self.held_until.is_none() {
            self.held_until = Some(now + d.penalty);
            self.changes.clear();
        }
    }

    fn expire_hold(&mut self, now: Instant) {
        if self.held_until.is_some_and(|t| now >= t) {
            self.held_until = None;
        }
    }

    fn view(&self) -> View {
        (
            self.state(),
            self.drain(),
            (self.weight_pct, self.weight_abs),
            self.held_until.is_some(),
        )
    }

    fn transition_from(&mut self, before: View) -> Option<Transition> {
        let now = self.view();
        if now == before {
            return None;
        }
        self.transitions += 1;
        let last = self
            .last
            .as_ref()
            .map(|o| o.reason.clone())
            .unwrap_or_default();
        let reason = match (before.3, now.3) {
            (false, true) => format!(
                "flapping: more than {} changes in {:?}, held down for {:?} (last: {last})",
                self.params.damping.map_or(0, |d| d.max_flaps),
                self.params.damping.map_or(Duration::ZERO, |d| d.window),
                self.params.damping.map_or(Duration::ZERO, |d| d.penalty),
            ),
            (true, false) => format!("flap damping over (last: {last})"),
            _ => last,
        };
        Some(Transition::Changed {
            state: now.0,
            reason,
        })
    }
}

/// `base` spread by +-`pct` percent with `rand01` in `[0, 1)`.
pub fn jittered(base: Duration, pct: u8, rand01: f64) -> Duration {
    let spread = f64::from(pct.min(50)) / 100.0;
    let factor = 1.0 + spread * (2.0 * rand01.clamp(0.0, 1.0) - 1.0);
    base.mul_f64(factor)
}

//! State machine tests on a synthetic clock: `t(s)` is `s` seconds after a fixed origin, so
//! time only moves when a test says so.

use std::time::{Duration, Instant};

use crate::agent;
use crate::fsm::{Damping, Fsm, Params, State, Transition, jittered};
use crate::outcome::{Outcome, Verdict};

fn params() -> Params {
    Params {
        rise: 2,
        fall: 3,
        interval: Duration::from_secs(2),
        fast_interval: Duration::from_millis(500),
        jitter_pct: 0,
        damping: None,
    }
}

struct Clock(Instant);
impl Clock {
    fn t(&self, secs: f64) -> Instant {
        self.0 + Duration::from_secs_f64(secs)
    }
}

fn pass() -> Outcome {
    Outcome::pass("HTTP 200", Duration::from_millis(1))
}
fn fail() -> Outcome {
    Outcome::fail("HTTP 503 (expected 200)", Duration::from_millis(1))
}
fn state_of(t: Option<Transition>) -> Option<State> {
    t.map(|Transition::Changed { state, .. }| state)
}

#[test]
fn rise_then_fall_counts_consecutive_results() {
    let c = Clock(Instant::now());
    let mut f = Fsm::new(params());
    assert_eq!(f.state(), State::Unknown);
    assert_eq!(f.on_result(c.t(0.0), pass()), None, "1 of rise 2");
    assert_eq!(state_of(f.on_result(c.t(1.0), pass())), Some(State::Up));
    assert_eq!(f.on_result(c.t(2.0), fail()), None);
    assert_eq!(f.on_result(c.t(3.0), fail()), None);
    // A pass in between resets the failure streak.
    assert_eq!(f.on_result(c.t(4.0), pass()), None);
    assert_eq!(f.on_result(c.t(5.0), fail()), None);
    assert_eq!(f.on_result(c.t(6.0), fail()), None);
    let t = f.on_result(c.t(7.0), fail());
    assert_eq!(
        t,
        Some(Transition::Changed {
            state: State::Down,
            reason: "HTTP 503 (expected 200)".into()
        })
    );
    assert_eq!(f.transitions(), 2);
    assert_eq!(f.results(), 8);
}

#[test]
fn unknown_goes_down_after_fall_failures_for_alpha_readers() {
    // An alpha service reads Unknown as down until `rise` passes; the FSM itself only leaves
    // Unknown on a full streak, in either direction.
    let c = Clock(Instant::now());
    let mut f = Fsm::new(params());
    f.on_result(c.t(0.0), fail());
    f.on_result(c.t(1.0), fail());
    assert_eq!(f.state(), State::Unknown);
    assert_eq!(state_of(f.on_result(c.t(2.0), fail())), Some(State::Down));
}

#[test]
fn fast_interval_while_a_transition_is_pending() {
    let c = Clock(Instant::now());
    let mut f = Fsm::new(params());
    assert_eq!(
        f.next_delay(0.5),
        Duration::from_millis(500),
        "unknown: fast"
    );
    f.on_result(c.t(0.0), pass());
    f.on_result(c.t(0.5), pass());
    assert_eq!(
        f.next_delay(0.5),
        Duration::from_secs(2),
        "settled up: normal"
    );
    f.on_result(c.t(2.5), fail());
    assert!(f.pending());
    assert_eq!(
        f.next_delay(0.5),
        Duration::from_millis(500),
        "going down: fast"
    );
    f.on_result(c.t(3.0), pass());
    assert_eq!(f.next_delay(0.5), Duration::from_secs(2), "streak broken");
}

#[test]
fn jitter_spreads_within_bounds() {
    let base = Duration::from_secs(1);
    assert_eq!(jittered(base, 10, 0.0), Duration::from_millis(900));
    assert_eq!(jittered(base, 10, 0.5), Duration::from_secs(1));
    assert!(jittered(base, 10, 0.999_999) <= Duration::from_millis(1100));
    assert_eq!(
        jittered(base, 90, 0.0),
        Duration::from_millis(500),
        "capped at 50%"
    );
    assert_eq!(jittered(base, 0, 0.3), base);
}

#[test]
fn flap_damping_holds_down_for_the_penalty() {
    let c = Clock(Instant::now());
    let mut p = params();
    p.rise = 1;
    p.fall = 1;
    p.damping = Some(Damping {
        window: Duration::from_secs(60),
        max_flaps: 3,
        penalty: Duration::from_secs(120),
    });
    let mut f = Fsm::new(p);
    assert_eq!(state_of(f.on_result(c.t(0.0), pass())), Some(State::Up));
    // Three changes within the window: allowed.
    assert_eq!(state_of(f.on_result(c.t(1.0), fail())), Some(State::Down));
    assert_eq!(state_of(f.on_result(c.t(2.0), pass())), Some(State::Up));
    assert_eq!(state_of(f.on_result(c.t(3.0), fail())), Some(State::Down));
    // The fourth would bring it up: it is flapping, so it is held down.
    let t = f.on_result(c.t(4.0), pass());
    match &t {
        Some(Transition::Changed { state, reason }) => {
            assert_eq!(*state, State::Down);
            assert!(
                reason.starts_with("flapping: more than 3 changes in 60s, held down for 120s"),
                "{reason}"
            );
        }
        None => panic!("damping must be reported (the held state differs from the FSM's)"),
    }
    assert_eq!(f.state(), State::Down);
    assert_eq!(f.damped_until(), Some(c.t(124.0)));
    // Passes during the penalty change nothing visible.
    assert_eq!(f.on_result(c.t(60.0), pass()), None);
    assert_eq!(f.on_time(c.t(123.9)), None);
    // Penalty over: the current state (up) applies again.
    let t = f.on_time(c.t(124.0));
    assert_eq!(
        t,
        Some(Transition::Changed {
            state: State::Up,
            reason: "flap damping over (last: HTTP 200)".into()
        })
    );
}

#[test]
fn changes_outside_the_window_are_forgotten() {
    let c = Clock(Instant::now());
    let mut p = params();
    p.rise = 1;
    p.fall = 1;
    p.damping = Some(Damping {
        window: Duration::from_secs(10),
        max_flaps: 2,
        penalty: Duration::from_secs(30),
    });
    let mut f = Fsm::new(p);
    f.on_result(c.t(0.0), pass());
    for i in 0..10 {
        // One change every 6 s: never more than 2 in 10 s.
        let o = if i % 2 == 0 { fail() } else { pass() };
        f.on_result(c.t(6.0 * f64::from(i + 1)), o);
        assert!(f.damped_until().is_none(), "change {i}");
    }
}

#[test]
fn agent_weights_drain_and_forced_down() {
    let c = Clock(Instant::now());
    let mut f = Fsm::new(params());
    let agent = |s: &str| {
        agent::parse(s)
            .expect("reply")
            .outcome("agent", Duration::ZERO)
    };
    f.on_result(c.t(0.0), agent("up 75%"));
    let t = f.on_result(c.t(1.0), agent("up 75%"));
    assert_eq!(state_of(t), Some(State::Up));
    assert_eq!(f.weight_pct(), Some(75));
    // The weight stays until the agent sends another, as in HAProxy.
    assert_eq!(f.on_result(c.t(2.0), agent("up")), None);
    assert_eq!(f.weight_pct(), Some(75));
    assert!(
        f.on_result(c.t(3.0), agent("50%")).is_some(),
        "weight change reported"
    );
    assert_eq!(f.weight_pct(), Some(50));
    // drain: up, weight 0, at once.
    let t = f.on_result(c.t(4.0), agent("drain"));
    assert_eq!(
        t,
        Some(Transition::Changed {
            state: State::Up,
            reason: "agent: drain".into()
        })
    );
    assert!(f.drain());
    // ready leaves drain.
    assert!(f.on_result(c.t(5.0), agent("ready")).is_some());
    assert!(!f.drain());
    // maint: down at once, whatever `fall` is.
    let t = f.on_result(c.t(6.0), agent("maint # kernel upgrade"));
    assert_eq!(
        t,
        Some(Transition::Changed {
            state: State::Down,
            reason: "agent: maint (kernel upgrade)".into()
        })
    );
    // Back up needs `rise` passes again.
    assert_eq!(f.on_result(c.t(7.0), agent("up")), None);
    assert_eq!(
        state_of(f.on_result(c.t(8.0), agent("up"))),
        Some(State::Up)
    );
}

#[test]
fn history_keeps_the_last_results() {
    let c = Clock(Instant::now());
    let mut f = Fsm::new(params());
    for i in 0..15 {
        f.on_result(c.t(f64::from(i)), if i % 3 == 0 { fail() } else { pass() });
    }
    let h: Vec<_> = f.history().collect();
    assert_eq!(h.len(), crate::fsm::HISTORY);
    assert!(h[0].0, "the oldest kept is result 5, a pass");
    assert!(!h[1].0, "result 6 failed");
    assert_eq!(f.last().map(|o| o.verdict), Some(Verdict::Pass));
}

#[test]
fn a_repeated_reason_is_stored_once() {
    let c = Clock(Instant::now());
    let mut f = Fsm::new(params());
    for i in 0..5 {
        f.on_result(c.t(f64::from(i)), fail());
    }
    let h: Vec<_> = f.history().collect();
    assert!(
        h.windows(2)
            .all(|w| std::ptr::eq(w[0].1.as_ptr(), w[1].1.as_ptr())),
        "one allocation shared by equal reasons"
    );
    let before = f.last().map(|o| o.reason.as_ptr());
    f.on_result(c.t(6.0), fail());
    assert_eq!(
        f.last().map(|o| o.reason.as_ptr()),
        before,
        "the last result's reason kept"
    );
    f.on_result(c.t(7.0), pass());
    let h: Vec<_> = f.history().collect();
    assert_ne!(h[h.len() - 1].1, h[h.len() - 2].1);
    assert!(f.last().is_some_and(|o| o.verdict == Verdict::Pass));
}

/// A dynamic exec check's weight is reported as a change and stays through exit 0 (keepalived:
/// "weight unchanged"), until another code sets another.
#[test]
fn a_dynamic_weight_stays_until_another_code() {
    let c = Clock(Instant::now());
    let mut f = Fsm::new(params());
    let weighted = |w: u32| {
        let mut o = Outcome::pass(format!("exit {}, weight {w}", w + 2), Duration::ZERO);
        o.weight_abs = Some(w);
        o
    };
    f.on_result(c.t(0.0), weighted(5));
    f.on_result(c.t(1.0), weighted(5));
    assert_eq!((f.state(), f.weight_abs()), (State::Up, Some(5)));
    assert_eq!(
        f.on_result(c.t(2.0), Outcome::pass("exit 0", Duration::ZERO)),
        None,
        "exit 0: nothing changes"
    );
    assert_eq!(f.weight_abs(), Some(5));
    assert!(
        f.on_result(c.t(3.0), weighted(9)).is_some(),
        "a new weight is a change"
    );
    assert_eq!(f.weight_abs(), Some(9));
}

/// The history keeps each result's latency (the status page draws it).
#[test]
fn history_keeps_latencies() {
    let c = Clock(Instant::now());
    let mut f = Fsm::new(params());
    f.on_result(
        c.t(0.0),
        Outcome::pass("HTTP 200", Duration::from_micros(1500)),
    );
    f.on_result(c.t(1.0), Outcome::fail("timeout", Duration::from_secs(2)));
    let h: Vec<_> = f.history().map(|(p, _, l)| (p, l)).collect();
    assert_eq!(
        h,
        [
            (true, Duration::from_micros(1500)),
            (false, Duration::from_secs(2))
        ]
    );
}

//! Combining checks, alpha, weights and panic mode.

use crate::fsm::State;
use crate::service::{CheckView, Effective, ServerView, Service, combine};

fn view(state: State) -> ServerView {
    ServerView {
        state,
        drain: false,
        weight_pct: 100,
        weight_abs: None,
        reason: String::new(),
    }
}

#[test]
fn a_server_is_as_up_as_its_worst_check() {
    let up = CheckView {
        state: State::Up,
        drain: false,
        weight_pct: None,
        weight_abs: None,
        reason: "HTTP 200",
    };
    let down = CheckView {
        state: State::Down,
        reason: "connect: Connection refused",
        ..up
    };
    let agent = CheckView {
        weight_pct: Some(50),
        reason: "agent: up, weight 50%",
        ..up
    };
    let v = combine(&[up, down, agent]);
    assert_eq!(v.state, State::Down);
    assert_eq!(v.reason, "connect: Connection refused");
    let v = combine(&[up, agent]);
    assert_eq!((v.state, v.weight_pct), (State::Up, 50));
    let unknown = CheckView {
        state: State::Unknown,
        reason: "",
        ..up
    };
    let v = combine(&[up, unknown]);
    assert_eq!(
        (v.state, v.reason.as_str()),
        (State::Unknown, "no result yet")
    );
    assert_eq!(combine(&[]).state, State::Up, "no checks: up");
}

#[test]
fn alpha_reads_unknown_as_down() {
    let u = view(State::Unknown);
    let mut s = Service::default();
    let e = s.evaluate(&[(10, &u)], true, None);
    assert_eq!(e.servers, vec![Effective::Down]);
    assert!(!e.settled);
    let e = s.evaluate(&[(10, &u)], false, None);
    assert_eq!(e.servers, vec![Effective::Up(10)]);
}

#[test]
fn agent_weight_and_drain_scale_the_configured_weight() {
    let mut s = Service::default();
    let mut half = view(State::Up);
    half.weight_pct = 50;
    let mut tiny = view(State::Up);
    tiny.weight_pct = 1;
    let mut drained = view(State::Up);
    drained.drain = true;
    let mut zero = view(State::Up);
    zero.weight_pct = 0;
    let e = s.evaluate(
        &[(100, &half), (1, &tiny), (100, &drained), (100, &zero)],
        true,
        None,
    );
    assert_eq!(
        e.servers,
        vec![
            Effective::Up(50),
            Effective::Up(1),
            Effective::Up(0),
            Effective::Up(0)
        ]
    );
    assert!(e.settled);
    assert_eq!(e.healthy_weight, 51, "drained and 0% servers add nothing");
}

#[test]
fn panic_mode_enters_and_leaves() {
    let up = view(State::Up);
    let down = view(State::Down);
    let mut drained = view(State::Up);
    drained.drain = true;
    let mut s = Service::default();
    // 2 of 4 down = 50%: not more than the 50% threshold.
    let e = s.evaluate(
        &[(1, &up), (1, &up), (1, &down), (1, &down)],
        true,
        Some(50),
    );
    assert!(!e.panic);
    assert_eq!(e.panic_changed, None);
    assert_eq!(e.servers[2], Effective::Down);
    // 3 of 4 down: panic, everybody gets traffic again except the drained one.
    let e = s.evaluate(
        &[(1, &up), (1, &down), (1, &down), (1, &down), (1, &drained)],
        true,
        Some(50),
    );
    assert!(e.panic);
    assert_eq!(e.panic_changed, Some(true));
    assert_eq!(e.down, 3);
    assert_eq!(
        e.healthy_weight, 1,
        "panic sends to all, but quorum counts the real ones"
    );
    assert_eq!(
        e.servers,
        vec![
            Effective::Up(1),
            Effective::Up(1),
            Effective::Up(1),
            Effective::Up(1),
            Effective::Up(0)
        ]
    );
    // Still in panic: no new event.
    let e = s.evaluate(&[(1, &down), (1, &down)], true, Some(50));
    assert_eq!((e.panic, e.panic_changed), (true, None));
    // Recovered: leaves panic, loudly.
    let e = s.evaluate(&[(1, &up), (1, &down)], true, Some(50));
    assert_eq!((e.panic, e.panic_changed), (false, Some(false)));
    assert_eq!(e.servers, vec![Effective::Up(1), Effective::Down]);
    // No threshold: never.
    let e = s.evaluate(&[(1, &down)], true, None);
    assert!(!e.panic);
}

/// A dynamic exec check's weight replaces the configured one; an agent's percentage still
/// applies on top; exit 0 after it keeps it (the check's last weight stands).
#[test]
fn a_dynamic_weight_replaces_the_configured_one() {
    let dynamic = CheckView {
        state: State::Up,
        drain: false,
        weight_pct: None,
        weight_abs: Some(5),
        reason: "exit 7, weight 5",
    };
    let agent = CheckView {
        weight_pct: Some(50),
        weight_abs: None,
        reason: "agent 50%",
        ..dynamic
    };
    let v = combine(&[dynamic, agent]);
    assert_eq!((v.weight_abs, v.weight_pct), (Some(5), 50));
    let mut s = Service::default();
    let e = s.evaluate(&[(100, &v)], false, None);
    assert_eq!(e.servers, [Effective::Up(2)], "5 x 50%, rounded down");
    assert_eq!(e.healthy_weight, 2);
}

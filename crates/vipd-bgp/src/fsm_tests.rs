//! FSM tests: events in, actions out, no runtime.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::fsm::{
    Action, Config, Event, Fsm, MAX_RETRY, OPEN_HOLD, State, Timer, resolve_collision,
};
use crate::wire::{
    Afi, Capability, Message, Notification, Open, RouteRefresh, RouteRefreshSubtype, Safi,
};

fn cfg() -> Config {
    Config {
        local_as: 65000,
        remote_as: 65000,
        router_id: Ipv4Addr::new(192, 0, 2, 10),
        hold_time: 90,
        keepalive: None,
        passive: false,
        connect_retry: Duration::from_secs(5),
        families: vec![(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)],
        graceful_restart: Some((120, false)),
    }
}

fn peer_open(hold: u16) -> Message {
    Message::Open(Open {
        asn: 65000,
        hold_time: hold,
        router_id: Ipv4Addr::new(192, 0, 2, 254),
        capabilities: vec![
            Capability::Multiprotocol(Afi::Ipv6, Safi::Unicast),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65000),
        ],
    })
}

fn sent(actions: &[Action]) -> Vec<&Message> {
    actions
        .iter()
        .filter_map(|a| {
            if let Action::Send(m) = a {
                Some(m)
            } else {
                None
            }
        })
        .collect()
}

fn timer(actions: &[Action], t: Timer) -> Option<Duration> {
    actions.iter().find_map(|a| match a {
        Action::StartTimer(x, d) if *x == t => Some(*d),
        _ => None,
    })
}

/// Drives a session to Established and returns it.
fn established(hold: u16) -> (Fsm, Vec<Action>) {
    let mut f = Fsm::new(cfg(), 42);
    assert_eq!(f.handle(Event::Start)[0], Action::Connect);
    f.handle(Event::TcpUp);
    f.handle(Event::Message(peer_open(hold)));
    let a = f.handle(Event::Message(Message::Keepalive));
    assert_eq!(f.state(), State::Established);
    (f, a)
}

#[test]
fn active_open_to_established() {
    let mut f = Fsm::new(cfg(), 1);
    let a = f.handle(Event::Start);
    assert_eq!(a[0], Action::Connect);
    assert_eq!(f.state(), State::Connect);
    let a = f.handle(Event::TcpUp);
    assert!(matches!(sent(&a)[..], [Message::Open(o)] if o.asn == 65000 && o.hold_time == 90));
    assert_eq!(timer(&a, Timer::Hold), Some(OPEN_HOLD));
    assert_eq!(f.state(), State::OpenSent);
    let a = f.handle(Event::Message(peer_open(9)));
    assert_eq!(sent(&a), [&Message::Keepalive]);
    assert_eq!(
        timer(&a, Timer::Hold),
        Some(Duration::from_secs(9)),
        "negotiated: min(90, 9)"
    );
    assert_eq!(
        timer(&a, Timer::Keepalive),
        Some(Duration::from_secs(3)),
        "hold / 3"
    );
    assert_eq!(f.state(), State::OpenConfirm);
    let a = f.handle(Event::Message(Message::Keepalive));
    let Some(Action::Established(n)) = a.iter().find(|x| matches!(x, Action::Established(_)))
    else {
        panic!("{a:?}")
    };
    assert_eq!(
        n.families,
        vec![(Afi::Ipv6, Safi::Unicast)],
        "intersection of families"
    );
    assert!(n.session.four_octet_as && n.route_refresh && !n.enhanced_route_refresh);
    assert!(a.iter().any(|x| matches!(
        x,
        Action::StateChange {
            to: State::Established,
            ..
        }
    )));
}

#[test]
fn our_open_carries_the_capabilities() {
    let o = Fsm::new(cfg(), 1).open();
    assert!(
        o.capabilities
            .contains(&Capability::Multiprotocol(Afi::Ipv6, Safi::Unicast))
    );
    assert!(o.capabilities.contains(&Capability::FourOctetAs(65000)));
    assert!(o.capabilities.iter().any(|c| matches!(
        c,
        Capability::GracefulRestart {
            time: 120,
            restarting: false,
            ..
        }
    )));
}

#[test]
fn hold_time_zero_means_no_timers() {
    let mut f = Fsm::new(cfg(), 1);
    f.handle(Event::Start);
    f.handle(Event::TcpUp);
    let a = f.handle(Event::Message(peer_open(0)));
    assert!(
        a.contains(&Action::StopTimer(Timer::Hold))
            && a.contains(&Action::StopTimer(Timer::Keepalive))
    );
    assert_eq!(f.negotiated().unwrap().hold_time, 0);
}

#[test]
fn configured_keepalive_is_bounded_by_the_negotiated_hold() {
    let mut c = cfg();
    c.keepalive = Some(30);
    let mut f = Fsm::new(c, 1);
    f.handle(Event::Start);
    f.handle(Event::TcpUp);
    let a = f.handle(Event::Message(peer_open(9)));
    assert_eq!(timer(&a, Timer::Keepalive), Some(Duration::from_secs(3)));
}

#[test]
fn wrong_peer_as_is_refused_with_bad_peer_as() {
    let mut c = cfg();
    c.remote_as = 65010;
    let mut f = Fsm::new(c, 1);
    f.handle(Event::Start);
    f.handle(Event::TcpUp);
    let a = f.handle(Event::Message(peer_open(90)));
    assert!(
        matches!(
            sent(&a)[..],
            [Message::Notification(Notification {
                code: 2,
                subcode: 2,
                ..
            })]
        ),
        "{a:?}"
    );
    assert!(a.contains(&Action::Close));
    assert_eq!(f.state(), State::Idle);
    assert!(
        timer(&a, Timer::ConnectRetry).is_some(),
        "tries again later"
    );
}

#[test]
fn ibgp_peer_with_our_identifier_is_refused() {
    let mut f = Fsm::new(cfg(), 1);
    f.handle(Event::Start);
    f.handle(Event::TcpUp);
    let mut o = peer_open(90);
    if let Message::Open(o) = &mut o {
        o.router_id = Ipv4Addr::new(192, 0, 2, 10);
    }
    let a = f.handle(Event::Message(o));
    assert!(matches!(
        sent(&a)[..],
        [Message::Notification(Notification {
            code: 2,
            subcode: 3,
            ..
        })]
    ));
}

#[test]
fn hold_timer_expiry_sends_notification_and_reconnects_later() {
    let (mut f, _) = established(9);
    let a = f.handle(Event::TimerExpired(Timer::Hold));
    assert!(matches!(
        sent(&a)[..],
        [Message::Notification(Notification {
            code: 4,
            subcode: 0,
            ..
        })]
    ));
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Down(r) if r.contains("hold timer expired"))),
        "{a:?}"
    );
    assert_eq!(f.state(), State::Idle);
    let retry = timer(&a, Timer::ConnectRetry).expect("retry armed");
    assert!(
        retry >= Duration::from_millis(3750) && retry <= Duration::from_secs(5),
        "{retry:?}"
    );
    assert_eq!(
        f.handle(Event::TimerExpired(Timer::ConnectRetry))[0],
        Action::Connect
    );
}

#[test]
fn keepalives_and_updates_refresh_the_hold_timer() {
    let (mut f, _) = established(9);
    let a = f.handle(Event::TimerExpired(Timer::Keepalive));
    assert_eq!(sent(&a), [&Message::Keepalive]);
    assert_eq!(timer(&a, Timer::Keepalive), Some(Duration::from_secs(3)));
    let a = f.handle(Event::Message(Message::Keepalive));
    assert_eq!(timer(&a, Timer::Hold), Some(Duration::from_secs(9)));
    let a = f.handle(Event::UpdateTreatedAsWithdraw(vec![
        "invalid ORIGIN".into(),
    ]));
    assert!(matches!(&a[0], Action::Warn(w) if w.contains("RFC 7606")));
    assert_eq!(
        f.state(),
        State::Established,
        "treat-as-withdraw keeps the session"
    );
}

#[test]
fn route_refresh_resends_routes() {
    let (mut f, _) = established(90);
    let rr = RouteRefresh {
        afi: Afi::Ipv6,
        subtype: RouteRefreshSubtype::Request,
        safi: Safi::Unicast,
    };
    let a = f.handle(Event::Message(Message::RouteRefresh(rr)));
    assert!(a.contains(&Action::ResendRoutes(Afi::Ipv6, Safi::Unicast)));
}

#[test]
fn route_refresh_only_for_negotiated_families_and_plain_requests() {
    let (mut f, _) = established(90);
    let rr = |afi, safi, subtype| {
        Event::Message(Message::RouteRefresh(RouteRefresh { afi, subtype, safi }))
    };
    let resends = |a: &[Action]| a.iter().any(|x| matches!(x, Action::ResendRoutes(..)));
    // A family the session did not negotiate (RFC 2918: ignore).
    let a = f.handle(rr(
        Afi::Ipv6,
        Safi::Other(128),
        RouteRefreshSubtype::Request,
    ));
    assert!(!resends(&a), "{a:?}");
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Warn(w) if w.contains("did not negotiate")))
    );
    // The peer's own refresh markers and reserved subtypes (RFC 7313): no resend.
    for st in [
        RouteRefreshSubtype::Begin,
        RouteRefreshSubtype::End,
        RouteRefreshSubtype::Other(9),
    ] {
        let a = f.handle(rr(Afi::Ipv6, Safi::Unicast, st));
        assert!(!resends(&a), "{st:?}: {a:?}");
        assert_eq!(f.state(), State::Established, "the session stays up");
    }
    // A plain request for a negotiated family is answered.
    let a = f.handle(rr(Afi::Ipv6, Safi::Unicast, RouteRefreshSubtype::Request));
    assert!(a.contains(&Action::ResendRoutes(Afi::Ipv6, Safi::Unicast)));
}

#[test]
fn notification_from_peer_names_the_reason() {
    let (mut f, _) = established(90);
    let a = f.handle(Event::Message(Message::Notification(
        Notification::shutdown("router maintenance"),
    )));
    assert!(a.iter().any(|x| matches!(x, Action::Down(r) if r.contains("Administrative Shutdown") && r.contains("router maintenance"))), "{a:?}");
}

#[test]
fn malformed_message_sends_its_notification() {
    let (mut f, _) = established(90);
    let e = crate::wire::Message::decode(&[0u8; 19], &Default::default()).unwrap_err();
    let a = f.handle(Event::Malformed(e));
    assert!(matches!(
        sent(&a)[..],
        [Message::Notification(Notification {
            code: 1,
            subcode: 1,
            ..
        })]
    ));
    assert_eq!(f.state(), State::Idle);
}

#[test]
fn unexpected_message_is_an_fsm_error() {
    let mut f = Fsm::new(cfg(), 1);
    f.handle(Event::Start);
    f.handle(Event::TcpUp);
    let a = f.handle(Event::Message(Message::Keepalive));
    assert!(matches!(
        sent(&a)[..],
        [Message::Notification(Notification {
            code: 5,
            subcode: 1,
            ..
        })]
    ));
}

#[test]
fn stop_sends_a_shutdown_communication_and_stays_down() {
    let (mut f, _) = established(90);
    let a = f.handle(Event::Stop("vipd stopping".into()));
    assert!(
        matches!(sent(&a)[..], [Message::Notification(n)] if n.shutdown_reason().as_deref() == Some("vipd stopping"))
    );
    assert!(a.contains(&Action::StopTimer(Timer::ConnectRetry)));
    assert!(
        f.handle(Event::TimerExpired(Timer::ConnectRetry))
            .is_empty(),
        "no reconnect after stop"
    );
}

#[test]
fn passive_waits_for_the_peer() {
    let mut c = cfg();
    c.passive = true;
    let mut f = Fsm::new(c, 1);
    let a = f.handle(Event::Start);
    assert!(!a.contains(&Action::Connect));
    assert_eq!(f.state(), State::Active);
    assert!(matches!(
        sent(&f.handle(Event::TcpUp))[..],
        [Message::Open(_)]
    ));
}

#[test]
fn connect_retry_backs_off_exponentially_with_jitter_up_to_a_ceiling() {
    let mut f = Fsm::new(cfg(), 7);
    f.handle(Event::Start);
    let mut delays = Vec::new();
    for _ in 0..8 {
        let a = f.handle(Event::TcpDown("connection refused".into()));
        delays.push(timer(&a, Timer::ConnectRetry).expect("retry"));
        f.handle(Event::TimerExpired(Timer::ConnectRetry));
    }
    for (i, d) in delays.iter().enumerate() {
        let base = (Duration::from_secs(5) * (1 << i)).min(MAX_RETRY);
        assert!(
            *d >= base.mul_f64(0.75) && *d <= base,
            "attempt {i}: {d:?} vs {base:?}"
        );
    }
    assert!(delays[7] <= MAX_RETRY);
    // Another seed spreads differently: directors do not retry in lockstep.
    let mut g = Fsm::new(cfg(), 99);
    g.handle(Event::Start);
    let other = timer(&g.handle(Event::TcpDown("x".into())), Timer::ConnectRetry);
    assert_ne!(other, Some(delays[0]));
}

#[test]
fn collision_keeps_the_higher_identifiers_connection() {
    assert!(resolve_collision(
        Ipv4Addr::new(192, 0, 2, 20),
        Ipv4Addr::new(192, 0, 2, 10)
    ));
    assert!(!resolve_collision(
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(192, 0, 2, 10)
    ));
    assert_eq!(crate::fsm::collision_notification().subcode, 7);
}

fn rr_request(afi: Afi) -> Event {
    Event::Message(Message::RouteRefresh(RouteRefresh {
        afi,
        subtype: RouteRefreshSubtype::Request,
        safi: Safi::Unicast,
    }))
}

#[test]
fn route_refresh_is_not_a_keepalive() {
    // RFC 4271 8.2.2: only KEEPALIVE and UPDATE restart the hold timer. A peer that sends
    // nothing but ROUTE-REFRESH (and may not be reading either) still times out.
    let (mut f, _) = established(9);
    let a = f.handle(rr_request(Afi::Ipv6));
    assert_eq!(timer(&a, Timer::Hold), None, "{a:?}");
}

#[test]
fn route_refresh_requests_are_rate_limited_and_coalesced() {
    let (mut f, _) = established(90);
    let resends = |a: &[Action]| {
        a.iter()
            .filter(|x| matches!(x, Action::ResendRoutes(..)))
            .count()
    };
    // The first request is answered at once, and opens a hold-down.
    let a = f.handle(rr_request(Afi::Ipv6));
    assert_eq!(resends(&a), 1);
    assert_eq!(
        timer(&a, Timer::RouteRefresh),
        Some(crate::fsm::REFRESH_INTERVAL)
    );
    // A flood during the hold-down resends nothing now...
    for _ in 0..1000 {
        assert_eq!(resends(&f.handle(rr_request(Afi::Ipv6))), 0);
    }
    // ...and exactly once when it ends.
    let a = f.handle(Event::TimerExpired(Timer::RouteRefresh));
    assert_eq!(
        a.iter()
            .filter(|x| matches!(x, Action::ResendRoutes(Afi::Ipv6, Safi::Unicast)))
            .count(),
        1,
        "{a:?}"
    );
    assert!(timer(&a, Timer::RouteRefresh).is_some(), "hold-down again");
    // Nothing asked since: the next expiry ends the hold-down without a resend.
    let a = f.handle(Event::TimerExpired(Timer::RouteRefresh));
    assert_eq!(resends(&a), 0);
    assert_eq!(resends(&f.handle(rr_request(Afi::Ipv6))), 1);
    // A session that goes down forgets its hold-down.
    let a = f.handle(Event::TcpDown("reset".into()));
    assert!(a.contains(&Action::StopTimer(Timer::RouteRefresh)), "{a:?}");
}

#[test]
fn bfd_down_ends_the_session_with_cease_bfd_down_and_retries() {
    let (mut f, _) = established(9);
    let out = f.handle(Event::BfdDown("control detection time expired".into()));
    let msgs = sent(&out);
    assert!(
        matches!(msgs.as_slice(), [Message::Notification(n)] if n.code == 6 && n.subcode == crate::wire::cease::BFD_DOWN),
        "{out:?}"
    );
    assert_eq!(f.state(), State::Idle);
    assert!(out.contains(&Action::Close));
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Down(r) if r.contains("BFD down")))
    );
    assert!(
        timer(&out, Timer::ConnectRetry).is_some(),
        "retried like a lost connection"
    );
    // Idle already: nothing more.
    assert!(f.handle(Event::BfdDown("again".into())).is_empty());
}

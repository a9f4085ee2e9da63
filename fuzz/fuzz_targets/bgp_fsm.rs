//! Any sequence of events a peer and the network can produce: the session FSM never panics,
//! and reports Established only after the peer's OPEN was accepted and its KEEPALIVE
//! followed, on the current connection. Connections come as the speaker gives them: only
//! while the FSM waits for one.
#![no_main]

use std::net::Ipv4Addr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vipd_bgp::fsm::{Action, Config, Event, Fsm, State, Timer};
use vipd_bgp::wire::{
    Afi, Capability, Message, Notification, Open, RouteRefresh, RouteRefreshSubtype, Safi,
    Update,
};

fn event(b: u8) -> Event {
    // As the decoder gives it: `asn` is the four-octet capability's value when present.
    let open = |asn: u32| {
        Message::Open(Open {
            asn,
            hold_time: 9,
            router_id: Ipv4Addr::new(192, 0, 2, 254),
            capabilities: vec![
                Capability::Multiprotocol(Afi::Ipv4, Safi::Unicast),
                Capability::FourOctetAs(asn),
            ],
        })
    };
    match b % 16 {
        0 => Event::Start,
        1 => Event::Stop("fuzz".into()),
        2 => Event::TcpUp,
        3 => Event::TcpDown("fuzz".into()),
        4 => Event::TimerExpired(Timer::ConnectRetry),
        5 => Event::TimerExpired(Timer::Hold),
        6 => Event::TimerExpired(Timer::Keepalive),
        7 => Event::TimerExpired(Timer::RouteRefresh),
        8 => Event::Message(open(65010)),
        9 => Event::Message(open(65099)), // the wrong AS: refused
        10 => Event::Message(Message::Keepalive),
        11 => Event::Message(Message::Update(Box::new(Update::end_of_rib(
            Afi::Ipv4,
            Safi::Unicast,
        )))),
        12 => Event::Message(Message::Notification(Notification {
            code: 6,
            subcode: 2,
            data: vec![],
        })),
        13 => Event::Message(Message::RouteRefresh(RouteRefresh {
            afi: Afi::Ipv4,
            subtype: RouteRefreshSubtype::Request,
            safi: Safi::Unicast,
        })),
        14 => Event::UpdateTreatedAsWithdraw(vec!["fuzz".into()]),
        _ => Event::Message(Message::Update(Box::new(Update::end_of_rib(
            Afi::Ipv6,
            Safi::Unicast,
        )))),
    }
}

fuzz_target!(|data: &[u8]| {
    let passive = data.first().is_some_and(|b| b & 1 == 1);
    let mut f = Fsm::new(
        Config {
            local_as: 65001,
            remote_as: 65010,
            router_id: Ipv4Addr::new(192, 0, 2, 1),
            hold_time: 9,
            keepalive: None,
            passive,
            connect_retry: Duration::from_secs(1),
            families: vec![(Afi::Ipv4, Safi::Unicast)],
            graceful_restart: Some((120, false)),
        },
        7,
    );
    // The messages of the current connection, as the FSM saw them.
    let mut seen: Vec<u8> = Vec::new();
    for b in data.iter().skip(1) {
        let ev = event(*b);
        let code = b % 16;
        if code == 2 {
            // The speaker hands the FSM a connection only while it waits for one
            // (Connect/Active); a second one is closed before the FSM hears of it.
            if !matches!(f.state(), State::Connect | State::Active) {
                continue;
            }
            seen.clear();
        }
        if code == 3 {
            seen.clear();
        }
        if matches!(ev, Event::Message(_)) {
            seen.push(code);
        }
        for a in f.handle(ev) {
            match a {
                Action::Established(_) => {
                    let n = seen.len();
                    assert!(
                        n >= 2 && seen[n - 2] == 8 && seen[n - 1] == 10,
                        "Established after {seen:?}"
                    );
                    assert_eq!(f.state(), State::Established);
                }
                Action::Close => seen.clear(),
                _ => {}
            }
        }
    }
});

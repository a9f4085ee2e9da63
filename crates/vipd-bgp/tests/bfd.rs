//! The speaker following a BFD session (vipd-bfd) to a real BIRD, whose own BGP does not
//! use BFD: whatever the router's configuration, vipd announces only while BFD is Up, and
//! a BFD failure takes the session, hence the routes, off the router at once.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::bird::{host, peer, topology};
use vipd_bfd::packet::State as BfdState;
use vipd_bfd::runtime::{Bfd, Peer};
use vipd_bfd::session::Config as BfdConfig;
use vipd_bgp::fsm::State;
use vipd_bgp::rib::RouteAttrs;
use vipd_bgp::speaker::{BfdSource, PeerConfig, Speaker};
use vipd_testkit::{Netns, require_program};

const BFD: &str = "protocol bfd {\n  interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };\n  neighbor 10.0.0.1;\n}\n";

/// A BFD task with one session to `addr` (100 ms x 3) on `rt`, and the source a speaker
/// looks its neighbors' sessions up in.
fn bfd_session(rt: &tokio::runtime::Handle, addr: &str) -> (Arc<Bfd>, BfdSource) {
    let bfd = Arc::new(
        Bfd::start_on(
            rt,
            vec![Peer {
                addr: addr.parse().expect("ip"),
                local: None,
                multihop: None,
                timing: BfdConfig::default(),
            }],
            Vec::new(),
        )
        .expect("bind"),
    );
    let source = {
        let bfd = bfd.clone();
        BfdSource(Arc::new(move |ip| bfd.status(ip)))
    };
    (bfd, source)
}

fn nft(ns: &Netns, rule: &str) {
    ns.exec(&["nft", rule]);
}

#[test]
fn routes_wait_for_bfd_up_and_a_bfd_failure_withdraws_them_at_once() {
    if !require_program(
        "routes_wait_for_bfd_up_and_a_bfd_failure_withdraws_them_at_once",
        "bird",
    ) {
        return;
    }
    let (_lan, _rtr, me, bird, dir) = topology("bfdb", "connect delay time 1;");
    let cfg = dir.join("bird.conf");
    let mut conf = std::fs::read_to_string(&cfg).expect("conf");
    conf.push_str(BFD);
    std::fs::write(&cfg, conf).expect("conf");
    assert!(bird.birdc("configure").contains("Reconfigured"));
    // BFD from the router is dropped at first: the path is "down" while TCP works.
    nft(&me, "add table inet t");
    nft(
        &me,
        "add chain inet t input { type filter hook input priority 0; }",
    );
    nft(&me, "add rule inet t input udp dport 3784 drop");

    me.run(|| async {
        let rt = tokio::runtime::Handle::current();
        let (bfd, source) = bfd_session(&rt, "10.0.0.254");
        let p = PeerConfig {
            description: None,
            bfd: true,
            ..peer(None)
        };
        let s = Speaker::start_with_bfd(rt, vec![p], None, Some(source));
        s.set_routes(BTreeMap::from([(
            host("198.51.100.1"),
            RouteAttrs::default(),
        )]));
        s.initial_complete();

        // 1. Established, but BFD is not Up: nothing announced.
        let (up, out) = bird
            .until("show protocols vipd", Duration::from_secs(15), |o| {
                o.contains("Established")
            })
            .await;
        assert!(up, "{out}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let routes = bird.birdc_async("show route").await;
        assert!(
            !routes.contains("198.51.100.1"),
            "announced before BFD Up:\n{routes}"
        );
        assert_eq!(s.status()[0].1.prefixes_sent, 0);

        // 2. The path heals: BFD comes Up, the route follows.
        nft(&me, "flush chain inet t input");
        let healed = Instant::now();
        let (ok, out) = bird
            .until("show route", Duration::from_secs(5), |o| {
                o.contains("198.51.100.1")
            })
            .await;
        assert!(ok, "route after BFD Up:\n{out}");
        println!(
            "route announced {:?} after the path healed",
            healed.elapsed()
        );
        assert_eq!(
            bfd.statuses()[0].1.state,
            BfdState::Up,
            "{:?}",
            bfd.statuses()
        );

        // 3. BFD fails (the router's packets are lost; TCP still works): vipd ends the BGP
        // session with a Cease / BFD Down, the route leaves the router at once.
        tokio::time::sleep(Duration::from_millis(500)).await;
        nft(&me, "add rule inet t input udp dport 3784 drop");
        let cut = Instant::now();
        let (gone, out) = bird
            .until("show route", Duration::from_secs(5), |o| {
                !o.contains("198.51.100.1")
            })
            .await;
        let took = cut.elapsed();
        assert!(gone, "route still there:\n{out}");
        println!("route withdrawn {took:?} after BFD packets stopped");
        assert!(took < Duration::from_secs(1), "{took:?}");
        let proto = bird.birdc_async("show protocols all vipd").await;
        // Cease / BFD Down (RFC 9384): BIRD 2.0 prints it as "error 6.10".
        assert!(
            proto.contains("6.10") || proto.contains("BFD"),
            "BIRD saw why:\n{proto}"
        );
        let st = s.status()[0].1.clone();
        assert_ne!(st.state, State::Established);
        assert!(
            st.last_error
                .as_deref()
                .is_some_and(|e| e.contains("BFD down")),
            "{st:?}"
        );
        s.shutdown("test").await;
    });
}

/// A BFD session removed (a reload) closes its status channel: the neighbor that followed
/// it must still stop at once when removed too, not after the 3 s abort deadline (it used
/// to wait for the closed channel inside its event handler, deaf to the stop request).
#[test]
fn a_neighbor_whose_bfd_session_was_removed_stops_at_once() {
    let ns = Netns::new("bfdrm");
    ns.run(|| async {
        let rt = tokio::runtime::Handle::current();
        let (bfd, source) = bfd_session(&rt, "127.0.0.2");
        let p = PeerConfig {
            description: None,
            bfd: true,
            ..common::neighbor("127.0.0.2:179", "127.0.0.1", 65001, 65010, common::V4)
        };
        let mut s = Speaker::start_with_bfd(rt, vec![p], None, Some(source));
        tokio::time::sleep(Duration::from_millis(300)).await;
        bfd.set_peers(Vec::new()).await;
        // The removed session says AdminDown for 3 s, then its channel closes.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let start = Instant::now();
        let c = s.set_peers(Vec::new(), "removed").await;
        let took = start.elapsed();
        assert_eq!(c.removed.len(), 1);
        assert!(took < Duration::from_secs(1), "removal took {took:?}");
    });
}

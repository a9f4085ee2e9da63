//! Neighbor changes at run time (what `vipd reload` does to `[bgp]`) and the withdraw-on-stop
//! order, against a real BIRD 2 with two protocols (two "routers" on one LAN).

mod common;

use std::time::Duration;

use common::bird::{Bird, host};
use vipd_bgp::rib::RouteAttrs;
use vipd_bgp::speaker::{PeerChanges, PeerConfig, Speaker};
use vipd_bgp::wire::{Afi, Safi};
use vipd_testkit::{Lan, Netns, require_program};

/// Two routers on one LAN, each a BIRD in its namespace with protocol `r1` at 10.0.0.254
/// and `r2` at 10.0.0.253; the speaker at 10.0.0.1.
fn two_routers(tag: &str) -> (Lan, Vec<Netns>, Netns, Bird, Bird) {
    let lan = Lan::new(tag);
    let spk = Netns::new(&format!("{tag}-spk"));
    lan.attach(&spk, "eth0", &["10.0.0.1/24"]);
    let mut nss = Vec::new();
    let mut birds = Vec::new();
    for (name, local) in [("r1", "10.0.0.254"), ("r2", "10.0.0.253")] {
        let dir =
            std::env::temp_dir().join(format!("vipd-bird-{tag}{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp");
        let ns = Netns::new(&format!("{tag}-{name}"));
        lan.attach(&ns, "eth0", &[&format!("{local}/24")]);
        let conf = format!(
            "router id {local};\nprotocol device {{}}\nprotocol bgp {name} {{\n  local {local} as 65010;\n  neighbor 10.0.0.1 as 65001;\n  hold time 9;\n  connect delay time 1;\n  error wait time 1, 2;\n  graceful restart on;\n  ipv4 {{ import all; export none; }};\n}}\n"
        );
        birds.push(Bird::start(&ns, &dir, &conf));
        nss.push(ns);
    }
    let b2 = birds.pop().expect("r2");
    let b1 = birds.pop().expect("r1");
    (lan, nss, spk, b1, b2)
}

fn router(addr: &str) -> PeerConfig {
    let mut p = common::neighbor(
        addr,
        "10.0.0.1",
        65001,
        65010,
        &[(Afi::Ipv4, Safi::Unicast)],
    );
    p.fsm.graceful_restart = Some((120, false));
    p
}

/// The "since" column of `birdc show protocols NAME` (when its state last changed), to
/// the second: BIRD recomputes the milliseconds at each display, +-1 ms.
fn since(out: &str, name: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|t| t.split('.').next())
        .unwrap_or("")
        .to_string()
}

#[test]
fn set_peers_keeps_unchanged_sessions_starts_new_ones_and_closes_removed_ones() {
    if !require_program(
        "set_peers_keeps_unchanged_sessions_starts_new_ones_and_closes_removed_ones",
        "bird",
    ) {
        return;
    }
    let (_lan, _rtrs, spk, bird, bird2) = two_routers("rl");
    let t = Duration::from_secs(20);
    spk.run(|| async {
        let mut s = Speaker::start(vec![router("10.0.0.254:179")]);
        s.announce(host("198.51.100.1"), RouteAttrs::default());
        s.initial_complete();
        let (ok, _) = bird
            .until("show route protocol r1", t, |o| {
                o.contains("198.51.100.1/32")
            })
            .await;
        assert!(ok, "r1 has the route");
        let before = s.status()[0].1.established_at;
        // BIRD's "since" has a resolution of one second: a reset would move it.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r1_since = since(&bird.birdc_async("show protocols r1").await, "r1");
        assert!(r1_since.contains(':'), "BIRD's since column: {r1_since:?}");

        // Reload 1: r2 added, r1 unchanged.
        let c = s
            .set_peers(
                vec![router("10.0.0.254:179"), router("10.0.0.253:179")],
                "reload",
            )
            .await;
        assert_eq!(
            c,
            PeerChanges {
                kept: vec!["10.0.0.254:179".parse().unwrap()],
                added: vec!["10.0.0.253:179".parse().unwrap()],
                ..PeerChanges::default()
            }
        );
        let (ok, out) = bird2
            .until("show route protocol r2", t, |o| {
                o.contains("198.51.100.1/32")
            })
            .await;
        assert!(
            ok,
            "the new neighbor gets the current routes:\n{out}\n{}",
            bird2.birdc_async("show protocols all r2").await
        );
        let out = bird.birdc_async("show protocols r1").await;
        assert!(out.contains("Established"), "{out}");
        assert_eq!(since(&out, "r1"), r1_since, "r1 was not reset:\n{out}");
        assert_eq!(s.status()[0].1.established_at, before);

        // Reload 2: r1 removed, r2 reconfigured (hold time 6, below BIRD's 9).
        let mut r2 = router("10.0.0.253:179");
        r2.fsm.hold_time = 6;
        let c = s.set_peers(vec![r2], "neighbor removed").await;
        assert_eq!(
            c,
            PeerChanges {
                removed: vec!["10.0.0.254:179".parse().unwrap()],
                restarted: vec!["10.0.0.253:179".parse().unwrap()],
                ..PeerChanges::default()
            }
        );
        let (ok, out) = bird
            .until("show protocols all r1", t, |o| {
                !o.contains("Established") && o.contains("Administrative shutdown")
            })
            .await;
        assert!(
            ok,
            "r1 closed with a Cease (administrative shutdown):\n{out}"
        );
        let out = bird.birdc_async("show route protocol r1").await;
        assert!(!out.contains("198.51.100.1/32"), "{out}");
        let (ok, out) = bird2
            .until("show protocols all r2", t, |o| {
                o.contains("Established") && o.contains("Hold timer") && o.contains("/6\n")
            })
            .await;
        assert!(ok, "r2 back with hold time 6 (min of both):\n{out}");
        assert_eq!(s.status().len(), 1);
        s.shutdown("test done").await;
    });
}

#[test]
fn withdraw_all_reaches_the_router_before_the_session_closes() {
    if !require_program(
        "withdraw_all_reaches_the_router_before_the_session_closes",
        "bird",
    ) {
        return;
    }
    let (_lan, _rtrs, spk, bird, _bird2) = two_routers("wo");
    let t = Duration::from_secs(20);
    spk.run(|| async {
        let s = Speaker::start(vec![router("10.0.0.254:179")]);
        s.announce(host("198.51.100.1"), RouteAttrs::default());
        s.announce(host("198.51.100.2"), RouteAttrs::default());
        s.initial_complete();
        let (ok, _) = bird
            .until("show route protocol r1", t, |o| {
                o.contains("198.51.100.2/32")
            })
            .await;
        assert!(ok, "routes announced");
        assert!(s.withdraw_all(Duration::from_secs(5)).await);
        // The session is still up, and BIRD already has nothing from it: the routes went
        // by explicit withdrawal, not by the session closing.
        let (ok, out) = bird
            .until("show route protocol r1", t, |o| !o.contains("198.51.100."))
            .await;
        assert!(ok, "routes withdrawn:\n{out}");
        let out = bird.birdc_async("show protocols r1").await;
        assert!(out.contains("Established"), "{out}");
        s.shutdown("retired").await;
        let (ok, out) = bird
            .until("show protocols all r1", t, |o| {
                o.contains("Administrative shutdown")
            })
            .await;
        assert!(ok, "then a Cease:\n{out}");
    });
}

//! The speaker against a real BIRD 2, between two network namespaces on the host.

mod common;

use common::bird::{Bird, KERNEL_EXPORT, host, peer, topology};

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use vipd_bgp::rib::RouteAttrs;
use vipd_bgp::speaker::Speaker;
use vipd_bgp::wire::{Afi, Safi};
use vipd_testkit::{Lan, Netns, require_program};

#[test]
fn tcp_md5_right_password_establishes_wrong_one_does_not() {
    if !require_program(
        "tcp_md5_right_password_establishes_wrong_one_does_not",
        "bird",
    ) {
        return;
    }
    let (_lan, _rtr, dir_ns, bird, _dir) = topology("md5", "password \"s3cret\";");
    let (right, wrong, none) = dir_ns.run(|| async {
        let t = Duration::from_secs(15);
        let s = Speaker::start(vec![peer(Some("s3cret"))]);
        let (right, _) = bird
            .until("show protocols vipd", t, |o| o.contains("Established"))
            .await;
        s.shutdown("test").await;
        let mut outcomes = Vec::new();
        for pw in [Some("wrong"), None] {
            let s = Speaker::start(vec![peer(pw)]);
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let st = s.status()[0].1.clone();
            outcomes.push(st);
            s.shutdown("test").await;
        }
        (right, outcomes[0].clone(), outcomes[1].clone())
    });
    assert!(right, "right password: Established");
    for (what, st) in [("wrong password", wrong), ("no password", none)] {
        assert_ne!(
            st.state,
            vipd_bgp::fsm::State::Established,
            "{what}: {st:?}"
        );
        let err = st.last_error.clone().unwrap_or_default();
        assert!(
            err.contains("connect to 10.0.0.254:179") && err.contains("no answer"),
            "{what}: a clear reason, got {st:?}"
        );
        if what == "wrong password" {
            assert!(err.contains("TCP MD5"), "{st:?}");
        }
    }
}

#[test]
fn ebgp_4byte_asn_ipv4_and_ipv6_routes_with_attributes_reach_bird() {
    if !require_program(
        "ebgp_4byte_asn_ipv4_and_ipv6_routes_with_attributes_reach_bird",
        "bird",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-bird-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("bird");
    let rtr = Netns::new("bird-rtr");
    let dir_ns = Netns::new("bird-dir");
    lan.attach(&rtr, "eth0", &["10.0.0.254/24", "2001:db8::fe/64"]);
    lan.attach(&dir_ns, "eth0", &["10.0.0.1/24", "2001:db8::1/64"]);
    let bird = Bird::start(
        &rtr,
        &dir,
        r#"
router id 10.0.0.254;
protocol device {}
protocol bgp vipd {
  local 10.0.0.254 as 65010;
  neighbor 10.0.0.1 as 4200000001;
  hold time 9;
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}
"#,
    );

    let attrs = RouteAttrs {
        med: Some(10),
        local_pref: None,
        communities: vec![(65000 << 16) | 80],
        large_communities: vec![(4_200_000_001, 1, 443)],
        ..RouteAttrs::default()
    };
    let (log_v4, log_v6, withdrawn, down) = dir_ns.run(|| async {
        let speaker = Speaker::start(vec![peer(None)]);
        let mut routes = BTreeMap::new();
        routes.insert(host("198.51.100.1"), attrs.clone());
        routes.insert(host("2001:db8::c633:6401"), attrs.clone());
        speaker.set_routes(routes);
        speaker.initial_complete();
        let b = &bird;
        let t = Duration::from_secs(20);
        let (_, v4) = b
            .until("show route all 198.51.100.1/32", t, |o| {
                o.contains("BGP.large_community")
            })
            .await;
        let (_, v6) = b
            .until("show route all 2001:db8::c633:6401/128", t, |o| {
                o.contains("BGP.large_community")
            })
            .await;
        speaker.withdraw(host("198.51.100.1"));
        let (gone, _) = b
            .until("show route 198.51.100.1/32", t, |o| {
                !o.contains("198.51.100.1/32")
            })
            .await;
        speaker.shutdown("maintenance window").await;
        let (_, down) = b
            .until("show protocols all vipd", t, |o| {
                o.contains("maintenance window")
            })
            .await;
        (v4, v6, gone, down)
    });
    for needle in [
        "BGP.origin: IGP",
        "BGP.as_path: 4200000001",
        "BGP.next_hop: 10.0.0.1",
        "BGP.med: 10",
        "BGP.community: (65000,80)",
        "BGP.large_community: (4200000001, 1, 443)",
    ] {
        assert!(
            log_v4.contains(needle),
            "{needle:?} not in BIRD's IPv4 route:\n{log_v4}"
        );
    }
    assert!(log_v6.contains("BGP.next_hop: 2001:db8::1"), "{log_v6}");
    println!("BIRD's view of the IPv4 VIP:\n{log_v4}\nafter shutdown:\n{down}");
    assert!(withdrawn, "withdrawal reached BIRD");
    assert!(
        down.contains("maintenance window"),
        "shutdown communication shown by BIRD:\n{down}"
    );
}

/// BIRD with a kernel protocol exporting to its namespace's routing table with ECMP.

#[test]
fn two_speakers_give_bird_a_two_nexthop_kernel_route() {
    if !require_program("two_speakers_give_bird_a_two_nexthop_kernel_route", "bird") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-bird-ecmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("ecmp");
    let rtr = Netns::new("ecmp-rtr");
    lan.attach(&rtr, "eth0", &["10.0.0.254/24"]);
    let a = Netns::new("ecmp-a");
    let b = Netns::new("ecmp-b");
    lan.attach(&a, "eth0", &["10.0.0.1/24"]);
    lan.attach(&b, "eth0", &["10.0.0.2/24"]);
    let mut conf = String::from("router id 10.0.0.254;\nprotocol device {}\n");
    conf.push_str(KERNEL_EXPORT);
    for (name, ip) in [("a", "10.0.0.1"), ("b", "10.0.0.2")] {
        conf.push_str(&format!(
            "protocol bgp {name} {{ local 10.0.0.254 as 65010; neighbor {ip} as 4200000001; hold time 9; ipv4 {{ import all; export none; }}; }}\n"
        ));
    }
    let _bird = Bird::start(&rtr, &dir, &conf);
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut threads = Vec::new();
    for (ns, ip) in [(a, "10.0.0.1"), (b, "10.0.0.2")] {
        let mut stop = stop_tx.subscribe();
        threads.push(std::thread::spawn(move || {
            ns.run(|| async move {
                let mut p = peer(None);
                p.local_addr = Some(ip.parse().expect("ip"));
                p.fsm.router_id = ip.parse().expect("ip");
                p.fsm.families = vec![(Afi::Ipv4, Safi::Unicast)];
                let s = Speaker::start(vec![p]);
                s.announce(host("198.51.100.1"), RouteAttrs::default());
                s.initial_complete();
                let _ = stop.recv().await;
                s.shutdown("test done").await;
            });
            ns
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let route = loop {
        let r = rtr.ip(&["route", "show", "198.51.100.1"]);
        if r.contains("nexthop via 10.0.0.1") && r.contains("nexthop via 10.0.0.2") {
            break r;
        }
        assert!(Instant::now() < deadline, "no two-nexthop route: {r}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = stop_tx.send(());
    for t in threads {
        let _ = t.join();
    }
    println!("kernel route at the router: {route}");
}

#[test]
fn graceful_restart_keeps_the_route_at_bird_while_vipd_restarts() {
    if !require_program(
        "graceful_restart_keeps_the_route_at_bird_while_vipd_restarts",
        "bird",
    ) {
        return;
    }
    let (_lan, rtr, dir_ns, bird, _dir) = topology("gr", "graceful restart on;");
    // BIRD also exports to its kernel table, so a withdrawal would show there.
    bird.reconfigure_with_kernel_export();
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let missing = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let checks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (stale_seen, after) = dir_ns.run(|| async {
        let t = Duration::from_secs(20);
        let first = Speaker::start(vec![peer(None)]);
        first.announce(host("198.51.100.1"), RouteAttrs::default());
        first.initial_complete();
        let (ok, _) = bird
            .until("show route 198.51.100.1/32", t, |o| {
                o.contains("198.51.100.1/32")
            })
            .await;
        assert!(ok, "route announced");
        // Wait for the kernel route, then watch it for the whole restart.
        let rtr_name = rtr.name().to_string();
        let (w, m, c) = (watching.clone(), missing.clone(), checks.clone());
        let watcher = std::thread::spawn(move || {
            let mut seen = false;
            while w.load(std::sync::atomic::Ordering::Relaxed) {
                let out = Command::new("ip")
                    .args(["-n", &rtr_name, "route", "show", "198.51.100.1"])
                    .output()
                    .expect("ip");
                let present = String::from_utf8_lossy(&out.stdout).contains("198.51.100.1");
                seen |= present;
                if seen {
                    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if !present {
                        m.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        // "vipd dies": connections dropped without a NOTIFICATION.
        first.abort();
        // BIRD says so on the protocol, and still has the route meanwhile.
        let (gr_active, _) = bird
            .until("show protocols all vipd", t, |o| {
                o.contains("Neighbor graceful restart active")
            })
            .await;
        let kept = bird
            .birdc_async("show route 198.51.100.1/32")
            .await
            .contains("198.51.100.1/32");
        let stale = gr_active && kept;
        tokio::time::sleep(Duration::from_secs(2)).await;
        // "vipd restarts" within the restart time, with the R bit.
        let mut p = peer(None);
        p.fsm.graceful_restart = Some((120, true));
        let second = Speaker::start(vec![p]);
        second.announce(host("198.51.100.1"), RouteAttrs::default());
        second.initial_complete();
        let (_, after) = bird
            .until("show protocols all vipd", t, |o| {
                o.contains("Established") && !o.contains("graceful restart active")
            })
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        watching.store(false, std::sync::atomic::Ordering::Relaxed);
        let _ = watcher.join();
        second.shutdown("test done").await;
        (stale, after)
    });
    assert!(
        stale_seen,
        "BIRD kept the route, graceful restart active, while vipd was away"
    );
    assert!(
        after.contains("Established"),
        "session back after the restart:\n{after}"
    );
    let (m, c) = (
        missing.load(std::sync::atomic::Ordering::Relaxed),
        checks.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert!(c > 50, "the kernel table was watched ({c} checks)");
    assert_eq!(
        m, 0,
        "the route left BIRD's kernel table in {m} of {c} checks"
    );
    println!("kernel route present in all {c} checks across the restart");
}

/// Negative control of the test above: without the graceful-restart capability, the same
/// dropped connection makes BIRD withdraw the route at once.
#[test]
fn without_graceful_restart_a_dropped_session_withdraws_the_route() {
    if !require_program(
        "without_graceful_restart_a_dropped_session_withdraws_the_route",
        "bird",
    ) {
        return;
    }
    let (_lan, _rtr, dir_ns, bird, _dir) = topology("nogr", "graceful restart on;");
    let (announced, withdrawn) = dir_ns.run(|| async {
        let t = Duration::from_secs(20);
        let mut p = peer(None);
        p.fsm.graceful_restart = None;
        let s = Speaker::start(vec![p]);
        s.announce(host("198.51.100.1"), RouteAttrs::default());
        s.initial_complete();
        let (announced, _) = bird
            .until("show route 198.51.100.1/32", t, |o| {
                o.contains("198.51.100.1/32")
            })
            .await;
        s.abort();
        let (withdrawn, _) = bird
            .until("show route 198.51.100.1/32", t, |o| {
                !o.contains("198.51.100.1/32")
            })
            .await;
        (announced, withdrawn)
    });
    assert!(announced && withdrawn);
}

#[test]
fn route_refresh_is_answered_and_a_silent_peer_is_detected_then_reconnected() {
    if !require_program(
        "route_refresh_is_answered_and_a_silent_peer_is_detected_then_reconnected",
        "bird",
    ) {
        return;
    }
    // BIRD waits 60-300 s after an error before a new session by default: shorten it.
    let (_lan, _rtr, dir_ns, bird, _dir) =
        topology("rr", "error wait time 1, 2; connect delay time 1;");
    let bird_pid = std::fs::read_to_string(bird.sock.with_file_name("bird.pid"))
        .expect("pid")
        .trim()
        .to_string();
    let (refreshed, hold_expired, back) = dir_ns.run(|| async {
        let t = Duration::from_secs(20);
        let s = Speaker::start(vec![peer(None)]);
        s.announce(host("198.51.100.1"), RouteAttrs::default());
        s.initial_complete();
        bird.until("show route 198.51.100.1/32", t, |o| {
            o.contains("198.51.100.1/32")
        })
        .await;
        let before = s.status()[0].1.updates_sent;
        // BIRD asks for our routes again with ROUTE-REFRESH.
        bird.birdc_async("reload in vipd").await;
        let deadline = Instant::now() + t;
        while s.status()[0].1.updates_sent <= before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let refreshed = s.status()[0].1.updates_sent > before;
        // The peer goes silent: hold time 9 s.
        Command::new("kill")
            .args(["-STOP", &bird_pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(15);
        while !s.status()[0]
            .1
            .last_error
            .clone()
            .unwrap_or_default()
            .contains("hold timer expired")
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let hold_expired = s.status()[0].1.last_error.clone().unwrap_or_default();
        Command::new("kill")
            .args(["-CONT", &bird_pid])
            .status()
            .expect("kill");
        let (back, _) = bird
            .until("show route 198.51.100.1/32", t, |o| {
                o.contains("198.51.100.1/32")
            })
            .await;
        s.shutdown("test done").await;
        (refreshed, hold_expired, back)
    });
    assert!(refreshed, "ROUTE-REFRESH answered by resending the routes");
    assert!(
        hold_expired.contains("hold timer expired"),
        "{hold_expired}"
    );
    assert!(
        back,
        "the session and the route came back after the peer woke up"
    );
}

#[test]
fn passive_neighbor_accepts_birds_connection_with_md5() {
    if !require_program("passive_neighbor_accepts_birds_connection_with_md5", "bird") {
        return;
    }
    let (_lan, _rtr, dir_ns, bird, _dir) = topology(
        "passive",
        "password \"s3cret\"; connect delay time 1; error wait time 1, 2;",
    );
    let (up, route) = dir_ns.run(|| async {
        let t = Duration::from_secs(20);
        let listener = tokio::net::TcpListener::bind("10.0.0.1:179")
            .await
            .expect("bind 179");
        let mut p = peer(Some("s3cret"));
        p.fsm.passive = true;
        let s = Speaker::start_with_listener(vec![p], Some(listener));
        s.announce(host("198.51.100.1"), RouteAttrs::default());
        s.initial_complete();
        let (up, _) = bird
            .until("show protocols vipd", t, |o| o.contains("Established"))
            .await;
        let (route, _) = bird
            .until("show route 198.51.100.1/32", t, |o| {
                o.contains("198.51.100.1/32")
            })
            .await;
        s.shutdown("test done").await;
        (up, route)
    });
    assert!(
        up && route,
        "BIRD connected to the passive speaker (MD5 on the listener) and got the route"
    );
}

/// A passive neighbor expecting `key` on a dual-stack `[::]:179` listener, BIRD configured
/// with `bird_password` (or none): whether the session comes up within a few seconds.
fn dual_stack_passive_md5(tag: &str, bird_password: Option<&str>, key: &str) -> (bool, String) {
    let extra = format!(
        "{} connect delay time 1; error wait time 1, 2;",
        bird_password.map_or(String::new(), |p| format!("password \"{p}\";"))
    );
    let (_lan, _rtr, dir_ns, bird, _dir) = topology(tag, &extra);
    dir_ns.run(|| async {
        let listener = tokio::net::TcpListener::bind("[::]:179")
            .await
            .expect("bind [::]:179");
        let mut p = peer(Some(key));
        p.fsm.passive = true;
        let s = Speaker::start_with_listener(vec![p], Some(listener));
        let (up, _) = bird
            .until("show protocols vipd", Duration::from_secs(8), |o| {
                o.contains("Established")
            })
            .await;
        let status = format!("{:?}", s.status());
        s.shutdown("test done").await;
        (up, status)
    })
}

#[test]
fn passive_md5_on_a_dual_stack_listener_fails_closed() {
    if !require_program("passive_md5_on_a_dual_stack_listener_fails_closed", "bird") {
        return;
    }
    // The IPv4 neighbor's key goes on the IPv6 socket as ::ffff:10.0.0.254.
    let (up, status) = dual_stack_passive_md5("md5ds", Some("s3cret"), "s3cret");
    assert!(up, "the right key on [::]:179 establishes: {status}");
    // Negative controls: a peer with another key, or with none, never gets a session.
    let (up, status) = dual_stack_passive_md5("md5dw", Some("other"), "s3cret");
    assert!(!up, "a wrong key must not establish: {status}");
    let (up, status) = dual_stack_passive_md5("md5dn", None, "s3cret");
    assert!(!up, "no key must not establish (fail closed): {status}");
}

#[test]
fn gtsm_with_bird_ttl_security() {
    if !require_program("gtsm_with_bird_ttl_security", "bird") {
        return;
    }
    let (_lan, _rtr, dir_ns, bird, _dir) = topology(
        "gtsm",
        "ttl security on; connect delay time 1; error wait time 1, 2;",
    );
    let with = dir_ns.run(|| async {
        let mut p = peer(None);
        p.ttl_security = true;
        let s = Speaker::start(vec![p]);
        let (with, _) = bird
            .until("show protocols vipd", Duration::from_secs(15), |o| {
                o.contains("Established")
            })
            .await;
        s.shutdown("test").await;
        with
    });
    assert!(with, "GTSM on both sides: Established");
}

/// Negative control of our receive check: with GTSM on vipd's side only, BIRD's eBGP packets
/// (TTL 1) are dropped by vipd's minimum TTL of 255, so no session comes up.
#[test]
fn gtsm_drops_a_peer_that_does_not_send_ttl_255() {
    if !require_program("gtsm_drops_a_peer_that_does_not_send_ttl_255", "bird") {
        return;
    }
    let (_lan, _rtr, dir_ns, bird, _dir) =
        topology("gtsmneg", "connect delay time 1; error wait time 1, 2;");
    let (state, bird_view) = dir_ns.run(|| async {
        let mut p = peer(None);
        p.ttl_security = true;
        let s = Speaker::start(vec![p]);
        tokio::time::sleep(Duration::from_secs(4)).await;
        let st = s.status()[0].1.clone();
        let view = bird.birdc_async("show protocols vipd").await;
        s.shutdown("test").await;
        (st, view)
    });
    assert_ne!(state.state, vipd_bgp::fsm::State::Established, "{state:?}");
    assert!(!bird_view.contains("Established"), "{bird_view}");
}

/// iBGP over an IPv6 session: IPv4 routes (next hop from ipv4_next_hop) and IPv6 routes.
#[test]
fn ibgp_over_ipv6_transport_with_bird() {
    if !require_program("ibgp_over_ipv6_transport_with_bird", "bird") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-bird-ibgp6-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("ibgp6");
    let rtr = Netns::new("ibgp6-rtr");
    let me = Netns::new("ibgp6-dir");
    lan.attach(&rtr, "eth0", &["10.0.0.254/24", "2001:db8::fe/64"]);
    lan.attach(&me, "eth0", &["10.0.0.1/24", "2001:db8::1/64"]);
    let bird = Bird::start(
        &rtr,
        &dir,
        "router id 10.0.0.254;\nprotocol device {}\nprotocol direct { ipv4; ipv6; }\n\
         protocol bgp vipd {\n  local 2001:db8::fe as 65000;\n  neighbor 2001:db8::1 as 65000;\n  hold time 9;\n  \
         ipv4 { import all; export none; };\n  ipv6 { import all; export none; };\n}\n",
    );
    let (v4, v6) = me.run(|| async {
        let mut p = peer(None);
        p.addr = "[2001:db8::fe]:179".parse().expect("addr");
        p.local_addr = Some("2001:db8::1".parse().expect("addr"));
        p.next_hop_v4 = Some(Ipv4Addr::new(10, 0, 0, 1));
        p.next_hop_v6 = None;
        p.fsm.local_as = 65000;
        p.fsm.remote_as = 65000;
        let s = Speaker::start(vec![p]);
        let attrs = RouteAttrs {
            med: None,
            local_pref: Some(300),
            communities: vec![(65000 << 16) | 80],
            large_communities: vec![],
            ..RouteAttrs::default()
        };
        s.announce(host("198.51.100.1"), attrs.clone());
        s.announce(host("2001:db8::c633:6401"), attrs);
        s.initial_complete();
        let t = Duration::from_secs(20);
        let (_, v4) = bird
            .until("show route all 198.51.100.1/32", t, |o| {
                o.contains("BGP.local_pref")
            })
            .await;
        let (_, v6) = bird
            .until("show route all 2001:db8::c633:6401/128", t, |o| {
                o.contains("BGP.local_pref")
            })
            .await;
        s.shutdown("test done").await;
        (v4, v6)
    });
    for needle in [
        "BGP.next_hop: 10.0.0.1",
        "BGP.local_pref: 300",
        "BGP.community: (65000,80)",
    ] {
        assert!(
            v4.contains(needle),
            "{needle:?} not in BIRD's iBGP IPv4 route:\n{v4}"
        );
    }
    let path = v4
        .lines()
        .find(|l| l.trim_start().starts_with("BGP.as_path:"))
        .expect("AS_PATH shown");
    assert_eq!(path.trim(), "BGP.as_path:", "iBGP: empty AS_PATH");
    assert!(
        v6.contains("BGP.next_hop: 2001:db8::1"),
        "IPv6 next hop = the session's local address:\n{v6}"
    );
}

#[test]
fn peer_restart_is_followed_by_a_reconnect() {
    if !require_program("peer_restart_is_followed_by_a_reconnect", "bird") {
        return;
    }
    let (_lan, rtr, dir_ns, bird, dir) = topology("restart", "");
    let conf = std::fs::read_to_string(dir.join("bird.conf")).expect("conf");
    let (first, again) = dir_ns.run(|| async move {
        let t = Duration::from_secs(20);
        let s = Speaker::start(vec![peer(None)]);
        s.announce(host("198.51.100.1"), RouteAttrs::default());
        s.initial_complete();
        let (first, _) = bird
            .until("show route 198.51.100.1/32", t, |o| {
                o.contains("198.51.100.1/32")
            })
            .await;
        drop(bird); // the router's BGP daemon dies
        let restarted = Bird::start(&rtr, &dir, &conf);
        let (again, _) = restarted
            .until("show route 198.51.100.1/32", t, |o| {
                o.contains("198.51.100.1/32")
            })
            .await;
        s.shutdown("test done").await;
        (first, again)
    });
    assert!(
        first && again,
        "route before and after the router's daemon restarted"
    );
}

/// The daemon's order: End-of-RIB first (first health pass done, nothing has quorum yet),
/// routes later, once the session is up. And no local address configured (the default):
/// the next hop is the address the kernel chose for the session (a configuration without
/// `local_address` once announced nothing at all).
#[test]
fn a_route_set_after_end_of_rib_reaches_bird_with_the_sessions_address_as_next_hop() {
    if !require_program("a_route_set_after_end_of_rib_reaches_bird", "bird") {
        return;
    }
    let (_lan, _rtr, dir_ns, bird, _dir) = topology("late", "");
    let (up, announced) = dir_ns.run(|| async {
        let t = Duration::from_secs(20);
        let mut p = peer(None);
        p.local_addr = None;
        let s = Speaker::start(vec![p]);
        s.initial_complete();
        let (up, _) = bird
            .until("show protocols vipd", t, |o| o.contains("Established"))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.set_routes(BTreeMap::from([(
            host("198.51.100.1"),
            RouteAttrs::default(),
        )]));
        let (announced, _) = bird
            .until("show route all 198.51.100.1/32", t, |o| {
                o.contains("BGP.next_hop: 10.0.0.1")
            })
            .await;
        (up, announced)
    });
    assert!(up && announced);
}

/// A passive neighbor with `ttl_security` on the dual-stack `[::]:179` listener, BIRD with
/// `bird_extra`: whether vipd's side reaches Established and BIRD gets the route, within a
/// few seconds. (BIRD's own view is no criterion: the handshake and the OPEN may arrive
/// before the accepted socket's minimum TTL is set, BIRD then sees our KEEPALIVE and calls
/// the session up, while every packet of its own is dropped from then on.)
fn passive_gtsm(tag: &str, bird_extra: &str) -> (bool, bool, String) {
    let extra = format!("{bird_extra} connect delay time 1; error wait time 1, 2;");
    let (_lan, _rtr, dir_ns, bird, _dir) = topology(tag, &extra);
    dir_ns.run(|| async {
        let listener = tokio::net::TcpListener::bind("[::]:179")
            .await
            .expect("bind [::]:179");
        let mut p = peer(None);
        p.fsm.passive = true;
        p.ttl_security = true;
        let s = Speaker::start_with_listener(vec![p], Some(listener));
        s.announce(host("198.51.100.1"), RouteAttrs::default());
        s.initial_complete();
        let (route, _) = bird
            .until("show route 198.51.100.1/32", Duration::from_secs(8), |o| {
                o.contains("198.51.100.1/32")
            })
            .await;
        let up = s.status()[0].1.established_at.is_some();
        let status = format!("{:?}", s.status());
        s.shutdown("test done").await;
        (up, route, status)
    })
}

#[test]
fn gtsm_applies_to_accepted_sessions() {
    if !require_program("gtsm_applies_to_accepted_sessions", "bird") {
        return;
    }
    let (up, route, status) = passive_gtsm("gtsmacc", "ttl security on;");
    assert!(
        up && route,
        "BIRD sending TTL 255 to a passive GTSM neighbor: {status}"
    );
    // Negative control: BIRD's plain eBGP (TTL 1) connects, but every packet of it after
    // the accept is dropped by the socket's minimum TTL: no session, no route.
    let (up, route, status) = passive_gtsm("gtsmaccn", "");
    assert!(
        !up && !route,
        "a TTL-1 sender must not get a session: {status}"
    );
}

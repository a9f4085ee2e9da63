//! The speaker against a real GoBGP (gobgpd 3.x), between two network namespaces: iBGP over
//! IPv6 transport, IPv4 and IPv6 routes, attributes in `gobgp global rib`.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use vipd_bgp::rib::RouteAttrs;
use vipd_bgp::speaker::{PeerConfig, Speaker};
use vipd_bgp::wire::Prefix;
use vipd_testkit::{Daemon, Lan, Netns, require_program};

/// `gobgp ARGS` in the router namespace, polled until `pred` holds.
async fn gobgp(d: &Daemon, args: &str, pred: impl Fn(&str) -> bool) -> (bool, String) {
    let mut a = vec!["gobgp"];
    a.extend(args.split_whitespace());
    d.until(&a, Duration::from_secs(30), pred).await
}

#[test]
fn ibgp_over_ipv6_transport_with_gobgp() {
    if !require_program("ibgp_over_ipv6_transport_with_gobgp", "gobgpd") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-gobgp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("gobgp");
    let rtr = Netns::new("gobgp-rtr");
    let me = Netns::new("gobgp-dir");
    lan.attach(&rtr, "eth0", &["10.0.0.254/24", "2001:db8::fe/64"]);
    lan.attach(&me, "eth0", &["10.0.0.1/24", "2001:db8::1/64"]);
    let conf = dir.join("gobgpd.toml");
    std::fs::write(
        &conf,
        r#"
[global.config]
  as = 65000
  router-id = "10.0.0.254"
  port = 179
[[neighbors]]
  [neighbors.config]
    neighbor-address = "2001:db8::1"
    peer-as = 65000
  [neighbors.timers.config]
    hold-time = 9
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#,
    )
    .expect("conf");
    let d = Daemon::spawn(
        &rtr,
        "gobgpd",
        &[
            "-t".as_ref(),
            "toml".as_ref(),
            "-f".as_ref(),
            conf.as_os_str(),
        ],
        &dir.join("gobgpd.log"),
    );

    let (established, v4, v6, gone) = me.run(|| async {
        let s = Speaker::start(vec![PeerConfig {
            description: None,
            next_hop_v4: Some(Ipv4Addr::new(10, 0, 0, 1)),
            ..common::neighbor(
                "[2001:db8::fe]:179",
                "2001:db8::1",
                65000,
                65000,
                common::BOTH,
            )
        }]);
        let attrs = RouteAttrs {
            med: Some(20),
            local_pref: Some(200),
            communities: vec![(65000 << 16) | 80],
            large_communities: vec![(65000, 1, 2)],
            ..RouteAttrs::default()
        };
        s.announce(
            Prefix::host("198.51.100.1".parse().expect("ip")),
            attrs.clone(),
        );
        s.announce(
            Prefix::host("2001:db8::c633:6401".parse().expect("ip")),
            attrs,
        );
        s.initial_complete();
        let (established, _) = gobgp(&d, "neighbor", |o| o.contains("Establ")).await;
        let (_, v4) = gobgp(&d, "global rib -a ipv4 198.51.100.1/32", |o| {
            o.contains("198.51.100.1/32")
        })
        .await;
        let (_, v6) = gobgp(&d, "global rib -a ipv6", |o| {
            o.contains("2001:db8::c633:6401/128")
        })
        .await;
        s.withdraw(Prefix::host("198.51.100.1".parse().expect("ip")));
        let (gone, _) = gobgp(&d, "global rib -a ipv4", |o| !o.contains("198.51.100.1/32")).await;
        s.shutdown("test done").await;
        (established, v4, v6, gone)
    });
    assert!(
        established,
        "iBGP session over IPv6 established with gobgpd"
    );
    for needle in [
        "10.0.0.1",
        "Med: 20",
        "LocalPref: 200",
        "65000:80",
        "LargeCommunity: [ 65000:1:2]",
    ] {
        assert!(
            v4.contains(needle),
            "{needle:?} not in gobgp's IPv4 route:\n{v4}"
        );
    }
    assert!(
        v6.contains("2001:db8::1"),
        "IPv6 next hop (the session's address):\n{v6}"
    );
    assert!(gone, "withdrawal reached gobgpd");
    println!("gobgp global rib:\n{v4}{v6}");
}

/// A silent peer and a restarted peer, against gobgpd (eBGP over IPv4).
#[test]
fn hold_expiry_and_restart_with_gobgp() {
    if !require_program("hold_expiry_and_restart_with_gobgp", "gobgpd") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-gobgp-rr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("gobgprr");
    let rtr = Netns::new("gobgprr-rtr");
    let me = Netns::new("gobgprr-dir");
    lan.attach(&rtr, "eth0", &["10.0.0.254/24"]);
    lan.attach(&me, "eth0", &["10.0.0.1/24"]);
    let conf = dir.join("gobgpd.toml");
    std::fs::write(
        &conf,
        "[global.config]\n  as = 65010\n  router-id = \"10.0.0.254\"\n  port = 179\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"10.0.0.1\"\n    peer-as = 4200000001\n  [neighbors.timers.config]\n    hold-time = 9\n    connect-retry = 1\n",
    )
    .expect("conf");
    let start = || {
        Daemon::spawn(
            &rtr,
            "gobgpd",
            &[
                "-t".as_ref(),
                "toml".as_ref(),
                "-f".as_ref(),
                conf.as_os_str(),
            ],
            &dir.join("gobgpd.log"),
        )
    };
    let d = start();
    let (hold, back) = me.run(|| async {
        let s = Speaker::start(vec![common::neighbor(
            "10.0.0.254:179",
            "10.0.0.1",
            4_200_000_001,
            65010,
            common::V4,
        )]);
        s.announce(
            Prefix::host("198.51.100.1".parse().expect("ip")),
            RouteAttrs::default(),
        );
        s.initial_complete();
        gobgp(&d, "global rib -a ipv4", |o| o.contains("198.51.100.1/32")).await;
        // (No ROUTE-REFRESH here: gobgp's softresetin re-reads its own Adj-RIB-In and sends
        // none. Route refresh is tested against BIRD.)
        // Silent peer: SIGSTOP gobgpd; the 9 s hold timer expires.
        let pid = d.pid().to_string();
        d.exec(&["kill", "-STOP", &pid]).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !s.status()[0]
            .1
            .last_error
            .clone()
            .unwrap_or_default()
            .contains("hold timer expired")
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let hold = s.status()[0].1.last_error.clone().unwrap_or_default();
        d.exec(&["kill", "-CONT", &pid]).await;
        // Restart: gobgpd dies and comes back; vipd reconnects and the route returns.
        drop(d);
        let d2 = start();
        let (back, _) = gobgp(&d2, "global rib -a ipv4", |o| o.contains("198.51.100.1/32")).await;
        s.shutdown("test done").await;
        (hold, back)
    });
    assert!(hold.contains("hold timer expired"), "{hold}");
    assert!(back, "route back after gobgpd restarted");
}

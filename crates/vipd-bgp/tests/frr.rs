//! The speaker against a real FRR bgpd (Debian's frr, run standalone without zebra) between
//! two network namespaces: eBGP over IPv4 with a 4-byte ASN, IPv4 and IPv6 routes.

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use vipd_bgp::fsm::Config;
use vipd_bgp::rib::RouteAttrs;
use vipd_bgp::speaker::{PeerConfig, Speaker};
use vipd_bgp::wire::Prefix;
use vipd_testkit::{Daemon, Lan, Netns, require_program};

const BGPD: &str = "/usr/lib/frr/bgpd";

/// `vtysh -c CMD` in the router namespace, polled until `pred` holds.
async fn vtysh(
    d: &Daemon,
    vty: &std::path::Path,
    cmd: &str,
    pred: impl Fn(&str) -> bool,
) -> (bool, String) {
    let vty = vty.display().to_string();
    d.until(
        &["vtysh", "--vty_socket", &vty, "-c", cmd],
        Duration::from_secs(30),
        pred,
    )
    .await
}

/// A router namespace running FRR's bgpd (standalone, no zebra) on a LAN with the speaker's
/// namespace: router 10.0.0.254 and 2001:db8::fe, speaker 10.0.0.1 and 2001:db8::1.
struct FrrLab {
    _lan: Lan,
    rtr: Netns,
    me: Netns,
    dir: PathBuf,
    conf: PathBuf,
}

impl FrrLab {
    /// `None` when FRR is not installed (a failure under VIPD_REQUIRE_DAEMONS=1).
    fn new(test: &str, tag: &str, bgpd_conf: &str) -> Option<FrrLab> {
        if !std::path::Path::new(BGPD).exists() {
            assert!(
                !std::env::var("VIPD_REQUIRE_DAEMONS").is_ok_and(|v| v == "1"),
                "{BGPD} missing (make deps installs frr)"
            );
            eprintln!("SKIP {test}: frr is not installed");
            return None;
        }
        if !require_program(test, "vtysh") {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("vipd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp");
        // bgpd drops to the frr user: it must own the directory of its pid file and vty socket.
        let _ = Command::new("chown").args(["frr:frr"]).arg(&dir).status();
        let lan = Lan::new(tag);
        let rtr = Netns::new(&format!("{tag}-rtr"));
        let me = Netns::new(&format!("{tag}-dir"));
        lan.attach(&rtr, "eth0", &["10.0.0.254/24", "2001:db8::fe/64"]);
        lan.attach(&me, "eth0", &["10.0.0.1/24", "2001:db8::1/64"]);
        let conf = dir.join("bgpd.conf");
        std::fs::write(&conf, bgpd_conf).expect("conf");
        Some(FrrLab {
            _lan: lan,
            rtr,
            me,
            dir,
            conf,
        })
    }

    /// Starts bgpd (again, after a kill, for restart tests).
    fn start(&self) -> Daemon {
        let pid = self.dir.join("bgpd.pid");
        let args = [
            "-Z".as_ref(),
            "-f".as_ref(),
            self.conf.as_os_str(),
            "--vty_socket".as_ref(),
            self.dir.as_os_str(),
            "-i".as_ref(),
            pid.as_os_str(),
        ];
        Daemon::spawn(&self.rtr, BGPD, &args, &self.dir.join("bgpd.log"))
    }
}

#[test]
fn ebgp_with_frr_bgpd() {
    let Some(lab) = FrrLab::new(
        "ebgp_with_frr_bgpd",
        "frr",
        "router bgp 65010\n bgp router-id 10.0.0.254\n no bgp ebgp-requires-policy\n neighbor 10.0.0.1 remote-as 4200000001\n neighbor 10.0.0.1 timers 3 9\n \
         address-family ipv6 unicast\n  neighbor 10.0.0.1 activate\n exit-address-family\n",
    ) else {
        return;
    };
    let (me, dir) = (&lab.me, &lab.dir);
    let d = lab.start();

    let base = common::neighbor(
        "10.0.0.254:179",
        "10.0.0.1",
        4_200_000_001,
        65010,
        common::BOTH,
    );
    let (up, v4, v6) = me.run(|| async {
        let s = Speaker::start(vec![PeerConfig {
            description: None,
            next_hop_v6: Some("2001:db8::1".parse().expect("addr")),
            fsm: Config {
                graceful_restart: Some((120, false)),
                ..base.fsm.clone()
            },
            ..base
        }]);
        let attrs = RouteAttrs {
            med: Some(10),
            local_pref: None,
            communities: vec![(65000 << 16) | 80],
            large_communities: vec![(4_200_000_001, 1, 443)],
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
        let (up, _) = vtysh(&d, dir, "show bgp summary", |o| {
            o.contains("10.0.0.1")
                && !o.contains("Active")
                && !o.contains("Connect")
                && o.contains("4200000001")
        })
        .await;
        let (_, v4) = vtysh(&d, dir, "show bgp ipv4 unicast 198.51.100.1/32", |o| {
            o.contains("Large Community")
        })
        .await;
        let (_, v6) = vtysh(
            &d,
            dir,
            "show bgp ipv6 unicast 2001:db8::c633:6401/128",
            |o| o.contains("2001:db8::1"),
        )
        .await;
        s.shutdown("test done").await;
        (up, v4, v6)
    });
    assert!(up, "session with FRR");
    for needle in [
        "4200000001",
        "metric 10",
        "Community: 65000:80",
        "Large Community: 4200000001:1:443",
    ] {
        assert!(v4.contains(needle), "{needle:?} not in FRR's route:\n{v4}");
    }
    assert!(v6.contains("2001:db8::1"), "{v6}");
    println!("{v4}");
}

/// Route refresh, a silent peer and a restarted peer, against FRR's bgpd.
#[test]
fn refresh_hold_expiry_and_restart_with_frr() {
    let Some(lab) = FrrLab::new(
        "refresh_hold_expiry_and_restart_with_frr",
        "frrrr",
        "router bgp 65010\n bgp router-id 10.0.0.254\n no bgp ebgp-requires-policy\n neighbor 10.0.0.1 remote-as 4200000001\n neighbor 10.0.0.1 timers 3 9\n neighbor 10.0.0.1 timers connect 1\n",
    ) else {
        return;
    };
    let (me, dir) = (&lab.me, &lab.dir);
    let start = || lab.start();
    let d = start();
    let (refreshed, hold, back) = me.run(|| async {
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
        vtysh(&d, dir, "show bgp ipv4 unicast 198.51.100.1/32", |o| {
            o.contains("4200000001")
        })
        .await;
        let before = s.status()[0].1.updates_sent;
        vtysh(&d, dir, "clear bgp ipv4 unicast 10.0.0.1 soft in", |_| true).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while s.status()[0].1.updates_sent <= before && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let refreshed = s.status()[0].1.updates_sent > before;
        let p = std::fs::read_to_string(dir.join("bgpd.pid"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let _ = Command::new("kill").args(["-STOP", &p]).status();
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
        let _ = Command::new("kill").args(["-CONT", &p]).status();
        drop(d);
        let d2 = start();
        let (back, _) = vtysh(&d2, dir, "show bgp ipv4 unicast 198.51.100.1/32", |o| {
            o.contains("4200000001")
        })
        .await;
        s.shutdown("test done").await;
        (refreshed, hold, back)
    });
    assert!(refreshed, "FRR's ROUTE-REFRESH answered");
    assert!(hold.contains("hold timer expired"), "{hold}");
    assert!(back, "route back after bgpd restarted");
}

/// iBGP over an IPv6 session with FRR: IPv4 (ipv4_next_hop) and IPv6 routes, LOCAL_PREF.
#[test]
fn ibgp_over_ipv6_transport_with_frr() {
    let Some(lab) = FrrLab::new(
        "ibgp_over_ipv6_transport_with_frr",
        "frr6",
        "router bgp 65000\n bgp router-id 10.0.0.254\n neighbor 2001:db8::1 remote-as 65000\n neighbor 2001:db8::1 timers 3 9\n \
         address-family ipv4 unicast\n  neighbor 2001:db8::1 activate\n exit-address-family\n \
         address-family ipv6 unicast\n  neighbor 2001:db8::1 activate\n exit-address-family\n",
    ) else {
        return;
    };
    let (me, dir) = (&lab.me, &lab.dir);
    let d = lab.start();
    let (v4, v6) = me.run(|| async {
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
            med: None,
            local_pref: Some(300),
            communities: vec![],
            large_communities: vec![],
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
        let (_, v4) = vtysh(&d, dir, "show bgp ipv4 unicast 198.51.100.1/32", |o| {
            o.contains("localpref 300")
        })
        .await;
        let (_, v6) = vtysh(
            &d,
            dir,
            "show bgp ipv6 unicast 2001:db8::c633:6401/128",
            |o| o.contains("localpref 300"),
        )
        .await;
        s.shutdown("test done").await;
        (v4, v6)
    });
    assert!(
        v4.contains("10.0.0.1") && v4.contains("localpref 300") && v4.contains("internal"),
        "{v4}"
    );
    assert!(
        v6.contains("2001:db8::1") && v6.contains("localpref 300"),
        "{v6}"
    );
}

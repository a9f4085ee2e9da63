//! vipd's BFD against FRR's bfdd (standalone, without zebra) in host namespaces: IPv4 and
//! IPv6 single-hop sessions on a LAN, and a multihop session (RFC 5883) across a router;
//! all Up within a second at the intervals configured on both sides (`show bfd peers`), and
//! a killed bfdd detected within the detection time.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vipd_bfd::packet::{Diag, State};
use vipd_bfd::runtime::{Bfd, Peer};
use vipd_bfd::session::Config;
use vipd_testkit::{Daemon, Lan, Netns, require_program};

const BFDD: &str = "/usr/lib/frr/bfdd";

const CONF: &str = "bfd\n peer 10.0.0.1\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n !\n peer 2001:db8::1\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n !\n peer 10.1.0.1 multihop local-address 10.0.0.254\n  receive-interval 200\n  transmit-interval 200\n  detect-multiplier 3\n !\n!\n";

fn vtysh(rtr: &Netns, dir: &Path, cmd: &str) -> String {
    let o = Command::new("ip")
        .args(["netns", "exec", rtr.name(), "vtysh", "--vty_socket"])
        .arg(dir)
        .args(["-c", cmd])
        .output()
        .expect("vtysh");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The block of `show bfd peers` for `addr`. Async: the BFD task shares the test's
/// one-thread runtime, and a blocking vtysh there held its 100 ms packets back long enough for
/// FRR to declare the sessions down (seen in full test runs).
async fn frr_peer(rtr: &Netns, dir: &Path, addr: &str) -> String {
    let o = tokio::process::Command::new("ip")
        .args(["netns", "exec", rtr.name(), "vtysh", "--vty_socket"])
        .arg(dir)
        .args(["-c", "show bfd peers"])
        .output()
        .await
        .expect("vtysh");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    out.split("\n\t\n")
        .chain(out.split("\n\n"))
        .find(|b| b.contains(&format!("peer {addr} ")))
        .unwrap_or("")
        .to_string()
}

fn peer(addr: &str, multihop: Option<u8>, ms: u64) -> Peer {
    Peer {
        addr: addr.parse().expect("ip"),
        local: None,
        multihop,
        timing: Config {
            min_tx: Duration::from_millis(ms),
            min_rx: Duration::from_millis(ms),
            multiplier: 3,
        },
    }
}

#[test]
fn single_hop_and_multihop_sessions_with_frr_bfdd() {
    if !Path::new(BFDD).exists() {
        assert!(
            !std::env::var("VIPD_REQUIRE_DAEMONS").is_ok_and(|v| v == "1"),
            "{BFDD} missing (make deps installs frr)"
        );
        eprintln!("SKIP: frr is not installed");
        return;
    }
    if !require_program("single_hop_and_multihop_sessions_with_frr_bfdd", "vtysh") {
        return;
    }
    let dir: PathBuf = std::env::temp_dir().join(format!("vipd-bfd-frr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let _ = Command::new("chown").args(["frr:frr"]).arg(&dir).status();
    // LAN 10.0.0.0/24: the router and vipd's host. LAN 10.1.0.0/24 behind a second router
    // (mid): vipd's other address, one hop away from the router, for the multihop session.
    let lan = Lan::new("bff");
    let far = Lan::new("bfm");
    let rtr = Netns::new("bff-rtr");
    let me = Netns::new("bff-me");
    let mid = Netns::new("bff-mid");
    let remote = Netns::new("bff-far");
    lan.attach(&rtr, "eth0", &["10.0.0.254/24", "2001:db8::fe/64"]);
    lan.attach(&me, "eth0", &["10.0.0.1/24", "2001:db8::1/64"]);
    lan.attach(&mid, "eth0", &["10.0.0.2/24"]);
    far.attach(&mid, "eth1", &["10.1.0.2/24"]);
    far.attach(&remote, "eth0", &["10.1.0.1/24"]);
    mid.sysctl("net.ipv4.ip_forward", "1");
    rtr.ip(&["route", "add", "10.1.0.0/24", "via", "10.0.0.2"]);
    remote.ip(&["route", "add", "default", "via", "10.1.0.2"]);
    let conf = dir.join("bfdd.conf");
    std::fs::write(&conf, CONF).expect("conf");
    let pid = dir.join("bfdd.pid");
    let bfdd = Daemon::spawn(
        &rtr,
        BFDD,
        &[
            "-f".as_ref(),
            conf.as_os_str(),
            "--vty_socket".as_ref(),
            dir.as_os_str(),
            "-i".as_ref(),
            pid.as_os_str(),
            "--bfdctl".as_ref(),
            dir.join("bfdd.sock").as_os_str(),
        ],
        &dir.join("bfdd.log"),
    );

    // The multihop session, from the far namespace.
    let far_done = {
        remote.run(|| async {
            let bfd = Bfd::start_on(
                &tokio::runtime::Handle::current(),
                vec![peer("10.0.0.254", Some(2), 200)],
                Vec::new(),
            )
            .expect("bind");
            let a: IpAddr = "10.0.0.254".parse().expect("ip");
            let mut rx = bfd.status(a).expect("status");
            let start = Instant::now();
            // (The guard wait_for returns must not be held: the task writes the status.)
            let up = tokio::time::timeout(
                Duration::from_secs(5),
                rx.wait_for(|s| s.state == State::Up),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            let took = start.elapsed();
            tokio::time::sleep(Duration::from_millis(800)).await;
            let st = *bfd.status(a).expect("status").borrow();
            (up, took, st)
        })
    };
    let (up, took, st) = far_done;
    println!("multihop: Up after {took:?}: {st:?}");
    assert!(
        up,
        "multihop session not Up: {st:?}\n{}",
        vtysh(&rtr, &dir, "show bfd peers")
    );
    assert!(took < Duration::from_secs(2), "multihop: Up after {took:?}");
    assert_eq!(st.tx_interval, Duration::from_millis(200));
    assert_eq!(st.detection_time, Duration::from_millis(600));

    me.run(|| async {
        let bfd = Bfd::start_on(
            &tokio::runtime::Handle::current(),
            vec![
                peer("10.0.0.254", None, 100),
                peer("2001:db8::fe", None, 100),
            ],
            Vec::new(),
        )
        .expect("bind");
        for a in ["10.0.0.254", "2001:db8::fe"] {
            let ip: IpAddr = a.parse().expect("ip");
            let mut rx = bfd.status(ip).expect("status");
            let start = Instant::now();
            let up = tokio::time::timeout(
                Duration::from_secs(3),
                rx.wait_for(|s| s.state == State::Up),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            println!("{a}: Up after {:?}", start.elapsed());
            assert!(
                up,
                "{a} not Up: {:?}\n{}",
                bfd.statuses(),
                vtysh(&rtr, &dir, "show bfd peers")
            );
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{a}: {:?}",
                start.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (a, st) in bfd.statuses() {
            assert_eq!(st.tx_interval, Duration::from_millis(100), "{a}: {st:?}");
            assert_eq!(st.detection_time, Duration::from_millis(300), "{a}: {st:?}");
        }
        for a in ["10.0.0.1", "2001:db8::1"] {
            let b = frr_peer(&rtr, &dir, a).await;
            assert!(b.contains("Status: up"), "{a} at FRR:\n{b}");
            assert!(
                b.contains("Receive interval: 100ms") && b.contains("Transmission interval: 100ms"),
                "{a} at FRR:\n{b}"
            );
        }
        let b = frr_peer(&rtr, &dir, "10.1.0.1").await;
        assert!(
            b.contains("Status: up") && b.contains("multihop"),
            "multihop at FRR:\n{b}"
        );

        // bfdd killed: vipd declares it down within the detection time. (Counted from the
        // session's downs: on a loaded machine a 100 ms session may have flapped already.)
        let v4: IpAddr = "10.0.0.254".parse().expect("ip");
        let mut rx = bfd.status(v4).expect("status");
        // Killed from a session that has been Up for a second: a flap just before the kill
        // (FRR signalling Down on a loaded machine, seen once in a full test run) would be
        // counted as the detection of the kill.
        let mut downs = 0;
        for _ in 0..10 {
            let _ = tokio::time::timeout(
                Duration::from_secs(3),
                rx.wait_for(|s| s.state == State::Up),
            )
            .await;
            downs = rx.borrow().downs;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let s = *rx.borrow();
            if s.state == State::Up && s.downs == downs {
                break;
            }
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(bfdd.pid().to_string())
            .status();
        let killed = Instant::now();
        let down = tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|s| s.downs > downs))
            .await
            .is_ok_and(|r| r.is_ok());
        let took = killed.elapsed();
        println!("vipd detected bfdd's death after {took:?}");
        assert!(down && took <= Duration::from_millis(350), "{took:?}");
        assert_eq!(
            bfd.status(v4).expect("status").borrow().diag,
            Diag::ControlDetectionTimeExpired
        );
    });
    drop(bfdd);
    let _ = std::fs::remove_dir_all(&dir);
}

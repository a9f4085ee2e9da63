//! vipd's BFD against BIRD 2's `protocol bfd`, between two network namespaces on the host:
//! IPv4 and IPv6 single-hop sessions come up within a second at the intervals configured
//! on both sides; a killed BIRD is detected within the detection time; a vipd that stops
//! sending is detected by BIRD within its detection time; AdminDown is not a failure.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vipd_bfd::packet::{Diag, State};
use vipd_bfd::runtime::{Bfd, Peer};
use vipd_bfd::session::Config;
use vipd_testkit::{Daemon, Lan, Netns, require_program};

const RTR4: &str = "10.0.0.254";
const RTR6: &str = "fd00::254";

fn bird_conf(extra: &str) -> String {
    format!(
        "router id 10.0.0.254;\nprotocol device {{}}\nprotocol bfd {{\n  interface \"*\" {{ min rx interval 100 ms; min tx interval 100 ms; idle tx interval 1 s; multiplier 3; }};\n  neighbor 10.0.0.1;\n  neighbor fd00::1;\n{extra}}}\n"
    )
}

fn start_bird(ns: &Netns, dir: &Path, conf: &str) -> Daemon {
    let cfg = dir.join("bird.conf");
    std::fs::write(&cfg, conf).expect("bird.conf");
    let d = Daemon::spawn(
        ns,
        "bird",
        &[
            "-f".as_ref(),
            "-c".as_ref(),
            cfg.as_os_str(),
            "-s".as_ref(),
            dir.join("bird.ctl").as_os_str(),
        ],
        &dir.join("bird.log"),
    );
    let start = Instant::now();
    while !birdc(ns, dir, "show status").contains("Daemon is up") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "BIRD did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

fn birdc(ns: &Netns, dir: &Path, cmd: &str) -> String {
    let o = Command::new("ip")
        .args(["netns", "exec", ns.name(), "birdc", "-s"])
        .arg(dir.join("bird.ctl"))
        .args(cmd.split_whitespace())
        .output()
        .expect("birdc");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// BIRD's line for `addr` in `show bfd sessions`: (state, interval, timeout).
fn bird_session(ns: &Netns, dir: &Path, addr: &str) -> Option<(String, String, String)> {
    let out = birdc(ns, dir, "show bfd sessions");
    let l = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(addr))?;
    let w: Vec<&str> = l.split_whitespace().collect();
    let n = w.len();
    Some((w[2].to_string(), w[n - 2].to_string(), w[n - 1].to_string()))
}

fn peers() -> Vec<Peer> {
    [RTR4, RTR6]
        .iter()
        .map(|a| Peer {
            addr: a.parse().expect("ip"),
            local: None,
            multihop: None,
            timing: Config::default(),
        })
        .collect()
}

async fn until(
    bfd: &Bfd,
    addr: IpAddr,
    limit: Duration,
    f: impl Fn(State) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    let mut rx = bfd.status(addr)?;
    tokio::time::timeout(limit, rx.wait_for(|s| f(s.state)))
        .await
        .ok()?
        .ok()?;
    Some(start.elapsed())
}

#[test]
fn sessions_with_bird_come_up_fast_and_each_side_detects_the_others_death() {
    if !require_program(
        "sessions_with_bird_come_up_fast_and_each_side_detects_the_others_death",
        "bird",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-bfd-bird-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("bfb");
    let rtr = Netns::new("bfb-rtr");
    let me = Netns::new("bfb-me");
    lan.attach(&rtr, "eth0", &["10.0.0.254/24", "fd00::254/64"]);
    lan.attach(&me, "eth0", &["10.0.0.1/24", "fd00::1/64"]);
    let bird = start_bird(&rtr, &dir, &bird_conf(""));

    me.run(|| async {
        // 1. Up within a second, both families.
        let bfd =
            Bfd::start_on(&tokio::runtime::Handle::current(), peers(), Vec::new()).expect("bind");
        for a in [RTR4, RTR6] {
            let took = until(&bfd, a.parse().expect("ip"), Duration::from_secs(3), |s| {
                s == State::Up
            })
            .await
            .unwrap_or_else(|| panic!("{a}: not Up within 3 s: {:?}", bfd.statuses()));
            println!("{a}: Up after {took:?}");
            assert!(took < Duration::from_secs(1), "{a}: Up after {took:?}");
        }
        // The Poll that brings both sides to 100 ms completes; BIRD agrees.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (a, st) in bfd.statuses() {
            assert_eq!(st.tx_interval, Duration::from_millis(100), "{a}: {st:?}");
            assert_eq!(st.detection_time, Duration::from_millis(300), "{a}: {st:?}");
        }
        for a in ["10.0.0.1", "fd00::1"] {
            let (state, interval, timeout) = bird_session(&rtr, &dir, a).expect("BIRD's session");
            assert_eq!(
                (state.as_str(), interval.as_str(), timeout.as_str()),
                ("Up", "0.100", "0.300"),
                "{a} at BIRD"
            );
        }

        // 2. vipd goes silent (the task is dropped without AdminDown, as when the process
        // is frozen or the host dies): BIRD declares it down within its detection time.
        drop(bfd);
        let gone = Instant::now();
        let mut seen = None;
        while gone.elapsed() < Duration::from_secs(2) {
            if bird_session(&rtr, &dir, "10.0.0.1").is_some_and(|s| s.0 == "Down") {
                seen = Some(gone.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = seen.expect("BIRD saw the session go down");
        println!("BIRD detected vipd's silence after {seen:?}");
        assert!(seen < Duration::from_millis(600), "{seen:?}");

        // 3. Up again, then BIRD is killed: vipd detects it within 300 ms.
        let bfd =
            Bfd::start_on(&tokio::runtime::Handle::current(), peers(), Vec::new()).expect("bind");
        let v4: IpAddr = RTR4.parse().expect("ip");
        until(&bfd, v4, Duration::from_secs(3), |s| s == State::Up)
            .await
            .expect("up again");
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Counted from the session's downs: on a loaded machine a 100 ms session may have
        // flapped already.
        until(&bfd, v4, Duration::from_secs(3), |s| s == State::Up)
            .await
            .expect("up before the kill");
        let mut rx = bfd.status(v4).expect("status");
        let downs = rx.borrow().downs;
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(bird.pid().to_string())
            .status();
        let killed = Instant::now();
        let down = tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|s| s.downs > downs))
            .await
            .is_ok_and(|r| r.is_ok());
        let took = killed.elapsed();
        assert!(down, "vipd did not detect BIRD's death");
        println!("vipd detected BIRD's death after {took:?}");
        assert!(took <= Duration::from_millis(350), "{took:?}");
        let st = bfd.status(v4).expect("status").borrow().to_owned();
        assert_eq!(st.diag, Diag::ControlDetectionTimeExpired);
    });
    drop(bird);

    // 4. A session removed from vipd's configuration says AdminDown: BIRD takes it down at
    // once (not after its detection time), and BIRD does not count AdminDown as a failure
    // (its BGP stays up: RFC 5882 section 3.2).
    let bird = start_bird(&rtr, &dir, &bird_conf(""));
    me.run(|| async {
        let bfd =
            Bfd::start_on(&tokio::runtime::Handle::current(), peers(), Vec::new()).expect("bind");
        let v4: IpAddr = RTR4.parse().expect("ip");
        until(&bfd, v4, Duration::from_secs(3), |s| s == State::Up)
            .await
            .expect("up");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            bird_session(&rtr, &dir, "10.0.0.1").map(|s| s.0),
            Some("Up".into())
        );
        bfd.set_peers(peers().into_iter().filter(|p| p.addr != v4).collect())
            .await;
        let removed = Instant::now();
        let mut seen = None;
        while removed.elapsed() < Duration::from_secs(2) {
            if bird_session(&rtr, &dir, "10.0.0.1").is_some_and(|s| s.0 == "Down") {
                seen = Some(removed.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let seen = seen.expect("BIRD took the session down");
        println!("BIRD took the removed session down after {seen:?}");
        // Well under BIRD's 300 ms detection time: it heard the AdminDown.
        assert!(seen < Duration::from_millis(150), "{seen:?}");
        assert!(bfd.status(v4).is_none());
    });
    drop(bird);
    let _ = std::fs::remove_dir_all(&dir);
}

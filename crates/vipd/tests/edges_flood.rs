//! vipd's listeners under floods, on the host kernel, with the open-files limit of a default
//! unit (`prlimit --nofile=1024`): a thousand idle connections and a stream of new ones on
//! `global.listen` must not stop `/healthcheck` from answering within a second, nor take
//! vipd's descriptors (the probes need them); a client dripping its headers is closed; the
//! agent answers only the allowed directors; nothing leaks once the flood stops.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Vipd;
use vipd_testkit::{Lan, Netns};

const HTTP: &str = "10.6.0.10:9100";
const AGENT: &str = "10.6.0.10:5555";

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// One GET with `Connection: close`: (status line, elapsed).
fn get(path: &str) -> (String, Duration) {
    let start = Instant::now();
    let addr: SocketAddr = HTTP.parse().expect("addr");
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(s) => s,
        Err(e) => return (format!("connect: {e}"), start.elapsed()),
    };
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let req = format!("GET {path} HTTP/1.1\r\nHost: vipd\r\nConnection: close\r\n\r\n");
    if let Err(e) = s.write_all(req.as_bytes()) {
        return (format!("write: {e}"), start.elapsed());
    }
    let mut body = Vec::new();
    let _ = s.read_to_end(&mut body);
    let text = String::from_utf8_lossy(&body);
    (
        text.lines().next().unwrap_or("").to_string(),
        start.elapsed(),
    )
}

/// What the agent says to a connection from the namespace it runs in.
fn agent_says() -> String {
    let mut s = TcpStream::connect_timeout(&AGENT.parse().expect("addr"), Duration::from_secs(3))
        .expect("connect to the agent");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn listeners_hold_under_floods_with_the_default_descriptor_limit() {
    vipd_sys::process::raise_nofile_limit().expect("the test's own limit");
    let dir = std::env::temp_dir().join(format!("vipd-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("fl");
    let node = Netns::new("fl-be");
    let director = Netns::new("fl-d");
    let other = Netns::new("fl-x");
    lan.attach(&node, "eth0", &["10.6.0.10/24"]);
    lan.attach(&director, "eth0", &["10.6.0.1/24"]);
    lan.attach(&other, "eth0", &["10.6.0.2/24"]);
    let cfg = dir.join("vipd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[global]\nrole = \"backend\"\nlisten = \"{HTTP}\"\ncontrol_socket = \"{d}/vipd.sock\"\ndrain_file = \"{d}/disable\"\n[backend]\nloopback_vips = [\"198.51.100.1\"]\n[backend.agent]\nlisten = \"{AGENT}\"\nstate_file = \"{d}/agent-check\"\nallowed_directors = [\"10.6.0.1\"]\n",
            d = dir.display()
        ),
    )
    .expect("cfg");
    let v = Vipd::spawn_wrapped(&node, &cfg, &dir, 1, &["prlimit", "--nofile=1024"]);
    v.wait("agent check listening", 1);
    v.wait("serving /metrics", 1);
    let pid = v.child_pid();

    // The agent: the allowed director gets the line, anyone else nothing.
    let said = director.run(|| async { agent_says() });
    assert_eq!(said, "up\n");
    let said = other.run(|| async { agent_says() });
    assert_eq!(said, "", "a non-director gets no answer");

    let baseline = fds(pid);
    let (status, _) = other.run(|| async { get("/healthcheck") });
    assert!(status.contains("200"), "{status}");

    // The flood: 1,000 idle connections, then 50 new idle ones every 100 ms throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        other.spawn(move || {
            let addr: SocketAddr = HTTP.parse().expect("addr");
            let mut held = Vec::new();
            for _ in 0..1000 {
                if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                    held.push(s);
                }
            }
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..50 {
                    if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                        held.push(s);
                    }
                }
                if held.len() > 3000 {
                    held.drain(..1000);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));

    // Meanwhile: a client dripping its request head one byte every 300 ms is closed.
    let drip = other.spawn(move || {
        let mut s = TcpStream::connect(HTTP).expect("connect");
        let start = Instant::now();
        let head =
            b"GET /healthcheck HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in head {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(8),
            "a dripping client kept its connection {took:?}"
        );
    });

    // Scrapes through the flood: 10 a second for 10 s, each answered within a second.
    let (worst, failures, peak_fds) = other.run(|| async move {
        let mut worst = Duration::ZERO;
        let mut failures = Vec::new();
        let mut peak = 0;
        for i in 0..100 {
            let path = if i % 10 == 0 {
                "/metrics"
            } else {
                "/healthcheck"
            };
            let (status, took) = get(path);
            if !status.contains("200") {
                failures.push(format!("{path}: {status:?} after {took:?}"));
            }
            worst = worst.max(took);
            peak = peak.max(fds(pid));
            std::thread::sleep(Duration::from_millis(100));
        }
        (worst, failures, peak)
    });
    stop.store(true, Ordering::Relaxed);
    flood.join().expect("flood");
    println!(
        "flood: slowest of 100 scrapes {worst:?}, vipd descriptors {baseline} before, at most {peak_fds} during"
    );
    drip.join().expect("a dripping client is closed");
    assert!(
        failures.is_empty(),
        "scrapes failed: {failures:?}\n{}",
        v.log()
    );
    assert!(worst < Duration::from_secs(1), "slowest scrape {worst:?}");
    assert!(
        peak_fds < baseline + 200,
        "vipd held {peak_fds} descriptors during the flood (baseline {baseline})"
    );
    assert!(
        v.log().contains("connection cap reached"),
        "the operator is told:\n{}",
        v.log()
    );

    // The flood is over: every descriptor comes back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds(pid) > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        fds(pid) <= baseline,
        "descriptors after the flood: {} (baseline {baseline})",
        fds(pid)
    );
    let (status, _) = other.run(|| async { get("/healthcheck") });
    assert!(status.contains("200"), "{status}");
    let (log, _) = v.stop(&cfg);
    assert!(!log.contains("panicked"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

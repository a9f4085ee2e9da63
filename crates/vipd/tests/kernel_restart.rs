//! Kernel scenario (UML guest, `make test-kernel`): vipd restarts while a client runs a
//! request loop through the router. The seed's promise for upgrades: no failed request, no
//! IPVS write on start, and the router never withdraws the route (graceful restart).
//!
//! ```text
//!  client 10.7.0.100 ── rtr (BIRD, kernel routes, forwarding) 10.7.0.254 | 10.8.0.254
//!                                   │ BGP + traffic to the VIP
//!                        director 10.8.0.1 (vipd, IPVS mh, IPIP)
//!                        backends 10.8.0.10, 10.8.0.11 (tunl0 + VIP, HTTP on :80)
//!  replies go straight from the backends to the router (direct server return)
//! ```

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Vipd, bird_until, birdc, start_bird};
use vipd_testkit::{Daemon, Feature, Lan, Netns, require};

const VIP: &str = "198.51.100.1";

const CONFIG: &str = r#"
[global]
router_id = "10.8.0.1"
state_dir = "DIR/state"
drain_file = "DIR/disable"
control_socket = "DIR/vipd.sock"

[bgp]
local_as = 65001
hold_time = 9
connect_retry = 1
[bgp.graceful_restart]
enabled = true
restart_time = 60
[[bgp.neighbor]]
address = "10.8.0.254"
remote_as = 65010

[[check]]
name = "web"
kind = "http"
port = 80
interval = "300ms"
timeout = "250ms"
rise = 1
fall = 2
jitter = "0%"

[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
scheduler = "mh"
checks = ["web"]
# Unknown counts as down: without carrying the kernel's weights over a restart, the new
# process would zero them and break the flows this test counts.
alpha = true
quorum = 1
[[service.real_server]]
address = "10.8.0.10"
[[service.real_server]]
address = "10.8.0.11"
"#;

const BIRD: &str = "router id 10.8.0.254;
protocol device {}
protocol kernel { ipv4 { export all; }; merge paths on; }
protocol bgp vipd {
  local 10.8.0.254 as 65010;
  neighbor 10.8.0.1 as 65001;
  hold time 9;
  connect delay time 1;
  error wait time 1, 2;
  graceful restart on;
  ipv4 { import all; export none; };
}
";

/// A backend: the VIP on tunl0 (IPIP from the directors), an HTTP server on :80 for both
/// the traffic and the health checks, replies routed back through the router.
fn backend(lan: &Lan, tag: &str, ip: &str, dir: &Path) -> (Netns, Daemon) {
    let ns = Netns::new(tag);
    lan.attach(&ns, "eth0", &[&format!("{ip}/24")]);
    ns.ip(&["route", "add", "default", "via", "10.8.0.254"]);
    ns.ip(&["link", "set", "tunl0", "up"]);
    ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "tunl0"]);
    for k in ["all", "default", "tunl0", "eth0"] {
        ns.sysctl(&format!("net.ipv4.conf.{k}.rp_filter"), "0");
    }
    let www = dir.join(format!("www-{tag}"));
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("index.html"), tag).expect("index");
    let d = Daemon::spawn(
        &ns,
        "python3",
        &[
            "-m".as_ref(),
            "http.server".as_ref(),
            "--directory".as_ref(),
            www.as_os_str(),
            "80".as_ref(),
        ],
        &dir.join(format!("http-{tag}.log")),
    );
    (ns, d)
}

/// One HTTP/1.0 GET to the VIP on a new connection: the backend's name, or why it failed.
fn get() -> Result<String, String> {
    let addr = format!("{VIP}:80").parse().expect("addr");
    let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    c.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut body = String::new();
    c.read_to_string(&mut body)
        .map_err(|e| format!("read: {e}"))?;
    if !body.starts_with("HTTP/1.0 200") {
        return Err(format!("answer: {body:?}"));
    }
    Ok(body.rsplit("\r\n\r\n").next().unwrap_or("").to_string())
}

#[test]
fn restart_under_a_request_loop_fails_no_request_writes_nothing_and_keeps_the_route() {
    if !require(
        "restart_under_a_request_loop_fails_no_request_writes_nothing_and_keeps_the_route",
        &[Feature::Ipvs, Feature::Ipip],
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-kt-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let front = Lan::new("krf");
    let back = Lan::new("krb");
    let client = Netns::new("kr-cli");
    let rtr = Netns::new("kr-rtr");
    let director = Netns::new("kr-dir");
    front.attach(&client, "eth0", &["10.7.0.100/24"]);
    front.attach(&rtr, "eth0", &["10.7.0.254/24"]);
    back.attach(&rtr, "eth1", &["10.8.0.254/24"]);
    back.attach(&director, "eth0", &["10.8.0.1/24"]);
    client.ip(&["route", "add", "default", "via", "10.7.0.254"]);
    director.ip(&["route", "add", "default", "via", "10.8.0.254"]);
    rtr.sysctl("net.ipv4.ip_forward", "1");
    let _b = [
        backend(&back, "kr-b1", "10.8.0.10", &dir),
        backend(&back, "kr-b2", "10.8.0.11", &dir),
    ];

    let (_bird, ctl) = start_bird(&rtr, &dir, BIRD);
    let cfg = dir.join("vipd.toml");
    std::fs::write(&cfg, CONFIG.replace("DIR", &dir.display().to_string())).expect("cfg");

    // First run: programs IPVS, announces once both backends passed their checks.
    let first = Vipd::spawn(&director, &cfg, &dir, 1, false);
    bird_until(&rtr, &ctl, &first.log, "first announcement", |o| {
        o.contains(&format!("{VIP}/32"))
    });
    let kernel_route = || rtr.ip(&["route", "show", VIP]);
    let start = Instant::now();
    while !kernel_route().contains(VIP) {
        assert!(start.elapsed() < Duration::from_secs(10), "no kernel route");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Witnesses: every route change in the router's kernel table, and the request loop.
    let monitor_log = dir.join("ip-monitor.log");
    let mut monitor = Command::new("ip")
        .args(["-n", rtr.name(), "monitor", "route"])
        .stdout(std::fs::File::create(&monitor_log).expect("monitor log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("ip monitor");
    let running = Arc::new(AtomicBool::new(true));
    let ok = Arc::new(AtomicUsize::new(0));
    let (tx, failures) = std::sync::mpsc::channel::<String>();
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let requests = {
        let (running, ok, seen) = (running.clone(), ok.clone(), seen.clone());
        client.spawn(move || {
            while running.load(Ordering::Relaxed) {
                match get() {
                    Ok(who) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        seen.lock().expect("seen").insert(who);
                    }
                    Err(e) => {
                        let _ = tx.send(e);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let wait_requests = |n: usize| {
        let start = Instant::now();
        let from = ok.load(Ordering::Relaxed);
        while ok.load(Ordering::Relaxed) < from + n {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "requests stalled: {:?}",
                failures.try_iter().collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_requests(20);

    // The restart: SIGTERM (sessions dropped without a NOTIFICATION: routers keep the routes
    // as stale), then a new process under strace, which counts its IPVS writes.
    let (log1, _) = first.stop(&cfg);
    assert!(
        log1.contains("closing BGP sessions without NOTIFICATION"),
        "{log1}"
    );
    let during = ok.load(Ordering::Relaxed);
    let second = Vipd::start(&director, &cfg, &dir, 2);
    second.wait("End-of-RIB sent", 1);
    bird_until(
        &rtr,
        &ctl,
        &second.log,
        "session back, restart over",
        |_| {
            let p = birdc(&rtr, &ctl, &["show", "protocols", "all", "vipd"]);
            p.contains("Established") && !p.contains("graceful restart active")
        },
    );
    wait_requests(20);
    running.store(false, Ordering::Relaxed);
    requests.join().expect("request loop");
    let _ = monitor.kill();
    let _ = monitor.wait();
    let (log2, writes) = second.stop(&cfg);

    let failed: Vec<String> = failures.try_iter().collect();
    let total = ok.load(Ordering::Relaxed);
    assert!(
        failed.is_empty(),
        "{} failed requests of {}: {failed:?}\nvipd log:\n{log2}",
        failed.len(),
        total + failed.len()
    );
    assert!(total > during, "requests ran across the restart");
    assert_eq!(
        seen.lock().expect("seen").len(),
        2,
        "requests spread over both backends"
    );
    assert!(
        log2.contains("reconcile: 0 writes"),
        "vipd says it wrote nothing:\n{log2}"
    );
    assert_eq!(writes, Some(0), "strace saw IPVS writes:\n{log2}");
    let changes = std::fs::read_to_string(&monitor_log).unwrap_or_default();
    assert!(
        !changes
            .lines()
            .any(|l| l.starts_with("Deleted") && l.contains(VIP)),
        "the router's kernel lost the route during the restart:\n{changes}"
    );
    println!(
        "restart under load: {total} requests ok, 0 failed, 0 IPVS writes on start, route never deleted at the router"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

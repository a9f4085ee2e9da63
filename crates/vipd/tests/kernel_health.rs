//! Kernel test (UML guest, `make test-kernel`): health checks drive the IPVS weights.
//! vipd runs as a director in one namespace; real HTTP servers (python3 -m http.server) run
//! in another; `ipvsadm` is the witness.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{Vipd, bird_until, birdc, http_get, http_server, start_bird};
use vipd_testkit::{Feature, Lan, Netns, require};

const CONFIG: &str = r#"
[global]
router_id = "192.0.2.1"
state_dir = "STATE"

[[check]]
name = "web"
kind = "http"
path = "/"
# The backends answer health checks on 8080; traffic goes to :80.
port = 8080
interval = "300ms"
timeout = "250ms"
rise = 1
fall = 2
jitter = "0%"

[[service]]
name = "inhibit"
vip = "198.51.100.1"
port = 80
checks = ["web"]
alpha = true
[service.announce]
enabled = false
[[service.real_server]]
address = "10.9.0.10"
weight = 5
[[service.real_server]]
address = "10.9.0.11"
weight = 7

[[service]]
name = "remove"
vip = "198.51.100.2"
port = 80
checks = ["web"]
on_failure = "remove"
[service.announce]
enabled = false
[[service.real_server]]
address = "10.9.0.10"
weight = 2
[[service.real_server]]
address = "10.9.0.11"
weight = 3
"#;

/// `ipvsadm -Ln` lines "VIP:port -> RS:port weight", sorted.
fn witness(ns: &Netns) -> Vec<String> {
    let mut out = Vec::new();
    let mut svc = String::new();
    for l in ns.exec(&["ipvsadm", "-Ln"]).lines().skip(3) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f[0] == "->" {
            out.push(format!("{svc} -> {} {}", f[1], f[3]));
        } else {
            svc = f[1].to_string();
        }
    }
    out.sort();
    out
}

fn wait_for(ns: &Netns, want: &[&str], what: &str, limit: Duration, log: &Path) -> Duration {
    let start = Instant::now();
    loop {
        let w = witness(ns);
        if w == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what}: IPVS is\n{w:#?}\nwant\n{want:#?}\nvipd log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn health_checks_drive_ipvs_weights() {
    if !require("health_checks_drive_ipvs_weights", &[Feature::Ipvs]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-kt-health-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("kh");
    let director = Netns::new("kh-dir");
    let backends = Netns::new("kh-be");
    lan.attach(&director, "eth0", &["10.9.0.1/24"]);
    lan.attach(&backends, "eth0", &["10.9.0.10/24", "10.9.0.11/24"]);
    let cfg = dir.join("vipd.toml");
    std::fs::write(
        &cfg,
        CONFIG.replace("STATE", &dir.join("state").display().to_string()),
    )
    .expect("config");

    let s10 = http_server(&backends, "10.9.0.10", &dir);
    // Only 10.9.0.10 serves at first.
    let vipd = Vipd::spawn(&director, &cfg, &dir, 1, false);
    let log = vipd.log.clone();
    let limit = Duration::from_secs(20);
    wait_for(
        &director,
        &[
            "198.51.100.1:80 -> 10.9.0.10:80 5",
            "198.51.100.1:80 -> 10.9.0.11:80 0",
            "198.51.100.2:80 -> 10.9.0.10:80 2",
        ],
        "start: the dead server inhibited (weight 0) in one service, absent in the other",
        limit,
        &log,
    );
    // The second backend comes up: its configured weights come back.
    let s11 = http_server(&backends, "10.9.0.11", &dir);
    wait_for(
        &director,
        &[
            "198.51.100.1:80 -> 10.9.0.10:80 5",
            "198.51.100.1:80 -> 10.9.0.11:80 7",
            "198.51.100.2:80 -> 10.9.0.10:80 2",
            "198.51.100.2:80 -> 10.9.0.11:80 3",
        ],
        "second backend up",
        limit,
        &log,
    );
    // The first one dies: weight 0 / removed within fall x interval (+ probe and write).
    drop(s10);
    let took = wait_for(
        &director,
        &[
            "198.51.100.1:80 -> 10.9.0.10:80 0",
            "198.51.100.1:80 -> 10.9.0.11:80 7",
            "198.51.100.2:80 -> 10.9.0.11:80 3",
        ],
        "first backend killed",
        limit,
        &log,
    );
    assert!(
        took < Duration::from_millis(2000),
        "fall 2 x 300 ms, took {took:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("real server down") && text.contains("connect: Connection refused"),
        "one log line per server change, with the reason:\n{text}"
    );
    drop(s11);
    let _ = std::fs::remove_dir_all(&dir);
}

const SCENARIO: &str = r#"
[global]
router_id = "10.8.0.1"
state_dir = "DIR/state"
drain_file = "DIR/disable"
control_socket = "DIR/vipd.sock"

[bgp]
local_as = 65001
hold_time = 9
connect_retry = 1
[[bgp.neighbor]]
address = "10.8.0.254"
remote_as = 65010

[[check]]
name = "web"
kind = "http"
port = 8080
interval = "300ms"
timeout = "250ms"
rise = 1
fall = 2
jitter = "0%"

[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
checks = ["web"]
quorum = 2
[service.announce]
med = 10
drained_med = 100
drain_delay = "2s"
[[service.real_server]]
address = "10.9.0.10"
[[service.real_server]]
address = "10.9.0.11"
"#;

#[test]
fn quorum_and_drain_file_drive_the_route_at_bird() {
    if !require(
        "quorum_and_drain_file_drive_the_route_at_bird",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-kt-scenario-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let up_lan = Lan::new("ksu");
    let be_lan = Lan::new("ksb");
    let rtr = Netns::new("ks-rtr");
    let director = Netns::new("ks-dir");
    let backends = Netns::new("ks-be");
    up_lan.attach(&rtr, "eth0", &["10.8.0.254/24"]);
    up_lan.attach(&director, "eth0", &["10.8.0.1/24"]);
    be_lan.attach(&director, "eth1", &["10.9.0.1/24"]);
    be_lan.attach(&backends, "eth0", &["10.9.0.10/24", "10.9.0.11/24"]);
    let (_bird, ctl) = start_bird(
        &rtr,
        &dir,
        "router id 10.8.0.254;\nprotocol device {}\nprotocol bgp vipd {\n  local 10.8.0.254 as 65010;\n  neighbor 10.8.0.1 as 65001;\n  hold time 9;\n  connect delay time 1;\n  error wait time 1, 2;\n  ipv4 { import all; export none; };\n}\n",
    );
    let cfg = dir.join("vipd.toml");
    std::fs::write(&cfg, SCENARIO.replace("DIR", &dir.display().to_string())).expect("cfg");
    let vipd = Vipd::spawn(&director, &cfg, &dir, 1, false);
    let log = vipd.log.clone();
    let vipd_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let established = || birdc(&rtr, &ctl, &["show", "protocols", "vipd"]).contains("Established");
    let start = Instant::now();
    while !established() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no session:\n{}",
            vipd_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // No backend answers yet: alpha keeps them down, no quorum, no route.
    std::thread::sleep(Duration::from_secs(2));
    let none = bird_until(&rtr, &ctl, &log, "before health", |_| true);
    assert!(
        !none.contains("198.51.100.1/32"),
        "route before health passed:\n{none}"
    );

    let s10 = http_server(&backends, "10.9.0.10", &dir);
    std::thread::sleep(Duration::from_secs(2));
    let one = bird_until(&rtr, &ctl, &log, "one backend", |_| true);
    assert!(
        !one.contains("198.51.100.1/32"),
        "quorum 2 with one backend:\n{one}"
    );
    let s11 = http_server(&backends, "10.9.0.11", &dir);
    let r = bird_until(&rtr, &ctl, &log, "quorum reached", |o| {
        o.contains("198.51.100.1/32")
    });
    assert!(r.contains("BGP.med: 10"), "{r}");

    // Quorum lost: withdrawn; back: announced.
    drop(s11);
    bird_until(&rtr, &ctl, &log, "quorum lost", |o| {
        !o.contains("198.51.100.1/32")
    });
    let s11 = http_server(&backends, "10.9.0.11", &dir);
    bird_until(&rtr, &ctl, &log, "quorum back", |o| {
        o.contains("198.51.100.1/32")
    });

    // The monitor URI and the metrics while serving.
    let (code, body) = http_get(&director, "/healthcheck");
    assert_eq!((code, body.trim()), (200, "OK 1 of 1 services announced"));
    let (code, text) = http_get(&director, "/metrics");
    assert_eq!(code, 200, "{text}");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let sample = |name: &str, label: (&str, &str)| -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("{name} {label:?} missing:\n{text}"))
    };
    assert_eq!(sample("vipd_service_announced", ("service", "web")), 1.0);
    assert_eq!(
        sample("vipd_real_server_up", ("server", "10.9.0.11:80")),
        1.0
    );
    assert_eq!(
        sample("vipd_real_server_ipvs_weight", ("server", "10.9.0.11:80")),
        1.0
    );
    assert_eq!(sample("vipd_check_state", ("target", "10.9.0.10:80")), 1.0);
    assert!(sample("vipd_check_transitions_total", ("target", "10.9.0.11:80")) >= 3.0);
    assert!(sample("vipd_check_latency_seconds_count", ("kind", "http")) > 10.0);
    assert_eq!(
        sample("vipd_bgp_session_state", ("state", "Established")),
        1.0
    );
    let writes = scrape
        .samples
        .iter()
        .find(|s| s.metric == "vipd_ipvs_writes_total")
        .map(|s| format!("{:?}", s.value))
        .unwrap_or_default();
    // 4 to program the service (staged mh), then one per weight change.
    assert!(
        writes.contains('(') && !writes.contains("(0.0)"),
        "IPVS writes counted: {writes}"
    );

    // Drain: GRACEFUL_SHUTDOWN and the drained MED first, then the withdrawal.
    std::fs::write(dir.join("disable"), "maintenance, ticket 42\n").expect("touch");
    let g = bird_until(&rtr, &ctl, &log, "graceful shutdown", |o| {
        o.contains("(65535,0)")
    });
    assert!(g.contains("BGP.med: 100"), "{g}");
    let t = Instant::now();
    bird_until(&rtr, &ctl, &log, "drained", |o| {
        !o.contains("198.51.100.1/32")
    });
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "withdrawn before the drain delay"
    );
    std::fs::remove_file(dir.join("disable")).expect("rm");
    let back = bird_until(&rtr, &ctl, &log, "undrained", |o| {
        o.contains("198.51.100.1/32")
    });
    assert!(
        !back.contains("(65535,0)") && back.contains("BGP.med: 10"),
        "{back}"
    );
    // `vipd status`: human and JSON, from the control socket.
    let status = |json: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vipd"));
        c.args(["status", "--socket"]).arg(dir.join("vipd.sock"));
        if json {
            c.arg("--json");
        }
        let o = c.output().expect("vipd status");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let human = status(false);
    for needle in [
        "TCP 198.51.100.1:80 mh mh-port",
        "[announced: quorum; healthy weight 2/2; table ",
        "-> 10.9.0.10:80",
        "10.8.0.254:179",
        "Established",
    ] {
        assert!(human.contains(needle), "{needle:?} not in:\n{human}");
    }
    let json: serde_json::Value = serde_json::from_str(&status(true)).expect("JSON");
    assert_eq!(json["drained"], false);
    assert_eq!(json["services"][0]["announce"], "announced");
    assert_eq!(
        json["services"][0]["real_servers"][1]["address"],
        "10.9.0.11:80"
    );
    assert_eq!(json["services"][0]["real_servers"][1]["health"], "up");
    assert_eq!(json["services"][0]["real_servers"][1]["ipvs_weight"], 1);
    assert_eq!(json["neighbors"][0]["state"], "Established");
    assert_eq!(json["neighbors"][0]["prefixes_sent"], 1);
    // SIGHUP with a broken file: refused, the running configuration stays (route and IPVS
    // unchanged), and `vipd status` says so.
    let good = std::fs::read_to_string(&cfg).expect("cfg");
    std::fs::write(&cfg, good.replace("quorum = 2", "quorum = \"two\"")).expect("cfg");
    let hup = || {
        assert!(
            Command::new("kill")
                .args(["-HUP", &vipd.child_pid().to_string()])
                .status()
                .expect("kill")
                .success()
        );
    };
    hup();
    let start = Instant::now();
    let refused = loop {
        let v: serde_json::Value = serde_json::from_str(&status(true)).expect("JSON");
        let r = v["last_reload"].as_str().unwrap_or_default().to_string();
        if r.starts_with("REFUSED") {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "reload not reported: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(refused.contains("quorum"), "{refused}");
    bird_until(&rtr, &ctl, &log, "route kept after a refused reload", |o| {
        o.contains("198.51.100.1/32")
    });
    // SIGHUP with one changed weight: exactly one IPVS operation, checks keep their state.
    let ops_before = vipd_log().matches("IPVS op=").count();
    std::fs::write(
        &cfg,
        good.replace(
            "address = \"10.9.0.11\"",
            "address = \"10.9.0.11\"\nweight = 2",
        ),
    )
    .expect("cfg");
    hup();
    let start = Instant::now();
    while !witness(&director).contains(&"198.51.100.1:80 -> 10.9.0.11:80 2".to_string()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}\n{}",
            witness(&director),
            vipd_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let text = vipd_log();
    assert_eq!(text.matches("IPVS op=").count() - ops_before, 1, "{text}");
    // The checks did not change: the health engine is not even touched (both keep their
    // state and schedule).
    assert!(
        !text.contains("health checks kept="),
        "a weight-only reload must not reload the checks:\n{text}"
    );

    // `vipd reload` adding a neighbor: the existing session stays up (BIRD's "since", to the
    // second, unchanged), the new one is started.
    let since = || {
        birdc(&rtr, &ctl, &["show", "protocols", "vipd"])
            .lines()
            .find(|l| l.starts_with("vipd"))
            .and_then(|l| l.split_whitespace().nth(4))
            .and_then(|t| t.split('.').next())
            .unwrap_or("")
            .to_string()
    };
    let session_since = since();
    assert!(session_since.contains(':'), "{session_since:?}");
    std::thread::sleep(Duration::from_millis(1100));
    let weighted = std::fs::read_to_string(&cfg).expect("cfg");
    std::fs::write(
        &cfg,
        weighted.replace(
            "[[bgp.neighbor]]",
            "[[bgp.neighbor]]\naddress = \"10.8.0.253\"\nremote_as = 65010\n[[bgp.neighbor]]",
        ),
    )
    .expect("cfg");
    let o = Command::new(env!("CARGO_BIN_EXE_vipd"))
        .args(["reload", "--config"])
        .arg(&cfg)
        .output()
        .expect("vipd reload");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "reload: ok (applied)\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&status(true)).expect("JSON");
    assert_eq!(v["neighbors"].as_array().map(Vec::len), Some(2), "{v}");
    let text = vipd_log();
    assert!(
        text.contains("kept=[10.8.0.254:179] added=[10.8.0.253:179]"),
        "{text}"
    );
    assert_eq!(since(), session_since, "the router's session was not reset");
    assert!(birdc(&rtr, &ctl, &["show", "protocols", "vipd"]).contains("Established"));

    // IPVS stayed programmed through all of it.
    assert_eq!(witness(&director).len(), 2, "{:?}", witness(&director));
    let text = vipd_log();
    assert!(
        text.contains("quorum down") && text.contains("drain file present"),
        "{text}"
    );
    drop((s10, s11));
    let _ = std::fs::remove_dir_all(&dir);
}

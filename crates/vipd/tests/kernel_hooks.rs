//! `[service.hooks]` never delay a decision (UML guest, BIRD): the same quorum loss is
//! withdrawn at BIRD as fast with a quorum_down hook that hangs (killed at its timeout) as
//! without hooks; the real_server_down hook gets its arguments and environment.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

mod common;

use common::{Vipd, birdc, start_bird};
use vipd_testkit::{Feature, Lan, Netns, require};

const CONFIG: &str = r#"
[global]
router_id = "10.8.0.1"
state_dir = "DIR/state"
drain_file = "DIR/disable"
control_socket = "DIR/vipd.sock"
listen = "off"

[bgp]
local_as = 65001
hold_time = 9
connect_retry = 1
[[bgp.neighbor]]
address = "10.8.0.254"
remote_as = 65010

[[check]]
name = "rs1"
kind = "file"
file = "DIR/rs1"
interval = "200ms"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0%"
[[check]]
name = "rs2"
kind = "file"
file = "DIR/rs2"
interval = "200ms"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0%"

[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
quorum = 2
HOOKS
[[service.real_server]]
address = "10.9.0.10"
checks = ["rs1"]
[[service.real_server]]
address = "10.9.0.11"
checks = ["rs2"]
"#;

/// Seconds from rs2 going DOWN to BIRD losing the route, with `hooks` in the config.
fn withdrawal_time(tag: &str, hooks: &str) -> (Duration, String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("vipd-kt-hooks-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let lan = Lan::new(&format!("kh{tag}"));
    let rtr = Netns::new(&format!("kh{tag}-rtr"));
    let director = Netns::new(&format!("kh{tag}-dir"));
    lan.attach(&rtr, "eth0", &["10.8.0.254/24"]);
    lan.attach(&director, "eth0", &["10.8.0.1/24"]);
    common::route_to_real_servers(&director);
    let (_bird, ctl) = start_bird(&rtr, &dir, common::BIRD_EBGP);
    for (name, body) in [
        ("hang", "sleep 60".to_string()),
        (
            "record",
            format!(
                "echo \"$1|$VIPD_EVENT|$VIPD_SERVICE|$VIPD_RS_ADDRESS|$VIPD_RS_PORT|$VIPD_REASON\" >> {}/record.out",
                dir.display()
            ),
        ),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("script");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::write(dir.join("rs1"), "UP\n").expect("rs1");
    std::fs::write(dir.join("rs2"), "UP\n").expect("rs2");
    let cfg = dir.join("vipd.toml");
    let text = CONFIG
        .replace("HOOKS", hooks)
        .replace("DIR", &dir.display().to_string());
    std::fs::write(&cfg, text).expect("cfg");
    let vipd = Vipd::spawn(&director, &cfg, &dir, 1, false);
    let until = |what: &str, pred: &dyn Fn(&str) -> bool| {
        let start = Instant::now();
        loop {
            let out = birdc(&rtr, &ctl, &["show", "route", "all", "198.51.100.1/32"]);
            if pred(&out) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{what}: {out}\n{}",
                vipd.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    until("announced", &|o| o.contains("198.51.100.1/32"));
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    std::fs::write(dir.join("rs2"), "DOWN\n").expect("down");
    until("withdrawn", &|o| !o.contains("198.51.100.1/32"));
    let took = t.elapsed();
    // Give the hanging hook its timeout, then stop.
    std::thread::sleep(Duration::from_millis(2500));
    let log = vipd.log();
    vipd.stop(&cfg);
    (took, log, dir)
}

#[test]
fn a_hanging_hook_delays_no_withdrawal() {
    if !require("a_hanging_hook_delays_no_withdrawal", &[Feature::Ipvs]) {
        return;
    }
    let (without, _, d0) = withdrawal_time("none", "");
    let hooks = "[service.hooks]\nquorum_down = [\"DIR/hang\"]\nreal_server_down = [\"DIR/record\", \"first arg\"]\ntimeout = \"2s\"\n";
    let (with, log, dir) = withdrawal_time("hang", hooks);
    println!("withdrawn after {without:?} without hooks, {with:?} with a hanging quorum_down hook");
    assert!(
        with < without + Duration::from_millis(500),
        "the hanging hook delayed the withdrawal: {with:?} against {without:?}\n{log}"
    );
    assert!(
        log.contains("still running after 2s, killed"),
        "the hanging hook was not killed at its timeout:\n{log}"
    );
    let rec = std::fs::read_to_string(dir.join("record.out")).expect("record hook ran");
    assert_eq!(
        rec.trim(),
        "first arg|real_server_down|web|10.9.0.11|80|file: down",
        "{rec}"
    );
    for d in [d0, dir] {
        let _ = std::fs::remove_dir_all(&d);
    }
}

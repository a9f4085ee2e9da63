//! Kernel test (UML guest, `make test-kernel`): a reload whose part failed is not recorded
//! as done. The BGP listener's port is taken when vipd starts: the failure is reported, the
//! same file reloaded again retries it (it used to answer "unchanged" and never listen),
//! and once the port is free the listener is up. A changed key that only a restart applies
//! is reported as such, never as applied.

use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::Vipd;
use vipd_testkit::{Feature, Lan, Netns, require};

const CONFIG: &str = r#"
[global]
router_id = "10.8.0.1"
state_dir = "DIR/state"
drain_file = "DIR/disable"
control_socket = "DIR/vipd.sock"
listen = "127.0.0.1:9180"

[bgp]
local_as = 65001
listen = "10.8.0.1:1179"
[[bgp.neighbor]]
address = "10.8.0.254"
remote_as = 65010
passive = true

[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
[[service.real_server]]
address = "10.9.0.10"
"#;

fn reload(cfg: &std::path::Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_vipd"))
        .args(["reload", "--config"])
        .arg(cfg)
        .output()
        .expect("vipd reload");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn listening(ns: &Netns, port: &str) -> bool {
    ns.exec(&["ss", "-ltnH"]).contains(port)
}

#[test]
fn a_failed_part_is_retried_by_the_next_reload_and_restart_keys_are_reported() {
    if !require(
        "a_failed_part_is_retried_by_the_next_reload_and_restart_keys_are_reported",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-kt-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("rl");
    let director = Netns::new("rl-dir");
    lan.attach(&director, "eth0", &["10.8.0.1/24"]);
    let cfg = dir.join("vipd.toml");
    let text = CONFIG.replace("DIR", &dir.display().to_string());
    std::fs::write(&cfg, &text).expect("cfg");

    // Someone holds the BGP port.
    let (bound_tx, bound) = mpsc::channel();
    let (free_tx, free) = mpsc::channel::<()>();
    director.spawn(move || {
        let l = TcpListener::bind("10.8.0.1:1179").expect("hold the port");
        bound_tx.send(()).expect("bound");
        let _ = free.recv();
        drop(l);
    });
    bound.recv().expect("port held");

    let v = Vipd::spawn(&director, &cfg, &dir, 1, false);
    v.wait("cannot listen", 1);
    let out = reload(&cfg);
    assert!(
        out.contains("applied, except") && out.contains("1179"),
        "the same file retries the failed part (still failing): {out}"
    );
    free_tx.send(()).expect("free the port");
    let start = Instant::now();
    while listening(&director, ":1179") && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = reload(&cfg);
    assert!(out.contains("ok (applied)"), "{out}\n{}", v.log());
    assert!(
        listening(&director, "10.8.0.1:1179"),
        "vipd listens now:\n{}\n{}",
        director.exec(&["ss", "-ltnp"]),
        v.log()
    );
    let out = reload(&cfg);
    assert!(
        out.contains("ok (unchanged)"),
        "nothing left to retry: {out}"
    );

    // A key only a restart applies.
    std::fs::write(&cfg, text.replace("127.0.0.1:9180", "127.0.0.1:9181")).expect("cfg");
    let out = reload(&cfg);
    assert!(
        out.contains("not applied until a restart: global.listen"),
        "{out}"
    );
    let (log, _) = v.stop(&cfg);
    assert!(!log.contains("panicked"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

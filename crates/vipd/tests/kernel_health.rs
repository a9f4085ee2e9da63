//! Kernel test (UML guest, `make test-kernel`): health checks drive the IPVS weights.
//! vipd runs as a director in one namespace; real HTTP servers (python3 -m http.server) run
//! in another; `ipvsadm` is the witness.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vipd_testkit::{Daemon, Feature, Lan, Netns, require};

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

fn http_server(ns: &Netns, addr: &str, dir: &Path) -> Daemon {
    Daemon::spawn(
        ns,
        "python3",
        &[
            "-m".as_ref(),
            "http.server".as_ref(),
            "--bind".as_ref(),
            addr.as_ref(),
            "--directory".as_ref(),
            dir.as_os_str(),
            "8080".as_ref(),
        ],
        &dir.join(format!("http-{addr}.log")),
    )
}

/// The vipd process, killed when the test ends.
struct Vipd(Child);
impl Drop for Vipd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
    let log = dir.join("vipd.log");
    let _vipd = Vipd(
        Command::new("ip")
            .args(["netns", "exec", director.name()])
            .arg(env!("CARGO_BIN_EXE_vipd"))
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("vipd"),
    );
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

//! Kernel test (UML guest, `make test-kernel`): vipd's BFD with BIRD 2 (`protocol bfd`, BGP
//! `bfd on`, the normal configuration, not `bfd graceful`), the routes exported to BIRD's
//! kernel table:
//! - a planned restart (SIGTERM, start again) keeps the BFD session Up at BIRD and the
//!   route in its kernel table throughout: the session is slowed down, saved and resumed;
//! - a frozen vipd (SIGSTOP) is declared down by BIRD within its detection time and the
//!   route leaves the kernel table in under a second; without BFD (negative control) it
//!   stays until the hold time;
//! - a crash (SIGKILL, negative control for the restart) is detected as fast.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{Vipd, birdc, start_bird};
use vipd_testkit::{Daemon, Feature, Lan, Netns, require};

const BIRD: &str = "router id 10.8.0.254;\nprotocol device {}\nprotocol kernel { ipv4 { export all; }; }\nprotocol bfd {\n  interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };\n}\nprotocol bgp vipd {\n  local 10.8.0.254 as 65010;\n  neighbor 10.8.0.1 as 65001;\n  hold time 9;\n  connect delay time 1;\n  error wait time 1, 2;\n  bfd on;\n  ipv4 { import all; export none; };\n}\n";

fn config(dir: &Path, bfd: bool) -> String {
    format!(
        "[global]\nrouter_id = \"10.8.0.1\"\nstate_dir = \"{d}/state\"\ndrain_file = \"{d}/disable\"\ncontrol_socket = \"{d}/vipd.sock\"\nlisten = \"127.0.0.1:9180\"\n\n[bgp]\nlocal_as = 65001\nhold_time = 9\nconnect_retry = 1\nbfd = {{ enabled = {bfd} }}\n[[bgp.neighbor]]\naddress = \"10.8.0.254\"\nremote_as = 65010\n\n[[service]]\nname = \"web\"\nvip = \"198.51.100.1\"\nport = 80\n[[service.real_server]]\naddress = \"10.9.0.10\"\n",
        d = dir.display()
    )
}

struct Lab {
    dir: std::path::PathBuf,
    rtr: Netns,
    director: Netns,
    _lan: Lan,
    _bird: Daemon,
    ctl: std::path::PathBuf,
    cfg: std::path::PathBuf,
}

impl Lab {
    fn new(tag: &str, bfd: bool) -> Lab {
        let dir = std::env::temp_dir().join(format!("vipd-kt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp");
        let lan = Lan::new(&format!("{tag}l"));
        let rtr = Netns::new(&format!("{tag}-rtr"));
        let director = Netns::new(&format!("{tag}-dir"));
        lan.attach(&rtr, "eth0", &["10.8.0.254/24"]);
        lan.attach(&director, "eth0", &["10.8.0.1/24"]);
        director.ip(&["link", "add", "dummy0", "type", "dummy"]);
        director.ip(&["addr", "add", "10.9.0.1/24", "dev", "dummy0"]);
        director.ip(&["link", "set", "dummy0", "up"]);
        let (bird, ctl) = start_bird(&rtr, &dir, BIRD);
        let cfg = dir.join("vipd.toml");
        std::fs::write(&cfg, config(&dir, bfd)).expect("cfg");
        Lab {
            dir,
            rtr,
            director,
            _lan: lan,
            _bird: bird,
            ctl,
            cfg,
        }
    }

    fn start(&self, n: usize) -> Vipd {
        Vipd::spawn_env(
            &self.director,
            &self.cfg,
            &self.dir,
            n,
            false,
            &[("RUST_BACKTRACE", "0")],
        )
    }

    /// The VIP's route in the router's kernel table.
    fn route(&self) -> bool {
        self.rtr
            .exec(&["ip", "route", "show", "198.51.100.1"])
            .contains("via 10.8.0.1")
    }

    /// BIRD's BFD session with vipd: (state, interval).
    fn bfd(&self) -> Option<(String, String)> {
        let out = birdc(&self.rtr, &self.ctl, &["show", "bfd", "sessions"]);
        let l = out.lines().find(|l| l.starts_with("10.8.0.1"))?;
        let w: Vec<&str> = l.split_whitespace().collect();
        Some((w.get(2)?.to_string(), w.get(w.len() - 2)?.to_string()))
    }

    fn until(&self, what: &str, limit: Duration, log: &Path, f: impl Fn(&Lab) -> bool) -> Duration {
        let start = Instant::now();
        while !f(self) {
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}\nBIRD: {}\n{}\nvipd log:\n{}",
                birdc(&self.rtr, &self.ctl, &["show", "protocols", "all", "vipd"]),
                birdc(&self.rtr, &self.ctl, &["show", "bfd", "sessions"]),
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        start.elapsed()
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill")
            .success()
    );
}

#[test]
fn a_planned_restart_keeps_bfd_up_and_a_frozen_director_leaves_in_under_a_second() {
    if !require(
        "a_planned_restart_keeps_bfd_up_and_a_frozen_director_leaves_in_under_a_second",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let lab = Lab::new("bf", true);
    let v = lab.start(1);
    let log = v.log.clone();
    lab.until("route and BFD up", Duration::from_secs(30), &log, |l| {
        l.route() && l.bfd().is_some_and(|b| b.0 == "Up" && b.1 == "0.100")
    });

    // Watch BIRD's side every few ms through the restart.
    let stop = Arc::new(AtomicBool::new(false));
    let route_gone = Arc::new(AtomicU64::new(0));
    let bfd_down = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (stop, route_gone, bfd_down) = (stop.clone(), route_gone.clone(), bfd_down.clone());
        let rtr = lab.rtr.name().to_string();
        let ctl = lab.ctl.clone();
        std::thread::spawn(move || {
            let run = |args: &[&str]| {
                Command::new("ip")
                    .args(["netns", "exec", &rtr])
                    .args(args)
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default()
            };
            let ctl = ctl.display().to_string();
            while !stop.load(Ordering::Relaxed) {
                let r = run(&["ip", "route", "show", "198.51.100.1"]);
                if !r.contains("via 10.8.0.1") {
                    route_gone.fetch_add(1, Ordering::Relaxed);
                }
                let b = run(&["birdc", "-s", &ctl, "show", "bfd", "sessions"]);
                if !b
                    .lines()
                    .any(|l| l.starts_with("10.8.0.1") && l.contains(" Up "))
                {
                    bfd_down.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let t = Instant::now();
    let (stopped_log, _) = v.stop(&lab.cfg);
    assert!(
        stopped_log.contains("BFD sessions slowed down and saved"),
        "{stopped_log}"
    );
    let v2 = lab.start(2);
    let log2 = v2.log.clone();
    // Back to 100 ms at BIRD (a fresh session would come up too, after a Down).
    lab.until(
        "BFD Up at 100 ms again",
        Duration::from_secs(10),
        &log2,
        |l| l.bfd().is_some_and(|b| b.0 == "Up" && b.1 == "0.100"),
    );
    println!(
        "restart: BFD at 100 ms again {:?} after SIGTERM",
        t.elapsed()
    );
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher");
    assert_eq!(
        route_gone.load(Ordering::Relaxed),
        0,
        "the route left BIRD's kernel table during the restart"
    );
    assert_eq!(
        bfd_down.load(Ordering::Relaxed),
        0,
        "BIRD's BFD session left Up during the restart"
    );
    assert!(v2.log().contains("BFD session resumed"), "{}", v2.log());

    // Frozen: BIRD declares vipd down within its detection time, the route leaves.
    let pid = v2.child_pid();
    signal(pid, "STOP");
    let took = lab.until(
        "route withdrawn after SIGSTOP",
        Duration::from_secs(5),
        &log2,
        |l| !l.route(),
    );
    println!("frozen director: route gone from the router's kernel table after {took:?}");
    signal(pid, "CONT");
    assert!(took < Duration::from_secs(1), "{took:?}");
    lab.until("route back", Duration::from_secs(30), &log2, Lab::route);

    // A crash (SIGKILL): no slow-down, BIRD sees it within the detection time.
    signal(pid, "KILL");
    let took = lab.until(
        "route withdrawn after SIGKILL",
        Duration::from_secs(5),
        &log2,
        |l| !l.route(),
    );
    println!("crashed director: route gone after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    drop(v2);
    let _ = std::fs::remove_dir_all(&lab.dir);
}

/// Negative control: without BFD a frozen director keeps its route until the hold time.
#[test]
fn without_bfd_a_frozen_director_keeps_its_route_until_the_hold_time() {
    if !require(
        "without_bfd_a_frozen_director_keeps_its_route_until_the_hold_time",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let lab = Lab::new("bn", false);
    let v = lab.start(1);
    let log = v.log.clone();
    lab.until("route", Duration::from_secs(30), &log, Lab::route);
    let pid = v.child_pid();
    signal(pid, "STOP");
    std::thread::sleep(Duration::from_secs(3));
    let still = lab.route();
    let took = lab.until(
        "route withdrawn by the hold timer",
        Duration::from_secs(15),
        &log,
        |l| !l.route(),
    );
    println!(
        "without BFD, frozen director: route gone after {:?}",
        took + Duration::from_secs(3)
    );
    signal(pid, "CONT");
    assert!(still, "the route left within 3 s without BFD");
    drop(v);
    let _ = std::fs::remove_dir_all(&lab.dir);
}

//! Kernel tests (UML guest, `make test-kernel`): a VIP follows what the kernel really holds.
//!
//! - `ip_vs_mh` cannot be loaded: the service is never programmed, BIRD never gets the VIP;
//!   once the module can load again, the next resync programs it and the VIP is announced.
//! - IPVS requests refused with EINVAL (a preloaded fault injector, switched by a file):
//!   the VIP is withdrawn at BIRD; when the fault clears, the resync repairs the service
//!   and the VIP comes back.
//! - `vipd status` and `/metrics` make no IPVS dump (netlink requests counted with strace).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{Vipd, birdc, http_get, http_server, start_bird};
use vipd_testkit::{Daemon, Feature, Lan, Netns, require};

const CONFIG: &str = r#"
[global]
router_id = "10.8.0.1"
state_dir = "DIR/state"
drain_file = "DIR/disable"
control_socket = "DIR/vipd.sock"
listen = "127.0.0.1:9180"
resync_interval = "RESYNC"

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
fall = 1
jitter = "0%"

[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
checks = ["web"]
quorum = 1
[[service.real_server]]
address = "10.9.0.10"
[[service.real_server]]
address = "10.9.0.11"
"#;

const BIRD: &str = "router id 10.8.0.254;\nprotocol device {}\nprotocol bgp vipd {\n  local 10.8.0.254 as 65010;\n  neighbor 10.8.0.1 as 65001;\n  hold time 9;\n  connect delay time 1;\n  error wait time 1, 2;\n  ipv4 { import all; export none; };\n}\n";

struct Lab {
    dir: PathBuf,
    rtr: Netns,
    director: Netns,
    backends: Netns,
    _lans: (Lan, Lan),
    _bird: Daemon,
    ctl: PathBuf,
    servers: Vec<Daemon>,
}

impl Lab {
    fn new(tag: &str, resync: &str) -> (Lab, PathBuf) {
        let dir = std::env::temp_dir().join(format!("vipd-kt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp");
        let up = Lan::new(&format!("{tag}u"));
        let be = Lan::new(&format!("{tag}b"));
        let rtr = Netns::new(&format!("{tag}-rtr"));
        let director = Netns::new(&format!("{tag}-dir"));
        let backends = Netns::new(&format!("{tag}-be"));
        up.attach(&rtr, "eth0", &["10.8.0.254/24"]);
        up.attach(&director, "eth0", &["10.8.0.1/24"]);
        be.attach(&director, "eth1", &["10.9.0.1/24"]);
        be.attach(&backends, "eth0", &["10.9.0.10/24", "10.9.0.11/24"]);
        let (bird, ctl) = start_bird(&rtr, &dir, BIRD);
        let cfg = dir.join("vipd.toml");
        std::fs::write(
            &cfg,
            CONFIG
                .replace("DIR", &dir.display().to_string())
                .replace("RESYNC", resync),
        )
        .expect("cfg");
        let mut lab = Lab {
            dir,
            rtr,
            director,
            backends,
            _lans: (up, be),
            _bird: bird,
            ctl,
            servers: Vec::new(),
        };
        for a in ["10.9.0.10", "10.9.0.11"] {
            lab.servers.push(http_server(&lab.backends, a, &lab.dir));
        }
        (lab, cfg)
    }

    fn route(&self) -> bool {
        birdc(&self.rtr, &self.ctl, &["show", "route", "198.51.100.1/32"])
            .contains("198.51.100.1/32")
    }

    fn until(&self, what: &str, log: &Path, limit: Duration, pred: impl Fn(&Lab) -> bool) {
        let start = Instant::now();
        while !pred(self) {
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}\nBIRD: {}\nvipd log:\n{}",
                birdc(&self.rtr, &self.ctl, &["show", "route", "all"]),
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn status(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_vipd"))
            .args(["status", "--socket"])
            .arg(self.dir.join("vipd.sock"))
            .output()
            .expect("vipd status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The kernel's module auto-loader, pointed elsewhere for the test and restored on drop.
struct NoModuleLoading(String);

impl NoModuleLoading {
    fn new() -> Self {
        let path = "/proc/sys/kernel/modprobe";
        let old = std::fs::read_to_string(path).expect("modprobe path");
        std::fs::write(path, "/bin/false\n").expect("block module loading");
        NoModuleLoading(old)
    }
}

impl Drop for NoModuleLoading {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/modprobe", &self.0);
    }
}

#[test]
fn a_service_ipvs_cannot_hold_is_never_announced() {
    if !require(
        "a_service_ipvs_cannot_hold_is_never_announced",
        &[Feature::Ipvs],
    ) {
        return;
    }
    // ip_vs_mh may be loaded by an earlier test; unload it (no service uses it now) and let
    // nothing load it again.
    let _ = Command::new("rmmod").arg("ip_vs_mh").status();
    assert!(
        !Path::new("/sys/module/ip_vs_mh").exists(),
        "ip_vs_mh still loaded: the test cannot take the scheduler away"
    );
    let blocked = NoModuleLoading::new();
    let (lab, cfg) = Lab::new("kp", "2s");
    let vipd = Vipd::spawn(&lab.director, &cfg, &lab.dir, 1, false);
    let log = vipd.log.clone();
    // Both backends up, quorum reached, session up: everything but IPVS is fine.
    lab.until("BGP session", &log, Duration::from_secs(30), |l| {
        birdc(&l.rtr, &l.ctl, &["show", "protocols", "vipd"]).contains("Established")
    });
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !lab.route(),
        "the VIP is announced although IPVS could not create its mh service:\n{}",
        vipd.log()
    );
    vipd.wait("IPVS failed for TCP 198.51.100.1:80", 1);
    let st = lab.status();
    assert!(
        st.contains("IPVS FAILED") && st.contains("IPVS failed"),
        "vipd status says why:\n{st}"
    );
    let (code, body) = http_get(&lab.director, "/metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains("vipd_service_ipvs_programmed{service=\"web\"} 0"),
        "{body}"
    );
    let (code, body) = http_get(&lab.director, "/healthcheck");
    assert_eq!(code, 503, "{body}");
    // The fault clears: the next resync programs the service and the VIP is announced.
    drop(blocked);
    lab.until(
        "announced after repair",
        &log,
        Duration::from_secs(15),
        Lab::route,
    );
    vipd.wait("IPVS programmed as desired again", 1);
    let _ = vipd.stop(&cfg);
    let _ = std::fs::remove_dir_all(&lab.dir);
}

/// A fault injector preloaded into vipd: while the file named by `VIPD_FAULT_FILE` exists,
/// every `send`/`sendto` on a generic netlink socket (IPVS; rtnetlink and BGP are other
/// sockets) fails with EINVAL, as a kernel refusing the request would. Built with the
/// system C compiler.
const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
static int faulty(int fd) {
    const char *f = getenv("VIPD_FAULT_FILE");
    if (!f || access(f, F_OK) != 0) return 0;
    struct sockaddr_storage a; socklen_t al = sizeof a; int proto = 0; socklen_t pl = sizeof proto;
    if (getsockname(fd, (struct sockaddr *)&a, &al) != 0 || a.ss_family != AF_NETLINK) return 0;
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &pl) != 0) return 0;
    return proto == NETLINK_GENERIC;
}
ssize_t send(int fd, const void *b, size_t n, int fl) {
    static ssize_t (*real)(int, const void *, size_t, int);
    if (!real) real = dlsym(RTLD_NEXT, "send");
    if (faulty(fd)) { errno = EINVAL; return -1; }
    return real(fd, b, n, fl);
}
ssize_t sendto(int fd, const void *b, size_t n, int fl, const struct sockaddr *to, socklen_t tl) {
    static ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    if (!real) real = dlsym(RTLD_NEXT, "sendto");
    if (faulty(fd)) { errno = EINVAL; return -1; }
    return real(fd, b, n, fl, to, tl);
}
"#;

fn build_shim(dir: &Path) -> PathBuf {
    let src = dir.join("fault.c");
    let so = dir.join("fault.so");
    std::fs::write(&src, SHIM).expect("shim source");
    let st = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .status()
        .expect("cc (the fault injector is built with the system C compiler)");
    assert!(st.success(), "cannot build the fault injector");
    so
}

#[test]
fn a_refused_ipvs_write_withdraws_the_vip_until_repaired() {
    if !require(
        "a_refused_ipvs_write_withdraws_the_vip_until_repaired",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let (mut lab, cfg) = Lab::new("kf", "2s");
    let shim = build_shim(&lab.dir);
    let fault = lab.dir.join("fault");
    let vipd = Vipd::spawn_env(
        &lab.director,
        &cfg,
        &lab.dir,
        1,
        false,
        &[
            ("LD_PRELOAD", shim.to_str().expect("path")),
            ("VIPD_FAULT_FILE", fault.to_str().expect("path")),
        ],
    );
    let log = vipd.log.clone();
    lab.until("announced", &log, Duration::from_secs(30), Lab::route);
    std::fs::write(&fault, "").expect("fault on");
    // One backend dies: its weight-0 write is refused (quorum 1 still holds).
    drop(lab.servers.remove(0));
    vipd.wait("IPVS failed for TCP 198.51.100.1:80", 1);
    lab.until(
        "withdrawn after the refused write",
        &log,
        Duration::from_secs(10),
        |l| !l.route(),
    );
    let st = lab.status();
    assert!(st.contains("IPVS FAILED"), "{st}");
    // The fault clears: the periodic resync writes the weight and the VIP comes back.
    std::fs::remove_file(&fault).expect("fault off");
    lab.until(
        "re-announced after repair",
        &log,
        Duration::from_secs(15),
        Lab::route,
    );
    vipd.wait("IPVS programmed as desired again", 1);
    let out = lab.director.exec(&["ipvsadm", "-Ln"]);
    assert!(
        out.lines()
            .any(|l| l.contains("10.9.0.10:80") && l.split_whitespace().nth(3) == Some("0")),
        "weight 0 written after the repair:\n{out}"
    );
    let _ = vipd.stop(&cfg);
    let _ = std::fs::remove_dir_all(&lab.dir);
}

/// IPVS dump requests (GET_SERVICE, genl command 4) in an strace log.
fn ipvs_dumps(trace: &Path) -> usize {
    let t = std::fs::read_to_string(trace).unwrap_or_default();
    t.lines()
        .flat_map(|l| l.split("nlmsg_type=IPVS").skip(1))
        .filter(|m| {
            m.split_once("}, \"\\x")
                .is_some_and(|(_, r)| r.starts_with("04"))
        })
        .count()
}

#[test]
fn status_and_metrics_make_no_ipvs_request() {
    if !require("status_and_metrics_make_no_ipvs_request", &[Feature::Ipvs]) {
        return;
    }
    let (lab, cfg) = Lab::new("kd", "1h");
    let vipd = Vipd::start(&lab.director, &cfg, &lab.dir, 1);
    let log = vipd.log.clone();
    lab.until("announced", &log, Duration::from_secs(30), Lab::route);
    let trace = lab.dir.join("strace-1.txt");
    let before = ipvs_dumps(&trace);
    assert!(before >= 1, "the start dump is seen in the trace");
    for _ in 0..20 {
        assert!(lab.status().contains("198.51.100.1:80"));
        let (code, body) = http_get(&lab.director, "/metrics");
        assert_eq!(code, 200);
        assert!(body.contains("vipd_real_server_ipvs_weight"));
        assert_eq!(http_get(&lab.director, "/healthcheck").0, 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = ipvs_dumps(&trace);
    assert_eq!(
        before,
        after,
        "20 x (vipd status + /metrics + /healthcheck) made {} IPVS dumps",
        after - before
    );
    let _ = vipd.stop(&cfg);
    let _ = std::fs::remove_dir_all(&lab.dir);
}

/// A panic in the IPVS owner (injected through the test hook) ends vipd with an error at
/// once; the routers keep the route (graceful restart) for systemd to restart it.
#[test]
fn a_panic_in_the_ipvs_task_ends_vipd_and_the_route_stays() {
    if !require(
        "a_panic_in_the_ipvs_task_ends_vipd_and_the_route_stays",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let (lab, cfg) = Lab::new("kf", "60s");
    let trigger = lab.dir.join("panic-ipvs");
    let trigger_s = trigger.display().to_string();
    let mut vipd = Vipd::spawn_env(
        &lab.director,
        &cfg,
        &lab.dir,
        1,
        false,
        // As under systemd: no backtrace (symbolising one in a debug build takes seconds).
        &[
            ("VIPD_TEST_PANIC_FILE", trigger_s.as_str()),
            ("RUST_BACKTRACE", "0"),
        ],
    );
    let log = vipd.log.clone();
    lab.until("route announced", &log, Duration::from_secs(30), Lab::route);
    std::fs::write(&trigger, "").expect("trigger");
    vipd.signal(&cfg, "USR1");
    let start = Instant::now();
    let st = vipd.wait_exit(Duration::from_secs(5));
    let took = start.elapsed();
    let st = st.unwrap_or_else(|| panic!("vipd still runs 5 s after the panic:\n{}", vipd.log()));
    assert!(!st.success(), "exit status {st:?}");
    assert!(took < Duration::from_secs(1), "exited after {took:?}");
    let text = vipd.log();
    assert!(
        text.contains("the IPVS task ended") && text.contains("injected"),
        "{text}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        lab.route(),
        "BIRD keeps the route (graceful restart):\n{}",
        birdc(&lab.rtr, &lab.ctl, &["show", "route", "all"])
    );
}

/// vipd dies right after the kernel created its service (the test hook aborts the process
/// there, as a SIGKILL would); restarted with that service removed from the configuration,
/// it deletes it: the service was recorded as vipd's before it was created, so it is never
/// left behind as an operator's.
#[test]
fn a_service_created_just_before_a_crash_is_still_vipds() {
    if !require(
        "a_service_created_just_before_a_crash_is_still_vipds",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let (lab, cfg) = Lab::new("kk", "60s");
    let trigger = lab.dir.join("abort");
    std::fs::write(&trigger, "").expect("trigger");
    let trigger_s = trigger.display().to_string();
    let ipvs = |l: &Lab| l.director.exec(&["cat", "/proc/net/ip_vs"]);
    // 198.51.100.1:80 as /proc/net/ip_vs shows it.
    const WEB: &str = "C6336401:0050";
    let mut first = Vipd::spawn_env(
        &lab.director,
        &cfg,
        &lab.dir,
        1,
        false,
        &[
            ("VIPD_TEST_ABORT_AFTER_CREATE_FILE", trigger_s.as_str()),
            ("RUST_BACKTRACE", "0"),
        ],
    );
    let st = first
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("vipd did not die at its first create:\n{}", first.log()));
    assert!(!st.success());
    assert!(
        ipvs(&lab).contains(WEB),
        "the service exists:\n{}",
        ipvs(&lab)
    );
    std::fs::remove_file(&trigger).expect("no more aborts");
    // The same node, reconfigured without that service (another one instead).
    let text = std::fs::read_to_string(&cfg).expect("cfg");
    std::fs::write(&cfg, text.replace("198.51.100.1", "198.51.100.9")).expect("cfg");
    let second = Vipd::spawn(&lab.director, &cfg, &lab.dir, 2, false);
    let start = Instant::now();
    while ipvs(&lab).contains(WEB) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the service created before the crash was left behind:\n{}\n{}",
            ipvs(&lab),
            second.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (log, _) = second.stop(&cfg);
    assert!(!log.contains("panicked"), "{log}");
}

//! Shared by the kernel scenario tests: vipd as a process (optionally under strace, to
//! count its IPVS writes), BIRD's CLI, HTTP GETs to vipd's own endpoints.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vipd_testkit::{Daemon, Netns};

/// A vipd process in a namespace, optionally under strace to count its IPVS writes.
pub struct Vipd {
    child: Child,
    /// Its stderr.
    pub log: PathBuf,
    /// strace's output, when traced.
    trace: Option<PathBuf>,
    /// The binary run.
    program: PathBuf,
    stopped: bool,
}

impl Vipd {
    /// `vipd run --config cfg` in `ns` under strace (its IPVS writes counted at
    /// [`Vipd::stop`]), logging to `dir/vipd-N.log`.
    pub fn start(ns: &Netns, cfg: &Path, dir: &Path, n: usize) -> Self {
        Self::spawn(ns, cfg, dir, n, true)
    }

    /// The same, with or without strace (timing-sensitive tests go without).
    pub fn spawn(ns: &Netns, cfg: &Path, dir: &Path, n: usize, traced: bool) -> Self {
        Self::spawn_env(ns, cfg, dir, n, traced, &[])
    }

    /// The same, with extra environment variables.
    pub fn spawn_env(
        ns: &Netns,
        cfg: &Path,
        dir: &Path,
        n: usize,
        traced: bool,
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn_full(ns, cfg, dir, n, traced, env, &[])
    }

    /// Under a wrapper command that execs it (`prlimit --nofile=1024`), untraced.
    pub fn spawn_wrapped(ns: &Netns, cfg: &Path, dir: &Path, n: usize, wrapper: &[&str]) -> Self {
        Self::spawn_full(ns, cfg, dir, n, false, &[], wrapper)
    }

    /// Like [`Vipd::spawn_wrapped`], running `program` (the release build: [`release_binary`])
    /// instead of the test's own build.
    pub fn spawn_program(
        ns: &Netns,
        program: &Path,
        cfg: &Path,
        dir: &Path,
        wrapper: &[&str],
    ) -> Self {
        Self::spawn_inner(ns, program, cfg, dir, 1, false, &[], wrapper)
    }

    fn spawn_full(
        ns: &Netns,
        cfg: &Path,
        dir: &Path,
        n: usize,
        traced: bool,
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Self {
        let program = Path::new(env!("CARGO_BIN_EXE_vipd"));
        Self::spawn_inner(ns, program, cfg, dir, n, traced, env, wrapper)
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_inner(
        ns: &Netns,
        program: &Path,
        cfg: &Path,
        dir: &Path,
        n: usize,
        traced: bool,
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Self {
        let log = dir.join(format!("vipd-{n}.log"));
        let trace = traced.then(|| dir.join(format!("strace-{n}.txt")));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name()]);
        if let Some(trace) = &trace {
            cmd.args([
                "strace",
                "-f",
                "-qq",
                // strace abbreviates arrays (here: netlink messages in one send) past -s.
                "-s",
                "1024",
                "-e",
                "trace=sendto,sendmsg",
                "-o",
            ])
            .arg(trace);
        }
        cmd.envs(env.iter().copied());
        cmd.args(wrapper);
        let child = cmd
            .arg(program)
            .args(["run", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn vipd");
        Vipd {
            child,
            log,
            trace,
            program: program.to_path_buf(),
            stopped: false,
        }
    }

    /// The pid of the process started (`ip netns exec` execs vipd, or strace).
    pub fn child_pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` `times` times.
    pub fn wait(&self, needle: &str, times: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.log();
            if s.matches(needle).count() >= times {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?} x{times}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self, cfg: &Path) -> String {
        let out = Command::new("pgrep")
            .arg("-f")
            .arg(format!(
                "^{} run --config {}",
                self.program.display(),
                cfg.display()
            ))
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect("vipd pid")
            .to_string()
    }

    pub fn signal(&self, cfg: &Path, sig: &str) {
        assert!(
            Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(self.pid(cfg))
                .status()
                .expect("kill")
                .success()
        );
    }

    /// Waits at most `limit` for the process to exit on its own: its status, or None.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.stopped = true;
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, wait, check the exit status; the log and the IPVS writes strace saw (None
    /// when not traced).
    pub fn stop(mut self, cfg: &Path) -> (String, Option<usize>) {
        self.signal(cfg, "TERM");
        let st = self.child.wait().expect("wait");
        self.stopped = true;
        assert!(st.success(), "vipd exit {st:?}:\n{}", self.log());
        (self.log(), self.trace.as_deref().map(ipvs_writes))
    }
}

impl Drop for Vipd {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The release build of vipd that `testbed/uml/ktest` builds and names in
/// `VIPD_RELEASE_BIN`: what ships, for the tests that measure speed under load.
pub fn release_binary() -> PathBuf {
    let p = std::env::var_os("VIPD_RELEASE_BIN").map(PathBuf::from);
    match p {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "VIPD_RELEASE_BIN does not name vipd's release build (testbed/uml/ktest sets it after `cargo build --release -p vipd`)"
        ),
    }
}

/// IPVS write commands (NEW/SET/DEL SERVICE, NEW/SET/DEL DEST, SET_CONFIG) in an strace log. One
/// `sendto` may carry many netlink messages (vipd batches them): each is printed as
/// `{nlmsg_len=.., nlmsg_type=IPVS, ..}, "\xCC..."` where CC is the genl command.
pub fn ipvs_writes(trace: &Path) -> usize {
    let t = std::fs::read_to_string(trace).expect("strace output");
    t.lines()
        .flat_map(|l| l.split("nlmsg_type=IPVS").skip(1))
        .filter_map(|m| {
            m.split_once("}, \"\\x")
                .and_then(|(_, r)| u8::from_str_radix(r.get(..2)?, 16).ok())
        })
        .filter(|cmd| matches!(cmd, 1 | 2 | 3 | 5 | 6 | 7 | 12))
        .count()
}

/// `birdc` in the router's namespace; its output, or "" while BIRD is not up yet.
pub fn birdc(rtr: &Netns, ctl: &Path, args: &[&str]) -> String {
    Command::new("ip")
        .args(["netns", "exec", rtr.name(), "birdc", "-s"])
        .arg(ctl)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// BIRD's protocol `vipd`: "<since> <info>" with "since" to the second (BIRD recomputes
/// the milliseconds at each display): equal across calls while the session never reset.
pub fn bird_session_since(rtr: &Netns, ctl: &Path) -> String {
    birdc(rtr, ctl, &["show", "protocols", "vipd"])
        .lines()
        .find(|l| l.starts_with("vipd"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            format!(
                "{} {}",
                w.get(4).and_then(|t| t.split('.').next()).unwrap_or(""),
                w.get(5).unwrap_or(&"")
            )
        })
        .unwrap_or_default()
}

/// `birdc show route all` for the VIP, polled until `pred` holds.
pub fn bird_until(
    rtr: &Netns,
    ctl: &Path,
    log: &Path,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        let out = birdc(rtr, ctl, &["show", "route", "all", "198.51.100.1/32"]);
        if pred(&out) {
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: BIRD shows\n{out}\n{}\nvipd log:\n{}",
            birdc(rtr, ctl, &["show", "protocols", "all", "vipd"]),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET http://127.0.0.1:9180{path} inside `ns`: (status, body).
pub fn http_get(ns: &Netns, path: &str) -> (u16, String) {
    let script = format!(
        "import urllib.request, urllib.error\ntry:\n    r = urllib.request.urlopen('http://127.0.0.1:9180{path}', timeout=5)\n    print(r.status); print(r.read().decode())\nexcept urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "python3", "-c", &script])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, body) = text.split_once('\n').unwrap_or(("0", ""));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// BIRD in `rtr` with configuration `conf` (written to `dir/bird.conf`), logging to
/// `dir/bird.log`; returns the daemon and its control socket for [`birdc`].
pub fn start_bird(rtr: &Netns, dir: &Path, conf: &str) -> (Daemon, PathBuf) {
    let ctl = dir.join("bird.ctl");
    let cfg = dir.join("bird.conf");
    std::fs::write(&cfg, conf).expect("bird.conf");
    let d = Daemon::spawn(
        rtr,
        "bird",
        &[
            "-f".as_ref(),
            "-c".as_ref(),
            cfg.as_os_str(),
            "-s".as_ref(),
            ctl.as_os_str(),
        ],
        &dir.join("bird.log"),
    );
    (d, ctl)
}

/// `python3 -m http.server` on `addr:8080` in `ns`, serving `dir`, logging next to it.
pub fn http_server(ns: &Netns, addr: &str, dir: &Path) -> Daemon {
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

/// A dummy device with 10.9.0.1/24 in `ns`: IPVS refuses destinations it has no route to;
/// the real servers need a route, not to answer.
pub fn route_to_real_servers(ns: &Netns) {
    ns.ip(&["link", "add", "rs", "type", "dummy"]);
    ns.ip(&["link", "set", "rs", "up"]);
    ns.ip(&["addr", "add", "10.9.0.1/24", "dev", "rs"]);
}

/// A fresh scratch directory under the system temp dir, for one test.
pub fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vipd-kt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp");
    d
}

/// The destinations of the only service in `ns`, as `ipvsadm -Ln` lists them
/// (`address:port weight`).
pub fn ipvs_dests(ns: &Netns) -> Vec<String> {
    // (`-t VIP:PORT` would fail before vipd created the service.)
    ns.exec(&["ipvsadm", "-Ln"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&"->") && f[1] != "RemoteAddress:Port")
                .then(|| format!("{} {}", f[1], f[3]))
        })
        .collect()
}

/// Polls [`ipvs_dests`] until it is `want` (20 s at most; the failure shows vipd's log).
pub fn until_dests(ns: &Netns, vipd: &Vipd, what: &str, want: &[&str]) {
    let start = Instant::now();
    loop {
        let d = ipvs_dests(ns);
        if d == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: {d:?}, want {want:?}\n{}",
            vipd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// BIRD at 10.8.0.254 (AS 65010) with one eBGP session to vipd at 10.8.0.1 (AS 65001),
/// importing its routes (for [`start_bird`]).
pub const BIRD_EBGP: &str = "router id 10.8.0.254;\nprotocol device {}\nprotocol bgp vipd {\n  local 10.8.0.254 as 65010;\n  neighbor 10.8.0.1 as 65001;\n  hold time 9;\n  connect delay time 1;\n  error wait time 1, 2;\n  ipv4 { import all; export none; };\n}\n";

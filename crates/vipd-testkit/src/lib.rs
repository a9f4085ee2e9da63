//! Support for kernel tests: each test makes its own network namespace, checks the kernel
//! features it needs through [`require`], and uses an independent witness (`ip`, `ipvsadm`)
//! through [`Netns::exec`].
//!
//! Kernel tests live in files named `tests/kernel_*.rs`: `make test` builds them on the host
//! and runs them inside the user-mode-linux guest (`testbed/uml/ktest`), with
//! `VIPD_REQUIRE_KERNEL=1` so that a missing feature fails instead of skipping.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A kernel feature a test needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// IPVS (`ip_vs`) and its Maglev scheduler (`ip_vs_mh`).
    Ipvs,
    /// IPv4-in-IPv4 tunnels (`ipip`).
    Ipip,
    /// IPv6 tunnels (`ip6_tunnel`).
    Ip6Tnl,
    /// GUE receive side (FOU listeners, `fou` and `fou6`).
    Fou,
    /// GRE devices over IPv4 and IPv6 (`ip_gre`, `ip6_gre`).
    Gre,
}

impl Feature {
    fn modules(self) -> &'static [&'static str] {
        match self {
            Feature::Ipvs => &["ip_vs", "ip_vs_mh"],
            Feature::Ipip => &["ipip"],
            Feature::Ip6Tnl => &["ip6_tunnel"],
            Feature::Fou => &["fou", "fou6"],
            Feature::Gre => &["ip_gre", "ip6_gre"],
        }
    }
}

/// True when `VIPD_REQUIRE_KERNEL=1`: `make test` and CI set it.
pub fn kernel_required() -> bool {
    std::env::var("VIPD_REQUIRE_KERNEL").is_ok_and(|v| v == "1")
}

/// Checks that the running kernel has every feature in `features` (loading modules if it
/// can). Returns false to skip the test, after printing why on stderr, bypassing libtest's
/// capture so the reason shows in a plain `cargo test`. With `VIPD_REQUIRE_KERNEL=1` a
/// missing feature panics instead: kernel tests never silently skip in CI.
pub fn require(test: &str, features: &[Feature]) -> bool {
    let missing: Vec<&str> = features
        .iter()
        .flat_map(|f| f.modules().iter().copied())
        .filter(|m| !module_present(m))
        .collect();
    match decide(test, &missing, &kernel_release(), kernel_required()) {
        Gate::Run => true,
        Gate::Skip(why) => {
            let _ = writeln!(std::io::stderr(), "SKIP {why}");
            false
        }
        Gate::Fail(why) => panic!("{why}"),
    }
}

/// What a kernel test does given the modules it misses.
#[derive(Debug, PartialEq, Eq)]
enum Gate {
    Run,
    Skip(String),
    Fail(String),
}

fn decide(test: &str, missing: &[&str], release: &str, required: bool) -> Gate {
    if missing.is_empty() {
        return Gate::Run;
    }
    let why = format!(
        "kernel test {test}: the running kernel ({release}) lacks {} (no /sys/module entry after modprobe)",
        missing.join(", ")
    );
    if required {
        Gate::Fail(format!(
            "{why}; VIPD_REQUIRE_KERNEL=1 makes this a failure. Run the kernel tests in the UML guest: make test-kernel"
        ))
    } else {
        Gate::Skip(format!(
            "{why}; run them in the UML guest with `make test-kernel`"
        ))
    }
}

fn module_present(m: &str) -> bool {
    let sys = Path::new("/sys/module").join(m);
    if sys.exists() {
        return true;
    }
    // The kernel's own modprobe (the UML guest registers a wrapper that finds its modules).
    let modprobe = std::fs::read_to_string("/proc/sys/kernel/modprobe")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "modprobe".into());
    let _ = Command::new(modprobe).arg("-q").arg(m).status();
    sys.exists()
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_string())
}

/// Checks that a program a test needs (a BGP daemon) is installed. Skips with a printed
/// reason, or fails when `VIPD_REQUIRE_DAEMONS=1` (`make test` sets it after installing them).
pub fn require_program(test: &str, program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    if found {
        return true;
    }
    let why = format!("test {test}: {program} is not installed");
    if std::env::var("VIPD_REQUIRE_DAEMONS").is_ok_and(|v| v == "1") {
        panic!("{why}; VIPD_REQUIRE_DAEMONS=1 makes this a failure (make deps installs it)");
    }
    let _ = writeln!(std::io::stderr(), "SKIP {why}; `make deps` installs it");
    false
}

/// A daemon (BIRD, gobgpd, bgpd) started inside a namespace, killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: std::process::Child,
    ns: String,
}

impl Daemon {
    /// Starts `program args...` in `ns` with stderr to `log`.
    pub fn spawn(ns: &Netns, program: &str, args: &[&std::ffi::OsStr], log: &Path) -> Daemon {
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), program])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Daemon {
            child,
            ns: ns.name().to_string(),
        }
    }

    /// The daemon's own pid: `ip netns exec` execs the program without forking, so the
    /// child we spawned is the daemon. (Tests run in parallel with several daemons of the same
    /// name, so a `pgrep` by name can pick another test's daemon.)
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs a command in the daemon's namespace without blocking the runtime; returns stdout.
    pub async fn exec(&self, args: &[&str]) -> String {
        let o = tokio::process::Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Polls the command every 100 ms until `pred` holds on its output or `limit` passes;
    /// returns whether it held and the last output.
    pub async fn until(
        &self,
        args: &[&str],
        limit: std::time::Duration,
        pred: impl Fn(&str) -> bool,
    ) -> (bool, String) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let out = self.exec(args).await;
            if pred(&out) {
                return (true, out);
            }
            if tokio::time::Instant::now() > deadline {
                return (false, out);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `vipd-<tag>-<pid>-<n>` with `lo` up.
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("vipd-{tag}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its bind-mount path.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs async `f` on a new thread inside the namespace, on a current-thread runtime, and
    /// returns its result. Sockets `f` opens belong to the namespace.
    pub fn run<T, F, Fut>(&self, f: F) -> T
    where
        T: Send,
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future<Output = T>,
    {
        let path = self.path();
        std::thread::scope(|s| {
            s.spawn(move || {
                vipd_sys::netns::enter(&path)
                    .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(f())
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Runs blocking `f` on a detached thread inside the namespace (servers that live as
    /// long as the test process).
    pub fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) -> std::thread::JoinHandle<()> {
        let path = self.path();
        std::thread::spawn(move || {
            vipd_sys::netns::enter(&path)
                .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
            f()
        })
    }

    /// Sets a sysctl inside the namespace (`net.ipv4.conf.all.rp_filter`, ...).
    pub fn sysctl(&self, name: &str, value: &str) {
        self.exec(&["sysctl", "-qw", &format!("{name}={value}")]);
    }

    /// Runs a command inside the namespace (`ip netns exec`); panics on failure with its
    /// output; returns stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args))
    }

    /// `ip -n NAME ARGS...`; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }
}

/// An Ethernet segment: a bridge in a namespace of its own, which hosts plug into with veth
/// pairs.
#[derive(Debug)]
pub struct Lan {
    sw: Netns,
    ports: AtomicUsize,
}

impl Lan {
    /// A new segment.
    pub fn new(tag: &str) -> Self {
        let sw = Netns::new(&format!("{tag}-sw"));
        sw.ip(&["link", "add", "br0", "type", "bridge"]);
        sw.ip(&["link", "set", "br0", "up"]);
        Lan {
            sw,
            ports: AtomicUsize::new(0),
        }
    }

    /// Plugs `host` in as interface `ifname` with the given addresses (`10.0.0.1/24`, IPv6
    /// ones without duplicate address detection) and brings it up.
    pub fn attach(&self, host: &Netns, ifname: &str, addrs: &[&str]) {
        let port = format!("p{}", self.ports.fetch_add(1, Ordering::Relaxed));
        self.sw.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            host.name(),
        ]);
        self.sw.ip(&["link", "set", &port, "master", "br0", "up"]);
        for a in addrs {
            if a.contains(':') {
                host.ip(&["addr", "add", a, "dev", ifname, "nodad"]);
            } else {
                host.ip(&["addr", "add", a, "dev", ifname]);
            }
        }
        host.ip(&["link", "set", ifname, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_runs_skips_or_fails() {
        assert_eq!(decide("t", &[], "6.1", true), Gate::Run);
        assert_eq!(decide("t", &[], "6.1", false), Gate::Run);
        match decide("t", &["ip_vs"], "6.18", false) {
            Gate::Skip(w) => assert!(
                w.contains("lacks ip_vs") && w.contains("make test-kernel"),
                "{w}"
            ),
            g => panic!("{g:?}"),
        }
        match decide("t", &["ip_vs", "ipip"], "6.18", true) {
            Gate::Fail(w) => assert!(
                w.contains("ip_vs, ipip") && w.contains("VIPD_REQUIRE_KERNEL=1"),
                "{w}"
            ),
            g => panic!("{g:?}"),
        }
    }
}

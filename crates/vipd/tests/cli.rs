//! The `vipd` binary as an operator runs it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn vipd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vipd"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn examples_are_valid() {
    let dir = repo().join("deploy/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let o = vipd()
        .arg("check-config")
        .args(&files)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o));
    for f in &files {
        assert!(
            text(&o).contains(&format!("{}: ok", f.display())),
            "{}",
            text(&o)
        );
    }
}

/// Each broken file: exit 1, and the error is located at `file:line:col` with a hint.
#[test]
fn broken_configs_are_refused_with_location_and_hint() {
    let cases = [
        (
            "unknown-key.toml",
            "unknown field `drain_fle`",
            ":3:1",
            "did you mean `drain_file`?",
        ),
        (
            "duplicate-vip.toml",
            "is already the VIP of service \"web\"",
            ":10:7",
            "merge the two",
        ),
        (
            "bad-hold-time.toml",
            "hold_time 2 is not allowed",
            ":6:13",
            "RFC 4271",
        ),
        (
            "quorum-above-weight.toml",
            "quorum 5 is above the total weight 4",
            ":5:10",
            "lower quorum",
        ),
        (
            "unknown-check.toml",
            "unknown check \"http-helth\"",
            ":10:11",
            "did you mean \"http-health\"?",
        ),
    ];
    for (file, msg, loc, hint) in cases {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/broken")
            .join(file);
        let o = vipd().arg("check-config").arg(&path).output().expect("run");
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{file}: {out}");
        assert!(out.contains(msg), "{file}: {out}");
        assert!(
            out.contains(&format!("{}{loc}", path.display())),
            "{file}: want {loc} in {out}"
        );
        let hint_line = out
            .lines()
            .find(|l| l.contains("= hint: ") && l.contains(hint));
        assert!(hint_line.is_some(), "{file}: want hint {hint:?} in {out}");
    }
    // All files at once: one failure makes the whole run fail, valid files still say ok.
    let o = vipd()
        .arg("check-config")
        .arg(repo().join("deploy/examples/director-ipv6.toml"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken/bad-hold-time.toml"))
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("director-ipv6.toml: ok"));
}

#[test]
fn run_refuses_a_missing_or_bad_config() {
    let o = vipd()
        .args(["run", "--config", "/nonexistent/vipd.toml"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("cannot read the configuration"),
        "{}",
        text(&o)
    );
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken/unknown-key.toml");
    let o = vipd()
        .arg("run")
        .arg("--config")
        .arg(bad)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("configuration refused"), "{}", text(&o));
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

/// Waits until the child's stderr (redirected to `log`) contains `needle`.
fn wait_for(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = std::fs::read_to_string(log).unwrap_or_default();
        if s.contains(needle) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {needle:?} in:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_reloads_on_sighup_keeps_config_on_error_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("vipd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let cfg = dir.join("vipd.toml");
    let log = dir.join("vipd.log");
    // The backend role needs no IPVS, so this life-cycle test runs on any kernel.
    let sock = dir.join("vipd.sock");
    // A backend whose set-up works on any kernel (no tunnel device, no nftables), in its
    // own namespace: the backend role changes sysctls and addresses.
    let good = format!(
        r#"[global]
role = "backend"
control_socket = "{sock}"
drain_file = "{drain}"
[[check]]
name = "local"
kind = "http"
port = 80
interval = "1s"
timeout = "500ms"
[backend]
loopback_vips = ["198.51.100.1"]
[backend.agent]
listen = "127.0.0.1:5555"
state_file = "{state}"
checks = ["local"]
"#,
        sock = sock.display(),
        drain = dir.join("disable").display(),
        state = dir.join("agent-check").display()
    );
    std::fs::write(&cfg, &good).expect("write");
    let ns = vipd_testkit::Netns::new("cli-life");
    // Stand in for systemd: a datagram socket in NOTIFY_SOCKET, a 200 ms watchdog.
    let notify_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&notify_path);
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // systemd sets WATCHDOG_PID to the service's pid: `exec` keeps the shell's.
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), "sh", "-c"])
        .arg(format!(
            "WATCHDOG_PID=$$ exec {} run --config {}",
            env!("CARGO_BIN_EXE_vipd"),
            cfg.display()
        ))
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn");
    wait_for(&log, "vipd started");
    let pid = child.id();
    let mut seen = String::new();
    let mut next = |want: &str| {
        let mut buf = [0u8; 4096];
        while !seen.contains(want) {
            let n = notify
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {want:?} from vipd ({e}); got {seen:?}"));
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    };
    next("READY=1");
    next("STATUS=Backend role");
    next("WATCHDOG=1");

    std::fs::File::create(&cfg)
        .and_then(|mut f| {
            f.write_all(
                good.replace("timeout = \"500ms\"", "timeout = \"5s\"")
                    .as_bytes(),
            )
        })
        .expect("write");
    signal(pid, "HUP");
    let s = wait_for(&log, "reload refused, the running configuration stays");
    assert!(s.contains("timeout 5s is longer than interval 1s"), "{s}");
    assert!(
        !s.contains("backend set-up:"),
        "the backend set-up worked: {s}"
    );
    assert!(
        ns.ip(&["addr", "show", "dev", "lo"])
            .contains("198.51.100.1/32"),
        "loopback VIP"
    );
    assert!(
        !s.contains('\u{1b}'),
        "no terminal colour codes in a log file: {s}"
    );

    // `vipd reload` finds the socket in the broken file and reports the refusal, exit 1.
    let o = vipd()
        .args(["reload", "--config"])
        .arg(&cfg)
        .output()
        .expect("vipd reload");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("REFUSED") && text(&o).contains("timeout 5s is longer than interval 1s"),
        "{}",
        text(&o)
    );

    std::fs::write(
        &cfg,
        good.replace("timeout = \"500ms\"", "timeout = \"400ms\""),
    )
    .expect("write");
    let o = vipd()
        .args(["reload", "--config"])
        .arg(&cfg)
        .output()
        .expect("vipd reload");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "reload: ok (applied)\n");
    wait_for(&log, "reload: new configuration accepted");
    next("RELOADING=1");
    let o = vipd()
        .args(["reload", "--socket"])
        .arg(&sock)
        .output()
        .expect("vipd reload");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "reload: ok (unchanged)\n"
    );

    signal(pid, "TERM");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    wait_for(&log, "vipd stopped");
    next("STOPPING=1");
    assert!(
        seen.matches("READY=1").count() >= 3,
        "ready at start and after each reload (refused or applied): {seen}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A director needs IPVS: on a kernel without it, `vipd run` refuses to start and says why.
#[test]
fn director_without_ipvs_refuses_to_start() {
    if std::path::Path::new("/sys/module/ip_vs").exists() {
        return; // this kernel has IPVS: the kernel tests cover the director
    }
    let dir = std::env::temp_dir().join(format!("vipd-noipvs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let cfg = dir.join("vipd.toml");
    let example = std::fs::read_to_string(repo().join("deploy/examples/director-ipv4.toml"))
        .expect("example");
    std::fs::write(&cfg, example).expect("write");
    let o = vipd()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("IPVS is not available") && text(&o).contains("modprobe ip_vs"),
        "{}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn drain_and_undrain_create_and_remove_the_configured_file() {
    let dir = std::env::temp_dir().join(format!("vipd-cli-drain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("lb").join("disable");
    let cfg = dir.join("vipd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[global]\nrouter_id = \"192.0.2.1\"\ndrain_file = \"{}\"\n[[service]]\nname = \"s\"\nvip = \"198.51.100.1\"\nport = 80\n[[service.real_server]]\naddress = \"10.0.0.1\"\n",
            file.display()
        ),
    )
    .expect("config");
    let o = vipd()
        .arg("drain")
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        file.exists(),
        "drain file created (with its parent directory)"
    );
    assert!(text(&o).contains("GRACEFUL_SHUTDOWN"), "{}", text(&o));
    let o = vipd()
        .arg("undrain")
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o));
    assert!(!file.exists());
    // A symbolic link planted at the drain path is not written through.
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious\n").expect("victim");
    std::os::unix::fs::symlink(&victim, &file).expect("symlink");
    let o = vipd()
        .arg("drain")
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("symbolic link"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n"
    );
    std::fs::remove_file(&file).expect("rm symlink");
    // Undrain when not drained is fine; a bad config is refused with its errors.
    let o = vipd()
        .arg("undrain")
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(
        o.status.success() && text(&o).contains("not drained"),
        "{}",
        text(&o)
    );
    std::fs::write(&cfg, "[global]\nrouter_idd = 1\n").expect("config");
    let o = vipd()
        .arg("drain")
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("--file"), "{}", text(&o));
    // --file needs no configuration.
    let o = vipd()
        .args(["drain", "--config", "/nonexistent", "--file"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(o.status.success() && file.exists(), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The systemd unit passes `systemd-analyze verify` (with the binary where the test built
/// it; the man page is only there once the package is installed).
#[test]
fn systemd_unit_verifies() {
    if !std::path::Path::new("/usr/bin/systemd-analyze").exists() {
        eprintln!("SKIP systemd_unit_verifies: no systemd-analyze");
        return;
    }
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/vipd.service")).expect("unit");
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
    assert!(unit.contains("CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE"));
    let dir = std::env::temp_dir().join(format!("vipd-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("vipd.service");
    std::fs::write(
        &path,
        unit.replace("/usr/sbin/vipd", env!("CARGO_BIN_EXE_vipd")),
    )
    .expect("write");
    // The unit's Documentation= names man pages: verify checks they exist, so give it the
    // ones the package installs (generated from the CLI definition).
    let man = dir.join("man");
    let o = vipd()
        .arg("generate-assets")
        .arg(man.join("man1"))
        .output()
        .expect("generate-assets");
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("MANPATH", &man)
        .output()
        .expect("systemd-analyze");
    let out = text(&o);
    assert!(o.status.success() && out.trim().is_empty(), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A director's `/status` on loopback, served by a thread: `digest` for service `web`.
fn fake_director(router_id: &str, digest: &str) -> String {
    let body = format!(
        r#"{{"version":"0","router_id":"{router_id}","uptime_secs":1,"drained":false,"drain_file":"/etc/lb/disable","last_reload":null,"services":[{{"name":"web","key":"TCP 198.51.100.10:80","scheduler":"mh","announce":"announced","announce_reason":"quorum","healthy_weight":3,"quorum":2,"panic":false,"digest":"{digest}","real_servers":[]}}],"neighbors":[],"ipvs_error":null}}"#
    );
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 2048];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn fleet_exit_status_says_whether_directors_agree() {
    let (d1, d2) = (
        fake_director("10.8.0.1", "aaaa"),
        fake_director("10.8.0.2", "aaaa"),
    );
    let o = vipd()
        .args(["fleet", "--peer", &d1, "--peer", &d2])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("2 directors agree on every service"),
        "{}",
        text(&o)
    );

    let d3 = fake_director("10.8.0.3", "bbbb");
    let o = vipd()
        .args(["fleet", "--peer", &d1, "--peer", &d3, "--timeout", "1s"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(
            "DISAGREE web: forwarding tables differ: 10.8.0.1 has aaaa; 10.8.0.3 has bbbb"
        ),
        "{}",
        text(&o)
    );

    // A director that cannot be reached is a disagreement too, never silence.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let o = vipd()
        .args(["fleet", "--peer", &d1, "--peer", &closed, "--json"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["problems"][0]["kind"], "unreachable", "{v}");
}

#[test]
fn fleet_usage_errors() {
    let o = vipd()
        .args(["fleet", "--peer", "10.8.0.1:9180"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("write http://ADDRESS:PORT"),
        "{}",
        text(&o)
    );
    let dir = std::env::temp_dir().join(format!("vipd-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let f = dir.join("d.toml");
    std::fs::write(
        &f,
        "[[service]]\nname = \"web\"\nvip = \"198.51.100.1\"\nport = 80\n[[service.real_server]]\naddress = \"192.0.2.10\"\n",
    )
    .expect("write");
    let o = vipd()
        .args(["fleet", "--config"])
        .arg(&f)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("has no [fleet] peers"), "{}", text(&o));
    let o = vipd()
        .args(["fleet", "--peer", "http://127.0.0.1:1", "--socket", "/x"])
        .output()
        .expect("run");
    assert_eq!(
        o.status.code(),
        Some(2),
        "--socket with --peer: {}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

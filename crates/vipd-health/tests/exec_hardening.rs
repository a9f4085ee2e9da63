//! Exec checks run as root on a director that holds CAP_NET_ADMIN: what their programs get
//! and what they leave behind. No capability, none of vipd's environment, no process left
//! running after they exit, and no program that another user could have changed.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::check;
use vipd_health::Verdict;
use vipd_health::probe::Probe;

fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

async fn run(command: &Path) -> vipd_health::Outcome {
    run_as(command, "").await
}

async fn run_as(command: &Path, extra: &str) -> vipd_health::Outcome {
    let target: SocketAddr = "127.0.0.1:80".parse().expect("addr");
    let c = check(&format!(
        "kind = \"exec\"\ncommand = \"{}\"\ntimeout = \"2s\"\n{extra}",
        command.display()
    ));
    Probe::new(&c, target).expect("probe").run().await
}

/// Whether `pid` is gone (or a zombie waiting for its reaper).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

#[tokio::test]
async fn programs_run_without_capabilities_environment_or_leftovers() {
    let dir = std::env::temp_dir().join(format!("vipd-exec-hard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    // No capability, even though the test (like vipd) runs as root with all of them.
    let caps = script(
        &dir,
        "caps.sh",
        "grep -q '^CapEff:[[:space:]]*0000000000000000$' /proc/self/status && exit 0\ngrep '^CapEff' /proc/self/status; exit 1",
        0o755,
    );
    let o = run(&caps).await;
    assert_eq!(o.verdict, Verdict::Pass, "{o:?}");

    // Only PATH and the documented variables: not HOME, not what cargo set for the test.
    let env = script(
        &dir,
        "env.sh",
        "[ -n \"$VIPD_RS_ADDRESS\" ] || { echo no VIPD_RS_ADDRESS; exit 1; }\n[ -z \"$HOME$CARGO_MANIFEST_DIR\" ] || { echo leaked: $HOME $CARGO_MANIFEST_DIR; exit 1; }\nexit 0",
        0o755,
    );
    let o = run(&env).await;
    assert_eq!(o.verdict, Verdict::Pass, "{o:?}");

    // A helper left running in the background dies when the check's program exits.
    let pidfile = dir.join("bg.pid");
    let bg = script(
        &dir,
        "bg.sh",
        &format!("sleep 30 &\necho $! > {}\nexit 0", pidfile.display()),
        0o755,
    );
    let o = run(&bg).await;
    assert_eq!(o.verdict, Verdict::Pass, "{o:?}");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    let start = Instant::now();
    while !dead(pid) && start.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dead(pid), "the background sleep {pid} outlived its check");

    // `user`: that user's uid and group, no supplementary groups.
    let id = script(
        &dir,
        "id.sh",
        "[ \"$(id -u):$(id -G)\" = \"65534:65534\" ] && exit 0\necho \"$(id)\"; exit 1",
        0o755,
    );
    let o = run_as(&id, "user = \"nobody\"").await;
    assert_eq!(o.verdict, Verdict::Pass, "{o:?}");

    // A program others can change is refused, with the reason.
    let open = script(&dir, "open.sh", "exit 0", 0o757);
    let o = run(&open).await;
    assert_eq!(o.verdict, Verdict::Fail, "{o:?}");
    assert!(
        o.reason.contains("refused") && o.reason.contains("other than root"),
        "{o:?}"
    );
    let sub = dir.join("shared");
    std::fs::create_dir_all(&sub).expect("dir");
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let inside = script(&sub, "ok.sh", "exit 0", 0o755);
    let o = run(&inside).await;
    assert!(
        o.reason.contains("refused") && o.reason.contains("shared"),
        "{o:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// keepalived's `misc_dynamic` as `dynamic_weight`: 0 up, 1 down, 2..=255 up with weight
/// code - 2; without it, any code but 0 is down.
#[tokio::test]
async fn dynamic_weight_reads_the_exit_code() {
    let dir = std::env::temp_dir().join(format!("vipd-health-dyn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let code = dir.join("code");
    let s = script(
        &dir,
        "dyn",
        &format!("exit $(cat {})", code.display()),
        0o755,
    );
    let dynamic = "dynamic_weight = true";
    for (c, verdict, weight, reason) in [
        ("0", Verdict::Pass, None, "exit 0"),
        ("1", Verdict::Fail, None, "exit 1"),
        ("7", Verdict::Pass, Some(5), "exit 7, weight 5"),
        ("2", Verdict::Pass, Some(0), "exit 2, weight 0"),
    ] {
        std::fs::write(&code, c).expect("code");
        let o = run_as(&s, dynamic).await;
        assert_eq!(
            (o.verdict, o.weight_abs, o.reason.as_str()),
            (verdict, weight, reason)
        );
    }
    std::fs::write(&code, "7").expect("code");
    let o = run(&s).await;
    assert_eq!(
        (o.verdict, o.weight_abs),
        (Verdict::Fail, None),
        "without dynamic_weight"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! The hook runner with real programs: arguments and environment, order per object, the
//! timeout, and objects side by side.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::*;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vipd-hooks-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

/// A root-owned script (the tests run as root), mode 755.
fn script(d: &Path, name: &str, body: &str) -> String {
    let p = d.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p.display().to_string()
}

fn job(object: &str, argv: Vec<String>, timeout: Duration) -> Job {
    Job {
        object: object.into(),
        argv,
        env: vec![
            ("VIPD_EVENT", "quorum_down".into()),
            ("VIPD_SERVICE", "web".into()),
        ],
        timeout,
    }
}

#[tokio::test]
async fn arguments_and_environment_reach_the_program_and_nothing_else() {
    let d = dir("env");
    let out = d.join("out");
    let s = script(
        &d,
        "h",
        &format!(
            "echo \"$1 $2|$VIPD_EVENT|$VIPD_SERVICE|$PATH|${{HOME:-nohome}}\" > {}",
            out.display()
        ),
    );
    let st = execute(&job(
        "web",
        vec![s, "a b".into(), "c".into()],
        Duration::from_secs(5),
    ))
    .await
    .expect("ran");
    assert!(st.success());
    assert_eq!(
        std::fs::read_to_string(&out).expect("out").trim(),
        format!("a b c|quorum_down|web|{PATH}|nohome")
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_hanging_hook_is_killed_with_its_children_at_its_timeout() {
    let d = dir("timeout");
    let pidfile = d.join("child");
    let s = script(
        &d,
        "h",
        &format!("sleep 60 & echo $! > {}\nsleep 60", pidfile.display()),
    );
    let t = Instant::now();
    let r = execute(&job("web", vec![s], Duration::from_millis(300))).await;
    let took = t.elapsed();
    assert!(r.is_err(), "{r:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The background child died with the group (gone, or a zombie waiting for init).
    let pid = std::fs::read_to_string(&pidfile).expect("pid");
    std::thread::sleep(Duration::from_millis(100));
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().next());
    assert!(
        state.is_none_or(|s| s == "Z" || s == "X"),
        "the hook's child survived: {stat}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_program_others_can_change_is_refused() {
    let d = dir("insecure");
    let s = script(&d, "h", "true");
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let r = execute(&job("web", vec![s], Duration::from_secs(1))).await;
    assert!(r.is_err_and(|e| e.contains("refused")));
    let _ = std::fs::remove_dir_all(&d);
}

/// Two hooks of one object run in order, one after the other, even when the first is slow;
/// another object's hook does not wait for them.
#[tokio::test]
async fn one_object_in_order_others_side_by_side() {
    let d = dir("order");
    let log = d.join("log");
    let slow = script(
        &d,
        "slow",
        &format!("sleep 0.5; echo slow >> {}", log.display()),
    );
    let fast = script(&d, "fast", &format!("echo fast >> {}", log.display()));
    let other = script(&d, "other", &format!("echo other >> {}", log.display()));
    let (stop_tx, stop) = watch::channel(false);
    let (hooks, task) = Hooks::new(stop);
    let task = tokio::spawn(task);
    let t = Duration::from_secs(5);
    hooks
        .tx
        .send(job("web", vec![slow], t))
        .await
        .expect("send");
    hooks
        .tx
        .send(job("web", vec![fast], t))
        .await
        .expect("send");
    hooks
        .tx
        .send(job("web/10.0.0.1:80", vec![other], t))
        .await
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        if l.lines().count() == 3 {
            assert_eq!(l, "other\nslow\nfast\n");
            break;
        }
        assert!(Instant::now() < deadline, "{l:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    task.await.expect("task");
    let _ = std::fs::remove_dir_all(&d);
}

/// Which transitions run which hook, with what environment; a weight change is none.
#[test]
fn events_map_to_hooks_with_their_environment() {
    let cfg = vipd_config::load_str(
        r#"
[global]
router_id = "192.0.2.1"
[[check]]
name = "c"
kind = "tcp"
[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
checks = ["c"]
[service.announce]
enabled = false
[service.hooks]
real_server_up = ["/usr/local/bin/up", "x"]
quorum_down = ["/usr/local/bin/qd"]
timeout = "3s"
[[service.real_server]]
address = "10.0.0.1"
"#,
        "t.toml",
    )
    .expect("config")
    .config;
    let server = vipd_health::jobs::ServerRef {
        service: std::sync::Arc::from("web"),
        addr: "10.0.0.1".parse().expect("ip"),
        port: 80,
    };
    let up = Event::ServerUp {
        server: server.clone(),
        was: None,
        weight: 1,
        reason: "connected".into(),
    };
    let j = job_for(&up, &cfg).expect("a hook");
    assert_eq!(j.object, "web/10.0.0.1:80");
    assert_eq!(j.argv, ["/usr/local/bin/up", "x"]);
    assert_eq!(j.timeout, Duration::from_secs(3));
    for (k, v) in [
        ("VIPD_EVENT", "real_server_up"),
        ("VIPD_SERVICE", "web"),
        ("VIPD_VIP", "198.51.100.1"),
        ("VIPD_PORT", "80"),
        ("VIPD_PROTOCOL", "tcp"),
        ("VIPD_RS_ADDRESS", "10.0.0.1"),
        ("VIPD_RS_PORT", "80"),
        ("VIPD_RS_WEIGHT", "1"),
        ("VIPD_REASON", "connected"),
    ] {
        assert!(j.env.contains(&(k, v.to_string())), "{k}: {:?}", j.env);
    }
    let weight_change = Event::ServerUp {
        server: server.clone(),
        was: Some(1),
        weight: 2,
        reason: "agent 200%".into(),
    };
    assert_eq!(job_for(&weight_change, &cfg), None);
    let down = Event::ServerDown {
        server,
        reason: "timeout".into(),
    };
    assert_eq!(job_for(&down, &cfg), None, "no real_server_down hook");
    let q = Event::Quorum {
        service: "web".into(),
        up: false,
        healthy_weight: 0,
        quorum: 1,
    };
    let j = job_for(&q, &cfg).expect("quorum_down");
    assert_eq!(
        (j.object.as_str(), j.argv[0].as_str()),
        ("web", "/usr/local/bin/qd")
    );
    assert!(j.env.contains(&("VIPD_HEALTHY_WEIGHT", "0".to_string())));
}

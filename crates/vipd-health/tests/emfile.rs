//! A director out of descriptors must not take healthy servers down: a probe that cannot
//! even create its socket (EMFILE) was not run, and counts neither way. Its own test binary:
//! it lowers the process's open-files limit and fills it.

mod common;

use std::time::Duration;

use common::Http;
use vipd_health::engine::{self, Options};
use vipd_health::fsm::State;
use vipd_health::outcome::Verdict;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_refused_a_descriptor_is_not_a_failed_check() {
    let h = Http::start().await;
    let src = format!(
        "[global]\nrouter_id = \"192.0.2.1\"\n[[check]]\nname = \"web\"\nkind = \"tcp\"\ntimeout = \"90ms\"\ninterval = \"100ms\"\nrise = 1\nfall = 2\njitter = \"0%\"\n[[service]]\nname = \"a\"\nvip = \"198.51.100.1\"\nport = {}\nchecks = [\"web\"]\n[[service.real_server]]\naddress = \"{}\"\n",
        h.addr.port(),
        h.addr.ip()
    );
    let cfg = vipd_config::load_str(&src, "test.toml")
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    let (handle, mut rx) = engine::spawn(
        engine::jobs(&cfg).jobs.into_values().collect(),
        Options::default(),
    );
    let up = tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .expect("first result")
        .expect("engine");
    assert_eq!(up.state, State::Up);

    // Fill the descriptor table (a low limit first, so that this is quick).
    let pid = std::process::id().to_string();
    let ok = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=512:512"])
        .status()
        .expect("prlimit")
        .success();
    assert!(ok, "prlimit");
    let mut hog = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
    }
    // A dozen probe intervals without a descriptor.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let snap = handle.snapshot().await;
    drop(hog);
    let changed = rx.try_recv().ok();
    assert!(
        changed.is_none(),
        "a server went {:?} because this host had no descriptor: {changed:?}",
        changed.as_ref().map(|u| u.state)
    );
    assert_eq!(snap[0].state, State::Up);
    let last = snap[0].last.clone().expect("a result");
    assert_eq!(last.verdict, Verdict::NotRun, "{last:?}");
    assert!(last.reason.contains("not run"), "{}", last.reason);
    // Descriptors back: the probes run again and pass.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let snap = handle.snapshot().await;
    assert_eq!(
        snap[0].last.as_ref().map(|o| o.verdict),
        Some(Verdict::Pass)
    );
}

//! Times the director's decisions on a configuration, without I/O: start, one health
//! result, a reload of the same file with one weight changed, a snapshot. For profiling
//! (`perf record`); the benchmarks with the kernel are under testbed/bench/.
//!
//! `cargo run --release -p vipd-director --example decide -- CONFIG`

use std::time::{Duration, Instant};

fn main() {
    let path = std::env::args().nth(1).expect("usage: decide CONFIG");
    let t = Instant::now();
    let cfg = vipd_config::load_file(path.as_ref())
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    println!("load          {:>8.1} ms  {}", ms(t.elapsed()), rss());
    let t = Instant::now();
    let mut d = vipd_director::Director::new(cfg.clone());
    println!("new           {:>8.1} ms  {}", ms(t.elapsed()), rss());
    let t = Instant::now();
    let out = d.handle(Instant::now(), vipd_director::Input::Start { kernel: None });
    println!(
        "start         {:>8.1} ms ({} outputs)  {}",
        ms(t.elapsed()),
        out.len(),
        rss()
    );
    // What the daemon hands the health engine: every job, cloned.
    let specs: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            vipd_director::Output::Checks(j) => Some(j.jobs.values().cloned().collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    println!("job specs     {:>8} jobs  {}", specs.len(), rss());
    // Every check reports down once (a burst of 64,000 results).
    let all: Vec<vipd_health::Update> = specs
        .iter()
        .map(|j| vipd_health::Update {
            key: j.key.clone(),
            name: j.name.clone(),
            target: j.server,
            state: vipd_health::fsm::State::Down,
            drain: false,
            weight_pct: None,
            weight_abs: None,
            reason: "connect: timeout".into(),
            latency: Duration::ZERO,
        })
        .collect();
    let t = Instant::now();
    let out = d.handle(Instant::now(), vipd_director::Input::Health(all));
    println!(
        "all down      {:>8.1} ms ({} outputs)  {}",
        ms(t.elapsed()),
        out.len(),
        rss()
    );
    let jobs = vipd_health::jobs::jobs(&cfg);
    let job = jobs.jobs.values().next().expect("a job");
    let u = vipd_health::Update {
        key: job.key.clone(),
        name: job.name.clone(),
        target: job.server,
        state: vipd_health::fsm::State::Up,
        drain: false,
        weight_pct: None,
        weight_abs: None,
        reason: "up".into(),
        latency: Duration::ZERO,
    };
    let t = Instant::now();
    let out = d.handle(Instant::now(), vipd_director::Input::Health(vec![u]));
    println!(
        "one result    {:>8.3} ms ({} outputs)",
        ms(t.elapsed()),
        out.len()
    );
    let t = Instant::now();
    let snap = d.snapshot();
    println!(
        "snapshot      {:>8.3} ms ({} services)",
        ms(t.elapsed()),
        snap.services.len()
    );
    let mut new = cfg;
    new.services[0].real_servers[0].weight += 1;
    let t = Instant::now();
    let out = d.handle(Instant::now(), vipd_director::Input::Reload(Box::new(new)));
    println!(
        "reload        {:>8.1} ms ({} outputs)",
        ms(t.elapsed()),
        out.len()
    );
}

/// Resident memory now and at its peak (KiB), from /proc.
fn rss() -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let f = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    format!("rss {} KiB, peak {} KiB", f("VmRSS:"), f("VmHWM:"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

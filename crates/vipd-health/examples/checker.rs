//! Benchmark helper (testbed/bench/health): runs vipd's health engine alone — the same
//! scheduler and probes as `vipd run`, on the same single-threaded runtime — on the checks of
//! a vipd configuration, and prints each transition as `STATE UNIX_TIME TARGET REASON`.
//! (The bench runs on the host, which has no IPVS for the daemon to program.)
//! With `CHECKER_LATENCY=1`, prints the p50/p99 probe latency every 5 s on stderr.
//! Usage: `checker CONFIG`.

use std::io::Write;

fn main() {
    let path = std::env::args().nth(1).expect("usage: checker CONFIG");
    let cfg = match vipd_config::load_file(std::path::Path::new(&path)) {
        Ok(l) => l.config,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let jobs = vipd_health::engine::jobs(&cfg);
        eprintln!("checker: {} jobs", jobs.jobs.len());
        let (handle, mut rx) = vipd_health::engine::spawn(
            jobs.jobs.into_values().collect(),
            vipd_health::engine::Options::default(),
        );
        if std::env::var("CHECKER_LATENCY").is_ok() {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    let mut l: Vec<_> = handle
                        .snapshot()
                        .await
                        .iter()
                        .filter_map(|c| c.last.as_ref().map(|o| o.latency))
                        .collect();
                    l.sort();
                    if !l.is_empty() {
                        eprintln!(
                            "checker: probe latency p50 {:?} p99 {:?}",
                            l[l.len() / 2],
                            l[l.len() * 99 / 100]
                        );
                    }
                }
            });
        }
        let mut out = std::io::stdout().lock();
        while let Some(u) = rx.recv().await {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{:?} {}.{:06} {} {}",
                u.state,
                t.as_secs(),
                t.subsec_micros(),
                u.target,
                u.reason
            );
            let _ = out.flush();
        }
    });
}

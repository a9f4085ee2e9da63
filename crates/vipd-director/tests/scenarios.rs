//! Golden scenario tests: a configuration and a script of inputs in, the director's outputs
//! out, compared with `<name>.expected`. `VIPD_BLESS=1 cargo test -p vipd-director` rewrites
//! the expected files (review the diff).
//!
//! Script lines (`#` starts a comment), each at a time in seconds from the start:
//!
//! ```text
//! at 0 start                               fresh start
//! at 0 start kernel web 10.0.0.1:80=5 ...  restart: the kernel holds these weights
//! at 0.1 ipvs ok                           the IPVS owner: every service in sync
//! at 0.1 ipvs fail web "error text"        ... except this one
//! at 1 health web 10.0.0.1:80 up "HTTP 200" [drain] [weight 50]
//! at 2 drain on | drain off
//! at 3 tick
//! at 4 reload other.toml                   a file next to the script
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vipd_director::{Director, Input, IpvsFeedback, Output};
use vipd_health::Update;
use vipd_health::fsm::State;
use vipd_ipvs::ServiceKey;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

fn load(name: &str) -> vipd_config::Config {
    let p = dir().join(name);
    vipd_config::load_file(&p)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

/// Splits a line into words, keeping "quoted strings" whole.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').expect("closing quote");
            out.push(r[..end].to_string());
            rest = r[end + 1..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    out
}

struct Run {
    d: Director,
    base: Instant,
    /// Services the IPVS owner has been asked for, and the last intent number.
    known: BTreeMap<ServiceKey, String>,
    seq: u64,
    text: String,
}

impl Run {
    fn service_key(&self, name: &str) -> ServiceKey {
        let s = self
            .d
            .config()
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name}"));
        vipd_reconcile::service_key(s)
    }

    fn input(&mut self, w: &[String]) -> Input {
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["start"] => Input::Start { kernel: None },
            ["start", "kernel", rest @ ..] => {
                // `service addr:port=weight ...`, the service named before its servers.
                let mut dump: Vec<(vipd_ipvs::Service, Vec<vipd_ipvs::Dest>)> = Vec::new();
                for item in rest {
                    match item.split_once('=') {
                        None => {
                            let s = self
                                .d
                                .config()
                                .services
                                .iter()
                                .find(|s| s.name == *item)
                                .expect("service");
                            dump.push((vipd_reconcile::service(s), Vec::new()));
                        }
                        Some((sa, weight)) => {
                            let sa: std::net::SocketAddr = sa.parse().expect("addr:port");
                            dump.last_mut()
                                .expect("service first")
                                .1
                                .push(vipd_ipvs::Dest::new(
                                    sa.ip(),
                                    sa.port(),
                                    vipd_ipvs::Forward::Tunnel,
                                    weight.parse().expect("weight"),
                                ));
                        }
                    }
                }
                Input::Start { kernel: Some(dump) }
            }
            ["ipvs", "ok"] => Input::Ipvs(IpvsFeedback {
                seq: self.seq,
                services: self.known.keys().map(|k| (*k, Ok(()))).collect(),
            }),
            ["ipvs", "fail", svc, error] => Input::Ipvs(IpvsFeedback {
                seq: self.seq,
                services: vec![(self.service_key(svc), Err(error.to_string()))],
            }),
            ["health", check, target, state, rest @ ..] => {
                let target: std::net::SocketAddr = target.parse().expect("target");
                let state = match *state {
                    "up" => State::Up,
                    "down" => State::Down,
                    "unknown" => State::Unknown,
                    s => panic!("state {s}"),
                };
                let reason = rest.first().map_or(String::new(), |r| r.to_string());
                let drain = rest.contains(&"drain");
                let weight_pct = rest
                    .iter()
                    .position(|x| *x == "weight")
                    .map(|i| rest[i + 1].parse().expect("weight"));
                let jobs = vipd_health::jobs::jobs(self.d.config());
                let keys: Vec<Update> = jobs
                    .jobs
                    .values()
                    .filter(|j| &*j.name == *check && j.server == target)
                    .map(|j| Update {
                        key: j.key.clone(),
                        name: j.name.clone(),
                        target,
                        state,
                        drain,
                        weight_pct,
                        weight_abs: None,
                        reason: reason.clone(),
                        latency: Duration::ZERO,
                    })
                    .collect();
                assert!(!keys.is_empty(), "no job {check}@{target}");
                Input::Health(keys)
            }
            ["drain", "on"] => Input::Drain(true),
            ["drain", "off"] => Input::Drain(false),
            // The services whose own drain file exists now (none: `drain services -`).
            ["drain", "services", names @ ..] => Input::ServiceDrains(
                names
                    .iter()
                    .filter(|n| **n != "-")
                    .map(|n| n.to_string())
                    .collect(),
            ),
            ["tick"] => Input::Tick,
            ["reload", file] => Input::Reload(Box::new(load(file))),
            other => panic!("unknown script line {other:?}"),
        }
    }

    fn step(&mut self, at: f64, line: &str) {
        let w = words(line);
        let input = self.input(&w);
        let now = self.base + Duration::from_secs_f64(at);
        let out = self.d.handle(now, input);
        self.text.push_str(&format!("== at {at:.3}s: {line}\n"));
        for o in &out {
            if let Output::Ipvs(i) = o {
                self.seq = i.seq;
                if i.full {
                    self.known.clear();
                }
                for s in &i.services {
                    self.known.insert(s.service.key, String::new());
                }
                for k in &i.removed {
                    self.known.remove(k);
                }
            }
            self.text.push_str(&o.render(self.base));
            self.text.push('\n');
        }
        check_order(&out, line);
    }
}

/// The invariant every output list keeps: routes before IPVS, IPVS before addresses.
fn check_order(out: &[Output], line: &str) {
    let pos = |f: fn(&Output) -> bool| out.iter().position(f);
    let routes = pos(|o| matches!(o, Output::Routes(_)));
    let ipvs = pos(|o| matches!(o, Output::Ipvs(_)));
    let vips = pos(|o| matches!(o, Output::Vips(_)));
    if let (Some(r), Some(i)) = (routes, ipvs) {
        assert!(r < i, "{line}: routes must come before IPVS");
    }
    if let (Some(i), Some(v)) = (ipvs, vips) {
        assert!(i < v, "{line}: IPVS must come before VIP addresses");
    }
}

fn run_scenario(name: &str) {
    let script_path = dir().join(format!("{name}.script"));
    let script = std::fs::read_to_string(&script_path).expect("script");
    let mut lines = script
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty());
    let first = lines.next().expect("config line");
    let mut cfg_words = first
        .strip_prefix("config ")
        .expect("first line: config FILE [drain_delay=max]")
        .split_whitespace();
    let mut cfg = load(cfg_words.next().expect("config FILE"));
    for w in cfg_words {
        match w {
            // A value the loader refuses (durations are at most a day), set past it: the
            // director must not rely on the loader to keep its clock arithmetic safe.
            "drain_delay=max" => {
                for svc in &mut cfg.services {
                    svc.announce.drain_delay = Some(vipd_config::Duration(Duration::MAX));
                }
            }
            other => panic!("config override {other}"),
        }
    }
    let mut run = Run {
        d: Director::new(cfg),
        base: Instant::now(),
        known: BTreeMap::new(),
        seq: 0,
        text: format!("# {name}: generated by tests/scenarios.rs; VIPD_BLESS=1 rewrites it\n"),
    };
    for l in lines {
        let rest = l.strip_prefix("at ").expect("line: at SECONDS INPUT");
        let (t, input) = rest.split_once(' ').expect("at SECONDS INPUT");
        run.step(t.parse().expect("seconds"), input);
    }
    let expected_path = dir().join(format!("{name}.expected"));
    if std::env::var_os("VIPD_BLESS").is_some() {
        std::fs::write(&expected_path, &run.text).expect("write expected");
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if expected != run.text {
        let diff: Vec<String> = expected
            .lines()
            .zip(run.text.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(5)
            .map(|(i, (a, b))| format!("line {}:\n  expected: {a}\n  got:      {b}", i + 1))
            .collect();
        panic!(
            "{name}: outputs differ from {} (VIPD_BLESS=1 regenerates):\n{}\n--- got ---\n{}",
            expected_path.display(),
            diff.join("\n"),
            run.text
        );
    }
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { run_scenario(stringify!($name)); })*

        #[test]
        fn every_script_has_a_test() {
            let listed: Vec<&str> = vec![$(stringify!($name)),*];
            for e in std::fs::read_dir(dir()).expect("scenarios dir") {
                let p = e.expect("entry").path();
                if p.extension().is_some_and(|x| x == "script") {
                    let stem = p.file_stem().and_then(|s| s.to_str()).expect("name");
                    assert!(listed.contains(&stem), "{stem}.script has no test in scenarios!()");
                }
            }
        }
    };
}

scenarios!(
    cold_start,
    restart_carry_over,
    quorum_hysteresis,
    drain_and_undrain,
    reload_diff,
    ipvs_failure,
    panic_mode,
    shared_vip,
    drain_beyond_the_clock,
    down_metric,
    service_drain,
);

#[test]
fn snapshot_is_cheap_to_take_and_says_why() {
    let mut d = Director::new(load("web.toml"));
    let t = Instant::now();
    d.handle(t, Input::Start { kernel: None });
    let snap = d.snapshot();
    assert_eq!(snap.services.len(), 1);
    assert!(Arc::strong_count(snap.services[0].health.as_ref().expect("evaluated")) >= 2);
    assert_eq!(
        snap.services[0].route.to_string(),
        "withdrawn: service web: first health pass not complete"
    );
}

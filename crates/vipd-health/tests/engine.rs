//! The scheduler: deduplication counted at the server, state kept across reloads, fast
//! interval and start-up spread on tokio's paused clock.

mod common;

use std::time::Duration;

use common::{Http, Mode};
use tokio::time::Instant;
use vipd_health::engine::{self, Options, Update};
use vipd_health::fsm::State;

fn config(body: &str) -> vipd_config::Config {
    let src = format!("[global]\nrouter_id = \"192.0.2.1\"\n{body}");
    vipd_config::load_str(&src, "test.toml")
        .unwrap_or_else(|e| panic!("{e}\n{src}"))
        .config
}

fn two_services_one_backend(addr: std::net::SocketAddr, interval: &str, rise: u32) -> String {
    let mut s = format!(
        "[[check]]\nname = \"web\"\nkind = \"http\"\ntimeout = \"150ms\"\ninterval = \"{interval}\"\nrise = {rise}\nfall = 2\njitter = \"0%\"\n"
    );
    for (name, vip) in [("a", "198.51.100.1"), ("b", "198.51.100.2")] {
        s.push_str(&format!(
            "[[service]]\nname = \"{name}\"\nvip = \"{vip}\"\nport = {}\nchecks = [\"web\"]\n[[service.real_server]]\naddress = \"{}\"\n",
            addr.port(),
            addr.ip()
        ));
    }
    s
}

async fn next_update(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Update>,
    limit: Duration,
) -> Update {
    tokio::time::timeout(limit, rx.recv())
        .await
        .expect("an update in time")
        .expect("engine alive")
}

#[tokio::test]
async fn one_probe_per_interval_for_two_services_sharing_a_backend() {
    let h = Http::start().await;
    let cfg = config(&two_services_one_backend(h.addr, "500ms", 1));
    let jobs = engine::jobs(&cfg);
    assert_eq!(jobs.jobs.len(), 1, "one job for two services");
    let job = jobs.jobs.values().next().expect("job");
    assert_eq!(job.users.len(), 2);
    assert_eq!(
        jobs.servers.len(),
        2,
        "two real servers (one per service) use it"
    );

    let (_handle, mut rx) = engine::spawn(jobs.jobs.into_values().collect(), Options::default());
    let u = next_update(&mut rx, Duration::from_secs(2)).await;
    assert_eq!((u.state, u.reason.as_str()), (State::Up, "HTTP 200"));
    let start = h.count();
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let n = h.count() - start;
    // 2.6 s at 500 ms: 5 probes (one job); two services each probing would make 10.
    assert!((4..=6).contains(&n), "{n} probes in 2.6 s");
}

#[tokio::test]
async fn reload_keeps_unchanged_checks_and_restarts_changed_ones() {
    let h = Http::start().await;
    let cfg = config(&two_services_one_backend(h.addr, "200ms", 2));
    let jobs = engine::jobs(&cfg).jobs.into_values().collect::<Vec<_>>();
    let (handle, mut rx) = engine::spawn(jobs.clone(), Options::default());
    let u = next_update(&mut rx, Duration::from_secs(3)).await;
    assert_eq!(u.state, State::Up);
    let before = handle.snapshot().await;
    assert_eq!(before.len(), 1);

    // Same config again: kept, state and counters carry on, no transition.
    let stats = handle.reload(jobs).await;
    assert_eq!((stats.kept, stats.started, stats.stopped), (1, 0, 0));
    let after = handle.snapshot().await;
    assert_eq!(after[0].state, State::Up);
    assert!(after[0].results >= before[0].results);
    assert_eq!(after[0].transitions, before[0].transitions);

    // The check changed (rise): a new job, from Unknown.
    let cfg2 = config(&two_services_one_backend(h.addr, "200ms", 3));
    let stats = handle
        .reload(engine::jobs(&cfg2).jobs.into_values().collect())
        .await;
    assert_eq!((stats.kept, stats.started, stats.stopped), (0, 1, 1));
    let snap = handle.snapshot().await;
    assert_eq!(snap[0].state, State::Unknown);
    assert_eq!(snap[0].results, 0);
    let u = next_update(&mut rx, Duration::from_secs(3)).await;
    assert_eq!(u.state, State::Up, "rise 3 reached");

    // The backend fails: down after fall (2) failures, with the reason.
    h.set(Mode::Unavailable);
    let u = next_update(&mut rx, Duration::from_secs(3)).await;
    assert_eq!(
        (u.state, u.reason.as_str()),
        (State::Down, "HTTP 503 (expected 200-299)")
    );
    assert!(rx.try_recv().is_err(), "one transition, one update");
}

#[tokio::test(start_paused = true)]
async fn fast_interval_and_start_spread_on_paused_time() {
    let dir = std::env::temp_dir().join(format!("vipd-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // 100 file checks (distinct files: distinct jobs), interval 2 s.
    let mut body = String::new();
    for i in 0..100 {
        let f = dir.join(format!("s{i}"));
        std::fs::write(&f, "UP\n").expect("write");
        body.push_str(&format!(
            "[[service]]\nname = \"s{i}\"\nvip = \"198.51.100.1\"\nport = {}\n[[service.real_server]]\naddress = \"10.0.0.1\"\n[[service.real_server.check]]\nkind = \"file\"\nfile = \"{}\"\ninterval = \"2s\"\nfast_interval = \"500ms\"\nrise = 1\nfall = 2\njitter = \"0%\"\n",
            1000 + i,
            f.display()
        ));
    }
    let cfg = config(&body);
    let (handle, mut rx) = engine::spawn(
        engine::jobs(&cfg).jobs.into_values().collect(),
        Options::default(),
    );
    // First runs are spread over the 2 s interval: after 1 s, about half have run.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ran = handle
        .snapshot()
        .await
        .iter()
        .filter(|c| c.results > 0)
        .count();
    assert!(
        (25..=75).contains(&ran),
        "{ran} of 100 ran in the first second"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut ups = 0;
    while let Ok(u) = rx.try_recv() {
        assert_eq!(u.state, State::Up);
        ups += 1;
    }
    assert_eq!(ups, 100);

    // One file turns to garbage at t0: the first failure comes within one interval (2 s),
    // the second one fast_interval (500 ms) later, so down within 2.5 s, not 4 s.
    std::fs::write(dir.join("s7"), "garbage\n").expect("write");
    let t0 = Instant::now();
    let u = next_update(&mut rx, Duration::from_secs(10)).await;
    let took = t0.elapsed();
    assert_eq!(
        (u.state, u.reason.as_str()),
        (State::Down, "file: unparseable: \"garbage\"")
    );
    assert!(
        took >= Duration::from_millis(500) && took <= Duration::from_millis(2600),
        "down after {took:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_scheduler_enforces_probe_deadlines() {
    // Probes run without timers of their own under the scheduler: it must cut a hanging
    // response at `timeout` and a connect stuck in a full backlog at `connect_timeout`; a
    // refused connection is reported as such.
    let h = Http::start().await;
    h.set(Mode::Hang);
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("s");
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .expect("a")
            .into(),
    )
    .expect("bind");
    s.listen(0).expect("listen");
    let full = s.local_addr().expect("addr").as_socket().expect("inet");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(f)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(full),
        )
        .await
        {
            fillers.push(f);
        }
    }
    let mut body = String::from(
        "[[check]]\nname = \"web\"\nkind = \"http\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\nconnect_timeout = \"100ms\"\nrise = 1\nfall = 1\n",
    );
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    for (name, addr) in [("hang", h.addr), ("full", full), ("closed", closed)] {
        body.push_str(&format!(
            "[[service]]\nname = \"{name}\"\nvip = \"198.51.100.1\"\nport = {}\nchecks = [\"web\"]\n[[service.real_server]]\naddress = \"{}\"\n",
            addr.port(),
            addr.ip()
        ));
    }
    let cfg = config(&body);
    let (_handle, mut rx) = engine::spawn(
        engine::jobs(&cfg).jobs.into_values().collect(),
        Options::default(),
    );
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 3 {
        let u = next_update(&mut rx, Duration::from_secs(3)).await;
        assert_eq!(u.state, State::Down);
        got.insert(u.target, (u.reason, u.latency));
    }
    let (reason, latency) = &got[&h.addr];
    assert_eq!(reason, "timeout after 300ms waiting for the response");
    assert!(
        *latency >= Duration::from_millis(300) && *latency < Duration::from_millis(500),
        "{latency:?}"
    );
    let (reason, latency) = &got[&full];
    assert_eq!(reason, "connect timeout after 100ms");
    assert_eq!(got[&closed].0, "connect: Connection refused");
    assert!(
        *latency >= Duration::from_millis(100) && *latency < Duration::from_millis(300),
        "{latency:?}"
    );
}

/// A server that accepts and never answers; each connection's end (the client gone) is
/// counted.
async fn silent_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = closed.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
    (addr, closed)
}

/// A reload that drops a job stops its probe in flight at once, on the epoll driver (plain
/// HTTP) and as a task (an agent check): neither keeps its connection to the end of its 9 s
/// timeout.
#[tokio::test]
async fn a_reload_stops_the_probes_of_the_jobs_it_drops() {
    let (addr, closed) = silent_server().await;
    let body = format!(
        "[[check]]\nname = \"plain\"\nkind = \"http\"\ntimeout = \"9s\"\ninterval = \"10s\"\njitter = \"0%\"\n\
         [[check]]\nname = \"agent\"\nkind = \"agent\"\nport = {port}\ntimeout = \"9s\"\ninterval = \"10s\"\njitter = \"0%\"\n\
         [[service]]\nname = \"a\"\nvip = \"198.51.100.1\"\nport = {port}\nchecks = [\"plain\", \"agent\"]\n\
         [[service.real_server]]\naddress = \"{ip}\"\n",
        port = addr.port(),
        ip = addr.ip()
    );
    let jobs = engine::jobs(&config(&body))
        .jobs
        .into_values()
        .collect::<Vec<_>>();
    assert_eq!(jobs.len(), 2);
    let (handle, _rx) = engine::spawn(jobs, Options::default());
    // First runs are spread over the 10 s interval: wait until both probes are connected.
    let start = Instant::now();
    while tcp_connections_to(addr) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the probes never connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        closed.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "still waiting for answers"
    );
    let stats = handle.reload(Vec::new()).await;
    assert_eq!(stats.stopped, 2);
    let t = Instant::now();
    while closed.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a dropped job's probe still holds its connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Established connections to `addr` seen in /proc/net/tcp (client side).
fn tcp_connections_to(addr: std::net::SocketAddr) -> usize {
    let want = format!(":{:04X}", addr.port());
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2].ends_with(&want) && f[3] == "01"
        })
        .count()
}

//! `/metrics` (Prometheus text format) and `/healthcheck` (the seed's monitor URI: 200 while
//! this node serves traffic, 503 when drained or no service has quorum), on
//! `global.listen`.
//!
//! The HTTP task only carries requests to the main task, which renders from its own state
//! (the same snapshot as `vipd status`, the health engine's check list) plus the few
//! counters and histograms that other tasks update as Prometheus atomics.

use std::net::SocketAddr;

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::info;

use crate::error::ServeError;
use crate::ipvs_task::IpvsCounters;
use crate::status::{Announce, Health, Status, serving};

/// What the HTTP task renders from: published snapshots and shared counters only.
#[derive(Clone, Debug)]
pub struct Sources {
    /// Director, IPVS and BGP snapshots (None on a backend).
    pub status: Option<crate::status::Sources>,
    /// The health engine (its check list, asked with a deadline).
    pub health: Option<vipd_health::engine::Handle>,
    /// Probe latencies.
    pub latency: vipd_health::engine::LatencyHistograms,
    /// IPVS task counters.
    pub ipvs: IpvsCounters,
    /// Director counters.
    pub director: DirectorCounters,
    /// The node's role, for a backend's answer.
    pub role: vipd_config::Role,
    /// The last rendering, shared by the scrapes of the next [`RENDER_TTL`].
    pub cache: Cache,
    /// The other directors as last fetched (`[fleet]` configured).
    pub fleet: Option<crate::fleet::task::Peers>,
    /// A backend's status, as its main task last observed it.
    pub backend: Option<tokio::sync::watch::Receiver<Status>>,
}

/// How long one rendering of `/metrics` answers scrapes: at tens of thousands of servers a
/// rendering is tens of megabytes and most of a second of CPU; a hundred scrapes a second
/// must not mean a hundred renderings.
pub const RENDER_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The last rendering and when it was made. One scrape renders while the others wait for
/// its result (single flight).
pub type Cache =
    std::sync::Arc<tokio::sync::Mutex<Option<(std::time::Instant, axum::body::Bytes)>>>;

/// Counters the director task keeps.
#[derive(Clone, Debug, Default)]
pub struct DirectorCounters {
    /// IPVS failures reported for a service (each withdrew or kept withdrawn its VIP).
    pub ipvs_service_failures: Counter,
}

/// How long a scrape waits for the health engine's check list.
pub(crate) const CHECKS_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

/// Binds `/metrics`, `/healthcheck` and `/events` on `addr`; the returned future serves them (with
/// [`crate::http`]'s limits) until `shutdown`.
pub async fn bind(
    addr: SocketAddr,
    sources: Sources,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, ServeError> {
    let l = crate::http::listen(addr).map_err(|source| ServeError::Listen { addr, source })?;
    info!(listen = %addr, "serving /metrics, /healthcheck, /events, /status and the status page (/)");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthcheck", get(healthcheck))
        .route("/events", get(events))
        .route("/", get(crate::page::serve::index))
        .route("/status", get(crate::page::serve::status))
        .with_state(sources);
    let slots = crate::accept::Slots::new(crate::http::MAX_CONNS);
    Ok(crate::http::serve(l, app, slots, shutdown))
}

/// `/events?since=N`: the event history newer than N, as JSON (a backend has none yet).
async fn events(State(src): State<Sources>, uri: axum::http::Uri) -> impl IntoResponse {
    let since = uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("since=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let page = src
        .status
        .as_ref()
        .map(|s| s.events.since(since, crate::events::CAPACITY))
        .unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&page).unwrap_or_default(),
    )
}

async fn metrics(State(src): State<Sources>) -> impl IntoResponse {
    let mut cache = src.cache.lock().await;
    let text = match cache.as_ref() {
        Some((at, text)) if at.elapsed() < RENDER_TTL => text.clone(),
        _ => {
            let text = axum::body::Bytes::from(rendered(&src).await);
            *cache = Some((std::time::Instant::now(), text.clone()));
            text
        }
    };
    drop(cache);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

/// Renders every metric now.
async fn rendered(src: &Sources) -> String {
    match &src.status {
        None => match &src.backend {
            Some(b) => crate::backend::metrics::render(&b.borrow()),
            None => format!("# vipd {:?} role\n# EOF\n", src.role),
        },
        Some(s) => {
            let checks = match &src.health {
                Some(h) => tokio::time::timeout(CHECKS_DEADLINE, h.counts())
                    .await
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            // At tens of thousands of servers the text is tens of megabytes: built on a
            // blocking thread, never on the runtime thread the decisions run on.
            let (s, latency, ipvs, director) = (
                s.clone(),
                src.latency.clone(),
                src.ipvs.clone(),
                src.director.clone(),
            );
            tokio::task::spawn_blocking(move || {
                render(&s.status(), &checks, &latency, &ipvs, &director)
            })
            .await
            .unwrap_or_else(|e| format!("# vipd: rendering failed: {e}\n"))
        }
    }
}

async fn healthcheck(State(src): State<Sources>) -> impl IntoResponse {
    let backend = src.backend.as_ref().map(|b| serving(&b.borrow()));
    match (&src.status, backend) {
        (None, Some((true, why))) => (StatusCode::OK, format!("OK {why}\n")),
        (None, Some((false, why))) => (StatusCode::SERVICE_UNAVAILABLE, format!("DOWN {why}\n")),
        (None, None) => (StatusCode::OK, format!("OK {:?} role\n", src.role)),
        (Some(s), _) => match s.serving() {
            (true, why) => (StatusCode::OK, format!("OK {why}\n")),
            (false, why) => (StatusCode::SERVICE_UNAVAILABLE, format!("DOWN {why}\n")),
        },
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NeighborLabel {
    neighbor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    neighbor: String,
    state: String,
}

/// Renders every metric. Gauges and counters that mirror state are built from the
/// snapshots at each scrape (the main task owns that state); the latency histograms and the
/// IPVS counters are the live atomics.
pub fn render(
    st: &Status,
    checks: &[vipd_health::engine::CheckCounts],
    latency: &vipd_health::engine::LatencyHistograms,
    ipvs: &IpvsCounters,
    director: &DirectorCounters,
) -> String {
    let mut r = Registry::with_prefix("vipd");
    let g = |r: &mut Registry, name: &str, help: &str, v: i64| {
        let m = Gauge::<i64>::default();
        m.set(v);
        r.register(name, help, m);
    };
    g(
        &mut r,
        "uptime_seconds",
        "Seconds since vipd started",
        st.uptime_secs as i64,
    );
    g(
        &mut r,
        "drained",
        "1 while the drain file exists",
        i64::from(st.drained),
    );
    g(
        &mut r,
        "serving",
        "1 while /healthcheck answers 200",
        i64::from(serving(st).0),
    );

    // The per-service, per-server and per-check families are written as text directly: at
    // 64,000 servers a registry of label sets costs hundreds of megabytes for a text of a
    // few tens, and a scrape must not be what runs a director out of memory.
    let mut big = String::new();
    let services = |name: &str, help: &str, v: &dyn Fn(&crate::status::ServiceStatus) -> i64| {
        let mut o = String::new();
        family_head(&mut o, name, "gauge", help);
        for s in &st.services {
            let _ = writeln!(o, "vipd_{name}{{service=\"{}\"}} {}", esc(&s.name), v(s));
        }
        o
    };
    big.push_str(&services(
        "service_announced",
        "1 while the service's VIP is announced (or draining, or announced with the down attributes)",
        &|s| {
            i64::from(matches!(
                s.announce,
                Announce::Announced | Announce::Draining | Announce::Down
            ))
        },
    ));
    big.push_str(&services(
        "service_ipvs_programmed",
        "1 while IPVS holds the service as desired (its VIP is announced only then)",
        &|s| i64::from(s.ipvs == crate::status::Ipvs::Programmed),
    ));
    big.push_str(&services(
        "service_healthy_weight",
        "Sum of healthy real server weights (compared with quorum)",
        &|s| i64::try_from(s.healthy_weight).unwrap_or(i64::MAX),
    ));
    big.push_str(&services(
        "service_panic",
        "1 while the service is in panic mode",
        &|s| i64::from(s.panic),
    ));
    family_head(
        &mut big,
        "service_table",
        "info",
        "Digest of the service's forwarding table in the kernel (equal on directors that forward alike)",
    );
    for s in &st.services {
        if let Some(d) = &s.digest {
            let _ = writeln!(
                big,
                "vipd_service_table_info{{service=\"{}\",digest=\"{d}\"}} 1",
                esc(&s.name)
            );
        }
    }
    let servers = |o: &mut String,
                   name: &str,
                   help: &str,
                   v: &dyn Fn(&crate::status::RealServerStatus) -> i64| {
        family_head(o, name, "gauge", help);
        for s in &st.services {
            let svc = esc(&s.name);
            for r in &s.real_servers {
                let _ = writeln!(
                    o,
                    "vipd_{name}{{service=\"{svc}\",server=\"{}\"}} {}",
                    esc(&r.address),
                    v(r)
                );
            }
        }
    };
    servers(
        &mut big,
        "real_server_up",
        "1 when the real server is up",
        &|r| i64::from(r.health == Health::Up),
    );
    servers(
        &mut big,
        "real_server_ipvs_weight",
        "Weight in IPVS (-1: not in IPVS)",
        &|r| r.ipvs_weight.map_or(-1, i64::from),
    );
    servers(
        &mut big,
        "ipvs_dest_active_connections",
        "IPVS active connections (as of the last resync)",
        &|r| i64::from(r.active_conns),
    );
    servers(
        &mut big,
        "ipvs_dest_inactive_connections",
        "IPVS inactive connections (as of the last resync)",
        &|r| i64::from(r.inact_conns),
    );
    let check_rows = |o: &mut String,
                      name: &str,
                      kind: &str,
                      help: &str,
                      v: &dyn Fn(&vipd_health::engine::CheckCounts) -> i64| {
        family_head(o, name, kind, help);
        let suffix = if kind == "counter" { "_total" } else { "" };
        for c in checks {
            let _ = writeln!(
                o,
                "vipd_{name}{suffix}{{check=\"{}\",kind=\"{}\",target=\"{}\"}} {}",
                esc(&c.name),
                c.kind,
                c.target,
                v(c)
            );
        }
    };
    check_rows(
        &mut big,
        "check_state",
        "gauge",
        "Check state: 1 up, 0 down, -1 unknown",
        &|c| match c.state {
            vipd_health::fsm::State::Up => 1,
            vipd_health::fsm::State::Down => 0,
            vipd_health::fsm::State::Unknown => -1,
        },
    );
    check_rows(
        &mut big,
        "check_transitions",
        "counter",
        "Check state changes",
        &|c| i64::try_from(c.transitions).unwrap_or(i64::MAX),
    );
    check_rows(
        &mut big,
        "check_results",
        "counter",
        "Check results",
        &|c| i64::try_from(c.results).unwrap_or(i64::MAX),
    );
    r.register(
        "check_latency_seconds",
        "Probe duration by check kind",
        latency.clone(),
    );

    let bgp_state = Family::<StateLabel, Gauge>::default();
    let updates = Family::<NeighborLabel, Counter>::default();
    let prefixes = Family::<NeighborLabel, Gauge>::default();
    for n in &st.neighbors {
        bgp_state
            .get_or_create(&StateLabel {
                neighbor: n.address.clone(),
                state: n.state.clone(),
            })
            .set(1);
        let l = NeighborLabel {
            neighbor: n.address.clone(),
        };
        updates.get_or_create(&l).inc_by(n.updates_sent);
        prefixes
            .get_or_create(&l)
            .set(i64::try_from(n.prefixes_sent).unwrap_or(i64::MAX));
    }
    r.register(
        "bgp_session_state",
        "1 for the neighbor's current FSM state",
        bgp_state,
    );
    r.register("bgp_updates_sent", "UPDATE messages sent", updates);
    let bfd_up = Family::<NeighborLabel, Gauge>::default();
    let bfd_detect = Family::<NeighborLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let bfd_tx = Family::<NeighborLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let bfd_downs = Family::<NeighborLabel, Counter>::default();
    for n in &st.neighbors {
        let Some(b) = &n.bfd else { continue };
        let l = NeighborLabel {
            neighbor: n.address.clone(),
        };
        bfd_up.get_or_create(&l).set(i64::from(b.state == "Up"));
        bfd_detect
            .get_or_create(&l)
            .set(b.detection_ms as f64 / 1000.0);
        bfd_tx
            .get_or_create(&l)
            .set(b.tx_interval_ms as f64 / 1000.0);
        bfd_downs.get_or_create(&l).inc_by(b.downs);
    }
    r.register(
        "bfd_session_up",
        "1 while the BFD session with the neighbor is Up",
        bfd_up,
    );
    r.register(
        "bfd_detection_time_seconds",
        "Silence after which the neighbor is declared down",
        bfd_detect,
    );
    r.register(
        "bfd_tx_interval_seconds",
        "Negotiated interval between the BFD packets vipd sends",
        bfd_tx,
    );
    r.register(
        "bfd_session_downs",
        "Times the BFD session left Up",
        bfd_downs,
    );
    r.register(
        "bgp_prefixes_sent",
        "Prefixes announced to the neighbor",
        prefixes,
    );

    r.register(
        "ipvs_reconciles",
        "IPVS reconciliations run",
        ipvs.reconciles.clone(),
    );
    r.register("ipvs_writes", "IPVS write operations", ipvs.writes.clone());
    r.register(
        "ipvs_errors",
        "IPVS operations or dumps that failed",
        ipvs.errors.clone(),
    );
    r.register(
        "ipvs_dumps",
        "Full IPVS dumps (start, resyncs, re-reads after a failure; never a scrape)",
        ipvs.dumps.clone(),
    );
    r.register(
        "ipvs_service_failures",
        "IPVS failures reported for a service (its VIP not announced until repaired)",
        director.ipvs_service_failures.clone(),
    );

    let mut out = String::with_capacity(big.len() + 4096);
    let _ = prometheus_client::encoding::text::encode(&mut out, &r);
    // The registry's text ends with "# EOF": the large families go before it.
    let end = out.rfind("# EOF").unwrap_or(out.len());
    out.truncate(end);
    out.push_str(&big);
    out.push_str("# EOF\n");
    out
}

/// `# TYPE` and `# HELP` lines of a family.
pub(crate) fn family_head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP vipd_{name} {help}.");
    let _ = writeln!(o, "# TYPE vipd_{name} {kind}");
}

/// A label value escaped for the text format.
pub(crate) fn esc(v: &str) -> std::borrow::Cow<'_, str> {
    if v.contains(['\\', '"', '\n']) {
        std::borrow::Cow::Owned(
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n"),
        )
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{NeighborStatus, RealServerStatus, ServiceStatus};

    #[test]
    fn serving_means_not_drained_and_some_quorum() {
        let mut st = Status {
            drain_file: "/etc/lb/disable".into(),
            services: vec![ServiceStatus {
                announce: Announce::Announced,
                ..ServiceStatus::default()
            }],
            ..Status::default()
        };
        assert_eq!(serving(&st), (true, "1 of 1 services announced".into()));
        st.drained = true;
        assert_eq!(
            serving(&st),
            (false, "drained (/etc/lb/disable present)".into())
        );
        st.drained = false;
        st.services[0].announce = Announce::Withdrawn;
        assert_eq!(serving(&st), (false, "no service is announced".into()));
    }

    #[test]
    fn the_text_parses_as_prometheus_exposition() {
        let st = Status {
            uptime_secs: 5,
            services: vec![ServiceStatus {
                name: "web".into(),
                announce: Announce::Announced,
                healthy_weight: 3,
                digest: Some("0123456789abcdef".into()),
                real_servers: vec![RealServerStatus {
                    address: "10.1.0.1:80".into(),
                    health: Health::Up,
                    ipvs_weight: Some(3),
                    active_conns: 7,
                    ..RealServerStatus::default()
                }],
                ..ServiceStatus::default()
            }],
            neighbors: vec![NeighborStatus {
                address: "10.0.0.254:179".into(),
                state: "Established".into(),
                updates_sent: 4,
                prefixes_sent: 1,
                bfd: Some(crate::status::BfdView {
                    state: "Up".into(),
                    detection_ms: 300,
                    tx_interval_ms: 100,
                    downs: 2,
                    ..Default::default()
                }),
                ..NeighborStatus::default()
            }],
            ..Status::default()
        };
        let latency = vipd_health::engine::latency_histograms();
        latency
            .get_or_create(&vipd_health::engine::KindLabel { kind: "http" })
            .observe(0.002);
        let ipvs = IpvsCounters::default();
        ipvs.writes.inc_by(12);
        let text = render(&st, &[], &latency, &ipvs, &DirectorCounters::default());
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
        let value = |name: &str, label: Option<(&str, &str)>| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
                .map(|s| match s.value {
                    // (OpenMetrics counters end in `_total`, which this parser then reads
                    // as untyped: the number is what matters here.)
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                })
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
        };
        assert_eq!(value("vipd_serving", None), 1.0);
        assert_eq!(
            value(
                "vipd_real_server_ipvs_weight",
                Some(("server", "10.1.0.1:80"))
            ),
            3.0
        );
        assert_eq!(value("vipd_ipvs_dest_active_connections", None), 7.0);
        assert_eq!(
            value("vipd_bgp_session_state", Some(("state", "Established"))),
            1.0
        );
        assert_eq!(value("vipd_bgp_updates_sent_total", None), 4.0);
        assert_eq!(value("vipd_bfd_session_up", None), 1.0);
        assert_eq!(value("vipd_bfd_detection_time_seconds", None), 0.3);
        assert_eq!(value("vipd_bfd_session_downs_total", None), 2.0);
        assert_eq!(value("vipd_ipvs_writes_total", None), 12.0);
        assert!(
            text.contains("vipd_service_table_info{service=\"web\",digest=\"0123456789abcdef\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vipd_check_latency_seconds_count{kind=\"http\"} 1"),
            "{text}"
        );
    }
}

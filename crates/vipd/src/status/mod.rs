//! What `vipd status --json` prints and `/metrics` renders: one typed model, built from the
//! snapshots the tasks publish (the director's decisions, the IPVS task's view of the
//! kernel, the BGP neighbors). Building it reads `watch` channels only: no netlink request,
//! no message to a task that could be busy.

pub mod backend;
pub mod client;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use vipd_bgp::speaker::PeerStatus;
use vipd_director::{Programmed, Snapshot, VipState};
use vipd_health::fsm::State;

use crate::ipvs_task::IpvsView;

/// A VIP's route state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Announce {
    /// In the RIB.
    Announced,
    /// In the RIB with GRACEFUL_SHUTDOWN until the drain delay ends.
    Draining,
    /// In the RIB with the `[announce.down]` attributes: the quorum is down.
    Down,
    /// Not in the RIB.
    #[default]
    Withdrawn,
    /// `announce.enabled = false`.
    #[serde(rename = "not announced")]
    NotAnnounced,
}

/// A real server's health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// In service.
    Up,
    /// Out of service.
    Down,
    /// Not evaluated yet.
    #[default]
    Unknown,
}

impl Health {
    /// The word `vipd status` and the page show.
    pub fn word(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }
}

impl From<State> for Health {
    fn from(s: State) -> Health {
        match s {
            State::Up => Health::Up,
            State::Down => Health::Down,
            State::Unknown => Health::Unknown,
        }
    }
}

/// Whether IPVS holds a service as desired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ipvs {
    /// As desired.
    Programmed,
    /// Not reported yet.
    #[default]
    Pending,
    /// A write failed (see `ipvs_error`).
    Failed,
}

/// The whole report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    /// vipd version.
    pub version: String,
    /// `global.role`.
    #[serde(default)]
    pub role: vipd_config::Role,
    /// `global.router_id` (how the fleet view names this director).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Drain file present.
    pub drained: bool,
    /// The drain file's path.
    pub drain_file: String,
    /// Result of the last reload (None: no reload yet).
    pub last_reload: Option<String>,
    /// Services.
    pub services: Vec<ServiceStatus>,
    /// BGP neighbors.
    pub neighbors: Vec<NeighborStatus>,
    /// Set when IPVS could not be read at the last resync.
    pub ipvs_error: Option<String>,
    /// Seconds since the last kernel dump (connection counters are that old).
    #[serde(default)]
    pub ipvs_dump_age_secs: Option<u64>,
    /// A backend's own state (None on a director).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<backend::BackendStatus>,
}

/// One service.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Name.
    pub name: String,
    /// `TCP 198.51.100.1:80`.
    pub key: String,
    /// Scheduler and flags as configured.
    pub scheduler: String,
    /// Route state.
    pub announce: Announce,
    /// Why.
    pub announce_reason: String,
    /// Drained by an operator: the node's drain file or the VIP's own (`announce.drain_file`),
    /// during the drain delay or after it.
    #[serde(default)]
    pub drained: bool,
    /// Whether IPVS holds the service as desired (a VIP is announced only then).
    #[serde(default)]
    pub ipvs: Ipvs,
    /// The failed IPVS write and the kernel's error.
    #[serde(default)]
    pub ipvs_error: Option<String>,
    /// Sum of healthy weights and the quorum.
    pub healthy_weight: u64,
    /// Configured quorum.
    pub quorum: u32,
    /// Panic mode on.
    pub panic: bool,
    /// Digest of the forwarding table in the kernel (scheduler and flags, destinations in
    /// kernel order, weights, forwarding): equal on every director that forwards this
    /// service's flows alike. None while the service is not in the kernel.
    #[serde(default)]
    pub digest: Option<String>,
    /// Real servers.
    pub real_servers: Vec<RealServerStatus>,
}

/// One real server.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RealServerStatus {
    /// `10.1.0.1:80`.
    pub address: String,
    /// Health.
    pub health: Health,
    /// Reason of the last change or result.
    pub reason: String,
    /// Configured weight.
    pub weight: u32,
    /// Weight in IPVS now (None: not in IPVS).
    pub ipvs_weight: Option<u32>,
    /// Active connections (IPVS).
    pub active_conns: u32,
    /// Inactive connections (IPVS).
    pub inact_conns: u32,
    /// Each check's last results (`/status` and the page only: asked of the health engine
    /// with a deadline; empty when it did not answer in time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckHistory>,
}

/// One check's recent results against a real server.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CheckHistory {
    /// Check name.
    pub name: String,
    /// The check's own state.
    pub health: Health,
    /// The last results, oldest first.
    pub results: Vec<CheckResult>,
}

/// One result.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CheckResult {
    /// Passed.
    pub ok: bool,
    /// How long the probe took (ms).
    pub ms: f64,
    /// Why.
    pub reason: String,
}

/// One BGP neighbor.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NeighborStatus {
    /// `10.0.0.254:179`.
    pub address: String,
    /// The configured description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// FSM state.
    pub state: String,
    /// Seconds since Established.
    pub established_secs: Option<u64>,
    /// Prefixes announced.
    pub prefixes_sent: usize,
    /// UPDATEs sent.
    pub updates_sent: u64,
    /// Last error.
    pub last_error: Option<String>,
    /// The BFD session with this neighbor, when it has one.
    #[serde(default)]
    pub bfd: Option<BfdView>,
}

/// A BFD session as `vipd status` shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BfdView {
    /// Local state (Up, Down, Init, AdminDown).
    pub state: String,
    /// The router's state as last heard.
    pub remote_state: String,
    /// Interval between the packets vipd sends, negotiated (ms).
    pub tx_interval_ms: u64,
    /// Interval between the packets the router sends, negotiated (ms).
    pub rx_interval_ms: u64,
    /// Silence after which the router is declared down (ms).
    pub detection_ms: u64,
    /// Why the session last went down.
    pub diag: String,
    /// The router's diagnostic.
    pub remote_diag: String,
    /// Times it came Up.
    pub ups: u64,
    /// Times it left Up.
    pub downs: u64,
}

impl BfdView {
    fn of(s: &vipd_bfd::session::Status) -> BfdView {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        BfdView {
            state: s.state.to_string(),
            remote_state: s.remote_state.to_string(),
            tx_interval_ms: ms(s.tx_interval),
            rx_interval_ms: ms(s.rx_interval),
            detection_ms: ms(s.detection_time),
            diag: s.diag.to_string(),
            remote_diag: s.remote_diag.to_string(),
            ups: s.ups,
            downs: s.downs,
        }
    }
}

/// The receivers status is built from.
#[derive(Clone, Debug)]
pub struct Sources {
    /// The director's decisions.
    pub director: watch::Receiver<Arc<Snapshot>>,
    /// The kernel as the IPVS task sees it.
    pub ipvs: watch::Receiver<IpvsView>,
    /// Each BGP neighbor's status.
    pub neighbors: watch::Receiver<crate::director::NeighborList>,
    /// The BFD sessions, once BFD runs.
    pub bfd: crate::director::BfdSlot,
    /// Fixed facts and the last reload.
    pub meta: watch::Receiver<Meta>,
    /// The event history.
    pub events: crate::events::EventLog,
}

/// What the director task publishes besides its decisions.
#[derive(Clone, Debug)]
pub struct Meta {
    /// Process start.
    pub started: Instant,
    /// The drain file.
    pub drain_file: String,
    /// The last reload's outcome.
    pub last_reload: Option<String>,
    /// `global.router_id`.
    pub router_id: Option<std::net::Ipv4Addr>,
}

impl Sources {
    /// The `/healthcheck` verdict from the director's snapshot alone (cheap: no per-server
    /// work), the same as [`serving`] of the whole status.
    pub fn serving(&self) -> (bool, String) {
        let snap = self.director.borrow().clone();
        let meta = self.meta.borrow().clone();
        let st = Status {
            drained: snap.drained,
            drain_file: meta.drain_file,
            services: snap
                .services
                .iter()
                .map(|s| ServiceStatus {
                    announce: match s.route {
                        VipState::Announced => Announce::Announced,
                        _ => Announce::Withdrawn,
                    },
                    ..ServiceStatus::default()
                })
                .collect(),
            ..Status::default()
        };
        serving(&st)
    }

    /// The status now.
    pub fn status(&self) -> Status {
        let snap = self.director.borrow().clone();
        let ipvs = self.ipvs.borrow().clone();
        let meta = self.meta.borrow().clone();
        let neighbors = self.neighbors.borrow().clone();
        let bfd = self.bfd.get().map(|b| b.statuses()).unwrap_or_default();
        build(&snap, &ipvs, &neighbors, &bfd, &meta)
    }
}

/// Builds the model.
pub fn build(
    snap: &Snapshot,
    ipvs: &IpvsView,
    neighbors: &[(SocketAddr, watch::Receiver<PeerStatus>)],
    bfd: &[(std::net::IpAddr, vipd_bfd::session::Status)],
    meta: &Meta,
) -> Status {
    let services = snap
        .services
        .iter()
        .map(|s| {
            let kernel = ipvs.kernel.get(&s.key);
            let dests = kernel.map(|(_, d)| d);
            let (announce, announce_reason) = match &s.route {
                VipState::Announced => (Announce::Announced, "quorum".to_string()),
                VipState::Draining => (
                    Announce::Draining,
                    "drain file: GRACEFUL_SHUTDOWN until the drain delay ends".to_string(),
                ),
                VipState::Down(w) => (
                    Announce::Down,
                    format!("announced with the down attributes: {w}"),
                ),
                VipState::Withdrawn(vipd_director::Withdrawn::Disabled) => (
                    Announce::NotAnnounced,
                    "announce.enabled = false".to_string(),
                ),
                VipState::Withdrawn(w) => (Announce::Withdrawn, w.to_string()),
            };
            let drained = matches!(
                &s.route,
                VipState::Draining
                    | VipState::Withdrawn(
                        vipd_director::Withdrawn::Drained | vipd_director::Withdrawn::VipDrained
                    )
            );
            let (ipvs_state, ipvs_error) = match &s.programmed {
                Programmed::Yes => (Ipvs::Programmed, None),
                Programmed::Pending => (Ipvs::Pending, None),
                Programmed::Failed(e) => (Ipvs::Failed, Some(e.clone())),
            };
            let health = s.health.as_deref();
            let real_servers = health
                .map(|h| {
                    h.servers
                        .iter()
                        .zip(&s.configured)
                        .map(|(r, weight)| {
                            let d = dests.and_then(|ds| {
                                ds.iter().find(|d| d.addr == r.addr && d.port == r.port)
                            });
                            RealServerStatus {
                                address: SocketAddr::new(r.addr, r.port).to_string(),
                                health: match (r.effective, r.checks) {
                                    (vipd_director::health::Effective::Up(_), _) => Health::Up,
                                    (_, State::Unknown) if !r.carried => Health::Unknown,
                                    _ => Health::Down,
                                },
                                reason: r.reason.clone(),
                                weight: *weight,
                                ipvs_weight: d.map(|d| d.weight),
                                active_conns: d.map_or(0, |d| d.active_conns),
                                inact_conns: d.map_or(0, |d| d.inact_conns),
                                checks: Vec::new(),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            ServiceStatus {
                name: s.name.clone(),
                key: s.key.to_string(),
                scheduler: s.scheduler.clone(),
                announce,
                announce_reason,
                drained,
                ipvs: ipvs_state,
                ipvs_error,
                healthy_weight: health.map_or(0, |h| h.healthy_weight),
                quorum: s.quorum,
                panic: health.is_some_and(|h| h.panic),
                digest: kernel.map(|(svc, d)| vipd_reconcile::table_digest(svc, d)),
                real_servers,
            }
        })
        .collect();
    let now = std::time::SystemTime::now();
    let neighbors = neighbors
        .iter()
        .map(|(addr, rx)| {
            let p = rx.borrow();
            NeighborStatus {
                address: addr.to_string(),
                description: p.description.clone(),
                state: format!("{:?}", p.state),
                established_secs: p
                    .established_at
                    .and_then(|t| now.duration_since(t).ok())
                    .map(|d| d.as_secs()),
                prefixes_sent: p.prefixes_sent,
                updates_sent: p.updates_sent,
                last_error: p.last_error.clone(),
                bfd: bfd
                    .iter()
                    .find(|(ip, _)| *ip == addr.ip())
                    .map(|(_, s)| BfdView::of(s)),
            }
        })
        .collect();
    Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        router_id: meta.router_id.map(|r| r.to_string()),
        uptime_secs: meta.started.elapsed().as_secs(),
        drained: snap.drained,
        drain_file: meta.drain_file.clone(),
        last_reload: meta.last_reload.clone(),
        services,
        neighbors,
        ipvs_error: ipvs.error.clone(),
        ipvs_dump_age_secs: ipvs.dumped_at.map(|t| t.elapsed().as_secs()),
        role: vipd_config::Role::Director,
        backend: None,
    }
}

/// Adds each real server's check history from the health engine's snapshot.
pub fn add_checks(st: &mut Status, checks: &[vipd_health::engine::CheckStatus]) {
    use std::collections::HashMap;
    let mut by_server: HashMap<(&str, SocketAddr), Vec<CheckHistory>> = HashMap::new();
    for c in checks {
        let h = CheckHistory {
            name: c.name.to_string(),
            health: c.state.into(),
            results: c
                .history
                .iter()
                .map(|(ok, reason, l)| CheckResult {
                    ok: *ok,
                    ms: (l.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
                    reason: reason.clone(),
                })
                .collect(),
        };
        for u in &c.users {
            by_server
                .entry((&u.service, SocketAddr::new(u.addr, u.port)))
                .or_default()
                .push(h.clone());
        }
    }
    for s in &mut st.services {
        for r in &mut s.real_servers {
            let Ok(addr) = r.address.parse::<SocketAddr>() else {
                continue;
            };
            if let Some(mut h) = by_server.remove(&(s.name.as_str(), addr)) {
                h.sort_by(|a, b| a.name.cmp(&b.name));
                r.checks = h;
            }
        }
    }
}

/// Whether the node serves traffic, and why: down when drained, on a director when no
/// service is announced, on a backend when tunnelled traffic would be lost, its set-up
/// failed or its agent tells the directors to stop (the `/healthcheck` verdict).
pub fn serving(st: &Status) -> (bool, String) {
    if let Some(b) = &st.backend {
        return if st.drained {
            (false, format!("drained ({} present)", st.drain_file))
        } else if let Some(why) = b.unavailable() {
            (false, why)
        } else {
            (true, "backend set up".to_string())
        };
    }
    let announced = st
        .services
        .iter()
        .filter(|s| s.announce == Announce::Announced)
        .count();
    if st.drained {
        (false, format!("drained ({} present)", st.drain_file))
    } else if announced == 0 {
        (false, "no service is announced".to_string())
    } else {
        (
            true,
            format!("{announced} of {} services announced", st.services.len()),
        )
    }
}

//! `vipd run`: the daemon's life cycle.
//!
//! Start: refuse a bad config; on a director, open the IPVS socket, apply sysctls, put the
//! VIPs on `lo` and hand the desired state to the IPVS task, which adopts what the kernel
//! already holds (zero writes when it matches). SIGHUP re-reads the file: a refused config
//! leaves everything running as it was; an accepted one is applied as a diff. SIGUSR1 asks
//! for an immediate IPVS resync. SIGTERM/SIGINT stop without touching IPVS.

use std::path::Path;
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc};
use tracing::{error, info, warn};
use vipd_config::{Config, Loaded, Role};

use vipd_health::engine::Update;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vipd_bgp::rib::RouteAttrs;
use vipd_bgp::wire::Prefix;

use crate::announce::{Announcer, VipState};
use crate::director;
use crate::health::HealthView;
use crate::ipvs_task::{IpvsCounters, IpvsTask, Request};
use crate::metrics;
use crate::owned::OwnedStore;
use crate::status;

/// Entry point of `vipd run`.
pub fn run(path: &Path) -> ExitCode {
    let loaded = match vipd_config::load_file(path) {
        Ok(l) => l,
        Err(e) => {
            // Logging is not set up yet (its format comes from the config): plain stderr.
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    crate::logging::init(loaded.config.global.log_format);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(path, loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("vipd stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Handles to the director's tasks.
struct Director {
    ipvs: mpsc::Sender<Request>,
    net: vipd_net::Net,
    speaker: Option<vipd_bgp::speaker::Speaker>,
    health: vipd_health::engine::Handle,
    view: HealthView,
    announcer: Announcer,
    /// The last routes given to the speaker (to skip identical updates).
    routes: BTreeMap<Prefix, RouteAttrs>,
    /// End-of-RIB sent (after the first full health pass).
    eor_sent: bool,
    /// Each VIP's announce state, from the last decision.
    vip_states: BTreeMap<Prefix, VipState>,
    /// Probe latency histograms (observed by the health engine).
    latency: vipd_health::engine::LatencyHistograms,
    /// IPVS reconciliation counters (counted by the IPVS task).
    ipvs_counters: IpvsCounters,
    /// This run found a previous run's state (graceful restart's R bit).
    restarting: bool,
}

impl Director {
    /// Re-decides the routes from quorum, first pass and drain, and hands any change to the
    /// speaker. Called BEFORE the matching IPVS change is sent: on quorum loss the
    /// withdrawal goes out first.
    fn refresh_routes(&mut self, cfg: &Config) {
        let Some(speaker) = &self.speaker else {
            return;
        };
        let health = self.view.services();
        self.announcer.update_quorum(cfg, health);
        let (routes, states, _) = self.announcer.routes(cfg, true, health, Instant::now());
        if routes != self.routes {
            for (p, st) in &states {
                info!(vip = %p, state = ?st, "route decision");
            }
            speaker.set_routes(routes.clone());
            self.routes = routes;
        }
        self.vip_states = states;
        if !self.eor_sent && health.values().all(|h| h.settled) {
            // With graceful restart, End-of-RIB tells routers the stale routes can go: only
            // once every service has had its first health pass (ExaBGP issue #328).
            speaker.initial_complete();
            self.eor_sent = true;
            info!("first health pass complete: End-of-RIB sent");
        }
    }

    /// The status report (`vipd status`).
    async fn status(
        &self,
        cfg: &Config,
        started: Instant,
        last_reload: &Option<String>,
    ) -> status::Status {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.ipvs.send(Request::Dump(tx)).await;
        let (dump, ipvs_error) = match rx.await {
            Ok(Ok(d)) => (d, None),
            Ok(Err(e)) => (Vec::new(), Some(e)),
            Err(_) => (Vec::new(), Some("the IPVS task stopped".to_string())),
        };
        let health = self.view.services();
        let services = cfg
            .services
            .iter()
            .map(|s| {
                let key = vipd_reconcile::service_key(s);
                let dests = dump.iter().find(|(svc, _)| svc.key == key).map(|(_, d)| d);
                let (announce, reason) = match self.vip_states.get(&Prefix::host(s.vip)) {
                    _ if !s.announce.enabled => {
                        ("not announced", "announce.enabled = false".to_string())
                    }
                    Some(VipState::Announced) => ("announced", "quorum".to_string()),
                    Some(VipState::Draining) => (
                        "draining",
                        "drain file: GRACEFUL_SHUTDOWN until the drain delay ends".to_string(),
                    ),
                    Some(VipState::Withdrawn(w)) => ("withdrawn", w.clone()),
                    None => ("withdrawn", "no BGP neighbor".to_string()),
                };
                let real_servers = s
                    .real_servers
                    .iter()
                    .map(|r| {
                        let port = r.port.unwrap_or(s.port);
                        let sref = vipd_health::engine::ServerRef {
                            service: std::sync::Arc::from(s.name.as_str()),
                            addr: r.address,
                            port,
                        };
                        let (health, reason) = match self.view.server(&sref) {
                            Some((crate::health::Effective::Up(_), why)) => ("up", why.clone()),
                            Some((crate::health::Effective::Down, why)) => ("down", why.clone()),
                            None => ("unknown", String::new()),
                        };
                        let d = dests.and_then(|ds| {
                            ds.iter().find(|d| d.addr == r.address && d.port == port)
                        });
                        status::RealServerStatus {
                            address: std::net::SocketAddr::new(r.address, port).to_string(),
                            health: health.to_string(),
                            reason,
                            weight: r.weight,
                            ipvs_weight: d.map(|d| d.weight),
                            active_conns: d.map_or(0, |d| d.active_conns),
                            inact_conns: d.map_or(0, |d| d.inact_conns),
                        }
                    })
                    .collect();
                status::ServiceStatus {
                    name: s.name.clone(),
                    key: key.to_string(),
                    scheduler: format!(
                        "{}{}{}",
                        s.scheduler,
                        if s.mh_port { " mh-port" } else { "" },
                        if s.mh_fallback() { " mh-fallback" } else { "" }
                    ),
                    announce: announce.to_string(),
                    announce_reason: reason,
                    healthy_weight: health.get(&s.name).map_or(0, |h| h.healthy_weight),
                    quorum: s.quorum,
                    panic: self.view.panic(&s.name),
                    real_servers,
                }
            })
            .collect();
        let now = std::time::SystemTime::now();
        let neighbors = self
            .speaker
            .as_ref()
            .map(|sp| {
                sp.status()
                    .into_iter()
                    .map(|(addr, p)| status::NeighborStatus {
                        address: addr.to_string(),
                        state: format!("{:?}", p.state),
                        established_secs: p
                            .established_at
                            .and_then(|t| now.duration_since(t).ok())
                            .map(|d| d.as_secs()),
                        prefixes_sent: p.prefixes_sent,
                        updates_sent: p.updates_sent,
                        last_error: p.last_error,
                    })
                    .collect()
            })
            .unwrap_or_default();
        status::Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: started.elapsed().as_secs(),
            drained: self.announcer.drained(),
            drain_file: cfg.global.drain_file.display().to_string(),
            last_reload: last_reload.clone(),
            services,
            neighbors,
            ipvs_error,
        }
    }

    /// Applies `[bgp]` changes after a reload: unchanged sessions stay up, removed
    /// neighbors get a Cease, changed ones are restarted, new ones start. Errors are
    /// logged and returned for the reload report; the other neighbors are still applied.
    async fn reload_bgp(&mut self, cfg: &Config) -> Result<(), String> {
        let peers = crate::bgp::peers(cfg, self.restarting);
        let need_listener = peers.iter().any(|p| p.fsm.passive);
        let mut listener = match (&self.speaker, &cfg.bgp, need_listener) {
            (Some(sp), _, _) if sp.has_listener() => None,
            (_, Some(b), true) => match tokio::net::TcpListener::bind(b.listen).await {
                Ok(l) => Some(l),
                Err(e) => {
                    return Err(format!(
                        "cannot listen for passive BGP neighbors on {}: {e}; [bgp] not applied",
                        b.listen
                    ));
                }
            },
            _ => None,
        };
        if let (Some(sp), Some(l)) = (self.speaker.as_mut(), listener.take()) {
            sp.set_listener(l);
        }
        if self.speaker.is_none() && !peers.is_empty() {
            let sp = vipd_bgp::speaker::Speaker::start_with_listener(peers, listener);
            info!(neighbors = sp.status().len(), "reload: BGP speaker started");
            self.speaker = Some(sp);
            // A new speaker starts with no routes: hand it the current decisions.
            self.routes.clear();
            self.eor_sent = false;
            self.refresh_routes(cfg);
            return Ok(());
        }
        let Some(sp) = self.speaker.as_mut() else {
            return Ok(());
        };
        if peers.is_empty() {
            info!("reload: no BGP neighbor left; closing every session");
            if let Some(old) = self.speaker.take() {
                old.shutdown("neighbor removed from the configuration")
                    .await;
            }
            self.routes.clear();
            self.vip_states.clear();
            return Ok(());
        }
        let c = sp
            .set_peers(peers, "neighbor removed or reconfigured")
            .await;
        info!(kept = ?c.kept, added = ?c.added, removed = ?c.removed, restarted = ?c.restarted,
            "reload: BGP neighbors");
        Ok(())
    }

    /// Polls the drain file. Only its existence counts (its content is the operator's: a
    /// note, nothing, or garbage); an error other than "absent" keeps the current state.
    fn poll_drain(&mut self, cfg: &Config) {
        match cfg.global.drain_file.try_exists() {
            Ok(present) => self.announcer.set_drain(present, Instant::now()),
            Err(e) => warn!(file = %cfg.global.drain_file.display(), error = %e,
                "cannot tell whether the drain file exists; drain state unchanged"),
        }
    }
}

async fn start_director(
    cfg: &Config,
    shutdown: &broadcast::Sender<()>,
) -> Result<(Director, mpsc::UnboundedReceiver<Update>), String> {
    let client = vipd_ipvs::IpvsClient::connect()
        .await
        .map_err(|e| e.to_string())?;
    director::apply_sysctls(cfg).map_err(|e| e.to_string())?;
    let net =
        vipd_net::Net::connect().map_err(|e| format!("cannot open an rtnetlink socket: {e}"))?;
    director::sync_vips(&net, cfg)
        .await
        .map_err(|e| e.to_string())?;
    let (owned, bad) = OwnedStore::load(&cfg.global.state_dir);
    for b in bad {
        warn!("ownership record: {b}; line ignored");
    }
    // A record left by a previous run means this is a restart: graceful restart's R bit.
    let restarting = !owned.keys().is_empty();
    let (tx, rx) = mpsc::channel(16);
    let ipvs_counters = IpvsCounters::default();
    let task = IpvsTask::new(
        client,
        owned,
        cfg.global.resync_interval.get(),
        ipvs_counters.clone(),
    );
    tokio::spawn(task.run(rx, shutdown.subscribe()));
    // Health checks start now; until they report, alpha servers count as down, except on
    // a restart, where the kernel's weights stand until then (zero writes, no broken flow).
    let jobs = vipd_health::engine::jobs(cfg);
    let mut view = HealthView::new(jobs.clone());
    if restarting {
        let (dump_tx, dump_rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(Request::Dump(dump_tx)).await;
        match dump_rx.await {
            Ok(Ok(dump)) => view.carry(cfg, &dump),
            Ok(Err(e)) => {
                warn!(error = %e, "cannot read IPVS to carry its weights over the restart")
            }
            Err(_) => return Err("the IPVS task stopped".to_string()),
        }
    }
    let latency = vipd_health::engine::latency_histograms();
    let (health, health_rx) = vipd_health::engine::spawn(
        jobs.jobs.into_values().collect(),
        vipd_health::engine::Options {
            latency: Some(latency.clone()),
            ..vipd_health::engine::Options::default()
        },
    );
    // Announce only once IPVS is programmed: a router must never send traffic to a VIP
    // this director cannot yet forward.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let _ = tx
        .send(Request::Desired(
            view.desired(cfg),
            director::timeouts(cfg),
            Some(done_tx),
        ))
        .await;
    let report = done_rx
        .await
        .map_err(|_| "the IPVS task stopped".to_string())?;
    let peers = crate::bgp::peers(cfg, restarting);
    let listener = match (&cfg.bgp, peers.iter().any(|p| p.fsm.passive)) {
        (Some(b), true) => Some(tokio::net::TcpListener::bind(b.listen).await.map_err(|e| {
            format!(
                "cannot listen for passive BGP neighbors on {}: {e}",
                b.listen
            )
        })?),
        _ => None,
    };
    if !report.failed.is_empty() {
        warn!(
            failed = report.failed.len(),
            "the first IPVS programming had failures; they are retried at each resync"
        );
    }
    // Routes follow quorum, first health pass and drain (refresh_routes); none yet.
    let speaker = (!peers.is_empty())
        .then(|| vipd_bgp::speaker::Speaker::start_with_listener(peers, listener));
    let mut d = Director {
        ipvs: tx,
        net,
        speaker,
        health,
        view,
        announcer: Announcer::default(),
        routes: BTreeMap::new(),
        eor_sent: false,
        vip_states: BTreeMap::new(),
        latency,
        ipvs_counters,
        restarting,
    };
    d.poll_drain(cfg);
    d.refresh_routes(cfg);
    Ok((d, health_rx))
}

/// The one-line STATUS for systemd.
fn status_line(cfg: &Config, d: Option<&Director>) -> String {
    match d {
        None => format!("{:?} role", cfg.global.role),
        Some(d) => {
            let announced = d
                .vip_states
                .values()
                .filter(|s| matches!(s, VipState::Announced | VipState::Draining))
                .count();
            format!(
                "{} services, {announced}/{} VIPs announced{}",
                cfg.services.len(),
                d.vip_states.len(),
                if d.announcer.drained() {
                    ", DRAINED"
                } else {
                    ""
                }
            )
        }
    }
}

/// The next health update, or never on a node without health checks.
async fn next_health(rx: &mut Option<mpsc::UnboundedReceiver<Update>>) -> Option<Update> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn serve(path: &Path, loaded: Loaded) -> Result<(), String> {
    let sig = |k| signal(k).map_err(|e| format!("cannot install signal handlers: {e}"));
    let (mut term, mut int, mut hup, mut usr1) = (
        sig(SignalKind::terminate())?,
        sig(SignalKind::interrupt())?,
        sig(SignalKind::hangup())?,
        sig(SignalKind::user_defined1())?,
    );
    log_warnings(&loaded);
    let mut running = loaded.config;
    info!(config = %path.display(), version = env!("CARGO_PKG_VERSION"), role = ?running.global.role, "vipd started");
    let (shutdown, _) = broadcast::channel(1);
    let started = Instant::now();
    let mut last_reload: Option<String> = None;
    let (status_tx, mut status_rx) = mpsc::channel::<status::Request>(8);
    if let Err(e) = status::serve(&running.global.control_socket, status_tx).await {
        // Not fatal: the data plane matters more than the status command.
        error!("control socket unavailable (vipd status will not work): {e}");
    }
    let (metrics_tx, mut metrics_rx) = mpsc::channel::<metrics::Request>(8);
    if let Some(listen) = running.global.listen {
        if let Err(e) = metrics::serve(listen, metrics_tx).await {
            error!("{e}: /metrics and /healthcheck unavailable");
        }
    }
    let (mut director, mut backend, mut health_rx) = match running.global.role {
        Role::Director => {
            let (d, rx) = start_director(&running, &shutdown).await?;
            (Some(d), None, Some(rx))
        }
        Role::Backend => {
            let (b, rx) = crate::backend::Node::start(&running).await?;
            (None, Some(b), rx)
        }
    };
    let mut resync = tokio::time::interval(running.global.resync_interval.get());
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await;
    crate::notify::ready(&status_line(&running, director.as_ref()));
    let watchdog_every = crate::notify::watchdog_interval();
    let mut watchdog = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
    let mut drain_poll = tokio::time::interval(crate::announce::DRAIN_POLL);
    drain_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = watchdog.tick(), if watchdog_every.is_some() => crate::notify::watchdog(),
            Some(req) = metrics_rx.recv() => match (&director, req) {
                (Some(d), metrics::Request::Metrics(reply)) => {
                    let st = d.status(&running, started, &last_reload).await;
                    let checks = d.health.snapshot().await;
                    let _ = reply.send(metrics::render(&st, &checks, &d.latency, &d.ipvs_counters));
                }
                (Some(d), metrics::Request::Health(reply)) => {
                    // From the route decisions alone: a monitor polling every second must
                    // not cost an IPVS dump each time.
                    let announced = running
                        .services
                        .iter()
                        .filter(|s| s.announce.enabled
                            && matches!(d.vip_states.get(&Prefix::host(s.vip)), Some(VipState::Announced)))
                        .count();
                    let _ = reply.send(metrics::verdict(
                        d.announcer.drained(),
                        &running.global.drain_file.display().to_string(),
                        announced,
                        running.services.len(),
                    ));
                }
                (None, metrics::Request::Metrics(reply)) => {
                    let _ = reply.send(format!("# vipd {:?} role\n# EOF\n", running.global.role));
                }
                (None, metrics::Request::Health(reply)) => {
                    let _ = reply.send((true, format!("{:?} role", running.global.role)));
                }
            },
            _ = drain_poll.tick() => {
                if let Some(d) = director.as_mut() {
                    d.poll_drain(&running);
                    // Also ends a drain delay that ran out.
                    d.refresh_routes(&running);
                    crate::notify::status(&status_line(&running, Some(d)));
                }
            }
            _ = resync.tick(), if backend.is_some() => {
                if let Some(b) = backend.as_mut() { b.resync(&running).await; }
            }
            Some(u) = next_health(&mut health_rx) => {
                if let Some(b) = backend.as_mut() {
                    b.on_update(u);
                } else if let Some(d) = director.as_mut() {
                    d.view.apply(u);
                    // Take every update already queued: one desired state for a burst.
                    while let Some(Ok(u)) = health_rx.as_mut().map(|rx| rx.try_recv()) {
                        d.view.apply(u);
                    }
                    let desired = d.view.desired(&running);
                    d.refresh_routes(&running);
                    let _ = d.ipvs.send(Request::Desired(desired, director::timeouts(&running), None)).await;
                }
            }
            _ = term.recv() => { info!("SIGTERM: stopping (IPVS left as it is)"); break; }
            _ = int.recv() => { info!("SIGINT: stopping (IPVS left as it is)"); break; }
            _ = usr1.recv() => {
                info!("SIGUSR1: IPVS resync requested");
                if let Some(d) = &director { let _ = d.ipvs.send(Request::Resync(None)).await; }
            }
            _ = hup.recv() => {
                info!(config = %path.display(), "SIGHUP: reloading the configuration");
                let _ = reload(path, &mut running, &mut director, &mut backend, &mut last_reload).await;
            }
            Some(req) = status_rx.recv() => match req {
                status::Request::Status(reply) => {
                    let _ = reply.send(match &director {
                        Some(d) => d.status(&running, started, &last_reload).await,
                        None => status::Status {
                            version: env!("CARGO_PKG_VERSION").to_string(),
                            uptime_secs: started.elapsed().as_secs(),
                            last_reload: last_reload.clone(),
                            ..status::Status::default()
                        },
                    });
                }
                status::Request::Reload(reply) => {
                    info!(config = %path.display(), "vipd reload: reloading the configuration");
                    let _ = reply.send(reload(path, &mut running, &mut director, &mut backend, &mut last_reload).await);
                }
            },
        }
    }
    crate::notify::stopping();
    let _ = shutdown.send(());
    if let Some(d) = director.as_mut() {
        if let Some(s) = d.speaker.take() {
            if running.bgp.as_ref().is_some_and(|b| b.withdraw_on_stop) {
                info!("withdraw_on_stop: withdrawing every route before closing the sessions");
                if !s.withdraw_all(Duration::from_secs(5)).await {
                    warn!("withdrawals not all written within 5 s; closing anyway");
                }
                s.shutdown("vipd stopping (routes withdrawn)").await;
            } else if crate::bgp::graceful(&running) {
                info!(
                    "closing BGP sessions without NOTIFICATION: routers keep the routes for the graceful restart time"
                );
                s.abort();
            } else {
                s.shutdown("vipd stopping").await;
            }
        }
    }
    info!("vipd stopped");
    Ok(())
}

/// Re-reads the file (SIGHUP or `vipd reload`). A refused file leaves everything running as
/// it was; an accepted one is applied as a diff. Returns the outcome, also kept in
/// `last_reload` for `vipd status`.
async fn reload(
    path: &Path,
    running: &mut Config,
    director: &mut Option<Director>,
    backend: &mut Option<crate::backend::Node>,
    last_reload: &mut Option<String>,
) -> Result<String, String> {
    crate::notify::reloading();
    let outcome = apply_reload(path, running, director, backend).await;
    *last_reload = Some(match &outcome {
        Ok(r) => r.clone(),
        Err(e) => e.clone(),
    });
    crate::notify::ready(&match &outcome {
        Ok(_) => status_line(running, director.as_ref()),
        Err(_) => "reload refused: the previous configuration runs (see the log)".to_string(),
    });
    outcome
}

async fn apply_reload(
    path: &Path,
    running: &mut Config,
    director: &mut Option<Director>,
    backend: &mut Option<crate::backend::Node>,
) -> Result<String, String> {
    let new = match vipd_config::load_file(path) {
        Ok(new) => new,
        Err(e) => {
            error!(config = %path.display(), errors = e.error_count(),
                "reload refused, the running configuration stays:\n{e}");
            return Err(format!(
                "REFUSED ({} errors; the previous configuration runs):\n{e}",
                e.error_count()
            ));
        }
    };
    log_warnings(&new);
    if new.config == *running {
        info!(config = %path.display(), "reload: configuration unchanged");
        return Ok("ok (unchanged)".to_string());
    }
    if new.config.global.role != running.global.role {
        error!("reload refused: changing global.role needs a restart");
        return Err("REFUSED: changing global.role needs a restart".to_string());
    }
    info!(config = %path.display(), "reload: new configuration accepted");
    let bgp_changed = new.config.bgp != running.bgp;
    *running = new.config;
    let mut outcome = "ok (applied)".to_string();
    if let Some(b) = backend.as_mut() {
        b.reload(running).await;
        if !b.errors().is_empty() {
            outcome = format!("applied, except: {}", b.errors().join("; "));
        }
    }
    if let Some(d) = director.as_mut() {
        if bgp_changed {
            if let Err(e) = d.reload_bgp(running).await {
                error!("reload: {e}");
                outcome = format!("applied, except: {e}");
            }
        }
        if let Err(e) = director::apply_sysctls(running) {
            director::log_setup_error("sysctls", &e);
        }
        // Unchanged checks keep their state; changed ones restart from unknown.
        let jobs = vipd_health::engine::jobs(running);
        let stats = d.health.reload(jobs.jobs.values().cloned().collect()).await;
        info!(
            kept = stats.kept,
            started = stats.started,
            stopped = stats.stopped,
            "reload: health checks"
        );
        d.view.reload(jobs);
        let desired = d.view.desired(running);
        // Withdrawals first (a removed service's VIP), then IPVS and addresses.
        d.refresh_routes(running);
        let _ = d
            .ipvs
            .send(Request::Desired(desired, director::timeouts(running), None))
            .await;
        if let Err(e) = director::sync_vips(&d.net, running).await {
            director::log_setup_error("VIP addresses", &e);
        }
    }
    Ok(outcome)
}

fn log_warnings(l: &Loaded) {
    if !l.warnings.is_empty() {
        warn!("configuration warnings:\n{}", l.render_warnings());
    }
}

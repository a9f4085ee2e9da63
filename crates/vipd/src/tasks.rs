//! Every task of `vipd run`, spawned here. The decisions are in `vipd-director`
//! ([`Director::handle`]); this file only feeds it inputs and executes its outputs.
//!
//! ```text
//!                     SIGHUP / `vipd reload` ──┐   SIGUSR1 ──────────────────────┐
//!   health engine ── Update (burst) ─────────┐ │                                 │
//!   drain file poll (1 s) ── Drain(bool) ────┤ │                                 │
//!   wake timer (drain end) ── Tick ──────────┤ v                                 v
//!   IPVS task ── IpvsFeedback ───────────> DIRECTOR TASK ── IpvsIntent ──> IPVS TASK
//!                                          │ Director::handle(now, Input)       │ own thread + runtime;
//!                                          │   -> Vec<Output>, in order:        │ sole owner of the
//!                                          │   Routes ──> BGP speaker (watch    │ IPVS genl socket;
//!                                          │              RIB; own thread +     │ KernelView from its
//!                                          │              runtime; a task and   │ acked writes + dumps;
//!                                          │              a writer per peer)    │
//!                                          │   Bgp    ──> BFD task (same thread;│
//!                                          │              UDP 3784/4784; one    │
//!                                          │              session per neighbor, │
//!                                          │              its watch<Status>     │
//!                                          │              followed by the       │
//!                                          │              neighbor's task)      │
//!                                          │   Ipvs   ──> IPVS task             │ resync every
//!                                          │   Vips   ──> rtnetlink (lo)        │ resync_interval
//!                                          │   Checks ──> health engine         │ publishes IpvsView
//!                                          │   Event  ──> hooks task (try_send; │ (watch)
//!                                          │              per-object order,     │
//!                                          │              timeouts)             │
//!                                          │ publishes Snapshot (watch)         v
//!                                          v
//!        event history task ── polls the neighbors' states (200 ms) into the history
//!        control socket task (`vipd status`) ── reads the watches ──┐
//!        HTTP task (/, /status, /events, /metrics, /healthcheck) ───┤ no netlink, nothing sent to
//!          reads the watches and the fleet's                        │ the director task; a thread
//!        fleet task ([fleet]) ── GET /status of each peer every ────┘ and runtime of their own
//!          interval, each under timeout ── publishes the peers (watch) for the page
//! ```
//!
//! The director task never waits on the kernel: IPVS intents go through an unbounded
//! channel (each intent is a state, the IPVS task merges a burst into one round), routes
//! through the speaker's `watch`. The IPVS task's end (a panic included) ends vipd with an
//! error: nothing may keep announcing routes with frozen weights.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};
use vipd_config::{Config, Loaded};
use vipd_director::{Director, Input};

use crate::director::Effects;
use crate::error::ServeError;
use crate::ipvs_task::{IpvsCounters, IpvsTask, Request as IpvsRequest};
use crate::lifecycle::{
    Signals, next_health, probe_limit, reload, reload_backend, sleep_until, status_line, stop,
};
use crate::metrics::DirectorCounters;
use crate::owned::OwnedStore;
use crate::status::server::Request as ControlRequest;
use crate::status::{Meta, Sources};

/// How often the drain file is looked at (inotify does not see every filesystem).
const DRAIN_POLL: Duration = Duration::from_secs(1);

/// How often a backend looks at its own set-up for its status (read-only; repairs wait for
/// the resync).
const OBSERVE_EVERY: Duration = Duration::from_secs(2);

/// Why `vipd run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// IPVS unavailable or unreadable at start.
    #[error("{0}")]
    Ipvs(#[from] vipd_ipvs::IpvsError),
    /// rtnetlink unavailable.
    #[error("cannot open an rtnetlink socket: {0}")]
    Net(std::io::Error),
    /// A runtime or thread could not be created.
    #[error("cannot start a runtime thread: {0}")]
    Runtime(std::io::Error),
    /// A task that must never end ended.
    #[error("the {0} task ended unexpectedly: {1}")]
    TaskDied(&'static str, String),
    /// The backend role could not start.
    #[error("{0}")]
    Backend(#[from] ServeError),
}

/// What the IPVS thread hands back: the start dump, the view readers use, and a channel
/// that yields why the task ended (or closes if its thread died).
type IpvsStart = (
    Vec<(vipd_ipvs::Service, Vec<vipd_ipvs::Dest>)>,
    watch::Receiver<crate::ipvs_task::IpvsView>,
    oneshot::Receiver<String>,
);

/// Starts the IPVS task on a thread of its own, with its own single-threaded runtime: the
/// kernel writes must not queue behind thousands of probes on the main runtime (a health
/// result reaches the kernel in milliseconds whatever the probe load). The netlink
/// connection is opened there, so its driver runs there too.
async fn spawn_ipvs(
    owned: OwnedStore,
    resync: Duration,
    counters: IpvsCounters,
    feedback: mpsc::Sender<vipd_director::IpvsFeedback>,
    intents: mpsc::UnboundedReceiver<vipd_director::IpvsIntent>,
    requests: mpsc::Receiver<IpvsRequest>,
) -> Result<IpvsStart, RunError> {
    let (start_tx, start_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("vipd-ipvs".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = start_tx.send(Err(RunError::Runtime(e)));
                    return;
                }
            };
            rt.block_on(async move {
                let started = async {
                    let client = vipd_ipvs::IpvsClient::connect().await?;
                    IpvsTask::start(client, owned, resync, counters, feedback).await
                };
                match started.await {
                    Err(e) => {
                        let _ = start_tx.send(Err(RunError::Ipvs(e)));
                    }
                    Ok((task, dump, view)) => {
                        let _ = start_tx.send(Ok((dump, view)));
                        // A panic in the task ends the thread: `done_tx` is dropped and
                        // the director task hears it.
                        task.run(intents, requests).await;
                        let _ = done_tx.send("it returned".to_string());
                    }
                }
            });
        })
        .map_err(RunError::Runtime)?;
    drop(thread);
    match start_rx.await {
        Ok(Ok((dump, view))) => Ok((dump, view, done_rx)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(RunError::TaskDied(
            "IPVS",
            "its thread died while starting".into(),
        )),
    }
}

/// Starts the BGP speaker's runtime on a thread of its own. The director task may compute
/// for seconds (a reload of thousands of services) on the main runtime; KEEPALIVEs must
/// still leave every keepalive interval, and a hold timer must still expire on time.
fn spawn_bgp_runtime() -> Result<tokio::runtime::Handle, RunError> {
    spawn_runtime("vipd-bgp")
}

/// A single-threaded runtime on a thread of its own, running until the process ends.
fn spawn_runtime(name: &str) -> Result<tokio::runtime::Handle, RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .map_err(RunError::Runtime)?;
    Ok(handle)
}

/// Resolves when a task of the speaker died; never when there is no speaker.
async fn speaker_failed(sp: &mut Option<vipd_bgp::speaker::Speaker>) -> String {
    match sp {
        Some(sp) => sp.failed().await,
        None => std::future::pending().await,
    }
}

/// Resolves when the BFD task died; never while there is none. (A BFD task started by a
/// reload is watched from the next turn of the loop on.)
async fn bfd_failed(slot: &crate::director::BfdSlot) -> String {
    match slot.get() {
        Some(b) => b.failed().await,
        None => std::future::pending().await,
    }
}

/// Runs a director until SIGTERM/SIGINT.
pub async fn director(path: &Path, loaded: Loaded) -> Result<(), RunError> {
    let mut sig = Signals::install()?;
    let max_probes = probe_limit();
    let cfg = loaded.config;
    let started = Instant::now();
    let (owned, bad) = OwnedStore::load(&cfg.global.state_dir);
    for b in bad {
        warn!("ownership record: {b}; line ignored");
    }
    // A record left by a previous run means this is a restart: graceful restart's R bit,
    // and the kernel's weights stand until the checks report.
    let restarting = !owned.keys().is_empty();
    let counters = IpvsCounters::default();
    let (fb_tx, mut fb_rx) = mpsc::channel(64);
    let (intent_tx, intent_rx) = mpsc::unbounded_channel();
    let (ipvs_req, ipvs_req_rx) = mpsc::channel(4);
    // IPVS first: a director without IPVS refuses to start.
    let (dump, ipvs_view, mut ipvs_done) = spawn_ipvs(
        owned,
        cfg.global.resync_interval.get(),
        counters.clone(),
        fb_tx,
        intent_rx,
        ipvs_req_rx,
    )
    .await?;

    let net = vipd_net::Net::connect().map_err(RunError::Net)?;
    let (neighbors_tx, neighbors_rx) = watch::channel(Arc::new(Vec::new()));
    let mut edges = Edges::new()?;
    let (hooks, hooks_task) = crate::hooks::Hooks::new(edges.shutdown.subscribe());
    edges.spawn("hooks", hooks_task);
    let mut fx = Effects {
        ipvs: intent_tx,
        net,
        speaker: None,
        bgp_rt: spawn_bgp_runtime()?,
        bfd: Default::default(),
        bfd_resume: crate::bfd::load(&cfg.global.state_dir),
        health: None,
        health_rx: None,
        latency: vipd_health::engine::latency_histograms(),
        max_probes,
        restarting,
        wake: None,
        neighbors: neighbors_tx,
        counters: DirectorCounters::default(),
        ready: false,
        routes: Default::default(),
        eor: false,
        failed: Default::default(),
        hooks,
        events: crate::events::EventLog::default(),
    };
    let mut director = Director::new(cfg);
    let outs = director.handle(
        Instant::now(),
        Input::Start {
            kernel: restarting.then_some(dump),
        },
    );
    let running = director.config().clone();
    fx.execute(outs, &running).await;
    let (snap_tx, snap_rx) = watch::channel(Arc::new(director.snapshot()));
    let (meta_tx, meta_rx) = watch::channel(Meta {
        started,
        drain_file: running.global.drain_file.display().to_string(),
        last_reload: None,
        router_id: running.global.router_id,
    });
    let sources = Sources {
        director: snap_rx,
        ipvs: ipvs_view,
        neighbors: neighbors_rx,
        bfd: fx.bfd.clone(),
        meta: meta_rx,
        events: fx.events.clone(),
    };
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<ControlRequest>(8);
    edges.spawn(
        "event history",
        crate::events::follow_neighbors(
            sources.neighbors.clone(),
            fx.events.clone(),
            edges.shutdown.subscribe(),
        ),
    );
    serve_edges(
        &mut edges,
        &running,
        Some(sources),
        None,
        Some(&fx),
        &counters,
        ctl_tx,
    )
    .await;

    let mut drain_poll = tokio::time::interval(DRAIN_POLL);
    drain_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The VIPs' own drain files (`announce.drain_file`), polled like the node's.
    let mut service_drain_poll = tokio::time::interval(DRAIN_POLL);
    service_drain_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut service_drains = std::collections::BTreeSet::new();
    let watchdog_every = crate::notify::watchdog_interval();
    let mut watchdog = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
    loop {
        let input = tokio::select! {
            _ = watchdog.tick(), if watchdog_every.is_some() => { crate::notify::watchdog(); continue; }
            r = next_health(&mut fx.health_rx) => match r {
                Some(burst) => Input::Health(burst),
                None => {
                    // The engine lives as long as this loop: its channel closing is its death.
                    error!("the health engine ended; stopping so that no route stays announced on frozen weights");
                    edges.stop().await;
                    stop(&mut fx, director.config()).await;
                    return Err(RunError::TaskDied("health engine", "its update channel closed".into()));
                }
            },
            (name, why) = edges.died() => {
                error!("the {name} task ended ({why}); stopping");
                stop(&mut fx, director.config()).await;
                return Err(RunError::TaskDied(name, why));
            }
            Some(fb) = fb_rx.recv() => Input::Ipvs(fb),
            _ = drain_poll.tick() => match director.config().global.drain_file.try_exists() {
                Ok(present) => Input::Drain(present),
                Err(e) => {
                    warn!(file = %director.config().global.drain_file.display(), error = %e,
                        "cannot tell whether the drain file exists; drain state unchanged");
                    continue;
                }
            },
            _ = service_drain_poll.tick(), if crate::lifecycle::has_service_drain(director.config()) => {
                service_drains = crate::lifecycle::poll_service_drains(director.config(), &service_drains);
                Input::ServiceDrains(service_drains.clone())
            }
            _ = sleep_until(fx.wake) => { fx.wake = None; Input::Tick }
            r = &mut ipvs_done => {
                let why = r.unwrap_or_else(|_| "its thread died".to_string());
                error!("the IPVS task ended ({why}); stopping so that no route stays announced on frozen weights");
                stop(&mut fx, director.config()).await;
                return Err(RunError::TaskDied("IPVS", why));
            }
            why = bfd_failed(&fx.bfd) => {
                error!("the BFD task died ({why}); stopping: graceful restart keeps the routes at the routers while vipd restarts");
                stop(&mut fx, director.config()).await;
                return Err(RunError::TaskDied("BFD", why));
            }
            why = speaker_failed(&mut fx.speaker) => {
                error!("a BGP task died ({why}); stopping: graceful restart keeps the routes at the routers while vipd restarts");
                stop(&mut fx, director.config()).await;
                return Err(RunError::TaskDied("BGP", why));
            }
            _ = sig.term.recv() => { info!("SIGTERM: stopping (IPVS left as it is)"); break; }
            _ = sig.int.recv() => { info!("SIGINT: stopping (IPVS left as it is)"); break; }
            _ = sig.usr1.recv() => {
                info!("SIGUSR1: IPVS resync requested");
                let _ = ipvs_req.try_send(IpvsRequest::Resync);
                continue;
            }
            _ = sig.hup.recv() => {
                info!(config = %path.display(), "SIGHUP: reloading the configuration");
                // (The outcome is logged and kept for `vipd status`.)
                let _ = reload(path, &mut director, &mut fx, &meta_tx).await;
                let _ = snap_tx.send(Arc::new(director.snapshot()));
                continue;
            }
            Some(req) = ctl_rx.recv() => {
                let ControlRequest::Reload(reply) = req;
                info!(config = %path.display(), "vipd reload: reloading the configuration");
                let r = reload(path, &mut director, &mut fx, &meta_tx).await;
                let _ = snap_tx.send(Arc::new(director.snapshot()));
                let _ = reply.send(crate::error::reload_wire(&r));
                continue;
            }
        };
        let first_report = matches!(input, Input::Ipvs(_)) && !fx.ready;
        let outs = director.handle(Instant::now(), input);
        let routes_changed = outs
            .iter()
            .any(|o| matches!(o, vipd_director::Output::Routes(_)));
        let running = director.config().clone();
        fx.execute(outs, &running).await;
        let snap = Arc::new(director.snapshot());
        if routes_changed && fx.ready {
            crate::notify::status(&status_line(&snap));
        }
        if first_report {
            fx.ready = true;
            crate::notify::ready(&status_line(&snap));
        }
        let _ = snap_tx.send(snap);
    }
    let running = director.config().clone();
    edges.stop().await;
    stop(&mut fx, &running).await;
    info!("vipd stopped");
    Ok(())
}

/// The edge tasks (control socket, HTTP, agent listener): spawned here, watched by the
/// loops. They end only when told to ([`Edges::stop`]); any other end (a panic) is what
/// [`Edges::died`] reports, and vipd exits on it.
///
/// They run on a runtime of their own (`vipd-edges`): a scrape or `vipd status` must not
/// wait for a director step that computes for a second, nor slow one down.
struct Edges {
    set: tokio::task::JoinSet<()>,
    names: std::collections::HashMap<tokio::task::Id, &'static str>,
    shutdown: watch::Sender<bool>,
    rt: tokio::runtime::Handle,
}

impl Edges {
    fn new() -> Result<Self, RunError> {
        Ok(Edges {
            set: tokio::task::JoinSet::new(),
            names: Default::default(),
            shutdown: watch::channel(false).0,
            rt: spawn_runtime("vipd-edges")?,
        })
    }

    fn spawn(
        &mut self,
        name: &'static str,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let h = self.set.spawn_on(fut, &self.rt);
        self.names.insert(h.id(), name);
    }

    /// Resolves when an edge task ended: which, and why.
    async fn died(&mut self) -> (&'static str, String) {
        match self.set.join_next_with_id().await {
            Some(Ok((id, ()))) => (
                self.names.get(&id).copied().unwrap_or("edge"),
                "it returned".into(),
            ),
            Some(Err(e)) => (
                self.names.get(&e.id()).copied().unwrap_or("edge"),
                e.to_string(),
            ),
            None => std::future::pending().await,
        }
    }

    /// Stops accepting everywhere; connections in flight get a moment to finish.
    async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.set.join_next().await.is_some() {}
        })
        .await;
    }
}

/// Binds the control socket and the HTTP endpoints and spawns their tasks. A bind failure is
/// logged, not fatal (the data plane matters more than the status command).
async fn serve_edges(
    edges: &mut Edges,
    cfg: &Config,
    sources: Option<Sources>,
    backend: Option<watch::Receiver<crate::status::Status>>,
    fx: Option<&Effects>,
    counters: &IpvsCounters,
    ctl: mpsc::Sender<ControlRequest>,
) {
    let stop = edges.shutdown.subscribe();
    match crate::status::server::bind(
        &cfg.global.control_socket,
        sources.clone(),
        backend.clone(),
        ctl,
        stop,
    )
    .await
    {
        Ok(task) => edges.spawn("control socket", task),
        Err(e) => error!("control socket unavailable (vipd status will not work): {e}"),
    }
    if let Some(listen) = cfg.global.listen {
        // The fleet task starts once the page that shows its results is served.
        let (fleet_tx, fleet_rx) = crate::fleet::task::channel();
        let fleet = cfg.fleet.is_some().then_some(fleet_rx);
        let m = crate::metrics::Sources {
            status: sources,
            health: fx.and_then(|f| f.health.clone()),
            latency: fx.map_or_else(vipd_health::engine::latency_histograms, |f| {
                f.latency.clone()
            }),
            ipvs: counters.clone(),
            director: fx.map(|f| f.counters.clone()).unwrap_or_default(),
            role: cfg.global.role,
            cache: Default::default(),
            fleet,
            backend,
        };
        match crate::metrics::bind(listen, m, edges.shutdown.subscribe()).await {
            Ok(task) => {
                edges.spawn("HTTP", task);
                if let Some(f) = cfg.fleet.clone() {
                    let stop = edges.shutdown.subscribe();
                    edges.spawn("fleet", crate::fleet::task::run(f, fleet_tx, stop));
                }
            }
            Err(e) => error!("{e}: /metrics and /healthcheck unavailable"),
        }
    }
}

/// Runs a backend until SIGTERM/SIGINT.
pub async fn backend(path: &Path, loaded: Loaded) -> Result<(), RunError> {
    let mut sig = Signals::install()?;
    let mut running = loaded.config;
    let started = Instant::now();
    let mut edges = Edges::new()?;
    let (mut node, mut health_rx, agent) =
        crate::backend::Node::start(&running, edges.shutdown.subscribe()).await?;
    // Observed before the agent answers anyone: a node that cannot receive tunnelled
    // traffic says so from its first answer.
    node.observe(&running).await;
    if let Some(agent) = agent {
        edges.spawn("agent listener", agent);
    }
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<ControlRequest>(8);
    let mut last_reload: Option<String> = None;
    let (status_tx, status_rx) = watch::channel(node.status(&running, started, &last_reload));
    serve_edges(
        &mut edges,
        &running,
        None,
        Some(status_rx),
        None,
        &IpvsCounters::default(),
        ctl_tx,
    )
    .await;
    let mut observe = tokio::time::interval(OBSERVE_EVERY);
    observe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resync = tokio::time::interval(running.global.resync_interval.get());
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await;
    crate::notify::ready("Backend role");
    let watchdog_every = crate::notify::watchdog_interval();
    let mut watchdog = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = watchdog.tick(), if watchdog_every.is_some() => crate::notify::watchdog(),
            _ = observe.tick() => {}
            _ = resync.tick() => node.resync(&running).await,
            r = next_health(&mut health_rx) => match r {
                Some(burst) => for u in burst { node.on_update(u) },
                None => return Err(RunError::TaskDied("health engine", "its update channel closed".into())),
            },
            (name, why) = edges.died() => {
                error!("the {name} task ended ({why}); stopping");
                return Err(RunError::TaskDied(name, why));
            }
            _ = sig.term.recv() => { info!("SIGTERM: stopping"); break; }
            _ = sig.int.recv() => { info!("SIGINT: stopping"); break; }
            _ = sig.usr1.recv() => node.resync(&running).await,
            _ = sig.hup.recv() => {
                let r = reload_backend(path, &mut running, &mut node).await;
                last_reload = Some(crate::error::reload_wire(&r).unwrap_or_else(|e| e));
            }
            Some(req) = ctl_rx.recv() => {
                let ControlRequest::Reload(reply) = req;
                let r = crate::error::reload_wire(&reload_backend(path, &mut running, &mut node).await);
                last_reload = Some(r.clone().unwrap_or_else(|e| e));
                let _ = reply.send(r);
            }
        }
        // Whatever happened (a tick, a resync, a local check, a reload): look again.
        node.observe(&running).await;
        status_tx.send_replace(node.status(&running, started, &last_reload));
    }
    edges.stop().await;
    crate::notify::stopping();
    info!("vipd stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    /// docs/ARCHITECTURE.md shows the diagram at the top of this file, unchanged.
    #[test]
    fn the_architecture_doc_shows_this_diagram() {
        let src = include_str!("tasks.rs");
        let start = src.find("//! ```text").expect("diagram start") + "//! ```text\n".len();
        let end = start + src[start..].find("//! ```").expect("diagram end");
        let diagram: Vec<&str> = src[start..end]
            .lines()
            .map(|l| {
                l.strip_prefix("//! ")
                    .or_else(|| l.strip_prefix("//!"))
                    .unwrap_or(l)
            })
            .collect();
        let doc = include_str!("../../../docs/ARCHITECTURE.md");
        assert!(
            doc.contains(&diagram.join("\n")),
            "docs/ARCHITECTURE.md must show the task diagram of crates/vipd/src/tasks.rs:\n{}",
            diagram.join("\n")
        );
    }
}

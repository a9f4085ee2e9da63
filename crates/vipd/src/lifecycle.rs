//! What the task loops of [`crate::tasks`] call that spawns nothing: signals, the open-files
//! limit, reloads and the stop sequence.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};
use vipd_config::Config;
use vipd_director::{Director, Input};

use crate::director::{Effects, Part};
use crate::error::{ReloadError, ReloadOutcome, SetupError};
use crate::status::Meta;
use crate::tasks::RunError;

pub(crate) struct Signals {
    pub term: tokio::signal::unix::Signal,
    pub int: tokio::signal::unix::Signal,
    pub hup: tokio::signal::unix::Signal,
    pub usr1: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Self, RunError> {
        let s = |k| signal(k).map_err(RunError::Signals);
        Ok(Signals {
            term: s(SignalKind::terminate())?,
            int: s(SignalKind::interrupt())?,
            hup: s(SignalKind::hangup())?,
            usr1: s(SignalKind::user_defined1())?,
        })
    }
}

/// The next health burst, or never when there is no engine yet.
pub(crate) async fn next_health(
    rx: &mut Option<mpsc::UnboundedReceiver<vipd_health::Update>>,
) -> Option<Vec<vipd_health::Update>> {
    let rx = match rx {
        Some(rx) => rx,
        None => return std::future::pending().await,
    };
    let first = rx.recv().await?;
    let mut burst = vec![first];
    while let Ok(u) = rx.try_recv() {
        burst.push(u);
    }
    Some(burst)
}

pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Descriptors kept for everything but probes (sockets, the config, logs, BGP, clients).
pub(crate) const FD_RESERVE: u64 = 512;

/// Raises the open-files limit and returns how many probes may run at once under it.
pub(crate) fn probe_limit() -> usize {
    let default = vipd_health::engine::Options::default().max_in_flight;
    match vipd_sys::process::raise_nofile_limit() {
        Ok(n) => {
            let probes = usize::try_from(n.saturating_sub(FD_RESERVE).max(64)).unwrap_or(default);
            if probes < default {
                warn!(
                    nofile = n,
                    probes,
                    "open-files limit: at most {probes} probes in flight (raise LimitNOFILE for more)"
                );
            }
            probes.min(default)
        }
        Err(e) => {
            warn!(error = %e, "cannot read the open-files limit; at most 512 probes in flight");
            512
        }
    }
}

/// SIGTERM: sessions dropped without NOTIFICATION under graceful restart, or closed with a
/// Cease; `withdraw_on_stop` withdraws every route first. IPVS is left as it is.
pub(crate) async fn stop(fx: &mut Effects, cfg: &Config) {
    crate::notify::stopping();
    let Some(s) = fx.speaker.take() else { return };
    let bfd = fx.bfd.get();
    if cfg.bgp.as_ref().is_some_and(|b| b.withdraw_on_stop) {
        info!("withdraw_on_stop: withdrawing every route before closing the sessions");
        if !s.withdraw_all(Duration::from_secs(5)).await {
            warn!("withdrawals not all written within 5 s; closing anyway");
        }
        // Retiring: BFD sessions end with AdminDown, not a timeout.
        if let Some(b) = bfd {
            b.set_peers(Vec::new()).await;
        }
        s.shutdown("vipd stopping (routes withdrawn)").await;
    } else if crate::bgp::graceful(cfg) {
        // Planned restart: BFD sessions slowed down and saved for the next process
        // (crate::bfd), so that no router declares vipd down meanwhile.
        if let Some(b) = bfd {
            let saved = b.prepare_restart(BFD_SLOW_DOWN_WAIT).await;
            crate::bfd::save(&cfg.global.state_dir, &saved);
        }
        info!(
            "closing BGP sessions without NOTIFICATION: routers keep the routes for the graceful restart time"
        );
        s.abort();
    } else {
        if let Some(b) = bfd {
            b.set_peers(Vec::new()).await;
        }
        s.shutdown("vipd stopping").await;
    }
}

/// How long a stop waits for the routers to acknowledge the slowed-down BFD sessions.
const BFD_SLOW_DOWN_WAIT: Duration = Duration::from_secs(2);

/// The one-line STATUS for systemd.
pub(crate) fn status_line(snap: &vipd_director::Snapshot) -> String {
    let announced = snap
        .services
        .iter()
        .filter(|s| s.route.is_announced())
        .count();
    format!(
        "{} services, {announced} announced{}",
        snap.services.len(),
        if snap.drained { ", DRAINED" } else { "" }
    )
}

/// Re-reads the file (SIGHUP or `vipd reload`). A refused file leaves everything running as
/// it was; an accepted one goes to the director as a diff.
pub(crate) async fn reload(
    path: &Path,
    director: &mut Director,
    fx: &mut Effects,
    meta: &watch::Sender<Meta>,
) -> Result<ReloadOutcome, ReloadError> {
    crate::notify::reloading();
    let outcome = match crate::cmd::run::load_for_reload(path, director.config()) {
        Err(e) => Err(e),
        // The same file: only what failed last time is done again.
        Ok(None) if fx.failed.is_empty() => Ok(ReloadOutcome::Unchanged),
        Ok(None) => {
            let running = director.config().clone();
            Ok(ReloadOutcome::of(
                fx.retry_failed(&running).await,
                Vec::new(),
            ))
        }
        Ok(Some(new)) => {
            let restart_needed = restart_keys(director.config(), &new);
            let outs = director.handle(Instant::now(), Input::Reload(Box::new(new)));
            let running = director.config().clone();
            // Parts that failed before and that this reload does not set anew: again.
            let superseded: Vec<Part> = outs.iter().filter_map(part_of).collect();
            let retry: Vec<_> = std::mem::take(&mut fx.failed)
                .into_iter()
                .filter(|(p, _)| !superseded.contains(p))
                .map(|(_, o)| o)
                .collect();
            let mut errors = fx.execute(retry, &running).await;
            errors.extend(fx.execute(outs, &running).await);
            meta.send_modify(|m| m.drain_file = running.global.drain_file.display().to_string());
            for k in &restart_needed {
                warn!(
                    key = k,
                    "reload: this key changed; it takes effect at the next restart"
                );
            }
            Ok(ReloadOutcome::of(errors, restart_needed))
        }
    };
    meta.send_modify(|m| {
        m.last_reload = Some(match &outcome {
            Ok(r) => r.to_string(),
            Err(e) => e.to_string(),
        })
    });
    fx.events.push(
        crate::events::Kind::Reload,
        outcome.is_err(),
        match &outcome {
            Ok(r) => format!("reload: {r}"),
            Err(e) => format!("reload refused: {e}"),
        },
    );
    crate::notify::ready(&match &outcome {
        Ok(_) => status_line(&director.snapshot()),
        Err(_) => "reload refused: the previous configuration runs (see the log)".to_string(),
    });
    outcome
}

pub(crate) async fn reload_backend(
    path: &Path,
    running: &mut Config,
    node: &mut crate::backend::Node,
) -> Result<ReloadOutcome, ReloadError> {
    crate::notify::reloading();
    let r = match crate::cmd::run::load_for_reload(path, running) {
        Err(e) => Err(e),
        Ok(None) => Ok(ReloadOutcome::Unchanged),
        Ok(Some(new)) => {
            let restart_needed = restart_keys(running, &new);
            *running = new;
            node.reload(running).await;
            Ok(ReloadOutcome::of(
                node.errors()
                    .iter()
                    .map(|e| SetupError::Backend(e.clone()))
                    .collect(),
                restart_needed,
            ))
        }
    };
    crate::notify::ready("Backend role");
    r
}

/// The part of the node an output sets up (see [`Effects::failed`]).
pub(crate) fn part_of(o: &vipd_director::Output) -> Option<Part> {
    match o {
        vipd_director::Output::Sysctls(_) => Some(Part::Sysctls),
        vipd_director::Output::Bgp(_) => Some(Part::Bgp),
        vipd_director::Output::Vips(_) => Some(Part::Vips),
        _ => None,
    }
}

/// Changed keys that a reload does not apply: they are read once, at start (listeners
/// bound, the state directory loaded, the IPVS task's timer set, the log set up).
pub(crate) fn restart_keys(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (&old.global, &new.global);
    let agent_listen = |c: &Config| {
        c.backend
            .as_ref()
            .and_then(|b| b.agent.as_ref())
            .map(|a| a.listen)
    };
    let bgp_listen = |c: &Config| c.bgp.as_ref().map(|b| b.listen);
    [
        (
            "global.control_socket",
            o.control_socket != n.control_socket,
        ),
        ("global.listen", o.listen != n.listen),
        ("global.state_dir", o.state_dir != n.state_dir),
        (
            "global.resync_interval",
            o.resync_interval != n.resync_interval,
        ),
        ("global.log_format", o.log_format != n.log_format),
        (
            "bgp.listen",
            bgp_listen(old).is_some() && bgp_listen(old) != bgp_listen(new),
        ),
        (
            "backend.agent.listen",
            agent_listen(old) != agent_listen(new),
        ),
        ("fleet", old.fleet != new.fleet),
    ]
    .into_iter()
    .filter_map(|(k, changed)| changed.then_some(k))
    .collect()
}

/// Some service has its own drain file.
pub(crate) fn has_service_drain(cfg: &Config) -> bool {
    cfg.services.iter().any(|s| s.announce.drain_file.is_some())
}

/// The services whose own drain file exists. A file that cannot be checked keeps the
/// service's last state (as the node's drain file does).
pub(crate) fn poll_service_drains(
    cfg: &Config,
    last: &std::collections::BTreeSet<String>,
) -> std::collections::BTreeSet<String> {
    let mut now = std::collections::BTreeSet::new();
    for s in &cfg.services {
        let Some(f) = &s.announce.drain_file else {
            continue;
        };
        let present = match f.try_exists() {
            Ok(p) => p,
            Err(e) => {
                warn!(service = %s.name, file = %f.display(), error = %e,
                    "cannot tell whether the service's drain file exists; its drain state unchanged");
                last.contains(&s.name)
            }
        };
        if present {
            now.insert(s.name.clone());
        }
    }
    now
}

#[cfg(test)]
mod tests {
    /// `[fleet]` is read when the fleet task starts: a reload that changes it says so.
    #[test]
    fn a_changed_fleet_takes_effect_at_the_next_restart() {
        let src = "[[service]]\nname = \"web\"\nvip = \"198.51.100.1\"\nport = 80\n\
                   [[service.real_server]]\naddress = \"192.0.2.10\"\n\
                   [fleet]\npeers = [\"http://192.0.2.2:9180\"]\n";
        let old = vipd_config::load_str(src, "a.toml").unwrap().config;
        let mut new = old.clone();
        assert!(super::restart_keys(&old, &new).is_empty());
        if let Some(f) = new.fleet.as_mut() {
            f.peers.push("http://192.0.2.3:9180".into());
        }
        assert_eq!(super::restart_keys(&old, &new), ["fleet"]);
    }
}

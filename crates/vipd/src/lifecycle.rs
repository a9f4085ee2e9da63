//! What the task loops of [`crate::tasks`] call that spawns nothing: signals, the open-files
//! limit, reloads and the stop sequence.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};
use vipd_config::Config;
use vipd_director::{Director, Input};

use crate::director::Effects;
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
    if cfg.bgp.as_ref().is_some_and(|b| b.withdraw_on_stop) {
        info!("withdraw_on_stop: withdrawing every route before closing the sessions");
        if !s.withdraw_all(Duration::from_secs(5)).await {
            warn!("withdrawals not all written within 5 s; closing anyway");
        }
        s.shutdown("vipd stopping (routes withdrawn)").await;
    } else if crate::bgp::graceful(cfg) {
        info!(
            "closing BGP sessions without NOTIFICATION: routers keep the routes for the graceful restart time"
        );
        s.abort();
    } else {
        s.shutdown("vipd stopping").await;
    }
}

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
        Ok(None) => Ok(ReloadOutcome::Unchanged),
        Ok(Some(new)) => {
            let outs = director.handle(Instant::now(), Input::Reload(Box::new(new)));
            let running = director.config().clone();
            let errors = fx.execute(outs, &running).await;
            meta.send_modify(|m| m.drain_file = running.global.drain_file.display().to_string());
            Ok(if errors.is_empty() {
                ReloadOutcome::Applied
            } else {
                ReloadOutcome::AppliedExcept(errors)
            })
        }
    };
    meta.send_modify(|m| {
        m.last_reload = Some(match &outcome {
            Ok(r) => r.to_string(),
            Err(e) => e.to_string(),
        })
    });
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
            *running = new;
            node.reload(running).await;
            Ok(if node.errors().is_empty() {
                ReloadOutcome::Applied
            } else {
                ReloadOutcome::AppliedExcept(
                    node.errors()
                        .iter()
                        .map(|e| SetupError::Backend(e.clone()))
                        .collect(),
                )
            })
        }
    };
    crate::notify::ready("Backend role");
    r
}

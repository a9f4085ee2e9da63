//! `[service.hooks]`: programs run on a service's transitions.
//!
//! The director decides and its outputs are executed first (routes, IPVS); a hook is then
//! handed to this task over a bounded channel without waiting (a full queue drops the hook
//! with a warning: a decision never waits for a script). The task runs the hooks of one object
//! (a service's quorum, one real server) one at a time in the order of the transitions, those
//! of different objects side by side (at most [`MAX_RUNNING`]), each killed with its process
//! group once its timeout passes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};
use vipd_config::{Config, Hooks as HookConfig, Service};
use vipd_director::Event;

/// Hooks waiting to run, at most.
const QUEUE: usize = 1024;
/// Hooks running at once, at most.
pub const MAX_RUNNING: usize = 8;
/// The whole PATH a hook gets.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One hook to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// What it is about (`web`, `web/10.0.0.1:80`): hooks of one object run in order.
    pub object: String,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Its environment besides PATH.
    pub env: Vec<(&'static str, String)>,
    /// Killed after this long.
    pub timeout: Duration,
}

/// Where the director's loop sends hooks.
#[derive(Clone, Debug)]
pub struct Hooks {
    tx: mpsc::Sender<Job>,
}

/// The hook for `e`, when its service has one.
pub fn job_for(e: &Event, cfg: &Config) -> Option<Job> {
    let (service, event, object, mut env): (&str, &str, String, Vec<(&'static str, String)>) =
        match e {
            // A weight change of a server already up is not a transition of it.
            Event::ServerUp {
                server,
                was: None,
                weight,
                reason,
            } => (
                &server.service,
                "real_server_up",
                server.to_string(),
                vec![
                    ("VIPD_RS_ADDRESS", server.addr.to_string()),
                    ("VIPD_RS_PORT", server.port.to_string()),
                    ("VIPD_RS_WEIGHT", weight.to_string()),
                    ("VIPD_REASON", reason.clone()),
                ],
            ),
            Event::ServerDown { server, reason } => (
                &server.service,
                "real_server_down",
                server.to_string(),
                vec![
                    ("VIPD_RS_ADDRESS", server.addr.to_string()),
                    ("VIPD_RS_PORT", server.port.to_string()),
                    ("VIPD_REASON", reason.clone()),
                ],
            ),
            Event::Quorum {
                service,
                up,
                healthy_weight,
                quorum,
            } => (
                service,
                if *up { "quorum_up" } else { "quorum_down" },
                service.clone(),
                vec![
                    ("VIPD_HEALTHY_WEIGHT", healthy_weight.to_string()),
                    ("VIPD_QUORUM", quorum.to_string()),
                    ("VIPD_REASON", e.to_string()),
                ],
            ),
            _ => return None,
        };
    let svc: &Service = cfg.services.iter().find(|s| s.name == service)?;
    let h: &HookConfig = svc.hooks.as_ref()?;
    let argv = match event {
        "real_server_up" => h.real_server_up.as_ref(),
        "real_server_down" => h.real_server_down.as_ref(),
        "quorum_up" => h.quorum_up.as_ref(),
        _ => h.quorum_down.as_ref(),
    }?;
    env.extend([
        ("VIPD_EVENT", event.to_string()),
        ("VIPD_SERVICE", svc.name.clone()),
        ("VIPD_VIP", svc.vip.to_string()),
        ("VIPD_PORT", svc.port.to_string()),
        ("VIPD_PROTOCOL", svc.protocol.to_string()),
    ]);
    Some(Job {
        object,
        argv: argv.clone(),
        env,
        timeout: h.timeout.get(),
    })
}

impl Hooks {
    /// The sender and the task that runs the hooks (spawned by `tasks.rs`).
    pub fn new(
        shutdown: watch::Receiver<bool>,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Hooks { tx }, run(rx, shutdown))
    }

    /// Queues the hook of `e`, if any, without waiting.
    pub fn dispatch(&self, e: &Event, cfg: &Config) {
        let Some(job) = job_for(e, cfg) else { return };
        if let Err(err) = self.tx.try_send(job) {
            warn!(error = %err, "hook not run: {QUEUE} hooks are waiting already ({e})");
        }
    }
}

/// The task: per-object queues, at most [`MAX_RUNNING`] hooks at once.
async fn run(mut rx: mpsc::Receiver<Job>, mut shutdown: watch::Receiver<bool>) {
    let mut queues: BTreeMap<String, VecDeque<Job>> = BTreeMap::new();
    let mut busy: BTreeSet<String> = BTreeSet::new();
    let mut running: JoinSet<()> = JoinSet::new();
    // Which object each running hook is for: a hook whose task panicked must still free it.
    let mut of_task: BTreeMap<tokio::task::Id, String> = BTreeMap::new();
    loop {
        tokio::select! {
            job = rx.recv() => match job {
                Some(j) => queues.entry(j.object.clone()).or_default().push_back(j),
                None => break,
            },
            Some(done) = running.join_next_with_id() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        warn!(error = %e, "a hook's task failed");
                        e.id()
                    }
                };
                if let Some(object) = of_task.remove(&id) {
                    busy.remove(&object);
                }
            }
            _ = shutdown.changed() => break,
        }
        // Start what can start: the next hook of each idle object, within the limit.
        let ready: Vec<String> = queues
            .iter()
            .filter(|(o, q)| !q.is_empty() && !busy.contains(*o))
            .map(|(o, _)| o.clone())
            .collect();
        for object in ready {
            if running.len() >= MAX_RUNNING {
                break;
            }
            let Some(job) = queues.get_mut(&object).and_then(VecDeque::pop_front) else {
                continue;
            };
            busy.insert(object.clone());
            let h = running.spawn(async move {
                // (Its outcome is logged by `execute`.)
                let _ = execute(&job).await;
            });
            of_task.insert(h.id(), object);
        }
        queues.retain(|_, q| !q.is_empty());
    }
    // At stop, hooks still running are killed with their process groups (kill_on_drop and
    // the group kill in `execute` when its future is dropped are not enough for daemons).
    running.shutdown().await;
}

/// Runs one hook to its end or its timeout.
pub async fn execute(job: &Job) -> Result<std::process::ExitStatus, String> {
    let what = format!("hook {:?}", job.argv.join(" "));
    let Some(program) = job.argv.first() else {
        return Err(format!("{what}: empty"));
    };
    if let Err(why) = vipd_health::probe::exec_security(std::path::Path::new(program)) {
        warn!("{what} not run: {why}");
        return Err(why);
    }
    let mut cmd = std::process::Command::new(program);
    cmd.args(&job.argv[1..])
        .env_clear()
        .env("PATH", PATH)
        .envs(job.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = match tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            warn!("{what} not run: {e}");
            return Err(e.to_string());
        }
    };
    let pgid = child.id();
    match tokio::time::timeout(job.timeout, child.wait()).await {
        Ok(Ok(st)) => {
            if let Some(g) = pgid {
                let _ = vipd_sys::process::kill_group(g);
            }
            if st.success() {
                info!("{what} ({}): done", job.object);
            } else {
                warn!("{what} ({}): {st}", job.object);
            }
            Ok(st)
        }
        Ok(Err(e)) => Err(format!("{what}: wait: {e}")),
        Err(_) => {
            if let Some(g) = pgid {
                let _ = vipd_sys::process::kill_group(g);
            }
            let _ = child.wait().await;
            warn!(
                "{what} ({}): still running after {:?}, killed",
                job.object, job.timeout
            );
            Err(format!("timeout after {:?}", job.timeout))
        }
    }
}

#[cfg(test)]
#[path = "hooks_tests.rs"]
mod tests;

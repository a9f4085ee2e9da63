//! The scheduler: one task owns every job's state machine and timer; probes run as
//! short-lived tasks, at most `max_in_flight` at once; results come back to the owner, which
//! feeds the state machine and sends an [`Update`] on each transition.
//!
//! - First runs are spread uniformly over each check's interval, and every later interval is
//!   jittered, so thousands of checks never fire in lockstep (at start or after a reload).
//! - A reload ([`Handle::reload`]) keeps the jobs whose key is unchanged (state, counters,
//!   history, timer), starts new ones spread over their interval, drops the others; a result
//!   of a dropped job still in flight is ignored (generation check).
//! - Damping holds end at the job's next result after the penalty (at most one interval late).

mod jobs;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

pub use jobs::{JobSpec, Jobs, ServerRef, jobs, key};

use crate::fsm::{self, Fsm, State, Transition};
use crate::outcome::Outcome;
use crate::probe::Probe;

/// Scheduler settings.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Probes running at once, at most. Due probes beyond it wait for a free slot.
    pub max_in_flight: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_in_flight: 4096,
        }
    }
}

/// A change of one job's visible state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The job.
    pub key: Arc<str>,
    /// Check name (for logs).
    pub name: Arc<str>,
    /// Target.
    pub target: SocketAddr,
    /// State now.
    pub state: State,
    /// Drained.
    pub drain: bool,
    /// Agent/file weight.
    pub weight_pct: Option<u32>,
    /// Why.
    pub reason: String,
    /// Latency of the probe that caused it.
    pub latency: Duration,
}

/// What status pages and metrics see of a job.
#[derive(Clone, Debug)]
pub struct CheckStatus {
    /// Key.
    pub key: Arc<str>,
    /// Check name.
    pub name: Arc<str>,
    /// Kind (`http`, `tcp`...).
    pub kind: &'static str,
    /// Target.
    pub target: SocketAddr,
    /// Users.
    pub users: Vec<ServerRef>,
    /// State.
    pub state: State,
    /// Drained.
    pub drain: bool,
    /// Agent/file weight.
    pub weight_pct: Option<u32>,
    /// Last result.
    pub last: Option<Outcome>,
    /// Last results, oldest first.
    pub history: Vec<(bool, String)>,
    /// Transitions so far.
    pub transitions: u64,
    /// Results so far.
    pub results: u64,
    /// Damped until (from now).
    pub damped_for: Option<Duration>,
}

/// What a reload did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReloadStats {
    /// Unchanged jobs kept with their state.
    pub kept: usize,
    /// New or changed jobs started.
    pub started: usize,
    /// Jobs dropped.
    pub stopped: usize,
}

enum Cmd {
    Reload(Vec<JobSpec>, oneshot::Sender<ReloadStats>),
    Snapshot(oneshot::Sender<Vec<CheckStatus>>),
}

/// Talks to the scheduler task. Dropping every handle stops it.
#[derive(Clone, Debug)]
pub struct Handle {
    tx: mpsc::Sender<Cmd>,
}

impl Handle {
    /// Replaces the set of jobs (see the module documentation).
    pub async fn reload(&self, jobs: Vec<JobSpec>) -> ReloadStats {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Reload(jobs, tx)).await.is_err() {
            return ReloadStats::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Every job's status.
    pub async fn snapshot(&self) -> Vec<CheckStatus> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Snapshot(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

/// Starts the scheduler with `jobs`. Jobs whose probe cannot be built (a body regex that does
/// not compile) are reported as down with the reason, not dropped silently.
pub fn spawn(jobs: Vec<JobSpec>, opts: Options) -> (Handle, mpsc::UnboundedReceiver<Update>) {
    let (tx, rx) = mpsc::channel(16);
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let mut s = Scheduler {
        jobs: BTreeMap::new(),
        heap: BinaryHeap::new(),
        waiting: VecDeque::new(),
        inflight: JoinSet::new(),
        next_gen: 0,
        seq: 0,
        opts,
        updates: up_tx,
    };
    s.reload(jobs);
    tokio::spawn(s.run(rx));
    (Handle { tx }, up_rx)
}

struct Job {
    spec: JobSpec,
    probe: Result<Arc<Probe>, String>,
    fsm: Fsm,
    generation: u64,
    running: bool,
}

type Due = Reverse<(Instant, u64, Arc<str>, u64)>;

struct Scheduler {
    jobs: BTreeMap<Arc<str>, Job>,
    heap: BinaryHeap<Due>,
    waiting: VecDeque<(Arc<str>, u64)>,
    inflight: JoinSet<(Arc<str>, u64, Outcome)>,
    next_gen: u64,
    seq: u64,
    opts: Options,
    updates: mpsc::UnboundedSender<Update>,
}

fn params(c: &vipd_config::CheckDef) -> fsm::Params {
    fsm::Params {
        rise: c.rise.max(1),
        fall: c.fall.max(1),
        interval: c.interval.get(),
        fast_interval: c.fast_interval.map_or(c.interval.get(), |d| d.get()),
        jitter_pct: c.jitter.0,
        damping: c.damping.map(|d| fsm::Damping {
            window: d.window.get(),
            max_flaps: d.max_flaps,
            penalty: d.penalty.get(),
        }),
    }
}

impl Scheduler {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            let next = self.heap.peek().map(|Reverse((t, ..))| *t);
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Reload(jobs, reply)) => {
                        let stats = self.reload(jobs);
                        let _ = reply.send(stats);
                    }
                    Some(Cmd::Snapshot(reply)) => {
                        let _ = reply.send(self.snapshot());
                    }
                    None => break,
                },
                Some(res) = self.inflight.join_next(), if !self.inflight.is_empty() => {
                    match res {
                        Ok((key, generation, outcome)) => self.on_result(key, generation, outcome),
                        Err(e) => warn!(error = %e, "a health probe task failed"),
                    }
                    self.start_waiting();
                }
                () = sleep_until(next), if next.is_some() => self.on_due(),
            }
        }
        self.inflight.abort_all();
    }

    fn schedule(&mut self, key: Arc<str>, generation: u64, at: Instant) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, key, generation)));
    }

    fn reload(&mut self, specs: Vec<JobSpec>) -> ReloadStats {
        let mut stats = ReloadStats::default();
        let mut new = BTreeMap::new();
        let now = Instant::now();
        for spec in specs {
            if let Some(mut job) = self.jobs.remove(&spec.key) {
                job.spec.users = spec.users;
                job.spec.name = spec.name;
                new.insert(spec.key.clone(), job);
                stats.kept += 1;
                continue;
            }
            stats.started += 1;
            self.next_gen += 1;
            let probe = Probe::new(&spec.check, spec.server).map(Arc::new);
            if let Err(e) = &probe {
                warn!(check = %spec.name, target = %spec.server, error = %e, "health check cannot run; its servers count as down");
            }
            let p = params(&spec.check);
            let first = now + p.interval.mul_f64(fastrand::f64());
            let key = spec.key.clone();
            let generation = self.next_gen;
            new.insert(
                key.clone(),
                Job {
                    spec,
                    probe,
                    fsm: Fsm::new(p),
                    generation,
                    running: false,
                },
            );
            self.schedule(key, generation, first);
        }
        stats.stopped = self.jobs.len();
        self.jobs = new;
        self.waiting
            .retain(|(k, g)| self.jobs.get(k).is_some_and(|j| j.generation == *g));
        if stats.started + stats.stopped > 0 {
            info!(
                kept = stats.kept,
                started = stats.started,
                stopped = stats.stopped,
                "health checks loaded"
            );
        }
        stats
    }

    fn on_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((t, ..))) = self.heap.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((_, _, key, generation))) = self.heap.pop() else {
                break;
            };
            if self
                .jobs
                .get(&key)
                .is_none_or(|j| j.generation != generation)
            {
                continue; // dropped or replaced by a reload
            }
            if self.inflight.len() < self.opts.max_in_flight {
                self.start(key, generation);
            } else {
                self.waiting.push_back((key, generation));
            }
        }
    }

    fn start_waiting(&mut self) {
        while self.inflight.len() < self.opts.max_in_flight {
            let Some((key, generation)) = self.waiting.pop_front() else {
                break;
            };
            if self
                .jobs
                .get(&key)
                .is_some_and(|j| j.generation == generation)
            {
                self.start(key, generation);
            }
        }
    }

    fn start(&mut self, key: Arc<str>, generation: u64) {
        let Some(job) = self.jobs.get_mut(&key) else {
            return;
        };
        if job.running {
            return;
        }
        job.running = true;
        match &job.probe {
            Ok(p) => {
                let p = p.clone();
                self.inflight.spawn(async move {
                    let o = p.run().await;
                    (key, generation, o)
                });
            }
            Err(e) => {
                let o = Outcome::fail(e.clone(), Duration::ZERO);
                self.inflight.spawn(async move { (key, generation, o) });
            }
        }
    }

    fn on_result(&mut self, key: Arc<str>, generation: u64, o: Outcome) {
        let Some(job) = self.jobs.get_mut(&key) else {
            return;
        };
        if job.generation != generation {
            return;
        }
        job.running = false;
        let now = Instant::now();
        let latency = o.latency;
        let t = job.fsm.on_result(now.into_std(), o);
        let delay = job.fsm.next_delay(fastrand::f64());
        if let Some(Transition::Changed { state, reason }) = t {
            let u = Update {
                key: key.clone(),
                name: job.spec.name.clone(),
                target: job.spec.server,
                state,
                drain: job.fsm.drain(),
                weight_pct: job.fsm.weight_pct(),
                reason,
                latency,
            };
            let _ = self.updates.send(u);
        }
        self.schedule(key, generation, now + delay);
    }

    fn snapshot(&self) -> Vec<CheckStatus> {
        let now = std::time::Instant::now();
        self.jobs
            .values()
            .map(|j| CheckStatus {
                key: j.spec.key.clone(),
                name: j.spec.name.clone(),
                kind: j.spec.check.kind.as_str(),
                target: j.spec.server,
                users: j.spec.users.iter().cloned().collect(),
                state: j.fsm.state(),
                drain: j.fsm.drain(),
                weight_pct: j.fsm.weight_pct(),
                last: j.fsm.last().cloned(),
                history: j.fsm.history().cloned().collect(),
                transitions: j.fsm.transitions(),
                results: j.fsm.results(),
                damped_for: j
                    .fsm
                    .damped_until()
                    .map(|t| t.saturating_duration_since(now)),
            })
            .collect()
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

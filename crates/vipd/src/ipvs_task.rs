//! The IPVS task: the only owner of the IPVS netlink socket.
//!
//! It keeps a [`KernelView`]: the last dump, updated with every write the kernel
//! acknowledged. An intent from the director ([`IpvsIntent`]) is planned against that view
//! for the services it names only, so a health-driven weight change is one write with no
//! dump first. The periodic resync (and SIGUSR1) dumps the kernel and plans everything,
//! which repairs changes made behind vipd's back; any failed write, or a write the view
//! cannot explain, also makes it dump and re-plan once at once. After each round it tells
//! the director which services are in the kernel as desired and which failed
//! ([`IpvsFeedback`]): a VIP is announced only for what the kernel really holds.
//!
//! Readers (`vipd status`, `/metrics`) get the view from a `watch` channel: a scrape never
//! makes a netlink request.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};
use vipd_director::{IpvsFeedback, IpvsIntent};
use vipd_ipvs::{IpvsClient, ServiceKey, Timeouts};
use vipd_reconcile::{DesiredService, KernelView, Plan, plan_some};

use crate::owned::OwnedStore;

/// Plans up to this size log every operation at info level.
const VERBOSE_OPS: usize = 32;

/// What readers see of the kernel.
#[derive(Clone, Debug, Default)]
pub struct IpvsView {
    /// The kernel's services as vipd last saw them (counters as of the last dump).
    pub kernel: Arc<KernelView>,
    /// When the last dump completed.
    pub dumped_at: Option<Instant>,
    /// The last dump's error, if it failed.
    pub error: Option<String>,
}

/// Reconciliation counters for `/metrics` (shared atomics: the task counts, the endpoint
/// reads).
#[derive(Clone, Debug, Default)]
pub struct IpvsCounters {
    /// Reconciliations run.
    pub reconciles: prometheus_client::metrics::counter::Counter,
    /// IPVS writes made.
    pub writes: prometheus_client::metrics::counter::Counter,
    /// IPVS writes (or dumps) that failed.
    pub errors: prometheus_client::metrics::counter::Counter,
    /// Full dumps of the kernel.
    pub dumps: prometheus_client::metrics::counter::Counter,
}

/// Why a reconciliation runs (logged; a director's own change is not drift).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// A new intent from the director.
    Configuration,
    /// SIGUSR1.
    Requested,
    /// Every `resync_interval`.
    Periodic,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Why::Configuration => "configuration",
            Why::Requested => "resync requested",
            Why::Periodic => "periodic resync",
        })
    }
}

/// What the task is asked to do besides intents.
#[derive(Debug)]
pub enum Request {
    /// Dump and repair now (SIGUSR1).
    Resync,
}

/// The task's state.
#[derive(Debug)]
pub struct IpvsTask {
    client: IpvsClient,
    owned: OwnedStore,
    view: KernelView,
    desired: BTreeMap<ServiceKey, DesiredService>,
    timeouts: Option<Timeouts>,
    timeouts_applied: Option<Timeouts>,
    seq: u64,
    /// Resyncs in a row whose dump failed.
    dump_failures: u32,
    resync: Duration,
    last_foreign: Vec<ServiceKey>,
    counters: IpvsCounters,
    publish: watch::Sender<IpvsView>,
    feedback: mpsc::Sender<IpvsFeedback>,
}

/// The outcome of one round, for the logs.
#[derive(Debug, Default)]
struct Round {
    writes: usize,
    failed: BTreeMap<ServiceKey, String>,
    stale: bool,
}

impl IpvsTask {
    /// Opens the task over a connected client: dumps the kernel once (the view, and what a
    /// restart carries over). Returns the task and that dump.
    pub async fn start(
        mut client: IpvsClient,
        owned: OwnedStore,
        resync: Duration,
        counters: IpvsCounters,
        feedback: mpsc::Sender<IpvsFeedback>,
    ) -> Result<
        (
            Self,
            Vec<(vipd_ipvs::Service, Vec<vipd_ipvs::Dest>)>,
            watch::Receiver<IpvsView>,
        ),
        vipd_ipvs::IpvsError,
    > {
        let dump = client.dump().await?;
        counters.dumps.inc();
        let view = KernelView::from_dump(dump.clone());
        let (publish, rx) = watch::channel(IpvsView {
            kernel: Arc::new(view.clone()),
            dumped_at: Some(Instant::now()),
            error: None,
        });
        Ok((
            IpvsTask {
                client,
                owned,
                view,
                desired: BTreeMap::new(),
                timeouts: None,
                timeouts_applied: None,
                seq: 0,
                dump_failures: 0,
                resync,
                last_foreign: Vec::new(),
                counters,
                publish,
                feedback,
            },
            dump,
            rx,
        ))
    }

    /// Serves intents and resyncs until both channels close. The kernel is left as it is on
    /// exit: vipd never flushes.
    pub async fn run(
        mut self,
        mut intents: mpsc::UnboundedReceiver<IpvsIntent>,
        mut requests: mpsc::Receiver<Request>,
    ) {
        let mut tick = tokio::time::interval(self.resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                i = intents.recv() => match i {
                    None => break,
                    Some(i) => {
                        // Take every intent already queued: one round for a burst.
                        let mut batch = vec![i];
                        while let Ok(i) = intents.try_recv() {
                            batch.push(i);
                        }
                        self.intents(batch).await;
                    }
                },
                Some(Request::Resync) = requests.recv() => self.resync_now(Why::Requested).await,
                _ = tick.tick() => self.resync_now(Why::Periodic).await,
            }
        }
        info!("IPVS task stopped; kernel state left in place");
    }

    async fn intents(&mut self, batch: Vec<IpvsIntent>) {
        let mut touched: BTreeSet<ServiceKey> = BTreeSet::new();
        let mut gone: BTreeSet<ServiceKey> = BTreeSet::new();
        let mut full = false;
        for i in batch {
            self.seq = i.seq;
            self.timeouts = i.timeouts.as_ref().map(crate::director::timeouts);
            if i.full {
                full = true;
                gone.extend(self.desired.keys().copied());
                self.desired.clear();
            }
            for d in i.services {
                gone.remove(&d.service.key);
                touched.insert(d.service.key);
                self.desired.insert(d.service.key, d);
            }
            for k in i.removed {
                touched.remove(&k);
                self.desired.remove(&k);
                gone.insert(k);
            }
        }
        if full {
            // The first programming: every managed service, against the start dump.
            self.reconcile(Why::Configuration, None).await;
            return;
        }
        let scope = (touched, gone);
        self.reconcile(Why::Configuration, Some(&scope)).await;
    }

    async fn resync_now(&mut self, why: Why) {
        // Test hook (crates/vipd/tests/kernel_faults.rs): a panic in this task on demand, to
        // show that its death ends vipd. Inert unless the variable is set.
        if let Some(f) = std::env::var_os("VIPD_TEST_PANIC_FILE") {
            if std::path::Path::new(&f).exists() {
                panic!("injected: {} exists", std::path::Path::new(&f).display());
            }
        }
        // Timeouts changed behind vipd's back are repaired too.
        self.timeouts_applied = None;
        if self.dump().await {
            self.dump_failures = 0;
            self.reconcile(why, None).await;
        } else if self.dump_failures == 0 {
            // One failed dump (after a reconnect attempt) says little about the kernel's
            // forwarding state: try again at the next resync before calling it unknown.
            self.dump_failures = 1;
        } else {
            let error = self.publish.borrow().error.clone().unwrap_or_default();
            let failed = self
                .desired
                .keys()
                .map(|k| (*k, Err(format!("IPVS state unknown: {error}"))))
                .collect();
            self.send_feedback(failed).await;
        }
    }

    /// Replaces the view with a fresh dump; false (and the error published) if it failed.
    async fn dump(&mut self) -> bool {
        self.counters.dumps.inc();
        let mut r = self.client.dump().await;
        if let Err(vipd_ipvs::IpvsError::Transport { .. }) = &r {
            // The connection itself failed (its driver task ends on a send error): open a
            // new one rather than failing every resync from now on.
            match IpvsClient::connect().await {
                Ok(c) => {
                    warn!("IPVS netlink connection failed; reconnected");
                    self.client = c;
                    self.counters.dumps.inc();
                    r = self.client.dump().await;
                }
                Err(e) => warn!(error = %e, "IPVS netlink connection failed; cannot reconnect yet"),
            }
        }
        match r {
            Ok(d) => {
                self.view = KernelView::from_dump(d);
                self.publish_view(None);
                true
            }
            Err(e) => {
                error!(error = %e, "IPVS dump failed; will retry at the next resync");
                self.counters.errors.inc();
                self.publish_view(Some(e.to_string()));
                false
            }
        }
    }

    fn publish_view(&self, error: Option<String>) {
        let dumped = error.is_none();
        let kernel = Arc::new(self.view.clone());
        self.publish.send_modify(|v| {
            v.kernel = kernel;
            if dumped {
                v.dumped_at = Some(Instant::now());
            }
            v.error = error;
        });
    }

    fn plan(&self, scope: Option<&(BTreeSet<ServiceKey>, BTreeSet<ServiceKey>)>) -> Plan {
        match scope {
            None => {
                // Everything: the desired services, and the kernel's that are not desired.
                let all: Vec<&DesiredService> = self.desired.values().collect();
                let gone: Vec<ServiceKey> = self
                    .view
                    .iter()
                    .map(|(s, _)| s.key)
                    .filter(|k| !self.desired.contains_key(k))
                    .collect();
                plan_some(&all, &gone, &self.view, self.owned.keys())
            }
            Some((touched, gone)) => {
                let changed: Vec<&DesiredService> =
                    touched.iter().filter_map(|k| self.desired.get(k)).collect();
                let gone: Vec<ServiceKey> = gone.iter().copied().collect();
                plan_some(&changed, &gone, &self.view, self.owned.keys())
            }
        }
    }

    /// Plans against the view, writes, and reports. `scope`: (services to make as
    /// desired, services to delete); None: everything.
    async fn reconcile(
        &mut self,
        why: Why,
        scope: Option<&(BTreeSet<ServiceKey>, BTreeSet<ServiceKey>)>,
    ) {
        self.counters.reconciles.inc();
        let mut writes = self.sync_timeouts().await;
        let mut round = self.execute(why, self.plan(scope), false).await;
        if round.stale || !round.failed.is_empty() {
            // EEXIST/ENOENT races, or a view the kernel contradicts: look again, once.
            if self.dump().await {
                writes += round.writes;
                round = self.execute(why, self.plan(scope), true).await;
            }
        }
        writes += round.writes;
        let keys: Vec<ServiceKey> = match scope {
            None => self.desired.keys().copied().collect(),
            Some((touched, _)) => touched.iter().copied().collect(),
        };
        let report = keys
            .into_iter()
            .map(|k| (k, round.failed.get(&k).cloned().map_or(Ok(()), Err)))
            .collect();
        // The director first (it may announce now), then the readers.
        self.send_feedback(report).await;
        self.publish_view_keep_dump();
        if writes > 0 || !round.failed.is_empty() || scope.is_none() {
            info!(
                reason = %why,
                writes,
                failed = round.failed.len(),
                foreign = self.last_foreign.len(),
                "reconcile: {writes} writes"
            );
        }
    }

    fn publish_view_keep_dump(&self) {
        let kernel = Arc::new(self.view.clone());
        self.publish.send_modify(|v| v.kernel = kernel);
    }

    async fn send_feedback(&self, services: Vec<(ServiceKey, Result<(), String>)>) {
        // The director drains this channel in its loop; it outlives this task.
        let _ = self
            .feedback
            .send(IpvsFeedback {
                seq: self.seq,
                services,
            })
            .await;
    }

    async fn execute(&mut self, why: Why, p: Plan, retried: bool) -> Round {
        if p.foreign != self.last_foreign {
            for k in &p.foreign {
                info!(service = %k, "foreign IPVS service (not managed by vipd), left untouched");
            }
            self.last_foreign = p.foreign.clone();
        }
        for d in &p.drift {
            if why == Why::Configuration && !retried {
                debug!(reason = %why, "{d}");
            } else {
                warn!(reason = %why, "IPVS differs from the desired state: {d}");
            }
        }
        // The record of what vipd owns is written BEFORE creating (a crash in between must
        // not leave a service nobody claims) and pruned AFTER deleting.
        if self.desired.keys().any(|k| !self.owned.keys().contains(k)) {
            let mut owned: BTreeSet<ServiceKey> = self.owned.keys().clone();
            owned.extend(self.desired.keys().copied());
            self.save_owned(owned);
        }
        let mut round = Round::default();
        if p.ops.is_empty() {
            self.prune_owned();
            return round;
        }
        let results = self.client.apply_batched(&p.ops).await;
        // Test hook (crates/vipd/tests/kernel_programmed.rs): die right after the kernel
        // acknowledged a service creation, before anything else is written, as a SIGKILL
        // there would. Inert unless the variable is set and its file exists.
        if let Some(f) = std::env::var_os("VIPD_TEST_ABORT_AFTER_CREATE_FILE") {
            if std::path::Path::new(&f).exists()
                && p.ops
                    .iter()
                    .any(|o| matches!(o, vipd_ipvs::Op::NewService(_)))
            {
                std::process::abort();
            }
        }
        round.writes = p.ops.len();
        self.counters.writes.inc_by(p.ops.len() as u64);
        // Steady-state changes are a handful of operations, each worth a line; a
        // programming from empty can be tens of thousands, logged at debug level.
        let verbose = p.ops.len() <= VERBOSE_OPS;
        for (op, r) in p.ops.iter().zip(results) {
            match r {
                Ok(()) => {
                    if verbose {
                        info!(op = %op, "IPVS");
                    } else {
                        debug!(op = %op, "IPVS");
                    }
                    if let Err(e) = self.view.apply(op) {
                        warn!(op = %op, error = %e, "the kernel accepted what vipd's view of it cannot explain; dumping again");
                        round.stale = true;
                    }
                }
                Err(e) => {
                    self.counters.errors.inc();
                    let next = if retried {
                        "retrying at the next resync"
                    } else {
                        "re-planning from a fresh dump"
                    };
                    error!(op = %op, error = %e, "IPVS operation failed; {next}");
                    round
                        .failed
                        .entry(*op.service())
                        .or_insert_with(|| format!("{op}: {}", kernel_error(&e)));
                }
            }
        }
        self.prune_owned();
        round
    }

    fn save_owned(&mut self, keys: BTreeSet<ServiceKey>) {
        if let Err(e) = self.owned.save(keys) {
            error!(error = %e, "cannot record the IPVS services vipd owns; a service removed from the config may then be left in the kernel");
        }
    }

    /// Owned = desired, plus what the kernel still holds that vipd owned (a failed delete).
    fn prune_owned(&mut self) {
        let keep: BTreeSet<ServiceKey> = self
            .owned
            .keys()
            .iter()
            .copied()
            .filter(|k| self.desired.contains_key(k) || self.view.get(k).is_some())
            .collect();
        self.save_owned(keep);
    }

    /// Makes the connection timeouts what the config says; returns the writes made.
    async fn sync_timeouts(&mut self) -> usize {
        let Some(want) = self.timeouts else { return 0 };
        if self.timeouts_applied == Some(want) {
            return 0;
        }
        match self.client.timeouts().await {
            Ok(have) if have == want => {
                self.timeouts_applied = Some(want);
                0
            }
            Ok(have) => match self.client.set_timeouts(want).await {
                Ok(()) => {
                    info!(old = ?have, new = ?want, "IPVS connection timeouts set");
                    self.timeouts_applied = Some(want);
                    1
                }
                Err(e) => {
                    error!(error = %e, "cannot set the IPVS connection timeouts; retrying at the next resync");
                    1
                }
            },
            Err(e) => {
                error!(error = %e, "cannot read the IPVS connection timeouts");
                0
            }
        }
    }
}

/// The kernel's part of an error (the operation is printed separately).
fn kernel_error(e: &vipd_ipvs::IpvsError) -> String {
    match e {
        vipd_ipvs::IpvsError::Kernel { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

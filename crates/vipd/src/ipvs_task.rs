//! The IPVS task: the only owner of the IPVS netlink socket.
//!
//! Others send it the desired state ([`Request::Desired`]) or ask for a resync; it dumps the
//! kernel, plans with `vipd-reconcile`, executes the plan and logs what it did. It also
//! resyncs on its own every `resync_interval`, which repairs changes made behind vipd's back.
//! Failed operations are logged with the operation as an `ipvsadm` command and the kernel's
//! error, and the plan is recomputed from a fresh dump once (races such as EEXIST/ENOENT
//! resolve that way); anything still failing is retried at the next resync.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, error, info, warn};
use vipd_ipvs::{IpvsClient, ServiceKey, Timeouts};
use vipd_reconcile::{DesiredService, plan};

use crate::owned::OwnedStore;

/// Plans up to this size log every operation at info level.
const VERBOSE_OPS: usize = 32;

/// What the task is asked to do.
#[derive(Debug)]
pub enum Request {
    /// Make the kernel match these services and connection timeouts (replaces the previous
    /// desired state).
    Desired(
        Vec<DesiredService>,
        Option<Timeouts>,
        Option<oneshot::Sender<Report>>,
    ),
    /// Dump and repair now.
    Resync(Option<oneshot::Sender<Report>>),
    /// The kernel's services and destinations with their counters (for `vipd status`).
    Dump(oneshot::Sender<Result<Dump, String>>),
}

/// The kernel's services, each with its destinations.
pub type Dump = Vec<(vipd_ipvs::Service, Vec<vipd_ipvs::Dest>)>;

/// The outcome of one reconciliation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// IPVS writes performed (successful or not).
    pub writes: usize,
    /// Writes that failed, as `ipvsadm ...: error`.
    pub failed: Vec<String>,
    /// Services left alone because vipd does not manage them.
    pub foreign: Vec<ServiceKey>,
}

/// The task's state.
#[derive(Debug)]
pub struct IpvsTask {
    client: IpvsClient,
    owned: OwnedStore,
    desired: Option<Vec<DesiredService>>,
    timeouts: Option<Timeouts>,
    resync: Duration,
    last_foreign: Vec<ServiceKey>,
    counters: IpvsCounters,
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
}

impl IpvsTask {
    /// A task over an open client.
    pub fn new(
        client: IpvsClient,
        owned: OwnedStore,
        resync: Duration,
        counters: IpvsCounters,
    ) -> Self {
        Self {
            counters,
            client,
            owned,
            desired: None,
            timeouts: None,
            resync,
            last_foreign: Vec::new(),
        }
    }

    /// Serves requests until `shutdown` fires. The kernel is left as it is on exit: vipd
    /// never flushes.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        mut shutdown: broadcast::Receiver<()>,
    ) {
        let mut tick = tokio::time::interval(self.resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.recv() => break,
                req = rx.recv() => match req {
                    None => break,
                    Some(Request::Desired(d, t, reply)) => {
                        self.desired = Some(d);
                        self.timeouts = t;
                        let r = self.reconcile("configuration").await;
                        if let Some(tx) = reply { let _ = tx.send(r); }
                    }
                    Some(Request::Resync(reply)) => {
                        let r = self.reconcile("resync requested").await;
                        if let Some(tx) = reply { let _ = tx.send(r); }
                    }
                    Some(Request::Dump(reply)) => {
                        let _ = reply.send(self.client.dump().await.map_err(|e| e.to_string()));
                    }
                },
                _ = tick.tick() => { self.reconcile("periodic resync").await; }
            }
        }
        info!("IPVS task stopped; kernel state left in place");
    }

    async fn reconcile(&mut self, why: &str) -> Report {
        let r = self.reconcile_once(why).await;
        self.counters.reconciles.inc();
        self.counters.writes.inc_by(r.writes as u64);
        self.counters.errors.inc_by(r.failed.len() as u64);
        r
    }

    async fn reconcile_once(&mut self, why: &str) -> Report {
        let mut report = Report::default();
        let Some(desired) = self.desired.clone() else {
            return report;
        };
        if let Some(want) = self.timeouts {
            report.writes += self.sync_timeouts(want).await;
        }
        for attempt in 0..2 {
            report.failed.clear();
            let actual = match self.client.dump().await {
                Ok(a) => a,
                Err(e) => {
                    error!(error = %e, "IPVS dump failed; will retry at the next resync");
                    report.failed.push(e.to_string());
                    return report;
                }
            };
            let p = plan(&desired, &actual, self.owned.keys());
            if p.foreign != self.last_foreign {
                for k in &p.foreign {
                    info!(service = %k, "foreign IPVS service (not managed by vipd), left untouched");
                }
                self.last_foreign = p.foreign.clone();
            }
            for d in &p.drift {
                if why == "configuration" && attempt == 0 {
                    info!(reason = why, "{d}");
                } else {
                    warn!(reason = why, "IPVS differs from the desired state: {d}");
                }
            }
            report.foreign = p.foreign.clone();
            let results = self.client.apply_batched(&p.ops).await;
            report.writes += p.ops.len();
            let mut failed_deletes = BTreeSet::new();
            let mut failures = 0;
            // Steady-state changes are a handful of operations, each worth a line; a
            // programming from empty can be tens of thousands, logged at debug level.
            let verbose = p.ops.len() <= VERBOSE_OPS;
            for (op, r) in p.ops.iter().zip(results) {
                match r {
                    Ok(()) if verbose => info!(op = %op, "IPVS"),
                    Ok(()) => debug!(op = %op, "IPVS"),
                    Err(e) => {
                        failures += 1;
                        let retry = if attempt == 0 {
                            "re-planning from a fresh dump"
                        } else {
                            "retrying at the next resync"
                        };
                        error!(op = %op, error = %e, "IPVS operation failed; {retry}");
                        report.failed.push(format!("{op}: {e}"));
                        if let vipd_ipvs::Op::DelService(k) = op {
                            failed_deletes.insert(*k);
                        }
                    }
                }
            }
            let mut owned: BTreeSet<ServiceKey> = desired.iter().map(|d| d.service.key).collect();
            owned.extend(failed_deletes);
            if let Err(e) = self.owned.save(owned) {
                error!(error = %e, "cannot record the IPVS services vipd owns; a service removed from the config may then be left in the kernel");
            }
            if failures == 0 {
                break;
            }
        }
        info!(
            reason = why,
            writes = report.writes,
            failed = report.failed.len(),
            foreign = report.foreign.len(),
            "reconcile: {} writes",
            report.writes
        );
        report
    }

    /// Makes the connection timeouts what the config says; returns the writes made.
    async fn sync_timeouts(&mut self, want: Timeouts) -> usize {
        match self.client.timeouts().await {
            Ok(have) if have == want => 0,
            Ok(have) => match self.client.set_timeouts(want).await {
                Ok(()) => {
                    info!(old = ?have, new = ?want, "IPVS connection timeouts set");
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

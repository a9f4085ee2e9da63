//! From health-check updates to the IPVS desired state.
//!
//! The engine (vipd-health) reports one update per check transition; this view, owned by
//! the main task, keeps each check's latest state, combines a real server's checks, applies
//! `alpha`, agent weights and panic mode per service, and logs one line per real server
//! state change with its reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{error, info, warn};
use vipd_config::Config;
use vipd_health::engine::{Jobs, ServerRef, Update};
use vipd_health::fsm::State;
pub use vipd_health::service::Effective;
use vipd_health::service::{self, CheckView, ServerView};
use vipd_reconcile::{DesiredService, Health};

use crate::announce::ServiceHealth;

/// A check's latest visible state.
#[derive(Clone, Debug)]
struct Check {
    state: State,
    drain: bool,
    weight_pct: Option<u32>,
    reason: String,
}

impl Default for Check {
    fn default() -> Self {
        Check {
            state: State::Unknown,
            drain: false,
            weight_pct: None,
            reason: String::new(),
        }
    }
}

/// The daemon's health view.
#[derive(Debug, Default)]
pub struct HealthView {
    jobs: Jobs,
    checks: BTreeMap<Arc<str>, Check>,
    services: BTreeMap<String, service::Service>,
    /// Last effective state per real server and its reason (changes are logged).
    last: BTreeMap<ServerRef, (Effective, String)>,
    /// Per service, from the last [`HealthView::desired`]: quorum input and first pass.
    summary: BTreeMap<String, ServiceHealth>,
}

impl HealthView {
    /// A view for the jobs of `cfg`; checks start unknown.
    pub fn new(jobs: Jobs) -> Self {
        HealthView {
            jobs,
            ..HealthView::default()
        }
    }

    /// Replaces the job set after a reload, keeping what is known of unchanged checks.
    pub fn reload(&mut self, jobs: Jobs) {
        self.checks.retain(|k, _| jobs.jobs.contains_key(k));
        self.jobs = jobs;
        // Forget the panic state of services that are gone.
        let jobs = &self.jobs;
        self.services
            .retain(|name, _| jobs.servers.keys().any(|r| &*r.service == name.as_str()));
    }

    /// Takes one update.
    pub fn apply(&mut self, u: Update) {
        if !self.jobs.jobs.contains_key(&u.key) {
            return; // a job dropped by a reload
        }
        self.checks.insert(
            u.key,
            Check {
                state: u.state,
                drain: u.drain,
                weight_pct: u.weight_pct,
                reason: u.reason,
            },
        );
    }

    fn server_view(&self, r: &ServerRef) -> ServerView {
        let unknown = Check::default();
        let keys = self.jobs.servers.get(r).map(Vec::as_slice).unwrap_or(&[]);
        let views: Vec<CheckView<'_>> = keys
            .iter()
            .map(|k| {
                let c = self.checks.get(k).unwrap_or(&unknown);
                CheckView {
                    state: c.state,
                    drain: c.drain,
                    weight_pct: c.weight_pct,
                    reason: &c.reason,
                }
            })
            .collect();
        service::combine(&views)
    }

    /// The desired IPVS state of every service, logging what changed.
    pub fn desired(&mut self, cfg: &Config) -> Vec<DesiredService> {
        let mut out = Vec::with_capacity(cfg.services.len());
        for s in &cfg.services {
            let name: Arc<str> = Arc::from(s.name.as_str());
            let refs: Vec<ServerRef> = s
                .real_servers
                .iter()
                .map(|r| ServerRef {
                    service: name.clone(),
                    addr: r.address,
                    port: r.port.unwrap_or(s.port),
                })
                .collect();
            let views: Vec<ServerView> = refs.iter().map(|r| self.server_view(r)).collect();
            let input: Vec<(u32, &ServerView)> = s
                .real_servers
                .iter()
                .zip(&views)
                .map(|(r, v)| (r.weight, v))
                .collect();
            let eval = self.services.entry(s.name.clone()).or_default().evaluate(
                &input,
                s.alpha,
                s.panic_threshold.map(|p| p.0),
            );
            self.summary.insert(
                s.name.clone(),
                ServiceHealth {
                    healthy_weight: eval.healthy_weight,
                    settled: eval.settled,
                },
            );
            match eval.panic_changed {
                Some(true) => error!(
                    service = %s.name, down = eval.down, total = refs.len(),
                    "PANIC MODE: too many real servers down; sending to all of them again"
                ),
                Some(false) => warn!(service = %s.name, down = eval.down, "panic mode over"),
                None => {}
            }
            for ((r, v), e) in refs.iter().zip(&views).zip(&eval.servers) {
                let before = self.last.insert(r.clone(), (*e, v.reason.clone()));
                if before.map(|b| b.0) != Some(*e) {
                    match e {
                        Effective::Up(w) => {
                            info!(server = %r, weight = w, reason = %v.reason, "real server up")
                        }
                        Effective::Down => {
                            warn!(server = %r, reason = %v.reason, "real server down")
                        }
                    }
                }
            }
            let by_addr: BTreeMap<(std::net::IpAddr, u16), Effective> = refs
                .iter()
                .zip(&eval.servers)
                .map(|(r, e)| ((r.addr, r.port), *e))
                .collect();
            out.push(vipd_reconcile::desired(s, |addr, port| {
                match by_addr.get(&(addr, port)) {
                    Some(Effective::Up(w)) => Health::Up(*w),
                    _ => Health::Down,
                }
            }));
        }
        self.last.retain(|r, _| self.jobs.servers.contains_key(r));
        self.summary
            .retain(|name, _| cfg.services.iter().any(|s| &s.name == name));
        out
    }

    /// A real server's effective state and reason, as of the last `desired`.
    pub fn server(&self, r: &ServerRef) -> Option<&(Effective, String)> {
        self.last.get(r)
    }

    /// Panic mode of a service.
    pub fn panic(&self, service: &str) -> bool {
        self.services
            .get(service)
            .is_some_and(service::Service::panic)
    }

    /// Each service's healthy weight and first-pass state, as of the last `desired`.
    pub fn services(&self) -> &BTreeMap<String, ServiceHealth> {
        &self.summary
    }
}

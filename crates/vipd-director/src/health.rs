//! From check results to each real server's weight, per service, recomputed only for the
//! services a burst of results touched.
//!
//! The health engine reports one [`Update`] per check transition. The view keeps each
//! check's latest state, combines a real server's checks (`vipd_health::service::combine`),
//! applies `alpha`, agent weights and panic mode per service, and carries the kernel's
//! weights over a restart until each server's checks have a first result.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use vipd_config::Service as SvcConfig;
use vipd_health::Update;
use vipd_health::fsm::State;
use vipd_health::jobs::{Jobs, ServerRef};
pub use vipd_health::service::Effective;
use vipd_health::service::{self, CheckView, ServerView};
use vipd_reconcile::{DesiredService, Health};

use crate::event::Event;

/// A check's latest visible state.
#[derive(Clone, Debug)]
struct Check {
    state: State,
    drain: bool,
    weight_pct: Option<u32>,
    weight_abs: Option<u32>,
    reason: Arc<str>,
}

/// What the checks say of one real server, as of its service's last evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerState {
    /// Address.
    pub addr: IpAddr,
    /// Port (the real server's, else the service's).
    pub port: u16,
    /// Combined check state (before `alpha` and panic mode).
    pub checks: State,
    /// What IPVS gets.
    pub effective: Effective,
    /// The deciding check's reason.
    pub reason: String,
    /// The weight in the desired IPVS state (None: not in IPVS, `on_failure = "remove"`).
    pub weight: Option<u32>,
    /// The weight is the kernel's, carried over a restart until a first result.
    pub carried: bool,
}

/// One service's evaluation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// Per real server, in configuration order.
    pub servers: Vec<ServerState>,
    /// Sum of healthy effective weights: what the quorum is measured against.
    pub healthy_weight: u64,
    /// Every real server has left `Unknown` (first health pass complete).
    pub settled: bool,
    /// Panic mode on.
    pub panic: bool,
}

/// The director's health view.
#[derive(Debug, Default)]
pub struct HealthView {
    jobs: Arc<Jobs>,
    checks: BTreeMap<Arc<str>, Check>,
    panic: BTreeMap<Arc<str>, service::Service>,
    states: BTreeMap<Arc<str>, Arc<ServiceState>>,
    carried: BTreeMap<ServerRef, u32>,
}

impl HealthView {
    /// A view for `jobs`; every check starts unknown.
    pub fn new(jobs: Arc<Jobs>) -> Self {
        HealthView {
            jobs,
            ..HealthView::default()
        }
    }

    /// The jobs the view follows.
    pub fn jobs(&self) -> &Arc<Jobs> {
        &self.jobs
    }

    /// Remembers a weight the kernel holds for a real server (restart carry-over).
    pub fn carry(&mut self, server: ServerRef, weight: u32) {
        self.carried.insert(server, weight);
    }

    /// Replaces the jobs after a reload, keeping what is known of unchanged checks.
    pub fn reload(&mut self, jobs: Arc<Jobs>) {
        self.checks.retain(|k, _| jobs.jobs.contains_key(k));
        self.carried.retain(|r, _| jobs.servers.contains_key(r));
        self.jobs = jobs;
    }

    /// Forgets services that are no longer configured.
    pub fn retain_services(&mut self, keep: &BTreeSet<Arc<str>>) {
        self.panic.retain(|n, _| keep.contains(n));
        self.states.retain(|n, _| keep.contains(n));
    }

    /// Takes one result; returns the services whose servers use it (none for a job that a
    /// reload dropped while its probe was in flight).
    pub fn apply(&mut self, u: Update) -> Vec<Arc<str>> {
        let Some(job) = self.jobs.jobs.get(&u.key) else {
            return Vec::new();
        };
        let users: Vec<Arc<str>> = job.users.iter().map(|r| r.service.clone()).collect();
        self.checks.insert(
            u.key,
            Check {
                state: u.state,
                drain: u.drain,
                weight_pct: u.weight_pct,
                weight_abs: u.weight_abs,
                reason: Arc::from(u.reason),
            },
        );
        users
    }

    fn server_view(&self, r: &ServerRef) -> ServerView {
        let keys = self.jobs.servers.get(r).map(Vec::as_slice).unwrap_or(&[]);
        let views: Vec<CheckView<'_>> = keys
            .iter()
            .map(|k| match self.checks.get(k) {
                Some(c) => CheckView {
                    state: c.state,
                    drain: c.drain,
                    weight_pct: c.weight_pct,
                    weight_abs: c.weight_abs,
                    reason: &c.reason,
                },
                None => CheckView {
                    state: State::Unknown,
                    drain: false,
                    weight_pct: None,
                    weight_abs: None,
                    reason: "",
                },
            })
            .collect();
        service::combine(&views)
    }

    /// The last evaluation of a service.
    pub fn state(&self, service: &str) -> Option<&Arc<ServiceState>> {
        self.states.get(service)
    }

    /// Evaluates one service: its desired IPVS state, with the transitions as events.
    pub fn evaluate(&mut self, s: &SvcConfig, events: &mut Vec<Event>) -> DesiredService {
        let name: Arc<str> = self
            .states
            .get_key_value(s.name.as_str())
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| Arc::from(s.name.as_str()));
        let refs: Vec<ServerRef> = s
            .real_servers
            .iter()
            .map(|r| ServerRef {
                service: name.clone(),
                addr: r.address,
                port: s.port_of(r),
            })
            .collect();
        let views: Vec<ServerView> = refs.iter().map(|r| self.server_view(r)).collect();
        // A server still waiting for its first result after a restart (or after a reload
        // changed its checks) keeps the weight the kernel has, and counts as up with it.
        let mut carried: Vec<Option<u32>> = Vec::with_capacity(refs.len());
        for (r, v) in refs.iter().zip(&views) {
            carried.push(if v.state == State::Unknown {
                self.carried.get(r).copied()
            } else {
                self.carried.remove(r);
                None
            });
        }
        let kept = ServerView {
            state: State::Up,
            drain: false,
            weight_pct: 100,
            weight_abs: None,
            reason: "kernel weight kept until the first check result".to_string(),
        };
        let input: Vec<(u32, &ServerView)> = s
            .real_servers
            .iter()
            .zip(&views)
            .zip(&carried)
            .map(|((r, v), c)| match c {
                Some(w) => (*w, &kept),
                None => (r.weight, v),
            })
            .collect();
        let mut eval = self.panic.entry(name.clone()).or_default().evaluate(
            &input,
            s.alpha,
            s.panic_threshold.map(|p| p.0),
        );
        // Carried weights are not results: the first pass waits for the checks.
        eval.settled = views.iter().all(|v| v.state != State::Unknown);
        if let Some(on) = eval.panic_changed {
            events.push(Event::Panic {
                service: name.to_string(),
                on,
                down: eval.down,
                total: refs.len(),
            });
        }
        let before = self.states.get(&name).cloned();
        let mut servers = Vec::with_capacity(refs.len());
        for (((r, v), e), c) in refs.iter().zip(&views).zip(&eval.servers).zip(&carried) {
            let checked = v.state;
            let v = if c.is_some() { &kept } else { v };
            let carried = *c;
            let weight = match (e, s.on_failure) {
                (Effective::Up(w), _) => Some(*w),
                (Effective::Down, vipd_config::OnFailure::Inhibit) => Some(0),
                (Effective::Down, vipd_config::OnFailure::Remove) => None,
            };
            let prev = before.as_ref().and_then(|b| {
                b.servers
                    .iter()
                    .find(|x| x.addr == r.addr && x.port == r.port)
            });
            // A server seen for the first time with no result yet is not a transition (a
            // director with 64,000 servers would log 64,000 lines at start).
            let first_unknown = prev.is_none() && checked == State::Unknown;
            if !first_unknown && prev.map(|p| p.effective) != Some(*e) {
                events.push(match e {
                    Effective::Up(w) => Event::ServerUp {
                        server: r.clone(),
                        was: prev.and_then(|p| match p.effective {
                            Effective::Up(w) => Some(w),
                            Effective::Down => None,
                        }),
                        weight: *w,
                        reason: v.reason.clone(),
                    },
                    Effective::Down => Event::ServerDown {
                        server: r.clone(),
                        reason: v.reason.clone(),
                    },
                });
            }
            servers.push(ServerState {
                addr: r.addr,
                port: r.port,
                checks: v.state,
                effective: *e,
                reason: v.reason.clone(),
                weight,
                carried: carried.is_some(),
            });
        }
        // `desired` asks for the servers in configuration order: look there first.
        let next = std::cell::Cell::new(0);
        let desired = vipd_reconcile::desired(s, |addr, port| {
            let i = next.get();
            next.set(i + 1);
            let found = match servers.get(i) {
                Some(x) if x.addr == addr && x.port == port => Some(x),
                _ => servers.iter().find(|x| x.addr == addr && x.port == port),
            };
            match found.and_then(|x| x.weight) {
                Some(w) => Health::Up(w),
                None => Health::Down,
            }
        });
        let state = ServiceState {
            servers,
            healthy_weight: eval.healthy_weight,
            settled: eval.settled,
            panic: eval.panic,
        };
        if before.as_deref() != Some(&state) {
            self.states.insert(name, Arc::new(state));
        }
        desired
    }
}

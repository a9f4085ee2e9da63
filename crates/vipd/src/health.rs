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
    /// Weights found in the kernel at start, kept for each real server until its checks
    /// have a result (see [`HealthView::carry`]).
    carried: BTreeMap<ServerRef, u32>,
}

impl HealthView {
    /// A view for the jobs of `cfg`; checks start unknown.
    pub fn new(jobs: Jobs) -> Self {
        HealthView {
            jobs,
            ..HealthView::default()
        }
    }

    /// On a restart, vipd finds IPVS already programmed by its previous run. Until a real
    /// server's checks have a first result, its kernel weight stands: otherwise `alpha`
    /// (unknown counts as down) would zero every weight on start and break live traffic,
    /// only to restore it one interval later. Servers with no destination in the kernel
    /// follow the usual rules.
    pub fn carry(&mut self, cfg: &Config, dump: &crate::ipvs_task::Dump) {
        for s in &cfg.services {
            let key = vipd_reconcile::service_key(s);
            let Some((_, dests)) = dump.iter().find(|(svc, _)| svc.key == key) else {
                continue;
            };
            for r in &s.real_servers {
                let port = r.port.unwrap_or(s.port);
                if let Some(d) = dests.iter().find(|d| d.addr == r.address && d.port == port) {
                    self.carried.insert(
                        ServerRef {
                            service: Arc::from(s.name.as_str()),
                            addr: r.address,
                            port,
                        },
                        d.weight,
                    );
                }
            }
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
            // A server whose checks all have a result no longer needs its kernel weight.
            let mut carried: BTreeMap<(std::net::IpAddr, u16), u32> = BTreeMap::new();
            for (r, v) in refs.iter().zip(&views) {
                if v.state == State::Unknown {
                    if let Some(w) = self.carried.get(r) {
                        carried.insert((r.addr, r.port), *w);
                    }
                } else {
                    self.carried.remove(r);
                }
            }
            out.push(vipd_reconcile::desired(s, |addr, port| {
                if let Some(w) = carried.get(&(addr, port)) {
                    return Health::Up(*w);
                }
                match by_addr.get(&(addr, port)) {
                    Some(Effective::Up(w)) => Health::Up(*w),
                    _ => Health::Down,
                }
            }));
        }
        self.last.retain(|r, _| self.jobs.servers.contains_key(r));
        self.carried
            .retain(|r, _| self.jobs.servers.contains_key(r));
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

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[[check]]
name = "web"
kind = "tcp"
[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
checks = ["web"]
alpha = true
[service.announce]
enabled = false
[[service.real_server]]
address = "10.0.0.1"
weight = 5
[[service.real_server]]
address = "10.0.0.2"
weight = 7
"#;

    fn weights(d: &[DesiredService]) -> Vec<(String, u32)> {
        d[0].dests
            .iter()
            .map(|d| (d.addr.to_string(), d.weight))
            .collect()
    }

    fn update(view: &HealthView, addr: &str, state: State) -> Update {
        let r = view
            .jobs
            .servers
            .keys()
            .find(|r| r.addr.to_string() == addr)
            .expect("server");
        Update {
            key: view.jobs.servers[r][0].clone(),
            name: Arc::from("web"),
            target: std::net::SocketAddr::new(r.addr, r.port),
            state,
            drain: false,
            weight_pct: None,
            reason: "test".into(),
            latency: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn kernel_weights_stand_until_the_first_result_on_restart() {
        let cfg = vipd_config::load_str(CFG, "t.toml").expect("cfg").config;
        let mut fresh = HealthView::new(vipd_health::engine::jobs(&cfg));
        // A fresh start with alpha: everything at 0 until checks pass.
        assert_eq!(
            weights(&fresh.desired(&cfg)),
            [("10.0.0.1".into(), 0), ("10.0.0.2".into(), 0)]
        );

        // A restart: the kernel holds the previous run's weights (10.0.0.2 was reduced by
        // an agent to 3). They stand while the checks are unknown.
        let s = &cfg.services[0];
        let svc = vipd_reconcile::service(s);
        let dump = vec![(
            svc,
            vec![
                vipd_ipvs::Dest::new(
                    "10.0.0.1".parse().unwrap(),
                    80,
                    vipd_ipvs::Forward::Tunnel,
                    5,
                ),
                vipd_ipvs::Dest::new(
                    "10.0.0.2".parse().unwrap(),
                    80,
                    vipd_ipvs::Forward::Tunnel,
                    3,
                ),
            ],
        )];
        let mut view = HealthView::new(vipd_health::engine::jobs(&cfg));
        view.carry(&cfg, &dump);
        assert_eq!(
            weights(&view.desired(&cfg)),
            [("10.0.0.1".into(), 5), ("10.0.0.2".into(), 3)]
        );
        assert!(
            !view.services()["web"].settled,
            "no route decision on carried weights"
        );
        // Results replace the carried weights, one server at a time.
        let u = update(&view, "10.0.0.2", State::Up);
        view.apply(u);
        assert_eq!(
            weights(&view.desired(&cfg)),
            [("10.0.0.1".into(), 5), ("10.0.0.2".into(), 7)]
        );
        let u = update(&view, "10.0.0.1", State::Down);
        view.apply(u);
        assert_eq!(
            weights(&view.desired(&cfg)),
            [("10.0.0.1".into(), 0), ("10.0.0.2".into(), 7)]
        );
        assert!(view.carried.is_empty());
        // Once a result is known, a later "unknown" (a changed check restarted by a
        // reload) does not bring back the old kernel weight.
        let u = update(&view, "10.0.0.1", State::Unknown);
        view.apply(u);
        assert_eq!(weights(&view.desired(&cfg))[0], ("10.0.0.1".into(), 0));
    }
}

//! The director's decisions, without I/O: [`Director::handle`] takes one [`Input`] (check
//! results, the drain file, a clock tick, a reload, what the IPVS owner reports) and returns
//! the [`Output`]s to execute, in order. The binary owns the sockets and only executes them.
//!
//! # Rules (each one a golden scenario under `tests/scenarios/`)
//!
//! * **Weights.** A real server's weight comes from its checks (combined, `alpha`, agent
//!   weights, panic mode: [`health`]). Only the services a burst of results touched are
//!   re-evaluated, and only services whose desired IPVS state changed are sent: a change
//!   costs what it changes.
//! * **Never attract traffic that cannot be served.** A VIP is announced only while every
//!   announced service of it is programmed as desired in IPVS (the IPVS owner says so after
//!   acknowledged writes or a dump), has had its first health pass, and has quorum. A VIP
//!   not announced yet also waits for the writes that gave it quorum to be acknowledged. An
//!   IPVS failure withdraws the VIP until the owner reports the service repaired.
//! * **Withdraw before IPVS.** In every output list, [`Output::Routes`] comes before
//!   [`Output::Ipvs`]: a quorum loss or a removed service leaves the routers before anything
//!   changes in the kernel. VIP addresses are synced after IPVS.
//! * **Drain.** The drain file turns announced VIPs into GRACEFUL_SHUTDOWN + `drained_med`;
//!   the director computes when the drain delay ends and asks to be woken then
//!   ([`Output::Wake`]), so the withdrawal is on time, not at the next poll.
//! * **Restart.** Given the kernel's state at start, each real server keeps its kernel weight
//!   until its checks have a first result (no zeroed weights, no broken flows).
//! * **Reload** is a diff: checks, neighbors, sysctls, VIPs and IPVS services are output
//!   only when they changed; unchanged checks keep their state.

mod announce;
mod event;
pub mod health;
mod probes;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use vipd_bgp::rib::RouteAttrs;
use vipd_bgp::wire::Prefix;
use vipd_config::{Bgp, Config, IpvsTimeouts, Sysctl};
use vipd_health::Update;
use vipd_health::jobs::{Jobs, ServerRef};
use vipd_ipvs::{Dest, Service, ServiceKey};
use vipd_reconcile::DesiredService;

pub use announce::{Announcer, GRACEFUL_SHUTDOWN, Programmed, VipState, Withdrawn};
pub use event::Event;
pub use health::{HealthView, ServerState, ServiceState};

/// What happened.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Input {
    /// The daemon starts. `kernel`: the IPVS state found at start when this is a restart
    /// (its weights are carried until the checks report), None on a fresh start.
    Start {
        /// The kernel's services and destinations.
        kernel: Option<Vec<(Service, Vec<Dest>)>>,
    },
    /// A burst of check transitions.
    Health(Vec<Update>),
    /// The drain file's presence, as last polled.
    Drain(bool),
    /// The services whose own drain file (`announce.drain_file`) exists, as last polled.
    ServiceDrains(std::collections::BTreeSet<String>),
    /// Time passed (a [`Output::Wake`] came due).
    Tick,
    /// A new, validated configuration.
    Reload(Box<Config>),
    /// What the IPVS owner reports.
    Ipvs(IpvsFeedback),
}

/// The desired IPVS state, for the IPVS owner.
#[derive(Clone, Debug, PartialEq)]
pub struct IpvsIntent {
    /// Sequence number, echoed in [`IpvsFeedback::seq`].
    pub seq: u64,
    /// `services` is the whole desired set (start): managed services not in it go.
    pub full: bool,
    /// Services to make exactly as given.
    pub services: Vec<DesiredService>,
    /// Services no longer configured: deleted if vipd owns them.
    pub removed: Vec<ServiceKey>,
    /// Connection timeouts to keep (None: leave the kernel's).
    pub timeouts: Option<IpvsTimeouts>,
}

/// The IPVS owner's report after writing or dumping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsFeedback {
    /// The last intent the owner had taken in.
    pub seq: u64,
    /// Per service: in the kernel as desired, or the failure.
    pub services: Vec<(ServiceKey, Result<(), String>)>,
}

/// What to do, in order.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Output {
    /// A transition to log.
    Event(Event),
    /// IPVS sysctls to apply in this namespace.
    Sysctls(Sysctl),
    /// The health engine's jobs (start, or a reload that changed them).
    Checks(Arc<Jobs>),
    /// The BGP configuration (start, or a reload that changed it): neighbors to run.
    Bgp(Option<Box<Bgp>>),
    /// The routes to announce (the whole set; the speaker sends the difference).
    Routes(BTreeMap<Prefix, RouteAttrs>),
    /// Every service had its first health pass: End-of-RIB may go out.
    EndOfRib,
    /// The IPVS owner's new desired state.
    Ipvs(IpvsIntent),
    /// VIPs to hold on `lo` (vipd's own others are removed).
    Vips(BTreeSet<IpAddr>),
    /// Feed [`Input::Tick`] at this instant (replaces any earlier wake).
    Wake(Instant),
}

/// Per service, the IPVS owner's reports.
#[derive(Clone, Debug, Default)]
struct ProgramState {
    /// Last intent that changed this service.
    sent: u64,
    /// Last intent the owner reported it in sync at (0: never).
    acked: u64,
    /// The last failure, until repaired.
    error: Option<String>,
}

/// The director's state.
#[derive(Debug)]
pub struct Director {
    cfg: Arc<Config>,
    health: HealthView,
    announcer: Announcer,
    desired: BTreeMap<ServiceKey, DesiredService>,
    program: BTreeMap<ServiceKey, ProgramState>,
    routes: BTreeMap<Prefix, RouteAttrs>,
    states: BTreeMap<Prefix, VipState>,
    seq: u64,
    eor_sent: bool,
    wake: Option<Instant>,
    /// Services whose first health pass is done: a reload that restarts a check does not
    /// undo it (the servers keep their weight until the new check reports).
    settled: BTreeSet<String>,
}

/// A service as `vipd status` and `/metrics` show it.
#[derive(Clone, Debug)]
pub struct ServiceSnapshot {
    /// Name.
    pub name: String,
    /// IPVS identity.
    pub key: ServiceKey,
    /// Scheduler and flags, as `ipvsadm` prints them (`mh mh-port mh-fallback`).
    pub scheduler: String,
    /// Its VIP's route decision.
    pub route: VipState,
    /// IPVS state.
    pub programmed: Programmed,
    /// Configured quorum.
    pub quorum: u32,
    /// Configured weights of the real servers, in order.
    pub configured: Vec<u32>,
    /// The last evaluation (None before the first).
    pub health: Option<Arc<ServiceState>>,
}

/// The director's state as status pages see it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The drain file is present.
    pub drained: bool,
    /// End-of-RIB was sent (first health pass complete).
    pub first_pass_complete: bool,
    /// Services, in configuration order.
    pub services: Vec<ServiceSnapshot>,
}

impl Director {
    /// A director for a validated configuration; feed it [`Input::Start`] first.
    pub fn new(cfg: Config) -> Self {
        let jobs = Arc::new(vipd_health::jobs::jobs(&cfg));
        Director {
            cfg: Arc::new(cfg),
            health: HealthView::new(jobs),
            announcer: Announcer::default(),
            desired: BTreeMap::new(),
            program: BTreeMap::new(),
            routes: BTreeMap::new(),
            states: BTreeMap::new(),
            seq: 0,
            eor_sent: false,
            wake: None,
            settled: BTreeSet::new(),
        }
    }

    /// The running configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    /// Takes one input at `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut ev = Vec::new();
        let mut head = Vec::new();
        let mut changed: Vec<DesiredService> = Vec::new();
        let mut removed = Vec::new();
        let mut full = false;
        let mut timeouts_changed = false;
        let mut vips = None;
        let mut tail_checks = None;
        match input {
            Input::Start { kernel } => {
                if let Some(dump) = kernel {
                    let n = self.carry(&dump);
                    ev.push(Event::Carried { servers: n });
                }
                head.push(Output::Sysctls(self.cfg.global.sysctl.clone()));
                head.push(Output::Bgp(self.cfg.bgp.clone().map(Box::new)));
                // The checks start after IPVS is programmed (last): starting tens of
                // thousands of jobs must not delay the first programming.
                tail_checks = Some(Output::Checks(self.health.jobs().clone()));
                full = true;
                let cfg = self.cfg.clone();
                for s in &cfg.services {
                    changed.extend(self.evaluate(s, &mut ev, true));
                }
                self.sync_probes(&mut changed);
                vips = Some(vip_set(&self.cfg));
            }
            Input::Health(updates) => {
                let mut dirty: BTreeSet<Arc<str>> = BTreeSet::new();
                for u in updates {
                    dirty.extend(self.health.apply(u));
                }
                let cfg = self.cfg.clone();
                for s in cfg
                    .services
                    .iter()
                    .filter(|s| dirty.contains(s.name.as_str()))
                {
                    changed.extend(self.evaluate(s, &mut ev, false));
                }
            }
            Input::Drain(present) => ev.extend(self.announcer.set_drain(present, now)),
            Input::ServiceDrains(present) => {
                ev.extend(self.announcer.set_service_drains(&present, now))
            }
            Input::Tick => {}
            Input::Reload(new) => {
                (timeouts_changed, tail_checks) = self.reload(
                    *new,
                    &mut ev,
                    &mut head,
                    &mut changed,
                    &mut removed,
                    &mut vips,
                )
            }
            Input::Ipvs(fb) => self.feedback(fb, &mut ev),
        }
        // The intent's number is taken before deciding: a VIP not announced yet waits for
        // these writes to be acknowledged.
        let intent =
            (full || timeouts_changed || !changed.is_empty() || !removed.is_empty()).then(|| {
                self.seq += 1;
                for d in &changed {
                    self.program.entry(d.service.key).or_default().sent = self.seq;
                }
                IpvsIntent {
                    seq: self.seq,
                    full,
                    services: changed,
                    removed,
                    timeouts: self.cfg.global.ipvs_timeouts.clone(),
                }
            });
        let mut out: Vec<Output> = Vec::new();
        let before = self.wake;
        let routes = self.decide(now, &mut ev);
        let wake = self.wake.filter(|w| Some(*w) != before);
        out.extend(ev.into_iter().map(Output::Event));
        out.append(&mut head);
        out.extend(routes);
        // End-of-RIB tells restarting routers to drop what was not re-announced: only once
        // every service had its first pass and no VIP waits for IPVS writes in flight.
        let waiting = self.states.values().any(|s| {
            matches!(
                s,
                VipState::Withdrawn(Withdrawn::NotProgrammed { error: None, .. })
            )
        });
        if !self.eor_sent && !waiting && self.all_settled() && !self.cfg.services.is_empty() {
            self.eor_sent = true;
            out.push(Output::Event(Event::FirstPassComplete));
            out.push(Output::EndOfRib);
        }
        out.extend(intent.map(Output::Ipvs));
        if let Some(v) = vips {
            out.push(Output::Vips(v));
        }
        out.extend(tail_checks);
        if let Some(w) = wake {
            out.push(Output::Wake(w));
        }
        out
    }

    /// The state for status pages.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            drained: self.announcer.drained(),
            first_pass_complete: self.eor_sent,
            services: self
                .cfg
                .services
                .iter()
                .map(|s| {
                    let key = vipd_reconcile::service_key(s);
                    let route = if s.announce.enabled {
                        self.states.get(&Prefix::host(s.vip)).cloned().unwrap_or(
                            VipState::Withdrawn(Withdrawn::NotProgrammed {
                                service: s.name.clone(),
                                error: None,
                            }),
                        )
                    } else {
                        VipState::Withdrawn(Withdrawn::Disabled)
                    };
                    ServiceSnapshot {
                        name: s.name.clone(),
                        key,
                        scheduler: render::scheduler(s),
                        route,
                        programmed: self.programmed(&key, true),
                        quorum: s.quorum,
                        configured: s.real_servers.iter().map(|r| r.weight).collect(),
                        health: self.health.state(&s.name).cloned(),
                    }
                })
                .collect(),
        }
    }

    fn carry(&mut self, dump: &[(Service, Vec<Dest>)]) -> usize {
        let by_key: BTreeMap<ServiceKey, &Vec<Dest>> =
            dump.iter().map(|(s, d)| (s.key, d)).collect();
        let mut n = 0;
        for s in &self.cfg.services {
            let Some(dests) = by_key.get(&vipd_reconcile::service_key(s)) else {
                continue;
            };
            let service: Arc<str> = Arc::from(s.name.as_str());
            for r in &s.real_servers {
                let port = s.port_of(r);
                if let Some(d) = dests.iter().find(|d| d.addr == r.address && d.port == port) {
                    self.health.carry(
                        ServerRef {
                            service: service.clone(),
                            addr: r.address,
                            port,
                        },
                        d.weight,
                    );
                    n += 1;
                }
            }
        }
        n
    }

    /// Re-evaluates one service; its desired state if it differs from what was sent.
    fn evaluate(
        &mut self,
        s: &vipd_config::Service,
        ev: &mut Vec<Event>,
        force: bool,
    ) -> Option<DesiredService> {
        let d = self.health.evaluate(s, ev);
        let hw = self.health.state(&s.name).map_or(0, |st| st.healthy_weight);
        if self.health.state(&s.name).is_some_and(|st| st.settled)
            && !self.settled.contains(&s.name)
        {
            self.settled.insert(s.name.clone());
        }
        ev.extend(self.announcer.update_quorum(s, hw));
        let key = d.service.key;
        if !force && self.desired.get(&key) == Some(&d) {
            return None;
        }
        self.desired.insert(key, d.clone());
        Some(d)
    }

    fn reload(
        &mut self,
        new: Config,
        ev: &mut Vec<Event>,
        head: &mut Vec<Output>,
        changed: &mut Vec<DesiredService>,
        removed: &mut Vec<ServiceKey>,
        vips: &mut Option<BTreeSet<IpAddr>>,
    ) -> (bool, Option<Output>) {
        let old = std::mem::replace(&mut self.cfg, Arc::new(new));
        let old_jobs = self.health.jobs().clone();
        // Jobs depend on the checks and on which servers use them, not on weights: a
        // weight-only reload keeps them without rebuilding 64,000 keys.
        let same_jobs = same_job_inputs(&old, &self.cfg);
        let mut tail_checks = None;
        let jobs = if same_jobs {
            old_jobs.clone()
        } else {
            Arc::new(vipd_health::jobs::jobs(&self.cfg))
        };
        if jobs.servers != old_jobs.servers || !jobs.jobs.keys().eq(old_jobs.jobs.keys()) {
            // After the IPVS intent: a tunnel-path job's firewall-mark service must exist (or
            // have moved) before its first probe.
            tail_checks = Some(Output::Checks(jobs.clone()));
        }
        // A server whose checks changed restarts them from unknown: until they report, it
        // keeps the weight it has (as over a restart), instead of dropping to 0 or up.
        for (r, keys) in &jobs.servers {
            if old_jobs.servers.get(r).is_some_and(|k| k != keys) {
                if let Some(w) = self.current_weight(r) {
                    self.health.carry(r.clone(), w);
                }
            }
        }
        self.health.reload(jobs);
        let names: BTreeSet<Arc<str>> = self
            .cfg
            .services
            .iter()
            .map(|s| Arc::from(s.name.as_str()))
            .collect();
        self.health.retain_services(&names);
        self.announcer.retain(&self.cfg);
        let cfg = self.cfg.clone();
        self.settled
            .retain(|n| cfg.services.iter().any(|s| &s.name == n));
        if self.cfg.global.sysctl != old.global.sysctl {
            head.push(Output::Sysctls(self.cfg.global.sysctl.clone()));
        }
        if self.cfg.bgp != old.bgp {
            head.push(Output::Bgp(self.cfg.bgp.clone().map(Box::new)));
        }
        let mut keys: BTreeSet<ServiceKey> = self
            .cfg
            .services
            .iter()
            .map(vipd_reconcile::service_key)
            .collect();
        keys.extend(probes::services(&self.cfg).into_keys());
        for k in self.desired.keys() {
            if !keys.contains(k) {
                removed.push(*k);
            }
        }
        for k in removed.iter() {
            self.desired.remove(k);
            self.program.remove(k);
        }
        // Only services whose definition or checks changed can have another desired state.
        let old_by_name: BTreeMap<&str, &vipd_config::Service> =
            old.services.iter().map(|s| (s.name.as_str(), s)).collect();
        let cfg = self.cfg.clone();
        for s in &cfg.services {
            if same_jobs && old_by_name.get(s.name.as_str()) == Some(&s) {
                continue;
            }
            changed.extend(self.evaluate(s, ev, false));
        }
        self.sync_probes(changed);
        let v = vip_set(&self.cfg);
        if v != vip_set(&old) {
            *vips = Some(v);
        }
        // A timeouts-only change still needs an intent (an empty one carries them).
        (
            self.cfg.global.ipvs_timeouts != old.global.ipvs_timeouts,
            tail_checks,
        )
    }

    /// Adds the tunnel-path probes' services that are new or changed (see [`probes`]).
    fn sync_probes(&mut self, changed: &mut Vec<DesiredService>) {
        for (k, d) in probes::services(&self.cfg) {
            if self.desired.get(&k) != Some(&d) {
                self.desired.insert(k, d.clone());
                changed.push(d);
            }
        }
    }

    /// The weight last sent to IPVS for a real server (None: not in IPVS).
    fn current_weight(&self, r: &ServerRef) -> Option<u32> {
        let s = self.cfg.services.iter().find(|s| *s.name == *r.service)?;
        self.desired
            .get(&vipd_reconcile::service_key(s))?
            .dests
            .iter()
            .find(|d| d.addr == r.addr && d.port == r.port)
            .map(|d| d.weight)
    }

    fn feedback(&mut self, fb: IpvsFeedback, ev: &mut Vec<Event>) {
        for (key, res) in fb.services {
            let Some(st) = self.program.get_mut(&key) else {
                continue; // removed meanwhile
            };
            st.acked = st.acked.max(fb.seq);
            match res {
                Ok(()) => {
                    if st.error.take().is_some() {
                        ev.push(Event::IpvsRepaired { service: key });
                    }
                }
                Err(e) => {
                    if st.error.as_ref() != Some(&e) {
                        ev.push(Event::IpvsFailed {
                            service: key,
                            error: e.clone(),
                        });
                    }
                    st.error = Some(e);
                }
            }
        }
    }

    /// IPVS state of a service for the announcer. A VIP not announced yet waits until the
    /// owner acknowledged the service's latest desired state.
    fn programmed(&self, key: &ServiceKey, announced: bool) -> Programmed {
        match self.program.get(key) {
            None => Programmed::Pending,
            Some(ProgramState { error: Some(e), .. }) => Programmed::Failed(e.clone()),
            Some(st) if st.acked == 0 || (!announced && st.acked < st.sent) => Programmed::Pending,
            Some(_) => Programmed::Yes,
        }
    }

    fn all_settled(&self) -> bool {
        self.cfg
            .services
            .iter()
            .all(|s| self.settled.contains(&s.name))
    }

    /// Decides the routes; the outputs when they changed.
    fn decide(&mut self, now: Instant, ev: &mut Vec<Event>) -> Option<Output> {
        let d = self.announcer.decide(
            &self.cfg,
            |s| {
                let key = vipd_reconcile::service_key(s);
                let announced = self
                    .states
                    .get(&Prefix::host(s.vip))
                    .is_some_and(VipState::is_announced);
                let st = self.health.state(&s.name);
                announce::ServiceFacts {
                    programmed: self.programmed(&key, announced),
                    healthy_weight: st.map_or(0, |x| x.healthy_weight),
                    settled: self.settled.contains(&s.name),
                }
            },
            now,
        );
        for (p, st) in &d.states {
            if self.states.get(p) != Some(st) {
                ev.push(Event::Route {
                    vip: *p,
                    state: st.clone(),
                });
            }
        }
        self.states = d.states;
        self.wake = d.wake;
        (d.routes != self.routes).then(|| {
            self.routes = d.routes.clone();
            Output::Routes(d.routes)
        })
    }
}

/// Whether two configurations have the same health-check jobs: the same check definitions,
/// and every service the same name, port, checks and real servers (weights aside).
fn same_job_inputs(a: &Config, b: &Config) -> bool {
    fn servers(
        s: &vipd_config::Service,
    ) -> impl Iterator<
        Item = (
            IpAddr,
            u16,
            &Option<Vec<String>>,
            &Vec<vipd_config::CheckDef>,
        ),
    > {
        s.real_servers
            .iter()
            .map(|r| (r.address, s.port_of(r), &r.checks, &r.inline_checks))
    }
    a.checks == b.checks
        && a.services.len() == b.services.len()
        && a.services.iter().zip(&b.services).all(|(x, y)| {
            x.name == y.name
                && x.port == y.port
                && x.checks == y.checks
                && servers(x).eq(servers(y))
        })
        // Tunnel-path jobs carry their VIP and mark.
        && a.tunnel_probes() == b.tunnel_probes()
}

fn vip_set(cfg: &Config) -> BTreeSet<IpAddr> {
    cfg.services.iter().map(|s| s.vip).collect()
}

//! Executing the director's outputs: each [`Output`] becomes the one effect it names, on
//! the task or socket that owns it. Nothing here decides; errors are returned (for the
//! reload report) and logged.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};
use vipd_bgp::speaker::{BfdSource, PeerStatus, Speaker};
use vipd_config::{Config, Sysctl};
use vipd_director::{Event, IpvsIntent, Output};
use vipd_health::engine::{Handle as HealthHandle, Update};
use vipd_net::{Change, Net};

use crate::error::SetupError;
use crate::metrics::DirectorCounters;

/// Applies the IPVS sysctls in this namespace, logging each change.
pub fn apply_sysctls(s: &Sysctl) -> Result<(), vipd_net::sysctl::SysctlError> {
    let entries: Vec<(&str, u32)> = s.entries().into_iter().map(|(n, v, _)| (n, v)).collect();
    for c in vipd_net::sysctl::apply_ipvs(&entries)? {
        info!(sysctl = %c.name, old = %c.old, new = %c.new, "sysctl set");
    }
    Ok(())
}

/// The IPVS connection timeouts of the config.
pub fn timeouts(t: &vipd_config::IpvsTimeouts) -> vipd_ipvs::Timeouts {
    let secs = |d: vipd_config::Duration| u32::try_from(d.get().as_secs()).unwrap_or(u32::MAX);
    vipd_ipvs::Timeouts {
        tcp: secs(t.tcp),
        tcp_fin: secs(t.tcp_fin),
        udp: secs(t.udp),
    }
}

/// Puts every VIP on `lo` (tagged as vipd's), and removes vipd's own VIPs not in `want`. A
/// director must own the VIP locally for IPVS to see the packets addressed to it.
pub async fn sync_vips(net: &Net, want: &BTreeSet<IpAddr>) -> Result<(), vipd_net::NetError> {
    tokio::time::timeout(NETLINK_DEADLINE, sync_vips_now(net, want))
        .await
        .unwrap_or_else(|_| {
            Err(vipd_net::NetError {
                op: "VIP addresses on lo".into(),
                detail: format!("rtnetlink did not answer within {NETLINK_DEADLINE:?}"),
                errno: None,
            })
        })
}

/// How long a round of rtnetlink requests may take: well under the unit's `WatchdogSec`
/// (30 s), so that a kernel that does not answer is an error, not a hung daemon.
pub const NETLINK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

async fn sync_vips_now(net: &Net, want: &BTreeSet<IpAddr>) -> Result<(), vipd_net::NetError> {
    for vip in want {
        let prefix = if vip.is_ipv4() { 32 } else { 128 };
        if net.ensure_owned_address("lo", *vip, prefix).await? == Change::Changed {
            info!(vip = %vip, "VIP added to lo");
        }
    }
    for (addr, _) in net.owned_addresses("lo").await? {
        if !want.contains(&addr) {
            net.remove_owned_address("lo", addr).await?;
            info!(vip = %addr, "VIP removed from lo (no longer configured)");
        }
    }
    Ok(())
}

/// Where the BFD task is once started (the speaker's neighbors look their sessions up
/// there, including neighbors started before it).
pub type BfdSlot = Arc<std::sync::OnceLock<vipd_bfd::runtime::Bfd>>;

/// The neighbors' status receivers, as `vipd status` reads them.
pub type NeighborList = Arc<Vec<(SocketAddr, watch::Receiver<PeerStatus>)>>;

/// The effects' owners, as the director task holds them.
#[derive(Debug)]
pub struct Effects {
    /// To the IPVS task.
    pub ipvs: mpsc::UnboundedSender<IpvsIntent>,
    /// rtnetlink (VIPs on lo).
    pub net: Net,
    /// The speaker, once `[bgp]` has neighbors.
    pub speaker: Option<Speaker>,
    /// The BGP thread's runtime, where the speaker's tasks run (and BFD's).
    pub bgp_rt: tokio::runtime::Handle,
    /// The BFD task, once a neighbor has BFD enabled (never stopped after: removed sessions
    /// are told AdminDown).
    pub bfd: BfdSlot,
    /// Sessions a previous process saved for this one (used at the BFD task's start).
    pub bfd_resume: Vec<vipd_bfd::runtime::Resume>,
    /// The health engine, once started.
    pub health: Option<HealthHandle>,
    /// Its updates, handed to the director loop when the engine starts.
    pub health_rx: Option<mpsc::UnboundedReceiver<Update>>,
    /// Probe latencies (observed by the engine).
    pub latency: vipd_health::engine::LatencyHistograms,
    /// Probes in flight at most (under the open-files limit).
    pub max_probes: usize,
    /// This run found a previous run's state (graceful restart's R bit).
    pub restarting: bool,
    /// When the director wants a tick.
    pub wake: Option<Instant>,
    /// Published neighbor list.
    pub neighbors: watch::Sender<NeighborList>,
    /// Counters for /metrics.
    pub counters: DirectorCounters,
    /// The first IPVS report arrived (systemd READY).
    pub ready: bool,
    /// The routes last decided and whether End-of-RIB was due: a speaker started later
    /// (a reload added the first neighbor) gets them.
    pub routes: std::collections::BTreeMap<vipd_bgp::wire::Prefix, vipd_bgp::rib::RouteAttrs>,
    /// End-of-RIB was due.
    pub eor: bool,
    /// Outputs whose execution failed, by part, kept to be executed again at the next reload
    /// (a listener that could not bind, sysctls, VIP addresses). A later output of the same
    /// part replaces it.
    pub failed: std::collections::BTreeMap<Part, Output>,
    /// Where hooks go (`[service.hooks]`), after the outputs they follow.
    pub hooks: crate::hooks::Hooks,
    /// The event history.
    pub events: crate::events::EventLog,
}

/// The parts of the node an output sets up, for [`Effects::failed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// IPVS sysctls.
    Sysctls,
    /// BGP neighbors and listener.
    Bgp,
    /// VIP addresses.
    Vips,
}

impl Effects {
    /// Executes `outs` in order. `cfg`: the configuration the outputs come from.
    pub async fn execute(&mut self, outs: Vec<Output>, cfg: &Config) -> Vec<SetupError> {
        let mut errors = Vec::new();
        // Hooks go after every output of the decision: the routes and IPVS first.
        let mut hook_events = Vec::new();
        for o in outs {
            let part = crate::lifecycle::part_of(&o);
            let before = errors.len();
            let kept = part.map(|_| o.clone());
            match o {
                Output::Event(e) => {
                    self.log(&e);
                    hook_events.push(e);
                }
                Output::Sysctls(s) => {
                    if let Err(e) = apply_sysctls(&s) {
                        error!(error = %e, "IPVS sysctls failed");
                        errors.push(e.into());
                    }
                }
                Output::Checks(jobs) => {
                    if jobs
                        .jobs
                        .values()
                        .any(|j| j.tunnel.is_some_and(|t| t.vip.is_ipv4()))
                    {
                        if let Err(e) = tunnel_path_sysctls() {
                            error!(error = %e, "tunnel-path checks cannot get their replies");
                            errors.push(e.into());
                        }
                    }
                    let specs: Vec<_> = jobs.jobs.values().cloned().collect();
                    match &self.health {
                        Some(h) => {
                            let st = h.reload(specs).await;
                            info!(
                                kept = st.kept,
                                started = st.started,
                                stopped = st.stopped,
                                "health checks"
                            );
                        }
                        None => {
                            let (h, rx) = vipd_health::engine::spawn(
                                specs,
                                vipd_health::engine::Options {
                                    latency: Some(self.latency.clone()),
                                    max_in_flight: self.max_probes,
                                },
                            );
                            self.health = Some(h);
                            self.health_rx = Some(rx);
                        }
                    }
                }
                Output::Bgp(_) => {
                    if let Err(e) = self.set_bgp(cfg).await {
                        error!("{e}");
                        errors.push(e);
                    }
                }
                Output::Routes(r) => {
                    if let Some(sp) = &self.speaker {
                        sp.set_routes(r.clone());
                    }
                    self.routes = r;
                }
                Output::EndOfRib => {
                    if let Some(sp) = &self.speaker {
                        sp.initial_complete();
                    }
                    self.eor = true;
                }
                Output::Ipvs(i) => {
                    // The IPVS task lives as long as this one (its death is watched).
                    let _ = self.ipvs.send(i);
                }
                Output::Vips(v) => {
                    if let Err(e) = sync_vips(&self.net, &v).await {
                        error!(error = %e, "VIP addresses failed");
                        errors.push(e.into());
                    }
                }
                Output::Wake(at) => self.wake = Some(at),
                _ => warn!("an output this version does not execute"),
            }
            if let (Some(part), Some(o)) = (part, kept) {
                if errors.len() > before {
                    self.failed.insert(part, o);
                } else {
                    self.failed.remove(&part);
                }
            }
        }
        for e in &hook_events {
            self.hooks.dispatch(e, cfg);
        }
        errors
    }

    /// Executes again what failed before ([`Effects::failed`]); returns what still fails.
    pub async fn retry_failed(&mut self, cfg: &Config) -> Vec<SetupError> {
        let outs: Vec<Output> = std::mem::take(&mut self.failed).into_values().collect();
        if outs.is_empty() {
            return Vec::new();
        }
        info!(
            parts = outs.len(),
            "retrying what the last apply could not do"
        );
        self.execute(outs, cfg).await
    }

    fn log(&self, e: &Event) {
        if let Event::IpvsFailed { .. } = e {
            self.counters.ipvs_service_failures.inc();
        }
        self.events.push_event(e);
        match e {
            Event::Panic { on: true, .. } => error!("{e}"),
            e if e.is_warning() => warn!("{e}"),
            e => info!("{e}"),
        }
    }

    /// Applies `[bgp]`: unchanged sessions stay up, removed neighbors get a Cease, changed
    /// ones restart, new ones start (a listener is opened for a new passive neighbor).
    async fn set_bgp(&mut self, cfg: &Config) -> Result<(), SetupError> {
        // BFD first: the speaker's new neighbors find their sessions. A BFD task that
        // cannot start fails closed (those neighbors announce nothing) and the rest of
        // [bgp] still applies; the error makes the next reload retry.
        let bfd = self.set_bfd(cfg).await;
        let peers = crate::bgp::peers(cfg, self.restarting);
        let need_listener = peers.iter().any(|p| p.fsm.passive);
        let mut listener = match (&self.speaker, &cfg.bgp, need_listener) {
            (Some(sp), _, _) if sp.has_listener() => None,
            (_, Some(b), true) => Some(tokio::net::TcpListener::bind(b.listen).await.map_err(
                |source| SetupError::BgpListen {
                    addr: b.listen,
                    source,
                },
            )?),
            _ => None,
        };
        // (Only when there is a speaker: the listener of a speaker started below goes to it.)
        if let Some(sp) = self.speaker.as_mut() {
            if let Some(l) = listener.take() {
                sp.set_listener(l);
            }
        }
        match self.speaker.as_mut() {
            None if peers.is_empty() => {}
            None => {
                let slot = self.bfd.clone();
                let source = BfdSource(Arc::new(move |ip| slot.get().and_then(|b| b.status(ip))));
                let sp =
                    Speaker::start_with_bfd(self.bgp_rt.clone(), peers, listener, Some(source));
                info!(neighbors = sp.status().len(), "BGP speaker started");
                sp.set_routes(self.routes.clone());
                if self.eor {
                    sp.initial_complete();
                }
                self.speaker = Some(sp);
            }
            Some(_) if peers.is_empty() => {
                info!("no BGP neighbor left; closing every session");
                if let Some(old) = self.speaker.take() {
                    old.shutdown("neighbor removed from the configuration")
                        .await;
                }
            }
            Some(sp) => {
                let c = sp
                    .set_peers(peers, "neighbor removed or reconfigured")
                    .await;
                info!(kept = ?c.kept, added = ?c.added, removed = ?c.removed, restarted = ?c.restarted,
                    "BGP neighbors");
            }
        }
        let list = self
            .speaker
            .as_ref()
            .map(Speaker::status_receivers)
            .unwrap_or_default();
        self.neighbors.send_replace(Arc::new(list));
        bfd
    }

    /// Starts the BFD task at the first neighbor with BFD, then keeps its sessions in line
    /// with the configuration.
    async fn set_bfd(&mut self, cfg: &Config) -> Result<(), SetupError> {
        let peers = crate::bfd::peers(cfg);
        // Saved sessions are for the first apply only: a BFD task started later (a reload
        // enabling BFD) starts afresh, the routers have long declared the old ones down.
        let resume = std::mem::take(&mut self.bfd_resume);
        if let Some(b) = self.bfd.get() {
            b.set_peers(peers).await;
            return Ok(());
        }
        if peers.is_empty() {
            return Ok(());
        }
        let b = vipd_bfd::runtime::Bfd::start_on(&self.bgp_rt, peers, resume)?;
        info!("BFD started");
        let _ = self.bfd.set(b);
        Ok(())
    }
}

/// What IPv4 tunnel-path checks need: the real server answers from the VIP, an address this
/// director holds too, and the kernel drops packets from its own addresses unless
/// `accept_local` (strict reverse-path filtering drops them as well: warned, not changed).
fn tunnel_path_sysctls() -> Result<(), vipd_net::sysctl::SysctlError> {
    if let Some(c) = vipd_net::sysctl::set("net.ipv4.conf.all.accept_local", "1")? {
        info!(sysctl = %c.name, old = %c.old, new = %c.new, "sysctl set for tunnel-path checks");
    }
    // The kernel applies the larger of `all` and the interface's value; 1 is strict.
    let rp = |dev: &str| {
        vipd_net::sysctl::get(&format!("net.ipv4.conf.{dev}.rp_filter"))
            .ok()
            .and_then(|v| v.parse::<u8>().ok())
    };
    let all = rp("all");
    let strict: Vec<String> = std::fs::read_dir("/proc/sys/net/ipv4/conf")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|d| !matches!(d.as_str(), "all" | "default" | "lo") && !d.contains('.'))
        .filter(|d| all.max(rp(d)) == Some(1))
        .collect();
    if !strict.is_empty() {
        tracing::warn!(
            interfaces = %strict.join(","),
            "strict rp_filter (1) drops the replies of tunnel-path checks arriving there; set 0 or 2"
        );
    }
    Ok(())
}

//! The backend role: an L7 node that receives the directors' tunnelled traffic.
//!
//! `apply` makes the node match `[backend]` (tunnel devices, their VIPs, `lo` VIPs for `dr`,
//! rp_filter / arp sysctls, the optional nftables filter); it is idempotent and re-run at
//! every resync, so a device or address removed by hand comes back. The agent task answers
//! the directors' HAProxy agent checks from the drain file, the local checks and the state
//! file, read at each connection (an operator's `touch` takes effect on the next check).
//!
//! Modules: [`nft`] (the director filter), [`agent`] (the agent listener and its reply);
//! this file keeps the kernel set-up and the node's life cycle.

mod agent;
pub mod metrics;
mod nft;
mod observe;

use agent::{AgentSources, LocalHealth, bind_agent, local_jobs};
use nft::nft_apply;

use crate::tasks::RunError;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::watch;
use tracing::{info, warn};
use vipd_config::{Config, TunnelMode};
use vipd_health::engine::Update;
use vipd_net::fou::{Fou, GuePort};
use vipd_net::{Change, Net, TunnelSpec};

/// The nftables table vipd owns on a backend (replaced as a whole at each apply).
pub const NFT_TABLE: &str = "vipd_backend";

/// The GUE listeners `[backend]` asks for: one per (family, port), whatever the devices
/// sharing it (the kernel hands each inner packet to the device its outer addresses match).
pub(crate) fn gue_ports(cfg: &Config) -> BTreeSet<GuePort> {
    cfg.backend
        .iter()
        .flat_map(|b| &b.tunnels)
        .filter_map(|t| {
            t.gue_port.map(|port| GuePort {
                port,
                v6: !t.mode.outer_v4(),
            })
        })
        .collect()
}

/// The device vipd keeps for `t`: ip6ip6 in `mode any` when an IPv4 VIP arrives over it.
fn tunnel_spec(t: &vipd_config::BackendTunnel) -> TunnelSpec {
    TunnelSpec {
        name: t.name.clone(),
        mode: t.mode,
        local: t.local,
        any_inner: t.mode == TunnelMode::Ip6ip6 && t.vips.iter().any(IpAddr::is_ipv4),
    }
}

/// Brings the node to `[backend]`. Every step is tried; the failures are returned, each
/// naming the equivalent command. `gue_owned` holds the GUE listeners vipd added (the
/// kernel keeps no owner for them); a listener no longer configured is removed only if it
/// is there.
pub async fn apply(
    net: &Net,
    fou: &Fou,
    cfg: &Config,
    gue_owned: &mut BTreeSet<GuePort>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(b) = &cfg.backend else {
        return errors;
    };
    for t in &b.tunnels {
        let spec = tunnel_spec(t);
        match net.ensure_tunnel(&spec).await {
            Ok(Change::Changed) => info!(device = %t.name, "tunnel set: {}", spec.ip_command()),
            Ok(Change::Unchanged) => {}
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        }
        errors.extend(sync_addresses(net, &t.name, &t.vips).await);
    }
    let want = gue_ports(cfg);
    for at in &want {
        match fou.ensure_gue(*at).await {
            Ok(Change::Changed) => {
                info!(
                    port = at.port,
                    "GUE listener added: {}",
                    at.ip_command("add")
                );
                gue_owned.insert(*at);
            }
            // There already: an operator's or an earlier run's, never removed by vipd.
            Ok(Change::Unchanged) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    for at in gue_owned.clone().difference(&want) {
        match fou.remove(*at).await {
            Ok(_) => {
                info!(
                    port = at.port,
                    "GUE listener removed (no longer configured)"
                );
                gue_owned.remove(at);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    for (name, value) in required_sysctls(cfg) {
        set_sysctl(&name, value, &mut errors);
    }
    errors.extend(sync_addresses(net, "lo", &b.loopback_vips).await);
    if let Err(e) = nft_apply(&b.allowed_directors, &want).await {
        errors.push(e);
    }
    errors
}

/// The sysctls `[backend]` needs, with their values.
pub(crate) fn required_sysctls(cfg: &Config) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let Some(b) = &cfg.backend else {
        return out;
    };
    let v4_inside = |t: &&vipd_config::BackendTunnel| {
        t.mode == TunnelMode::Ipip || t.vips.iter().any(IpAddr::is_ipv4)
    };
    for t in b.tunnels.iter().filter(v4_inside) {
        // The reply leaves by another interface than the one the packet came in on: strict
        // reverse-path filtering would drop every tunnelled IPv4 packet (whatever the outer
        // family: the check is on the inner header, against the device it arrived on). The
        // effective value is the max of `all` and the device's.
        for dev in ["all", t.name.as_str()] {
            let name = format!("net.ipv4.conf.{dev}.rp_filter");
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, "0"));
            }
        }
    }
    if !b.loopback_vips.is_empty() {
        // `dr`: the VIP is on lo of every backend; none may answer ARP for it.
        out.push(("net.ipv4.conf.all.arp_ignore".into(), "1"));
        out.push(("net.ipv4.conf.all.arp_announce".into(), "2"));
    }
    out
}

fn set_sysctl(name: &str, value: &str, errors: &mut Vec<String>) {
    match vipd_net::sysctl::set(name, value) {
        Ok(Some(c)) => info!(sysctl = %c.name, old = %c.old, new = %c.new, "sysctl set"),
        Ok(None) => {}
        Err(e) => errors.push(e.to_string()),
    }
}

/// Puts `vips` on `dev` (tagged as vipd's) and removes vipd's other addresses there.
async fn sync_addresses(net: &Net, dev: &str, vips: &[IpAddr]) -> Vec<String> {
    let mut errors = Vec::new();
    for vip in vips {
        let prefix = if vip.is_ipv4() { 32 } else { 128 };
        match net.ensure_owned_address(dev, *vip, prefix).await {
            Ok(Change::Changed) => info!(vip = %vip, device = dev, "VIP added"),
            Ok(Change::Unchanged) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    match net.owned_addresses(dev).await {
        Ok(owned) => {
            for (addr, _) in owned {
                if !vips.contains(&addr) {
                    match net.remove_owned_address(dev, addr).await {
                        Ok(_) => {
                            info!(vip = %addr, device = dev, "VIP removed (no longer configured)")
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                }
            }
        }
        Err(e) => errors.push(e.to_string()),
    }
    errors
}

/// The backend role's running state, owned by the main task.
pub struct Node {
    net: Net,
    fou: Fou,
    /// The GUE listeners vipd added (removed when no longer configured).
    gue_owned: BTreeSet<GuePort>,
    health: Option<vipd_health::engine::Handle>,
    local: LocalHealth,
    local_tx: watch::Sender<LocalHealth>,
    sources_tx: watch::Sender<AgentSources>,
    /// The errors of the last apply (logged again only when they change).
    errors: Vec<String>,
    agent_listen: Option<SocketAddr>,
    /// The last observation.
    observed: crate::status::backend::BackendStatus,
}

fn sources(cfg: &Config) -> AgentSources {
    let agent = cfg.backend.as_ref().and_then(|b| b.agent.as_ref());
    AgentSources {
        drain_file: cfg.global.drain_file.clone(),
        state_file: agent.map(|a| a.state_file.clone()).unwrap_or_default(),
        allowed: agent
            .map(|a| a.allowed_directors.clone())
            .unwrap_or_default(),
    }
}

/// The agent listener's serving future, for the task layout to spawn.
pub type AgentTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Node {
    /// Sets the node up and starts the local checks and the agent listener. Set-up errors
    /// are logged and retried at each resync; an agent that cannot listen is fatal (the
    /// directors would see this node down for a reason nobody could find).
    pub async fn start(
        cfg: &Config,
        shutdown: watch::Receiver<bool>,
    ) -> Result<
        (
            Node,
            Option<tokio::sync::mpsc::UnboundedReceiver<Update>>,
            Option<AgentTask>,
        ),
        RunError,
    > {
        let net = Net::connect().map_err(RunError::Net)?;
        let (local_tx, local_rx) = watch::channel(LocalHealth::default());
        let (sources_tx, sources_rx) = watch::channel(sources(cfg));
        let jobs = local_jobs(cfg);
        let (health, rx) = if jobs.is_empty() {
            (None, None)
        } else {
            let (h, rx) = vipd_health::engine::spawn(jobs, Default::default());
            (Some(h), Some(rx))
        };
        let agent_listen = cfg
            .backend
            .as_ref()
            .and_then(|b| b.agent.as_ref())
            .map(|a| a.listen);
        let agent: Option<AgentTask> = match agent_listen {
            Some(listen) => Some(Box::pin(
                bind_agent(listen, sources_rx, local_rx, shutdown).await?,
            )),
            None => None,
        };
        let mut node = Node {
            net,
            fou: Fou::connect().map_err(RunError::Net)?,
            gue_owned: BTreeSet::new(),
            health,
            local: LocalHealth::default(),
            local_tx,
            sources_tx,
            errors: Vec::new(),
            agent_listen,
            observed: Default::default(),
        };
        node.resync(cfg).await;
        Ok((node, rx, agent))
    }

    /// Re-applies `[backend]` (repairs what was removed by hand).
    pub async fn resync(&mut self, cfg: &Config) {
        let deadline = crate::director::NETLINK_DEADLINE;
        let errors = tokio::time::timeout(
            deadline,
            apply(&self.net, &self.fou, cfg, &mut self.gue_owned),
        )
        .await
        .unwrap_or_else(|_| vec![format!("rtnetlink did not answer within {deadline:?}")]);
        if errors != self.errors {
            for e in &errors {
                tracing::error!("backend set-up: {e} (retried at each resync)");
            }
            if errors.is_empty() && !self.errors.is_empty() {
                info!("backend set-up complete");
            }
        }
        self.errors = errors;
    }

    /// The errors of the last set-up, for the reload's answer.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// The status document of the last observation.
    pub fn status(
        &self,
        cfg: &Config,
        started: std::time::Instant,
        last_reload: &Option<String>,
    ) -> crate::status::Status {
        crate::status::Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            role: vipd_config::Role::Backend,
            uptime_secs: started.elapsed().as_secs(),
            drained: cfg.global.drain_file.exists(),
            drain_file: cfg.global.drain_file.display().to_string(),
            last_reload: last_reload.clone(),
            backend: Some(self.observed.clone()),
            ..crate::status::Status::default()
        }
    }

    /// Looks at the node now (read-only, within [`observe::OBSERVE_DEADLINE`]) and returns
    /// what it found; a failed or late observation keeps the last one, with the failure among
    /// its problems.
    pub async fn observe(&mut self, cfg: &Config) -> &crate::status::backend::BackendStatus {
        let agent = self.sources_tx.borrow().clone();
        let seen = tokio::time::timeout(
            observe::OBSERVE_DEADLINE,
            observe::observe(&self.net, &self.fou, cfg, &self.errors, &self.local, &agent),
        )
        .await;
        let seen = match seen {
            Ok(Ok(st)) => Ok(st),
            Ok(Err(e)) => {
                // The rtnetlink connection may be dead: a new one for the next look.
                if let Ok(n) = Net::connect() {
                    self.net = n;
                }
                Err(format!("the node could not be observed: {e}"))
            }
            Err(_) => Err(format!(
                "the node could not be observed within {:?} (rtnetlink or nft did not answer)",
                observe::OBSERVE_DEADLINE
            )),
        };
        match seen {
            Ok(st) => {
                let blackholes = st.blackholes();
                if blackholes != self.local.blackholes {
                    match blackholes.first() {
                        Some(p) => {
                            warn!(problem = %p, "the node cannot receive tunnelled traffic: the agent answers down")
                        }
                        None => info!(
                            "the node receives tunnelled traffic again: the agent answers from its checks"
                        ),
                    }
                    self.local.blackholes = blackholes;
                    self.local_tx.send_replace(self.local.clone());
                }
                self.observed = st;
                if let Some(a) = self.observed.agent.as_mut() {
                    a.answer = agent::agent_reply(&agent, &self.local)
                        .trim_end()
                        .to_string();
                }
            }
            Err(miss) => {
                // The last observation stands (and the agent's answer with it), with why.
                if !self.observed.problems.contains(&miss) {
                    warn!("{miss}");
                    self.observed.problems.push(miss);
                }
            }
        }
        &self.observed
    }

    /// A local check changed.
    pub fn on_update(&mut self, u: Update) {
        self.local.apply(u);
        self.local_tx.send_replace(self.local.clone());
    }

    /// Applies a new configuration: set-up, agent sources, local checks.
    pub async fn reload(&mut self, cfg: &Config) {
        self.resync(cfg).await;
        self.sources_tx.send_replace(sources(cfg));
        let listen = cfg
            .backend
            .as_ref()
            .and_then(|b| b.agent.as_ref())
            .map(|a| a.listen);
        if listen != self.agent_listen {
            warn!("reload: [backend.agent] listen changed; it takes effect at the next restart");
        }
        let jobs = local_jobs(cfg);
        if let Some(h) = &self.health {
            let keep: Vec<Arc<str>> = jobs.iter().map(|j| j.key.clone()).collect();
            self.local.checks.retain(|k, _| keep.contains(k));
            self.local_tx.send_replace(self.local.clone());
            h.reload(jobs).await;
        } else if !jobs.is_empty() {
            warn!("reload: local checks added; they start at the next restart");
        }
    }
}

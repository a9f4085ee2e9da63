//! The backend role: an L7 node that receives the directors' tunnelled traffic.
//!
//! `apply` makes the node match `[backend]` (tunnel devices, their VIPs, `lo` VIPs for `dr`,
//! rp_filter / arp sysctls, the optional nftables filter); it is idempotent and re-run at
//! every resync, so a device or address removed by hand comes back. The agent task answers
//! the directors' HAProxy agent checks from the drain file, the local checks and the state
//! file, read at each connection (an operator's `touch` takes effect on the next check).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tracing::{info, warn};
use vipd_config::{Config, TunnelMode};
use vipd_health::engine::{JobSpec, Update};
use vipd_health::fsm::State;
use vipd_net::{Change, Net, TunnelSpec};

/// The nftables table vipd owns on a backend (replaced as a whole at each apply).
pub const NFT_TABLE: &str = "vipd_backend";

/// Brings the node to `[backend]`. Every step is tried; the failures are returned, each
/// naming the equivalent command.
pub async fn apply(net: &Net, cfg: &Config) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(b) = &cfg.backend else {
        return errors;
    };
    for t in &b.tunnels {
        let spec = TunnelSpec {
            name: t.name.clone(),
            mode: t.mode,
            local: t.local,
        };
        match net.ensure_tunnel(&spec).await {
            Ok(Change::Changed) => info!(device = %t.name, "tunnel created: {}", spec.ip_command()),
            Ok(Change::Unchanged) => {}
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        }
        errors.extend(sync_addresses(net, &t.name, &t.vips).await);
        if t.mode == TunnelMode::Ipip {
            // The reply leaves by another interface than the one the packet came in on:
            // strict reverse-path filtering would drop every tunnelled packet. The effective
            // value is the max of `all` and the device's.
            for dev in ["all", t.name.as_str()] {
                set_sysctl(&format!("net.ipv4.conf.{dev}.rp_filter"), "0", &mut errors);
            }
        }
    }
    if !b.loopback_vips.is_empty() {
        // `dr`: the VIP is on lo of every backend; none may answer ARP for it.
        set_sysctl("net.ipv4.conf.all.arp_ignore", "1", &mut errors);
        set_sysctl("net.ipv4.conf.all.arp_announce", "2", &mut errors);
    }
    errors.extend(sync_addresses(net, "lo", &b.loopback_vips).await);
    if let Err(e) = nft_apply(&b.allowed_directors).await {
        errors.push(e);
    }
    errors
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

/// The nftables ruleset that drops encapsulated packets (IPIP, IPv6-in-IPv6) from anyone
/// but the directors, or only the deletion of vipd's table when no director is listed.
pub fn nft_ruleset(directors: &[IpAddr]) -> String {
    // "add" then "delete" then the table: one atomic transaction that replaces the table
    // whether it existed or not.
    let mut s = format!("add table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n");
    if directors.is_empty() {
        return s;
    }
    let list = |v6: bool| {
        directors
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let set = |name: &str, ty: &str, elems: String| {
        if elems.is_empty() {
            format!("  set {name} {{ type {ty}; }}\n")
        } else {
            format!("  set {name} {{ type {ty}; elements = {{ {elems} }}; }}\n")
        }
    };
    s.push_str(&format!("table inet {NFT_TABLE} {{\n"));
    s.push_str(&set("directors4", "ipv4_addr", list(false)));
    s.push_str(&set("directors6", "ipv6_addr", list(true)));
    s.push_str(
        "  chain input {\n    type filter hook input priority -150; policy accept;\n    \
         ip protocol 4 ip saddr != @directors4 counter drop comment \"IPIP from a non-director\"\n    \
         ip6 nexthdr 41 ip6 saddr != @directors6 counter drop comment \"ip6ip6 from a non-director\"\n  \
         }\n}\n",
    );
    s
}

async fn nft_apply(directors: &[IpAddr]) -> Result<(), String> {
    if directors.is_empty() && !nft_table_exists().await {
        return Ok(()); // nothing to remove; do not require nft on nodes that do not use it
    }
    let rules = nft_ruleset(directors);
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft -f - (allowed_directors): {e}; install the nftables package"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .await
            .map_err(|e| format!("nft -f -: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("nft -f -: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft -f - (allowed_directors) failed: {}\nruleset:\n{rules}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

async fn nft_table_exists() -> bool {
    tokio::process::Command::new("nft")
        .args(["list", "table", "inet", NFT_TABLE])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// The local checks of `[backend.agent]`, each probing 127.0.0.1 on the check's port.
pub fn local_jobs(cfg: &Config) -> Vec<JobSpec> {
    let Some(agent) = cfg.backend.as_ref().and_then(|b| b.agent.as_ref()) else {
        return Vec::new();
    };
    cfg.checks
        .iter()
        .filter(|c| c.name.as_ref().is_some_and(|n| agent.checks.contains(n)))
        .map(|c| {
            let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), c.port.unwrap_or(80));
            let key: Arc<str> = Arc::from(vipd_health::engine::key(c, server));
            JobSpec {
                key,
                name: Arc::from(c.name.as_deref().unwrap_or(c.kind.as_str())),
                check: Arc::new(c.clone()),
                server,
                users: Default::default(),
            }
        })
        .collect()
}

/// What the agent reports, apart from the files read at each connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalHealth {
    /// Each local check's state and reason, by job key.
    pub checks: BTreeMap<Arc<str>, (State, String)>,
}

impl LocalHealth {
    /// Takes one health update.
    pub fn apply(&mut self, u: Update) {
        if u.state == State::Down {
            warn!(check = %u.name, reason = %u.reason, "local check down: the agent answers down");
        } else {
            info!(check = %u.name, state = ?u.state, "local check");
        }
        self.checks.insert(u.key, (u.state, u.reason));
    }
}

/// Where the agent's answer comes from.
#[derive(Clone, Debug)]
pub struct AgentSources {
    /// `global.drain_file`: present -> `drain`.
    pub drain_file: PathBuf,
    /// `[backend.agent] state_file`: its first line, when present.
    pub state_file: PathBuf,
}

/// The agent's reply line: the drain file wins (`drain`: weight 0, existing flows finish),
/// then a failed local check (`down #reason`), then the state file's first line (`75%`,
/// `maint`, `up`...), else `up`.
pub fn agent_reply(src: &AgentSources, local: &LocalHealth) -> String {
    if src.drain_file.exists() {
        return format!("drain #{} present\n", src.drain_file.display());
    }
    if let Some((_, reason)) = local.checks.values().find(|(s, _)| *s == State::Down) {
        let reason: String = reason
            .chars()
            .filter(|c| *c != '\n' && *c != '\r')
            .collect();
        return format!("down #{reason}\n");
    }
    if let Ok(text) = std::fs::read_to_string(&src.state_file) {
        let first = text.lines().next().unwrap_or("").trim();
        if !first.is_empty() {
            return format!("{first}\n");
        }
    }
    "up\n".to_string()
}

/// Serves the agent check on `listen`: one line per connection, then close.
pub async fn serve_agent(
    listen: SocketAddr,
    sources: watch::Receiver<AgentSources>,
    local: watch::Receiver<LocalHealth>,
) -> Result<(), String> {
    let sock = if listen.is_ipv6() {
        tokio::net::TcpSocket::new_v6()
    } else {
        tokio::net::TcpSocket::new_v4()
    }
    .map_err(|e| format!("agent socket: {e}"))?;
    sock.set_reuseaddr(true)
        .map_err(|e| format!("agent socket: {e}"))?;
    if listen.is_ipv6() {
        // [::]:5555 answers IPv4 directors too (the seed's `socat TCP6-LISTEN:...,ipv6only=0`).
        let _ = socket2::SockRef::from(&sock).set_only_v6(false);
    }
    sock.bind(listen)
        .map_err(|e| format!("agent: cannot listen on {listen}: {e}"))?;
    let l = sock
        .listen(128)
        .map_err(|e| format!("agent: cannot listen on {listen}: {e}"))?;
    info!(listen = %listen, "agent check listening");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let reply = agent_reply(&sources.borrow(), &local.borrow());
            tokio::spawn(async move {
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(())
}

/// The backend role's running state, owned by the main task.
pub struct Node {
    net: Net,
    health: Option<vipd_health::engine::Handle>,
    local: LocalHealth,
    local_tx: watch::Sender<LocalHealth>,
    sources_tx: watch::Sender<AgentSources>,
    /// The errors of the last apply (logged again only when they change).
    errors: Vec<String>,
    agent_listen: Option<SocketAddr>,
}

fn sources(cfg: &Config) -> AgentSources {
    AgentSources {
        drain_file: cfg.global.drain_file.clone(),
        state_file: cfg
            .backend
            .as_ref()
            .and_then(|b| b.agent.as_ref())
            .map(|a| a.state_file.clone())
            .unwrap_or_default(),
    }
}

impl Node {
    /// Sets the node up and starts the local checks and the agent listener. Set-up errors
    /// are logged and retried at each resync; an agent that cannot listen is fatal (the
    /// directors would see this node down for a reason nobody could find).
    pub async fn start(
        cfg: &Config,
    ) -> Result<(Node, Option<tokio::sync::mpsc::UnboundedReceiver<Update>>), String> {
        let net = Net::connect().map_err(|e| format!("cannot open an rtnetlink socket: {e}"))?;
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
        if let Some(listen) = agent_listen {
            serve_agent(listen, sources_rx, local_rx).await?;
        }
        let mut node = Node {
            net,
            health,
            local: LocalHealth::default(),
            local_tx,
            sources_tx,
            errors: Vec::new(),
            agent_listen,
        };
        node.resync(cfg).await;
        Ok((node, rx))
    }

    /// Re-applies `[backend]` (repairs what was removed by hand).
    pub async fn resync(&mut self, cfg: &Config) {
        let errors = apply(&self.net, cfg).await;
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

    /// The errors of the last set-up, for the status.
    pub fn errors(&self) -> &[String] {
        &self.errors
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_for_both_families_and_for_none() {
        let r = nft_ruleset(&[
            "192.0.2.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ]);
        assert!(r.starts_with("add table inet vipd_backend\ndelete table inet vipd_backend\n"));
        assert!(r.contains("set directors4 { type ipv4_addr; elements = { 192.0.2.10 }; }"));
        assert!(r.contains("set directors6 { type ipv6_addr; elements = { 2001:db8::10 }; }"));
        assert!(r.contains("ip protocol 4 ip saddr != @directors4 counter drop"));
        let v4only = nft_ruleset(&["192.0.2.10".parse().unwrap()]);
        assert!(
            v4only.contains("set directors6 { type ipv6_addr; }"),
            "{v4only}"
        );
        assert_eq!(
            nft_ruleset(&[]),
            "add table inet vipd_backend\ndelete table inet vipd_backend\n"
        );
    }

    #[test]
    fn agent_reply_order_drain_then_checks_then_state_file() {
        let dir = std::env::temp_dir().join(format!("vipd-agent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = AgentSources {
            drain_file: dir.join("disable"),
            state_file: dir.join("agent-check"),
        };
        let mut local = LocalHealth::default();
        assert_eq!(agent_reply(&src, &local), "up\n");
        std::fs::write(&src.state_file, "75%\nignored\n").unwrap();
        assert_eq!(agent_reply(&src, &local), "75%\n");
        local
            .checks
            .insert(Arc::from("k"), (State::Down, "connect: refused\n".into()));
        assert_eq!(agent_reply(&src, &local), "down #connect: refused\n");
        std::fs::write(&src.drain_file, "").unwrap();
        assert!(agent_reply(&src, &local).starts_with("drain #"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

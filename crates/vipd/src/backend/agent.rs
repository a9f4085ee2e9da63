//! The HAProxy agent-check listener of the backend role and its reply.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tracing::{info, warn};
use vipd_config::Config;
use vipd_health::engine::{JobSpec, Update};
use vipd_health::fsm::State;

use crate::error::ServeError;

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
) -> Result<(), ServeError> {
    let err = |source| ServeError::Listen {
        addr: listen,
        source,
    };
    let sock = if listen.is_ipv6() {
        tokio::net::TcpSocket::new_v6()
    } else {
        tokio::net::TcpSocket::new_v4()
    }
    .map_err(err)?;
    sock.set_reuseaddr(true).map_err(err)?;
    if listen.is_ipv6() {
        // [::]:5555 answers IPv4 directors too (the seed's `socat TCP6-LISTEN:...,ipv6only=0`).
        let _ = socket2::SockRef::from(&sock).set_only_v6(false);
    }
    sock.bind(listen).map_err(err)?;
    let l = sock.listen(128).map_err(err)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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

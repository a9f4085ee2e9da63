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
                tunnel: None,
            }
        })
        .collect()
}

/// What the agent reports, apart from the files read at each connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalHealth {
    /// Each local check's state and reason, by job key.
    pub checks: BTreeMap<Arc<str>, (State, String)>,
    /// What keeps tunnelled traffic from reaching this node's listeners, as last observed
    /// (a missing tunnel device or VIP, strict rp_filter).
    pub blackholes: Vec<String>,
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
    /// `[backend.agent] allowed_directors` (empty: anyone).
    pub allowed: Vec<IpAddr>,
}

/// The agent's reply line: the drain file wins (`drain`: weight 0, existing flows finish),
/// then a set-up that blackholes tunnelled traffic (`down #VIP ... is missing on tunl0`: a
/// backend that cannot receive the traffic must not be sent it), then a failed local check
/// (`down #reason`), then the state file's first line (`75%`, `maint`, `up`...), else `up`.
pub fn agent_reply(src: &AgentSources, local: &LocalHealth) -> String {
    if src.drain_file.exists() {
        return format!("drain #{} present\n", src.drain_file.display());
    }
    if let Some(p) = local.blackholes.first() {
        return format!("down #{p}\n");
    }
    if let Some((_, reason)) = local.checks.values().find(|(s, _)| *s == State::Down) {
        let reason: String = reason
            .chars()
            .filter(|c| *c != '\n' && *c != '\r')
            .collect();
        return format!("down #{reason}\n");
    }
    if let Some(first) = state_line(&src.state_file) {
        return format!("{first}\n");
    }
    "up\n".to_string()
}

/// The state file's first line, trimmed, if any: at most [`STATE_MAX`] bytes are read (a
/// state file pointed at something huge, or at a FIFO that never ends, costs nothing).
fn state_line(path: &std::path::Path) -> Option<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        // A FIFO must not block the open waiting for a writer.
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let mut buf = Vec::new();
    f.take(STATE_MAX).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let first = text.lines().next().unwrap_or("").trim();
    (!first.is_empty()).then(|| first.chars().filter(|c| !c.is_control()).collect())
}

/// Bytes of the state file read at most.
const STATE_MAX: u64 = 4096;

/// How often the reply is recomputed from the files (the drain file, the state file).
const REPLY_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Connections at once; each lives at most [`WRITE_DEADLINE`].
const MAX_CONNS: usize = 256;
const WRITE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Binds the agent listener on `listen`; the returned future serves it until `shutdown`:
/// one line per connection, then close. The line is computed at most every
/// [`REPLY_REFRESH`] (and at each local check change) on a blocking thread, never per
/// connection on the runtime: a flood of connections costs no file I/O. Connections from
/// outside `allowed` (when not empty) are closed without an answer.
pub async fn bind_agent(
    listen: SocketAddr,
    sources: watch::Receiver<AgentSources>,
    mut local: watch::Receiver<LocalHealth>,
    shutdown: watch::Receiver<bool>,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, ServeError> {
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
    let l = sock
        .listen(128)
        .and_then(tokio::net::TcpListener::into_std)
        .map_err(err)?;
    info!(listen = %listen, "agent check listening");
    let acl = sources.clone();
    let (reply_tx, reply) = watch::channel(Arc::<str>::from("up\n"));
    let mut stop = shutdown.clone();
    let refresh = async move {
        let mut tick = tokio::time::interval(REPLY_REFRESH);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = local.changed() => if r.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
            let (src, loc) = (sources.borrow().clone(), local.borrow().clone());
            if let Ok(line) = tokio::task::spawn_blocking(move || agent_reply(&src, &loc)).await {
                reply_tx.send_if_modified(|r| {
                    (**r != *line) && {
                        *r = Arc::from(line);
                        true
                    }
                });
            }
        }
    };
    let slots = crate::accept::Slots::new(MAX_CONNS);
    let serve = crate::accept::run::<tokio::net::TcpListener, _, _>(
        "agent",
        l,
        slots,
        shutdown,
        move |mut s: tokio::net::TcpStream, _| {
            let line = reply.borrow().clone();
            let ok = {
                let allowed = &acl.borrow().allowed;
                allowed.is_empty()
                    || s.peer_addr().is_ok_and(|p| {
                        allowed
                            .iter()
                            .any(|a| a.to_canonical() == p.ip().to_canonical())
                    })
            };
            async move {
                if !ok {
                    return;
                }
                let _ = tokio::time::timeout(WRITE_DEADLINE, async {
                    let _ = s.write_all(line.as_bytes()).await;
                    let _ = s.shutdown().await;
                })
                .await;
            }
        },
    );
    Ok(async move {
        tokio::join!(refresh, serve);
    })
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
            allowed: Vec::new(),
        };
        let mut local = LocalHealth::default();
        assert_eq!(agent_reply(&src, &local), "up\n");
        std::fs::write(&src.state_file, "75%\nignored\n").unwrap();
        assert_eq!(agent_reply(&src, &local), "75%\n");
        local
            .checks
            .insert(Arc::from("k"), (State::Down, "connect: refused\n".into()));
        assert_eq!(agent_reply(&src, &local), "down #connect: refused\n");
        local.blackholes = vec!["VIP 198.51.100.10 is missing on tunl0".into()];
        assert_eq!(
            agent_reply(&src, &local),
            "down #VIP 198.51.100.10 is missing on tunl0\n"
        );
        std::fs::write(&src.drain_file, "").unwrap();
        assert!(agent_reply(&src, &local).starts_with("drain #"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_huge_state_file_or_a_fifo_costs_nothing() {
        let dir = std::env::temp_dir().join(format!("vipd-agent-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big");
        std::fs::write(&big, "x".repeat(10 << 20)).unwrap();
        assert_eq!(state_line(&big).map(|l| l.len()), Some(STATE_MAX as usize));
        let fifo = dir.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // No writer: the read must not block.
        assert_eq!(state_line(&fifo), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

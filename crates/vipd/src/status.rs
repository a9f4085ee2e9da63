//! `vipd status`: the daemon's view, served on the control socket (a Unix socket, mode 0600:
//! root only), as JSON; the CLI renders it like `ipvsadm -Ln` plus `birdc show protocols`.
//!
//! Protocol: the client sends one line (`status`), the daemon answers one JSON document and
//! closes. The socket task only carries requests to the main task, which owns the state.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// The whole report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    /// vipd version.
    pub version: String,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Drain file present.
    pub drained: bool,
    /// The drain file's path.
    pub drain_file: String,
    /// Result of the last reload (None: no reload yet).
    pub last_reload: Option<String>,
    /// Services.
    pub services: Vec<ServiceStatus>,
    /// BGP neighbors.
    pub neighbors: Vec<NeighborStatus>,
    /// Set when IPVS could not be read (counters are then missing).
    pub ipvs_error: Option<String>,
}

/// One service.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Name.
    pub name: String,
    /// `TCP 198.51.100.1:80`.
    pub key: String,
    /// Scheduler and flags as configured.
    pub scheduler: String,
    /// `announced`, `draining` or `withdrawn`.
    pub announce: String,
    /// Why.
    pub announce_reason: String,
    /// Sum of healthy weights and the quorum.
    pub healthy_weight: u64,
    /// Configured quorum.
    pub quorum: u32,
    /// Panic mode on.
    pub panic: bool,
    /// Real servers.
    pub real_servers: Vec<RealServerStatus>,
}

/// One real server.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RealServerStatus {
    /// `10.1.0.1:80`.
    pub address: String,
    /// `up`, `down`.
    pub health: String,
    /// Reason of the last change or result.
    pub reason: String,
    /// Configured weight.
    pub weight: u32,
    /// Weight in IPVS now (None: not in IPVS).
    pub ipvs_weight: Option<u32>,
    /// Active connections (IPVS).
    pub active_conns: u32,
    /// Inactive connections (IPVS).
    pub inact_conns: u32,
}

/// One BGP neighbor.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NeighborStatus {
    /// `10.0.0.254:179`.
    pub address: String,
    /// FSM state.
    pub state: String,
    /// Seconds since Established.
    pub established_secs: Option<u64>,
    /// Prefixes announced.
    pub prefixes_sent: usize,
    /// UPDATEs sent.
    pub updates_sent: u64,
    /// Last error.
    pub last_error: Option<String>,
}

/// A request from the socket task to the main task.
#[derive(Debug)]
pub enum Request {
    /// `vipd status`.
    Status(oneshot::Sender<Status>),
    /// `vipd reload`: the reload's outcome, `Err` when the file was refused.
    Reload(oneshot::Sender<Result<String, String>>),
}

/// Serves the control socket at `path` until the runtime stops. Removes a stale socket
/// file first; refuses to start if `path` is something else.
pub async fn serve(path: &Path, tx: mpsc::Sender<Request>) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            // Someone answering: another vipd runs with this socket; never steal it.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "{} is in use by another running vipd",
                    path.display()
                ));
            }
            let _ = std::fs::remove_file(path);
        }
        Ok(_) => {
            return Err(format!(
                "{} exists and is not a socket: not replacing it",
                path.display()
            ));
        }
        Err(_) => {}
    }
    let l = UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    info!(socket = %path.display(), "control socket listening");
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(s, tx).await {
                    warn!(error = %e, "control socket request failed");
                }
            });
        }
    });
    Ok(())
}

async fn answer(s: UnixStream, tx: mpsc::Sender<Request>) -> std::io::Result<()> {
    let (r, mut w) = s.into_split();
    let mut line = String::new();
    BufReader::new(r.take(256)).read_line(&mut line).await?;
    let body = match line.trim() {
        "status" => {
            let (otx, orx) = oneshot::channel();
            if tx.send(Request::Status(otx)).await.is_err() {
                return Ok(());
            }
            match orx.await {
                Ok(st) => serde_json::to_string_pretty(&st).unwrap_or_default(),
                Err(_) => "{\"error\":\"daemon stopping\"}".to_string(),
            }
        }
        "reload" => {
            let (otx, orx) = oneshot::channel();
            if tx.send(Request::Reload(otx)).await.is_err() {
                return Ok(());
            }
            let r = orx
                .await
                .unwrap_or_else(|_| Err("daemon stopping".to_string()));
            serde_json::json!({ "reload": r }).to_string()
        }
        other => format!("{{\"error\":\"unknown command {other:?}; try: status, reload\"}}"),
    };
    w.write_all(body.as_bytes()).await?;
    w.write_all(b"\n").await?;
    w.shutdown().await
}

/// Sends one command line to the daemon; its answer, or the error already explained.
fn ask(socket: &Path, command: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach vipd at {}: {e}\n(is `vipd run` running? the socket is global.control_socket; root only)",
            socket.display()
        )
    })?;
    let mut text = String::new();
    s.write_all(format!("{command}\n").as_bytes())
        .and_then(|()| s.read_to_string(&mut text))
        .map_err(|e| format!("control socket: {e}"))?;
    Ok(text)
}

/// `vipd reload`: asks the daemon to re-read its file and prints the outcome; exit 1 when
/// the file was refused (the running configuration stays).
pub fn reload_client(socket: &Path) -> std::process::ExitCode {
    let text = match ask(socket, "reload") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    #[derive(Deserialize)]
    struct Answer {
        reload: Result<String, String>,
    }
    match serde_json::from_str::<Answer>(&text) {
        Ok(Answer { reload: Ok(r) }) => {
            println!("reload: {r}");
            std::process::ExitCode::SUCCESS
        }
        Ok(Answer { reload: Err(e) }) => {
            eprintln!("reload {e}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unexpected answer ({e}):\n{text}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `vipd status`: asks the daemon and prints the answer.
pub fn client(socket: &Path, json: bool) -> std::process::ExitCode {
    let text = match ask(socket, "status") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if json {
        print!("{text}");
        return std::process::ExitCode::SUCCESS;
    }
    match serde_json::from_str::<Status>(&text) {
        Ok(st) => {
            print!("{}", render(&st));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unexpected answer ({e}):\n{text}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The human form: services like `ipvsadm -Ln`, neighbors like `birdc show protocols`.
pub fn render(st: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "vipd {}, up {}s, {}{}",
        st.version,
        st.uptime_secs,
        if st.drained {
            format!("DRAINED ({} present)", st.drain_file)
        } else {
            "serving".to_string()
        },
        st.last_reload
            .as_ref()
            .map(|r| format!(", last reload: {r}"))
            .unwrap_or_default()
    );
    if let Some(e) = &st.ipvs_error {
        let _ = writeln!(o, "IPVS not readable: {e}");
    }
    let _ = writeln!(o, "Prot LocalAddress:Port Scheduler Flags   [route]");
    let _ = writeln!(
        o,
        "  -> RemoteAddress:Port      Health Weight(cfg) ActiveConn InActConn Reason"
    );
    for s in &st.services {
        let _ = writeln!(
            o,
            "{} {}   [{}: {}; healthy weight {}/{}{}]  ({})",
            s.key,
            s.scheduler,
            s.announce,
            s.announce_reason,
            s.healthy_weight,
            s.quorum,
            if s.panic { ", PANIC" } else { "" },
            s.name
        );
        for r in &s.real_servers {
            let w = r.ipvs_weight.map_or("-".to_string(), |w| w.to_string());
            let _ = writeln!(
                o,
                "  -> {:<24} {:<6} {:>6}({:<3}) {:>10} {:>9} {}",
                r.address, r.health, w, r.weight, r.active_conns, r.inact_conns, r.reason
            );
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<28} {:<12} {:>8} {:>9} {:>8}  Info",
        "Neighbor", "State", "Since(s)", "Prefixes", "Updates"
    );
    for n in &st.neighbors {
        let _ = writeln!(
            o,
            "{:<28} {:<12} {:>8} {:>9} {:>8}  {}",
            n.address,
            n.state,
            n.established_secs
                .map_or("-".to_string(), |s| s.to_string()),
            n.prefixes_sent,
            n.updates_sent,
            n.last_error.as_deref().unwrap_or("")
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_form_reads_like_ipvsadm_and_birdc() {
        let st = Status {
            version: "0.1.0".into(),
            uptime_secs: 42,
            drained: true,
            drain_file: "/etc/lb/disable".into(),
            last_reload: Some("REFUSED (1 errors; the previous configuration runs)".into()),
            services: vec![ServiceStatus {
                name: "web".into(),
                key: "TCP 198.51.100.1:80".into(),
                scheduler: "mh mh-port".into(),
                announce: "draining".into(),
                announce_reason: "drain file".into(),
                healthy_weight: 3,
                quorum: 2,
                panic: false,
                real_servers: vec![
                    RealServerStatus {
                        address: "10.1.0.1:80".into(),
                        health: "up".into(),
                        reason: "HTTP 200".into(),
                        weight: 3,
                        ipvs_weight: Some(3),
                        active_conns: 12,
                        inact_conns: 4,
                    },
                    RealServerStatus {
                        address: "10.1.0.2:80".into(),
                        health: "down".into(),
                        reason: "connect: Connection refused".into(),
                        weight: 1,
                        ipvs_weight: None,
                        active_conns: 0,
                        inact_conns: 0,
                    },
                ],
            }],
            neighbors: vec![NeighborStatus {
                address: "10.0.0.254:179".into(),
                state: "Established".into(),
                established_secs: Some(40),
                prefixes_sent: 1,
                updates_sent: 3,
                last_error: None,
            }],
            ipvs_error: None,
        };
        let text = render(&st);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "vipd 0.1.0, up 42s, DRAINED (/etc/lb/disable present), last reload: REFUSED (1 errors; the previous configuration runs)"
        );
        assert_eq!(
            lines[3],
            "TCP 198.51.100.1:80 mh mh-port   [draining: drain file; healthy weight 3/2]  (web)"
        );
        assert_eq!(
            lines[4],
            "  -> 10.1.0.1:80              up          3(3  )         12         4 HTTP 200"
        );
        assert_eq!(
            lines[5],
            "  -> 10.1.0.2:80              down        -(1  )          0         0 connect: Connection refused"
        );
        assert!(
            text.contains("10.0.0.254:179               Established        40         1        3"),
            "{text}"
        );
        // JSON round trip (what --json prints is what the daemon sends).
        let back: Status =
            serde_json::from_str(&serde_json::to_string(&st).expect("json")).expect("parse");
        assert_eq!(render(&back), text);
    }
}

//! The control socket (a Unix socket, mode 0600: root only): `status` is answered from the
//! published snapshots (no request to any other task, no netlink); `reload` goes to the
//! director task, which owns the configuration.
//!
//! Protocol: the client sends one line (`status`, `events [SINCE]` or `reload`), the daemon
//! answers one JSON document and closes.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use super::Sources;
use crate::error::ServeError;

/// A request from the socket task to the director task.
#[derive(Debug)]
pub enum Request {
    /// `vipd reload`: the reload's outcome, `Err` when the file was refused.
    Reload(oneshot::Sender<Result<String, String>>),
}

/// Connections to the control socket at once (root only: a cap against a runaway script,
/// not an attacker).
const MAX_CONNS: usize = 16;

/// A client must send its command within this; the answer (a reload included) must be
/// written within [`ANSWER_DEADLINE`].
const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);
const ANSWER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Binds the control socket at `path` (a stale socket file is removed first; anything else
/// there refuses the start); the returned future serves it until `shutdown`.
pub async fn bind(
    path: &Path,
    sources: Option<Sources>,
    backend: Option<watch::Receiver<super::Status>>,
    tx: mpsc::Sender<Request>,
    shutdown: watch::Receiver<bool>,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, ServeError> {
    let io = |p: &Path| {
        let path = p.to_path_buf();
        move |source| ServeError::Io { path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            // Someone answering: another vipd runs with this socket; never steal it.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::InUse(path.to_path_buf()));
            }
            let _ = std::fs::remove_file(path);
        }
        Ok(_) => {
            return Err(ServeError::NotASocket(path.to_path_buf()));
        }
        Err(_) => {}
    }
    // Created 0600 (umask), never chmod-ed by path afterwards: a symlink swapped in between
    // cannot redirect the mode change to another file.
    let l = {
        let old = vipd_sys::process::umask(0o177);
        let l = UnixListener::bind(path).and_then(UnixListener::into_std);
        vipd_sys::process::umask(old);
        l.map_err(io(path))?
    };
    let m = std::fs::symlink_metadata(path).map_err(io(path))?;
    if m.permissions().mode() & 0o077 != 0 {
        return Err(ServeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("the socket was created readable by others"),
        });
    }
    info!(socket = %path.display(), "control socket listening");
    let slots = crate::accept::Slots::new(MAX_CONNS);
    Ok(crate::accept::run::<UnixListener, _, _>(
        "control socket",
        l,
        slots,
        shutdown,
        move |s, _slot| {
            let (tx, sources, backend) = (tx.clone(), sources.clone(), backend.clone());
            async move {
                match tokio::time::timeout(ANSWER_DEADLINE, answer(s, sources, backend, tx)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => warn!(error = %e, "control socket request failed"),
                    Err(_) => warn!("control socket request timed out"),
                }
            }
        },
    ))
}

async fn answer(
    s: UnixStream,
    sources: Option<Sources>,
    backend: Option<watch::Receiver<super::Status>>,
    tx: mpsc::Sender<Request>,
) -> std::io::Result<()> {
    let (r, mut w) = s.into_split();
    let mut line = String::new();
    tokio::time::timeout(
        REQUEST_DEADLINE,
        BufReader::new(r.take(256)).read_line(&mut line),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no command"))??;
    let body = match line.trim() {
        "status" => {
            // Built on a blocking thread: large at tens of thousands of servers.
            tokio::task::spawn_blocking(move || {
                let st = match (&sources, &backend) {
                    (Some(src), _) => src.status(),
                    (None, Some(b)) => b.borrow().clone(),
                    (None, None) => super::Status {
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        ..super::Status::default()
                    },
                };
                serde_json::to_string_pretty(&st).unwrap_or_default()
            })
            .await
            .unwrap_or_default()
        }
        cmd if cmd == "events" || cmd.starts_with("events ") => {
            let since = cmd
                .strip_prefix("events")
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            let page = sources
                .as_ref()
                .map(|s| s.events.since(since, crate::events::CAPACITY))
                .unwrap_or_default();
            serde_json::to_string(&page).unwrap_or_default()
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
        other => format!(
            "{{\"error\":\"unknown command {other:?}; try: status, events [SINCE], reload\"}}"
        ),
    };
    w.write_all(body.as_bytes()).await?;
    w.write_all(b"\n").await?;
    w.shutdown().await
}

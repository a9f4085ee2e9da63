//! The control socket (a Unix socket, mode 0600: root only): `status` is answered from the
//! published snapshots (no request to any other task, no netlink); `reload` goes to the
//! director task, which owns the configuration.
//!
//! Protocol: the client sends one line (`status` or `reload`), the daemon answers one JSON
//! document and closes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::Sources;
use crate::error::ServeError;

/// A request from the socket task to the director task.
#[derive(Debug)]
pub enum Request {
    /// `vipd reload`: the reload's outcome, `Err` when the file was refused.
    Reload(oneshot::Sender<Result<String, String>>),
}

/// Serves the control socket at `path` until the runtime stops. Removes a stale socket
/// file first; refuses to start if `path` is something else.
pub async fn serve(
    path: &Path,
    sources: Option<Sources>,
    tx: mpsc::Sender<Request>,
) -> Result<(), ServeError> {
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
    let l = UnixListener::bind(path).map_err(io(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    info!(socket = %path.display(), "control socket listening");
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let (tx, sources) = (tx.clone(), sources.clone());
            tokio::spawn(async move {
                if let Err(e) = answer(s, sources, tx).await {
                    warn!(error = %e, "control socket request failed");
                }
            });
        }
    });
    Ok(())
}

async fn answer(
    s: UnixStream,
    sources: Option<Sources>,
    tx: mpsc::Sender<Request>,
) -> std::io::Result<()> {
    let (r, mut w) = s.into_split();
    let mut line = String::new();
    BufReader::new(r.take(256)).read_line(&mut line).await?;
    let body = match line.trim() {
        "status" => {
            // Built on a blocking thread: large at tens of thousands of servers.
            tokio::task::spawn_blocking(move || {
                let st = match &sources {
                    Some(src) => src.status(),
                    None => super::Status {
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        ..super::Status::default()
                    },
                };
                serde_json::to_string_pretty(&st).unwrap_or_default()
            })
            .await
            .unwrap_or_default()
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

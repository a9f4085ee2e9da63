//! Exec checks: a program with arguments, exit 0 = up, killed with its whole process group
//! on timeout. It gets the real server in `VIPD_RS_ADDRESS` / `VIPD_RS_PORT` (and the port
//! the check targets in `VIPD_CHECK_PORT`); the first line it prints is the reason.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::Probe;
use super::conn::words;
use crate::outcome::{Outcome, ProbeError};

/// Output kept for the reason.
const MAX_OUTPUT: usize = 512;

/// Runs the check.
pub async fn run(p: &Probe, command: &Path, args: &[String]) -> Outcome {
    let mut child = match Command::new(command)
        .args(args)
        .env("VIPD_RS_ADDRESS", p.server.ip().to_string())
        .env("VIPD_RS_PORT", p.server.port().to_string())
        .env("VIPD_CHECK_PORT", p.addr.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return ProbeError::local(&format!("exec {}", command.display()), &e).outcome("");
        }
    };
    let pgid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // Output is read while the program runs (bounded); once it exits, a descendant still
    // holding the pipe open gets 100 ms more, not the whole timeout.
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(s) = stdout {
            let _ = s.take(MAX_OUTPUT as u64).read_to_end(&mut out).await;
        }
        if let Some(s) = stderr {
            let _ = s.take(MAX_OUTPUT as u64).read_to_end(&mut err).await;
        }
        (out, err)
    });
    match tokio::time::timeout(p.timeout, child.wait()).await {
        Ok(Ok(status)) => {
            let (out, err) = match tokio::time::timeout(Duration::from_millis(100), reader).await {
                Ok(Ok(o)) => o,
                _ => Default::default(),
            };
            let first = first_line(&out).or_else(|| first_line(&err));
            let said = first.map(|l| format!(": {l}")).unwrap_or_default();
            if status.success() {
                Outcome::pass(format!("exit 0{said}"), Duration::ZERO)
            } else if let Some(code) = status.code() {
                Outcome::fail(format!("exit {code}{said}"), Duration::ZERO)
            } else {
                use std::os::unix::process::ExitStatusExt;
                Outcome::fail(
                    format!("killed by signal {}{said}", status.signal().unwrap_or(0)),
                    Duration::ZERO,
                )
            }
        }
        Ok(Err(e)) => Outcome::fail(format!("wait: {}", words(&e)), Duration::ZERO),
        Err(_) => {
            if let Some(g) = pgid {
                let _ = vipd_sys::process::kill_group(g);
            }
            reader.abort();
            Outcome::fail(
                format!("timeout after {:?}, killed", p.timeout),
                Duration::ZERO,
            )
        }
    }
}

fn first_line(b: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(b);
    let l = s.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(l.chars().take(200).collect())
}

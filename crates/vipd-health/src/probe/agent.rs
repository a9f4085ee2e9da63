//! HAProxy agent-check: connect to the agent port, read one line, parse it as HAProxy does.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::Probe;
use super::conn::{self, words};
use crate::agent;
use crate::outcome::Outcome;

/// Longest reply read; HAProxy reads one buffer and only looks at its first line.
const MAX_REPLY: usize = 1024;

/// Runs the check.
pub async fn run(p: &Probe) -> Outcome {
    match tokio::time::timeout(p.timeout, exchange(p)).await {
        Ok(Ok(line)) => match agent::parse(&line) {
            Ok(reply) => reply.outcome("agent", Duration::ZERO),
            Err(e) => Outcome::fail(format!("agent: {e}"), Duration::ZERO),
        },
        Ok(Err(e)) => Outcome::fail(format!("agent: {e}"), Duration::ZERO),
        Err(_) => Outcome::fail(
            format!("agent: timeout after {:?} waiting for a reply", p.timeout),
            Duration::ZERO,
        ),
    }
}

async fn exchange(p: &Probe) -> Result<String, String> {
    let mut s = conn::connect(p).await?;
    conn::reset_on_close(&s);
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < MAX_REPLY {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {}", words(&e)))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

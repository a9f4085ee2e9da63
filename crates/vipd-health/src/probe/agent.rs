//! HAProxy agent-check: connect to the agent port, read one line, parse it as HAProxy does.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::conn::{self, words};
use super::{Probe, Stage};
use crate::agent;
use crate::outcome::{Outcome, ProbeError};

/// Longest reply read; HAProxy reads one buffer and only looks at its first line.
const MAX_REPLY: usize = 1024;

/// Runs the check within its own timeout.
pub async fn run(p: &Probe) -> Outcome {
    let stage = Stage::default();
    match tokio::time::timeout(p.timeout, run_untimed(p, &stage, true)).await {
        Ok(o) => o,
        Err(_) => p.timed_out(stage.get(), false),
    }
}

/// Runs the check; the connect is timed only when `timed`.
pub async fn run_untimed(p: &Probe, stage: &Stage, timed: bool) -> Outcome {
    match exchange(p, stage, timed).await {
        Ok(line) => match agent::parse(&line) {
            Ok(reply) => reply.outcome("agent", Duration::ZERO),
            Err(e) => Outcome::fail(format!("agent: {e}"), Duration::ZERO),
        },
        Err(e) => e.outcome("agent: "),
    }
}

async fn exchange(p: &Probe, stage: &Stage, timed: bool) -> Result<String, ProbeError> {
    let mut s = conn::connect(p, timed).await?;
    stage.set(Stage::RESPONSE);
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

//! File checks: the seed's `/etc/lb/agent-check`, holding UP/DOWN/MAINT/READY (the agent
//! words) and/or a weight `N%`. The file is the whole state: a weight that is not written is
//! 100%.

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::conn::words;
use crate::agent;
use crate::outcome::Outcome;

/// Bytes read: a status file is one short line.
const MAX_FILE: u64 = 4096;

/// Runs the check.
pub async fn run(path: &Path) -> Outcome {
    let text = match read(path).await {
        Ok(t) => t,
        Err(e) => {
            return Outcome::fail(
                format!("file: cannot read {}: {}", path.display(), words(&e)),
                Duration::ZERO,
            );
        }
    };
    match agent::parse(&text) {
        Ok(mut reply) => {
            reply.weight_pct.get_or_insert(100);
            reply.outcome("file", Duration::ZERO)
        }
        Err(e) => Outcome::fail(format!("file: {e}"), Duration::ZERO),
    }
}

async fn read(path: &Path) -> std::io::Result<String> {
    let f = tokio::fs::File::open(path).await?;
    let mut buf = Vec::new();
    f.take(MAX_FILE).read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

//! What the scheduler reports on each transition of a job (pure: the director consumes it
//! without a runtime).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::fsm::State;

/// A change of one job's visible state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The job.
    pub key: Arc<str>,
    /// Check name (for logs).
    pub name: Arc<str>,
    /// Target.
    pub target: SocketAddr,
    /// State now.
    pub state: State,
    /// Drained.
    pub drain: bool,
    /// Agent/file weight.
    pub weight_pct: Option<u32>,
    /// Weight set by a dynamic exec check.
    pub weight_abs: Option<u32>,
    /// Why.
    pub reason: String,
    /// Latency of the probe that caused it.
    pub latency: Duration,
}

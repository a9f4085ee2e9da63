//! What the engine shows of its jobs: [`CheckStatus`], for status pages and metrics.

use super::*;

/// What status pages and metrics see of a job.
#[derive(Clone, Debug)]
pub struct CheckStatus {
    /// Key.
    pub key: Arc<str>,
    /// Check name.
    pub name: Arc<str>,
    /// Kind (`http`, `tcp`...).
    pub kind: &'static str,
    /// Target.
    pub target: SocketAddr,
    /// Users.
    pub users: Vec<ServerRef>,
    /// State.
    pub state: State,
    /// Drained.
    pub drain: bool,
    /// Agent/file weight.
    pub weight_pct: Option<u32>,
    /// Last result.
    pub last: Option<Outcome>,
    /// Last results, oldest first: (passed, reason, latency).
    pub history: Vec<(bool, String, Duration)>,
    /// Transitions so far.
    pub transitions: u64,
    /// Results so far.
    pub results: u64,
    /// Damped until (from now).
    pub damped_for: Option<Duration>,
}

impl Scheduler {
    pub(super) fn snapshot(&self) -> Vec<CheckStatus> {
        let now = std::time::Instant::now();
        self.jobs
            .values()
            .map(|j| CheckStatus {
                key: j.spec.key.clone(),
                name: j.spec.name.clone(),
                kind: j.spec.check.kind.as_str(),
                target: j.spec.server,
                users: j.spec.users.clone(),
                state: j.fsm.state(),
                drain: j.fsm.drain(),
                weight_pct: j.fsm.weight_pct(),
                last: j.fsm.last().cloned(),
                history: j
                    .fsm
                    .history()
                    .map(|(p, r, l)| (p, r.to_string(), l))
                    .collect(),
                transitions: j.fsm.transitions(),
                results: j.fsm.results(),
                damped_for: j
                    .fsm
                    .damped_until()
                    .map(|t| t.saturating_duration_since(now)),
            })
            .collect()
    }
}

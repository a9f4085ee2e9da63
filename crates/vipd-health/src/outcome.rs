//! The result of one probe.

use std::time::Duration;

/// What one probe concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The check passed (counts toward `rise`).
    Pass,
    /// The check failed (counts toward `fall`).
    Fail,
    /// The target said it is down or in maintenance (agent/file `down`, `maint`...): down at
    /// once, without waiting for `fall` failures.
    ForcedDown,
    /// The target asked to be drained: up, effective weight 0, at once.
    Drain,
}

/// One probe's result, with a reason meant for operators ("HTTP 503 (expected 200)").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What it means.
    pub verdict: Verdict,
    /// Weight in percent of the configured weight, from an agent or file check.
    pub weight_pct: Option<u32>,
    /// Why, in words.
    pub reason: String,
    /// How long the probe took.
    pub latency: Duration,
}

impl Outcome {
    /// A passed check.
    pub fn pass(reason: impl Into<String>, latency: Duration) -> Self {
        Outcome {
            verdict: Verdict::Pass,
            weight_pct: None,
            reason: reason.into(),
            latency,
        }
    }

    /// A failed check.
    pub fn fail(reason: impl Into<String>, latency: Duration) -> Self {
        Outcome {
            verdict: Verdict::Fail,
            weight_pct: None,
            reason: reason.into(),
            latency,
        }
    }

    /// Whether it counts as a success.
    pub fn passed(&self) -> bool {
        matches!(self.verdict, Verdict::Pass | Verdict::Drain)
    }
}

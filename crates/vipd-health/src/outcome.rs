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
    /// The probe could not run on this host (out of descriptors or memory): it says nothing
    /// about the server and counts neither way. A director short of descriptors must not
    /// take healthy servers down, nor withdraw their VIPs.
    NotRun,
}

/// One probe's result, with a reason meant for operators ("HTTP 503 (expected 200)").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What it means.
    pub verdict: Verdict,
    /// Weight in percent of the configured weight, from an agent or file check.
    pub weight_pct: Option<u32>,
    /// A weight replacing the configured one (an exec check with `dynamic_weight`).
    pub weight_abs: Option<u32>,
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
            weight_abs: None,
            reason: reason.into(),
            latency,
        }
    }

    /// A failed check.
    pub fn fail(reason: impl Into<String>, latency: Duration) -> Self {
        Outcome {
            verdict: Verdict::Fail,
            weight_pct: None,
            weight_abs: None,
            reason: reason.into(),
            latency,
        }
    }

    /// A probe this host could not run ([`Verdict::NotRun`]).
    pub fn not_run(reason: impl Into<String>, latency: Duration) -> Self {
        Outcome {
            verdict: Verdict::NotRun,
            weight_pct: None,
            weight_abs: None,
            reason: reason.into(),
            latency,
        }
    }

    /// Whether it counts as a success.
    pub fn passed(&self) -> bool {
        matches!(self.verdict, Verdict::Pass | Verdict::Drain)
    }
}

/// Why a probe did not pass: the server failed it, or this host could not run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// The check failed, for this reason.
    Failed(String),
    /// This host could not run the probe (see [`Verdict::NotRun`]).
    NotRun(String),
}

impl From<String> for ProbeError {
    fn from(reason: String) -> Self {
        ProbeError::Failed(reason)
    }
}

impl ProbeError {
    /// From an I/O error of this host's own resources (creating a socket, a pipe, a
    /// process): out of descriptors or memory is [`ProbeError::NotRun`].
    pub fn local(what: &str, e: &std::io::Error) -> Self {
        let reason = format!("{what}: {}", crate::outcome::os_words(e));
        // EMFILE, ENFILE, ENOBUFS, ENOMEM.
        if matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12)) {
            ProbeError::NotRun(format!("not run, {reason}"))
        } else {
            ProbeError::Failed(reason)
        }
    }

    /// The outcome, its reason prefixed with `prefix` (`"agent: "`).
    pub fn outcome(self, prefix: &str) -> Outcome {
        match self {
            ProbeError::Failed(r) => Outcome::fail(format!("{prefix}{r}"), Duration::ZERO),
            ProbeError::NotRun(r) => Outcome::not_run(format!("{prefix}{r}"), Duration::ZERO),
        }
    }
}

/// An I/O error in words, without the "(os error N)" suffix.
pub fn os_words(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

//! From check states to what each real server of a service gets: combining a server's checks,
//! `alpha`, agent weights, and panic mode.
//!
//! Pure: the director calls [`Service::evaluate`] whenever a check of the service changes.

use crate::fsm::State;

/// The combined state of one real server's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerView {
    /// Down if any check is down; unknown if any is still unknown; up if all are up.
    pub state: State,
    /// Any check asked for drain.
    pub drain: bool,
    /// Product of the checks' weight percentages (100 when none gave one).
    pub weight_pct: u32,
    /// A weight replacing the configured one (a dynamic exec check's last).
    pub weight_abs: Option<u32>,
    /// The reason of the deciding check.
    pub reason: String,
}

/// One check's contribution to a server: its state, drain flag, weight and last reason.
#[derive(Clone, Copy, Debug)]
pub struct CheckView<'a> {
    /// State.
    pub state: State,
    /// Drain.
    pub drain: bool,
    /// Weight percentage, if an agent or file gave one.
    pub weight_pct: Option<u32>,
    /// Weight, if a dynamic exec check set one.
    pub weight_abs: Option<u32>,
    /// Last reason.
    pub reason: &'a str,
}

/// Combines the checks of one real server. A server without checks is up.
pub fn combine(checks: &[CheckView<'_>]) -> ServerView {
    let mut v = ServerView {
        state: State::Up,
        drain: false,
        weight_pct: 100,
        weight_abs: None,
        reason: if checks.is_empty() {
            "no checks".to_string()
        } else {
            String::new()
        },
    };
    let mut deciding: Option<&str> = None;
    for c in checks {
        match (c.state, v.state) {
            (State::Down, State::Down) => {}
            (State::Down, _) => {
                v.state = State::Down;
                deciding = Some(c.reason);
            }
            (State::Unknown, State::Up) => {
                v.state = State::Unknown;
                deciding = Some(c.reason);
            }
            _ => {}
        }
        v.drain |= c.drain;
        if let Some(p) = c.weight_pct {
            v.weight_pct = v.weight_pct.saturating_mul(p) / 100;
        }
        if c.weight_abs.is_some() {
            v.weight_abs = c.weight_abs;
        }
    }
    if let Some(r) = deciding.or_else(|| checks.iter().find(|c| c.drain).map(|c| c.reason)) {
        v.reason = r.to_string();
    } else if let Some(c) = checks.first() {
        v.reason = c.reason.to_string();
    }
    if v.reason.is_empty() && v.state == State::Unknown {
        v.reason = "no result yet".to_string();
    }
    v
}

/// What a real server gets in IPVS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effective {
    /// In service with this weight (0 when drained).
    Up(u32),
    /// Out of service (weight 0 or removed, per `on_failure`).
    Down,
}

/// Per-service evaluation state: remembers whether panic mode is on, to report changes.
#[derive(Clone, Debug, Default)]
pub struct Service {
    panic: bool,
}

/// The result of one evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// Per real server, in the order given.
    pub servers: Vec<Effective>,
    /// Panic mode is on.
    pub panic: bool,
    /// Panic mode just started (`Some(true)`) or ended (`Some(false)`): log it loudly.
    pub panic_changed: Option<bool>,
    /// Real servers counted down (before panic mode).
    pub down: usize,
    /// Every server has left `Unknown`: the service's first health pass is complete.
    pub settled: bool,
    /// Sum of the effective weights of the servers that are up (panic mode aside, drained
    /// ones count 0): what a quorum is measured against.
    pub healthy_weight: u64,
}

impl Service {
    /// Panic mode is on.
    pub fn panic(&self) -> bool {
        self.panic
    }

    /// Decides each server's effective state.
    ///
    /// `servers`: (configured weight, combined view). `alpha`: an unknown server is down
    /// (else up). `panic_threshold_pct`: when more than this share of the servers is down,
    /// every server that is not drained gets its weight back, as Envoy's panic mode does:
    /// sending to all beats overloading the few left (a health-check outage, not a real one,
    /// is the usual cause).
    pub fn evaluate(
        &mut self,
        servers: &[(u32, &ServerView)],
        alpha: bool,
        panic_threshold_pct: Option<u8>,
    ) -> Evaluation {
        let is_down = |v: &ServerView| match v.state {
            State::Down => true,
            State::Unknown => alpha,
            State::Up => false,
        };
        let weight = |w: u32, v: &ServerView| {
            if v.drain {
                0
            } else {
                let w = v.weight_abs.unwrap_or(w);
                let x = u64::from(w) * u64::from(v.weight_pct) / 100;
                // 1% of weight 1 must not drain the server: only 0% (or drain) does.
                let x = if x == 0 && v.weight_pct > 0 && w > 0 {
                    1
                } else {
                    x
                };
                u32::try_from(x).unwrap_or(u32::MAX)
            }
        };
        let down = servers.iter().filter(|(_, v)| is_down(v)).count();
        let total = servers.len();
        let panic = match panic_threshold_pct {
            Some(t) if total > 0 => down * 100 > usize::from(t) * total,
            _ => false,
        };
        let panic_changed = (panic != self.panic).then_some(panic);
        self.panic = panic;
        let healthy_weight = servers
            .iter()
            .filter(|(_, v)| !is_down(v))
            .map(|(w, v)| u64::from(weight(*w, v)))
            .sum();
        let out = servers
            .iter()
            .map(|(w, v)| {
                if is_down(v) && !panic {
                    Effective::Down
                } else {
                    Effective::Up(weight(*w, v))
                }
            })
            .collect();
        Evaluation {
            servers: out,
            panic,
            panic_changed,
            down,
            settled: servers.iter().all(|(_, v)| v.state != State::Unknown),
            healthy_weight,
        }
    }
}

//! The event history: the last [`CAPACITY`] transitions (real servers, routes, quorum, drain,
//! IPVS failures, reloads, BGP neighbor states), each with its sequence number and time, for
//! `/events?since=N`, `vipd status --events` and the status page.
//!
//! A bounded ring behind a mutex held only to push or copy: the director task writes, the
//! readers (HTTP, control socket) copy what they need and go. Sequence numbers never repeat,
//! so a poller asks for what is newer than the last one it saw and misses nothing unless
//! more than [`CAPACITY`] transitions happened in between (`truncated` says so).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Entries kept.
pub const CAPACITY: usize = 1000;

/// What kind of transition, for filtering and styling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A real server came into service, changed weight or went out.
    Server,
    /// A VIP's route changed state.
    Route,
    /// A service's quorum.
    Quorum,
    /// The node's drain file, or a VIP's.
    Drain,
    /// IPVS refused a write, or was repaired.
    Ipvs,
    /// Panic mode.
    Panic,
    /// A reload was applied or refused.
    Reload,
    /// A BGP session changed state.
    Neighbor,
    /// Anything else the director reports.
    Other,
}

/// One transition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Increases by one per entry, from 1.
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What kind.
    pub kind: Kind,
    /// Worth attention (a server down, a route withdrawn, a refused reload...).
    pub warning: bool,
    /// What happened, in words (the log line).
    pub text: String,
}

/// The answer to "what is newer than N".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The entries, oldest first.
    pub events: Vec<Entry>,
    /// Entries newer than the asked `since` were dropped from the ring before being read.
    pub truncated: bool,
    /// The newest sequence number (ask `since` this next time).
    pub last: u64,
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<Entry>,
    next: u64,
}

/// The shared history.
#[derive(Clone, Debug, Default)]
pub struct EventLog(Arc<Mutex<Ring>>);

impl EventLog {
    /// Records one transition.
    pub fn push(&self, kind: Kind, warning: bool, text: String) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut r = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        r.next += 1;
        let seq = r.next;
        if r.entries.len() == CAPACITY {
            r.entries.pop_front();
        }
        r.entries.push_back(Entry {
            seq,
            at_ms,
            kind,
            warning,
            text,
        });
    }

    /// Records one of the director's events.
    pub fn push_event(&self, e: &vipd_director::Event) {
        use vipd_director::Event as E;
        let kind = match e {
            E::ServerUp { .. } | E::ServerDown { .. } => Kind::Server,
            E::Route { .. } => Kind::Route,
            E::Quorum { .. } => Kind::Quorum,
            E::Drain { .. } | E::ServiceDrain { .. } => Kind::Drain,
            E::IpvsFailed { .. } | E::IpvsRepaired { .. } => Kind::Ipvs,
            E::Panic { .. } => Kind::Panic,
            _ => Kind::Other,
        };
        self.push(kind, e.is_warning(), e.to_string());
    }

    /// The newest `n` entries, oldest first.
    pub fn latest(&self, n: usize) -> Vec<Entry> {
        let r = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        r.entries
            .iter()
            .skip(r.entries.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// The entries newer than `since`, at most `limit` (the oldest of them first).
    pub fn since(&self, since: u64, limit: usize) -> Page {
        let r = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let first = r.entries.front().map_or(r.next + 1, |e| e.seq);
        let events: Vec<Entry> = r
            .entries
            .iter()
            .filter(|e| e.seq > since)
            .take(limit)
            .cloned()
            .collect();
        Page {
            truncated: since + 1 < first && r.next > since,
            last: events.last().map_or(since, |e| e.seq),
            events,
        }
    }
}

/// How often the BGP sessions' states are compared with the last seen (their changes are
/// seconds apart; a 200 ms resolution in the history is plenty, and polling a few `watch`
/// values costs nothing next to following each with a task of its own).
const NEIGHBOR_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Records every BGP session state change of the configured neighbors (the list follows
/// reloads) until `stop`.
pub async fn follow_neighbors(
    list: tokio::sync::watch::Receiver<crate::director::NeighborList>,
    log: EventLog,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut seen: std::collections::BTreeMap<std::net::SocketAddr, vipd_bgp::fsm::State> =
        Default::default();
    let mut tick = tokio::time::interval(NEIGHBOR_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let current = list.borrow().clone();
        seen.retain(|a, _| current.iter().any(|(b, _)| a == b));
        for (addr, rx) in current.iter() {
            let p = rx.borrow();
            let before = seen.insert(*addr, p.state);
            match before {
                Some(b) if b == p.state => {}
                // A neighbor's first state (Idle at start) is not a transition.
                None if p.state == vipd_bgp::fsm::State::Idle => {}
                _ => log.push(
                    Kind::Neighbor,
                    p.state != vipd_bgp::fsm::State::Established,
                    format!(
                        "BGP neighbor {addr}: {} -> {:?}: {}",
                        before.map_or("new".to_string(), |b| format!("{b:?}")),
                        p.state,
                        p.reason
                    ),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_ring_read_by_sequence_number() {
        let log = EventLog::default();
        for i in 0..5 {
            log.push(Kind::Server, false, format!("e{i}"));
        }
        let p = log.since(0, 100);
        assert_eq!(p.events.len(), 5);
        assert_eq!((p.events[0].seq, p.last, p.truncated), (1, 5, false));
        let p = log.since(3, 100);
        let texts: Vec<&str> = p.events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["e3", "e4"]);
        let p = log.since(5, 100);
        assert!(p.events.is_empty() && !p.truncated);
        assert_eq!(p.last, 5);
        // Past the capacity: the oldest go, and a reader that was behind is told.
        for i in 5..CAPACITY + 10 {
            log.push(Kind::Route, true, format!("e{i}"));
        }
        let p = log.since(3, 5);
        assert!(p.truncated);
        assert_eq!(p.events[0].seq, 11);
        assert_eq!(p.events.len(), 5);
        assert_eq!(p.last, 15);
        let latest: Vec<u64> = log.latest(3).iter().map(|e| e.seq).collect();
        assert_eq!(
            latest,
            [
                CAPACITY as u64 + 8,
                CAPACITY as u64 + 9,
                CAPACITY as u64 + 10
            ]
        );
    }
}

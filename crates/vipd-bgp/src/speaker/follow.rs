//! A neighbor following its BFD session (RFC 5882): what the neighbor's task asks of it.
//!
//! - Routes are announced only while the session is Up, or while the router holds it
//!   AdminDown (RFC 5882 section 3.2: an administrative state, not a forwarding failure;
//!   remembered until the session is Up again, the router may go quiet meanwhile).
//!   Otherwise the neighbor is sent withdrawals only, never held back: a VIP losing its
//!   backends must leave the router whatever BFD says.
//! - A failure ends the BGP session: the session is down, having left Up since the last
//!   look (its `downs` grew: a Down followed by more changes before the look still counts),
//!   without the router or vipd saying AdminDown. A flap that healed before the look is
//!   not acted on: the path works.
//! - A session not found when the neighbor starts (the BFD task could not bind, or could
//!   not open the session's socket yet) is looked up again every second: routes are
//!   withheld until then (fail closed).

use std::net::IpAddr;
use std::time::Duration;

use tracing::info;
use vipd_bfd::packet::State;

use super::{BfdSource, BfdStatus};

/// How often a missing session is looked up again.
pub(super) const LOOKUP_EVERY: Duration = Duration::from_secs(1);

/// What the neighbor's task must do after a change of its BFD session.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing beyond syncing the routes again.
    Resync,
    /// The forwarding path failed: end the BGP session (why).
    Failed(String),
}

/// The state kept by a neighbor that follows a BFD session.
pub(super) struct Follow {
    addr: IpAddr,
    source: Option<BfdSource>,
    rx: Option<BfdStatus>,
    downs: u64,
    router_admin_down: bool,
}

impl Follow {
    /// Follows `addr`'s session, from `source` (None: no BFD task at all).
    pub fn new(addr: IpAddr, source: Option<BfdSource>) -> Follow {
        let mut f = Follow {
            addr,
            source,
            rx: None,
            downs: 0,
            router_admin_down: false,
        };
        if !f.lookup() {
            tracing::error!(neighbor = %addr, "BFD is enabled for this neighbor but its session does not exist yet: routes are withheld until it does");
        }
        f
    }

    /// Looks the session up; whether it is found (now or before).
    pub fn lookup(&mut self) -> bool {
        if self.rx.is_none() {
            self.rx = self.source.as_ref().and_then(|s| (s.0)(self.addr));
            if let Some(rx) = &self.rx {
                self.downs = rx.borrow().downs;
                info!(neighbor = %self.addr, "BFD session found");
            }
        }
        self.rx.is_some()
    }

    /// The session is not found yet.
    pub fn missing(&self) -> bool {
        self.rx.is_none()
    }

    /// The session's status channel, once found.
    pub fn rx(&mut self) -> Option<&mut BfdStatus> {
        self.rx.as_mut()
    }

    /// Routes may be announced.
    pub fn allowed(&self) -> bool {
        self.router_admin_down
            || self
                .rx
                .as_ref()
                .is_some_and(|rx| rx.borrow().state == State::Up)
    }

    /// The session changed (or was just found).
    pub fn changed(&mut self) -> Verdict {
        let Some(rx) = self.rx.as_mut() else {
            return Verdict::Resync;
        };
        let s = *rx.borrow_and_update();
        let left_up = s.downs > self.downs;
        self.downs = s.downs;
        if s.state == State::Up {
            self.router_admin_down = false;
            return Verdict::Resync;
        }
        if left_up && s.remote_state == State::AdminDown {
            info!(neighbor = %self.addr, "BFD: the router holds the session AdminDown; not a failure, the BGP session and its routes stay");
            self.router_admin_down = true;
            return Verdict::Resync;
        }
        // vipd's own AdminDown (the session removed): the neighbor is being stopped or
        // reconfigured, with its own reason.
        if left_up && s.state != State::AdminDown {
            return Verdict::Failed(s.diag.to_string());
        }
        Verdict::Resync
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::watch;
    use vipd_bfd::packet::Diag;
    use vipd_bfd::session::Status;

    fn status(state: State, remote: State, downs: u64, diag: Diag) -> Status {
        Status {
            state,
            remote_state: remote,
            local_disc: 1,
            remote_disc: 2,
            tx_interval: Duration::from_millis(100),
            rx_interval: Duration::from_millis(100),
            detection_time: Duration::from_millis(300),
            diag,
            remote_diag: Diag::None,
            ups: 1,
            downs,
            polling: false,
        }
    }

    fn follow(tx: &watch::Sender<Status>) -> Follow {
        let rx = tx.subscribe();
        Follow::new(
            "192.0.2.254".parse().expect("ip"),
            Some(BfdSource(Arc::new(move |_| Some(rx.clone())))),
        )
    }

    #[test]
    fn routes_only_while_up_and_a_timeout_is_a_failure() {
        let (tx, _) = watch::channel(status(State::Down, State::Down, 0, Diag::None));
        let mut f = follow(&tx);
        assert!(!f.allowed());
        tx.send_replace(status(State::Up, State::Up, 0, Diag::None));
        assert_eq!(f.changed(), Verdict::Resync);
        assert!(f.allowed());
        tx.send_replace(status(
            State::Down,
            State::Down,
            1,
            Diag::ControlDetectionTimeExpired,
        ));
        assert_eq!(
            f.changed(),
            Verdict::Failed("control detection time expired".into())
        );
        assert!(!f.allowed());
    }

    #[test]
    fn a_flap_between_two_looks_is_still_a_failure() {
        let (tx, _) = watch::channel(status(State::Up, State::Up, 0, Diag::None));
        let mut f = follow(&tx);
        // Down and Up again before the neighbor's task looked: only the counter shows it.
        tx.send_replace(status(
            State::Up,
            State::Up,
            1,
            Diag::ControlDetectionTimeExpired,
        ));
        assert!(matches!(f.changed(), Verdict::Resync));
        // (Up now: the routes stay; the BGP session was not reset for a flap that healed.)
        tx.send_replace(status(
            State::Down,
            State::Down,
            2,
            Diag::ControlDetectionTimeExpired,
        ));
        assert!(matches!(f.changed(), Verdict::Failed(_)));
    }

    #[test]
    fn the_routers_admin_down_is_not_a_failure_and_keeps_the_routes_until_up_again() {
        let (tx, _) = watch::channel(status(State::Up, State::Up, 0, Diag::None));
        let mut f = follow(&tx);
        tx.send_replace(status(
            State::Down,
            State::AdminDown,
            1,
            Diag::NeighborSignaledSessionDown,
        ));
        assert_eq!(f.changed(), Verdict::Resync);
        assert!(f.allowed());
        // The router then goes quiet: detection resets the remote state; still allowed.
        tx.send_replace(status(
            State::Down,
            State::Down,
            1,
            Diag::NeighborSignaledSessionDown,
        ));
        assert_eq!(f.changed(), Verdict::Resync);
        assert!(f.allowed());
        tx.send_replace(status(State::Up, State::Up, 1, Diag::None));
        assert_eq!(f.changed(), Verdict::Resync);
        tx.send_replace(status(
            State::Down,
            State::Down,
            2,
            Diag::ControlDetectionTimeExpired,
        ));
        assert!(matches!(f.changed(), Verdict::Failed(_)));
    }

    #[test]
    fn vipds_own_admin_down_is_not_a_failure() {
        let (tx, _) = watch::channel(status(State::Up, State::Up, 0, Diag::None));
        let mut f = follow(&tx);
        tx.send_replace(status(
            State::AdminDown,
            State::Up,
            1,
            Diag::AdministrativelyDown,
        ));
        assert_eq!(f.changed(), Verdict::Resync);
        assert!(!f.allowed());
    }

    #[test]
    fn a_missing_session_withholds_routes_until_found() {
        let found = Arc::new(std::sync::Mutex::new(None::<BfdStatus>));
        let src = {
            let found = found.clone();
            BfdSource(Arc::new(move |_| found.lock().ok()?.clone()))
        };
        let mut f = Follow::new("192.0.2.254".parse().expect("ip"), Some(src));
        assert!(!f.allowed() && !f.lookup());
        let (tx, rx) = watch::channel(status(State::Up, State::Up, 0, Diag::None));
        *found.lock().expect("lock") = Some(rx);
        assert!(f.lookup());
        assert!(f.allowed());
        drop(tx);
        let mut none = Follow::new("192.0.2.254".parse().expect("ip"), None);
        assert!(!none.lookup() && !none.allowed());
    }
}

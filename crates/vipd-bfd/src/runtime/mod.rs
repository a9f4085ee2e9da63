//! The BFD task: one tokio task owns every BFD socket and session (holo's rule: one owner
//! per I/O resource), drives the [`Session`] state machines with the clock and the packets,
//! and publishes each session's [`Status`] on a `watch` channel, which the BGP speaker
//! follows (BFD Down closes the BGP session; BGP announces only once BFD is Up).
//!
//! ```text
//!   daemon ── set_peers / prepare_restart ──> cmd channel ──> BFD task
//!                                                              │ owns: receive sockets
//!                                                              │ (3784 single hop, 4784
//!                                                              │ multihop, v4 and v6), one
//!                                                              │ send socket per session
//!                                                              │ (TTL 255, source port
//!                                                              │ 49152-65535), the sessions
//!   BGP peer tasks, status, /metrics <── watch<Status> per neighbor
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};

use crate::session::{Config, Saved, Status};

mod sock;
mod task;

/// One neighbor's BFD session as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The router's address.
    pub addr: IpAddr,
    /// Our source address (unset: the kernel's choice for the route to `addr`).
    pub local: Option<IpAddr>,
    /// RFC 5883 multihop, accepting packets that crossed at most this many hops. Unset:
    /// single hop (RFC 5881), TTL 255 only.
    pub multihop: Option<u8>,
    /// Intervals and multiplier.
    pub timing: Config,
}

/// A session saved by a stopping process for the next one ([`Bfd::prepare_restart`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// The neighbor.
    pub addr: IpAddr,
    /// The session's source address as configured (a session is resumed only with the same).
    pub local: Option<IpAddr>,
    /// Its multihop setting (likewise).
    pub multihop: Option<u8>,
    /// The UDP source port the session used (the same must be used again, RFC 5881).
    pub src_port: u16,
    /// The session.
    pub saved: Saved,
}

/// Why the BFD task could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A receive socket could not be bound (another BFD daemon on this host?).
    #[error("cannot listen for BFD on {addr}: {source}")]
    Bind {
        /// Where.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The statuses, shared with the handle: the receivers of every session's status.
type Statuses = Arc<Mutex<BTreeMap<IpAddr, watch::Receiver<Status>>>>;

enum Cmd {
    SetPeers(Vec<Peer>, oneshot::Sender<()>),
    PrepareRestart(Duration, oneshot::Sender<Vec<Resume>>),
}

/// Handle to the running BFD task.
#[derive(Debug)]
pub struct Bfd {
    cmd: mpsc::Sender<Cmd>,
    statuses: Statuses,
    /// Set (once) when the task ended: why.
    died: watch::Receiver<Option<String>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::SetPeers(p, _) => f.debug_tuple("SetPeers").field(p).finish(),
            Cmd::PrepareRestart(d, _) => f.debug_tuple("PrepareRestart").field(d).finish(),
        }
    }
}

/// Intervals a session is slowed down to before a planned restart: the routers then wait
/// `RESTART_TX x multiplier` (at least 30 s with the default multiplier of 3) before
/// declaring vipd down, time enough for systemd to start the next process, which resumes
/// the session and speeds it up again.
pub const RESTART_TX: Duration = Duration::from_secs(10);

impl Bfd {
    /// Binds the receive sockets and starts the task on `rt` with `peers`; sessions found
    /// in `resume` (saved by the previous process) continue where it left them.
    pub fn start_on(rt: &Handle, peers: Vec<Peer>, resume: Vec<Resume>) -> Result<Bfd, StartError> {
        // Sockets register with the runtime they are created in.
        let _enter = rt.enter();
        let socks = sock::Receivers::bind()?;
        let statuses: Statuses = Arc::default();
        let (cmd, rx) = mpsc::channel(8);
        let mut t = task::Task::new(socks, statuses.clone(), rx);
        // Before returning: every session's status exists when the caller looks.
        t.set_peers(peers, &resume);
        let task = rt.spawn(t.run());
        let (died_tx, died) = watch::channel(None);
        rt.spawn(async move {
            let why = match task.await {
                Ok(()) => "the BFD task ended".to_string(),
                Err(e) => format!("the BFD task died: {e}"),
            };
            let _ = died_tx.send(Some(why));
        });
        Ok(Bfd {
            cmd,
            statuses,
            died,
        })
    }

    /// Applies a new list of sessions: unchanged ones keep running, changed intervals go
    /// through a Poll sequence, removed ones are sent AdminDown and dropped.
    pub async fn set_peers(&self, peers: Vec<Peer>) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::SetPeers(peers, tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Before a planned stop: slows every Up session down to [`RESTART_TX`] (a Poll
    /// sequence), waits at most `within` for the routers' Finals, and returns what the
    /// next process needs to resume them (a session whose Final has not come is saved too:
    /// the router computes its detection time from the slow interval it was sent). The task keeps sending (slowly) until the
    /// process exits.
    pub async fn prepare_restart(&self, within: Duration) -> Vec<Resume> {
        let (tx, rx) = oneshot::channel();
        if self
            .cmd
            .send(Cmd::PrepareRestart(within, tx))
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The status channel of the session with `addr`, if there is one.
    pub fn status(&self, addr: IpAddr) -> Option<watch::Receiver<Status>> {
        self.statuses.lock().ok()?.get(&addr).cloned()
    }

    /// Every session's status now.
    pub fn statuses(&self) -> Vec<(IpAddr, Status)> {
        self.statuses
            .lock()
            .map(|m| m.iter().map(|(a, rx)| (*a, *rx.borrow())).collect())
            .unwrap_or_default()
    }

    /// Resolves when the task ended (it never does on its own: a panic). The daemon exits
    /// on it: a BFD task that silently stopped would take every session down at the
    /// routers, or worse, leave them up with stale state.
    pub async fn failed(&self) -> String {
        let mut rx = self.died.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }
}

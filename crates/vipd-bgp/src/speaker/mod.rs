//! The BGP speaker: one task per neighbor, each owning its TCP connection and driving a
//! [`Fsm`]; the routes to announce are shared through a `watch` channel of [`Rib`] snapshots,
//! so announce/withdraw are idempotent and batched (a peer sends the diff between what it sent
//! and the latest snapshot).
//!
//! ```text
//!   daemon ── announce/withdraw/initial_complete ──> watch<Arc<Rib>> ──> peer task (x N)
//!        └── set_peers/shutdown(reason) ── stop ────────────────────────>   │ owns the read half
//!                                                                            │ runs Fsm, never
//!                                                                            │ waits for a write
//!                                                         bounded queue ─────┤
//!                                                                            v
//!                                                       writer task: owns the write half,
//!                                                       a deadline (hold time) per message
//!   status (watch) <── peer task (state, reasons), writer (prefixes/updates written)
//! ```
//!
//! Peer tasks that do not end within [`STOP_WAIT`] of a stop request are aborted: a reload
//! or a shutdown never waits on a neighbor.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::fsm::{Config as FsmConfig, State};
use crate::rib::{Rib, RouteAttrs};
use crate::wire::Prefix;

mod follow;
mod peer;
mod writer;

use peer::Peer;

/// How long a stopped neighbor's task may take to end before it is aborted.
pub const STOP_WAIT: Duration = Duration::from_secs(3);

/// How long an outbound connection attempt may take, unless configured.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One neighbor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// The router's address and port.
    pub addr: SocketAddr,
    /// Source address of the session (also the default next hop).
    pub local_addr: Option<IpAddr>,
    /// TCP MD5 key.
    pub password: Option<Key>,
    /// GTSM: send with TTL 255, accept only TTL 255.
    pub ttl_security: bool,
    /// Outgoing TTL (eBGP multihop).
    pub ttl: Option<u8>,
    /// Next hop of IPv4 routes when the session is IPv6 (and vice versa).
    pub next_hop_v4: Option<std::net::Ipv4Addr>,
    /// Next hop of IPv6 routes when the session is IPv4.
    pub next_hop_v6: Option<std::net::Ipv6Addr>,
    /// How long a connection attempt may take ([`CONNECT_TIMEOUT`] is a good default).
    pub connect_timeout: Duration,
    /// Follow a BFD session to the router (from the speaker's [`BfdSource`]): routes are
    /// announced only while it is Up, and its going Down (not AdminDown) ends the session.
    pub bfd: bool,
    /// Free text from the configuration, carried in every log line of this neighbor and in
    /// its status (which router this is, for an operator reading either).
    pub description: Option<String>,
    /// Session parameters.
    pub fsm: FsmConfig,
}

/// A TCP MD5 key. Its `Debug` form never shows it: neighbors are logged and printed whole.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// The key's bytes, for the socket option.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key(s.to_string())
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Key(s)
    }
}

/// What the daemon and `vipd status` see of a neighbor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// FSM state.
    pub state: State,
    /// Why it is in that state.
    pub reason: String,
    /// Prefixes currently announced to it.
    pub prefixes_sent: usize,
    /// UPDATE messages sent since start.
    pub updates_sent: u64,
    /// When it last became Established.
    pub established_at: Option<std::time::SystemTime>,
    /// Why the session last went down or failed to come up (like BIRD's "Last error").
    pub last_error: Option<String>,
    /// The neighbor's configured description.
    pub description: Option<String>,
}

/// Where the neighbors with [`PeerConfig::bfd`] find their BFD session's status.
#[derive(Clone)]
pub struct BfdSource(pub Arc<dyn Fn(IpAddr) -> Option<BfdStatus> + Send + Sync>);

/// A BFD session's status as the speaker follows it.
pub type BfdStatus = watch::Receiver<vipd_bfd::session::Status>;

impl std::fmt::Debug for BfdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BfdSource")
    }
}

/// Handle to the running speaker.
#[derive(Debug)]
pub struct Speaker {
    rib: watch::Sender<Arc<Rib>>,
    peers: Vec<PeerHandle>,
    /// Where the accept loop finds each passive neighbor's task.
    inbound: watch::Sender<Inbound>,
    /// A duplicate of the listening socket, to set the TCP MD5 keys of neighbors added later.
    listen_fd: Option<std::os::fd::OwnedFd>,
    listener: Option<AbortHandle>,
    /// The runtime the neighbors run on.
    rt: Handle,
    /// The BFD sessions of neighbors that follow one.
    bfd: Option<BfdSource>,
    /// Why a task of the speaker died (a panic): reported by [`Speaker::failed`].
    died: (
        mpsc::UnboundedSender<String>,
        mpsc::UnboundedReceiver<String>,
    ),
}

type Inbound = BTreeMap<IpAddr, mpsc::Sender<TcpStream>>;

/// One running neighbor task.
#[derive(Debug)]
struct PeerHandle {
    cfg: PeerConfig,
    status: watch::Receiver<PeerStatus>,
    stop: broadcast::Sender<String>,
    /// Aborts the neighbor's task.
    abort: AbortHandle,
    /// Ends when the neighbor's task ended.
    done: JoinHandle<()>,
}

/// What [`Speaker::set_peers`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerChanges {
    /// Neighbors whose configuration is unchanged: their sessions stay up.
    pub kept: Vec<SocketAddr>,
    /// New neighbors, started.
    pub added: Vec<SocketAddr>,
    /// Neighbors gone from the configuration, closed with a Cease.
    pub removed: Vec<SocketAddr>,
    /// Neighbors whose settings changed: closed with a Cease and started again.
    pub restarted: Vec<SocketAddr>,
}

impl Speaker {
    /// Starts one task per neighbor on the current runtime (outbound connections only).
    pub fn start(peers: Vec<PeerConfig>) -> Speaker {
        Self::start_with_listener(peers, None)
    }

    /// Starts the neighbors and, given `listen`, a listener whose accepted connections go to
    /// the passive neighbor with that source address (others are closed). TCP MD5 keys of the
    /// passive neighbors are set on the listening socket, as the kernel requires.
    pub fn start_with_listener(peers: Vec<PeerConfig>, listen: Option<TcpListener>) -> Speaker {
        Self::start_on(Handle::current(), peers, listen)
    }

    /// Like [`Speaker::start_with_listener`], with every task of the speaker (and the
    /// listener's sockets) on runtime `rt`. vipd gives the speaker a thread of its own: its
    /// keepalives must go out on time however busy the rest of the daemon is.
    pub fn start_on(rt: Handle, peers: Vec<PeerConfig>, listen: Option<TcpListener>) -> Speaker {
        Self::start_with_bfd(rt, peers, listen, None)
    }

    /// Like [`Speaker::start_on`], with the BFD sessions that neighbors with
    /// [`PeerConfig::bfd`] follow.
    pub fn start_with_bfd(
        rt: Handle,
        peers: Vec<PeerConfig>,
        listen: Option<TcpListener>,
        bfd: Option<BfdSource>,
    ) -> Speaker {
        let (rib, _) = watch::channel(Arc::new(Rib::default()));
        let (inbound, inbound_rx) = watch::channel(Inbound::new());
        let listen_fd = listen.as_ref().and_then(|l| match l.as_fd().try_clone_to_owned() {
            Ok(fd) => Some(fd),
            Err(e) => {
                warn!(error = %e, "cannot keep the listener's descriptor: TCP MD5 keys of neighbors added by a reload cannot be set");
                None
            }
        });
        let mut sp = Speaker {
            rib,
            peers: Vec::new(),
            inbound,
            listen_fd,
            listener: None,
            rt,
            bfd,
            died: mpsc::unbounded_channel(),
        };
        if let Some(l) = listen {
            sp.listener = sp.spawn_listener(l, inbound_rx);
        }
        for p in peers {
            sp.spawn_peer(p);
        }
        sp
    }

    fn spawn_peer(&mut self, p: PeerConfig) {
        let (tx, rx) = watch::channel(PeerStatus {
            state: State::Idle,
            reason: "not started".into(),
            prefixes_sent: 0,
            updates_sent: 0,
            established_at: None,
            last_error: None,
            description: p.description.clone(),
        });
        let addr = p.addr;
        let (in_tx, in_rx) = mpsc::channel(1);
        if p.fsm.passive {
            // Fail closed: a neighbor with a password whose key cannot be installed on the
            // listener is refused, never accepted unauthenticated.
            let key = match (&self.listen_fd, &p.password) {
                (_, None) => Ok(()),
                (None, Some(_)) => Err("no listener descriptor to install it on".to_string()),
                (Some(fd), Some(key)) => vipd_sys::sockopt::set_tcp_md5(
                    fd.as_fd(),
                    listener_peer(fd.as_fd(), addr.ip()),
                    key.as_bytes(),
                )
                .map_err(|e| e.to_string()),
            };
            match key {
                Ok(()) => self.inbound.send_modify(|m| {
                    m.insert(addr.ip(), in_tx);
                }),
                Err(e) => {
                    let why = format!(
                        "TCP MD5 key not installed on the listener ({e}): connections from this neighbor are refused"
                    );
                    tracing::error!(neighbor = %addr, "{why}");
                    tx.send_modify(|s| s.last_error = Some(why));
                }
            }
        }
        let bfd = p.bfd.then(|| self.bfd.clone());
        let (stop, stop_rx) = broadcast::channel(1);
        let peer = Peer::new(
            p.clone(),
            self.rib.subscribe(),
            stop_rx,
            Arc::new(tx),
            in_rx,
            bfd,
        );
        // Every line the neighbor's task logs carries its description.
        let span = tracing::info_span!("neighbor", description = tracing::field::Empty);
        if let Some(d) = &p.description {
            span.record("description", d.as_str());
        }
        let (abort, done) = self.supervise(
            format!("BGP neighbor {addr}"),
            tracing::Instrument::instrument(peer.run(), span),
        );
        self.peers.push(PeerHandle {
            cfg: p,
            status: rx,
            stop,
            abort,
            done,
        });
    }

    /// Spawns `fut` on the speaker's runtime; if it panics, [`Speaker::failed`] says so.
    /// Returns how to abort it and a handle that ends when it ended.
    fn supervise(
        &self,
        what: String,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> (AbortHandle, JoinHandle<()>) {
        let inner = self.rt.spawn(fut);
        let abort = inner.abort_handle();
        let died = self.died.0.clone();
        let done = self.rt.spawn(async move {
            if let Err(e) = inner.await {
                if e.is_panic() {
                    let _ = died.send(format!("{what}: {e}"));
                }
            }
        });
        (abort, done)
    }

    /// The accept loop, on the speaker's runtime: the socket moves to that runtime's reactor
    /// (accepted connections are served there).
    fn spawn_listener(
        &self,
        l: TcpListener,
        inbound: watch::Receiver<Inbound>,
    ) -> Option<AbortHandle> {
        let std = match l.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot move the BGP listener to the speaker's runtime: passive neighbors cannot connect");
                return None;
            }
        };
        let died = self.died.0.clone();
        let (abort, _) = self.supervise("BGP listener".into(), async move {
            match TcpListener::from_std(std) {
                Ok(l) => accept_loop(l, inbound).await,
                Err(e) => {
                    let _ = died.send(format!("BGP listener: {e}"));
                }
            }
        });
        Some(abort)
    }

    /// Resolves when a task of the speaker died (a panic), with what and why. The daemon
    /// exits on it: a neighbor that silently stopped would keep stale routes announced.
    pub async fn failed(&mut self) -> String {
        match self.died.1.recv().await {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }

    /// Applies a new neighbor list as a diff: an unchanged neighbor keeps its session, a
    /// removed one is closed with a Cease (`reason`), a changed one is closed and started
    /// again with its new settings, a new one is started. Routes are unchanged.
    pub async fn set_peers(&mut self, peers: Vec<PeerConfig>, reason: &str) -> PeerChanges {
        let mut out = PeerChanges::default();
        let mut old: Vec<PeerHandle> = std::mem::take(&mut self.peers);
        let mut start = Vec::new();
        for p in peers {
            match old.iter().position(|h| h.cfg.addr == p.addr) {
                Some(i) if old[i].cfg == p => {
                    out.kept.push(p.addr);
                    self.peers.push(old.remove(i));
                }
                Some(_) => {
                    out.restarted.push(p.addr);
                    start.push(p);
                }
                None => {
                    out.added.push(p.addr);
                    start.push(p);
                }
            }
        }
        for h in old {
            if !out.restarted.contains(&h.cfg.addr) {
                out.removed.push(h.cfg.addr);
            }
            if h.cfg.fsm.passive {
                let ip = h.cfg.addr.ip();
                self.inbound.send_modify(|m| {
                    m.remove(&ip);
                });
                if let (Some(fd), Some(_)) = (&self.listen_fd, &h.cfg.password) {
                    if let Err(e) = vipd_sys::sockopt::set_tcp_md5(
                        fd.as_fd(),
                        listener_peer(fd.as_fd(), ip),
                        b"",
                    ) {
                        warn!(neighbor = %h.cfg.addr, error = %e, "cannot remove the TCP MD5 key from the listener");
                    }
                }
            }
            let _ = h.stop.send(reason.to_string());
            stop_within(h, STOP_WAIT).await;
        }
        for p in start {
            self.spawn_peer(p);
        }
        out
    }

    /// Whether a passive neighbor could be accepted (the speaker has a listener).
    pub fn has_listener(&self) -> bool {
        self.listener.is_some()
    }

    /// Gives a speaker started without a listener one (a reload added a passive
    /// neighbor). Call before [`Speaker::set_peers`] so the new neighbors' keys are set.
    pub fn set_listener(&mut self, l: TcpListener) {
        match l.as_fd().try_clone_to_owned() {
            Ok(fd) => self.listen_fd = Some(fd),
            Err(e) => {
                warn!(error = %e, "cannot keep the listener's descriptor: TCP MD5 keys cannot be set on it")
            }
        }
        let new = self.spawn_listener(l, self.inbound.subscribe());
        if let Some(old) = std::mem::replace(&mut self.listener, new) {
            old.abort();
        }
    }

    /// Announces (or re-announces with new attributes) a prefix to every neighbor.
    pub fn announce(&self, prefix: Prefix, attrs: RouteAttrs) {
        self.rib.send_if_modified(|r| {
            if r.routes.get(&prefix) == Some(&attrs) {
                return false;
            }
            Arc::make_mut(r).routes.insert(prefix, attrs);
            true
        });
    }

    /// Withdraws a prefix from every neighbor (no-op if not announced).
    pub fn withdraw(&self, prefix: Prefix) {
        self.rib.send_if_modified(|r| {
            r.routes.contains_key(&prefix) && Arc::make_mut(r).routes.remove(&prefix).is_some()
        });
    }

    /// Replaces the whole set of announced routes at once (one batch of UPDATEs).
    pub fn set_routes(&self, routes: BTreeMap<Prefix, RouteAttrs>) {
        self.rib.send_if_modified(|r| {
            if r.routes == routes {
                return false;
            }
            Arc::make_mut(r).routes = routes;
            true
        });
    }

    /// Withdraws every route and waits, at most `within`, until every established
    /// neighbor's withdrawals are written to its connection. Returns whether they all were.
    pub async fn withdraw_all(&self, within: Duration) -> bool {
        self.set_routes(BTreeMap::new());
        let deadline = Instant::now() + within;
        let mut rxs: Vec<watch::Receiver<PeerStatus>> =
            self.peers.iter().map(|h| h.status.clone()).collect();
        for rx in &mut rxs {
            let done = tokio::time::timeout_at(
                deadline,
                rx.wait_for(|s| s.state != State::Established || s.prefixes_sent == 0),
            )
            .await;
            if !matches!(done, Ok(Ok(_))) {
                return false;
            }
        }
        true
    }

    /// The initial routes are complete: End-of-RIB may be sent to every neighbor.
    pub fn initial_complete(&self) {
        self.rib.send_if_modified(|r| {
            !r.initial_complete && {
                Arc::make_mut(r).initial_complete = true;
                true
            }
        });
    }

    /// Every neighbor's status channel, for readers that outlive one call (status pages).
    pub fn status_receivers(&self) -> Vec<(SocketAddr, watch::Receiver<PeerStatus>)> {
        self.peers
            .iter()
            .map(|h| (h.cfg.addr, h.status.clone()))
            .collect()
    }

    /// Every neighbor's status.
    pub fn status(&self) -> Vec<(SocketAddr, PeerStatus)> {
        self.peers
            .iter()
            .map(|h| (h.cfg.addr, h.status.borrow().clone()))
            .collect()
    }

    /// Drops every connection WITHOUT a NOTIFICATION (graceful restart: routers keep our
    /// routes as stale for the restart time instead of withdrawing them).
    pub fn abort(self) {
        if let Some(l) = self.listener {
            l.abort();
        }
        for h in self.peers {
            h.abort.abort();
        }
    }

    /// Closes every session with a Cease carrying `reason`, and waits for the tasks.
    pub async fn shutdown(self, reason: &str) {
        if let Some(l) = self.listener {
            l.abort();
        }
        for h in &self.peers {
            let _ = h.stop.send(reason.to_string());
        }
        let deadline = Instant::now() + STOP_WAIT;
        for h in self.peers {
            stop_within(h, deadline.saturating_duration_since(Instant::now())).await;
        }
    }
}

/// Waits for a stopped neighbor's task, at most `limit`, then aborts it.
async fn stop_within(mut h: PeerHandle, limit: Duration) {
    if tokio::time::timeout(limit, &mut h.done).await.is_err() {
        warn!(neighbor = %h.cfg.addr, "the neighbor's task did not stop within {limit:?}: aborted");
        h.abort.abort();
    }
}

/// Hands each accepted connection to the passive neighbor it comes from.
async fn accept_loop(l: TcpListener, inbound: watch::Receiver<Inbound>) {
    loop {
        match l.accept().await {
            Ok((s, from)) => match inbound.borrow().get(&canonical(from.ip())) {
                Some(tx) => {
                    if tx.try_send(s).is_err() {
                        info!(from = %from, "BGP connection refused: that neighbor already has one pending");
                    }
                }
                None => info!(from = %from, "BGP connection refused: not a passive neighbor"),
            },
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The address a listener's TCP MD5 key must name: on an IPv6 (dual-stack) socket an IPv4
/// peer is `::ffff:a.b.c.d` (the kernel refuses an IPv4 sockaddr there with EINVAL).
fn listener_peer(fd: std::os::fd::BorrowedFd<'_>, peer: IpAddr) -> IpAddr {
    let v6_socket = socket2::SockRef::from(&fd)
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .is_some_and(|a| a.is_ipv6());
    match peer {
        IpAddr::V4(a) if v6_socket => IpAddr::V6(a.to_ipv6_mapped()),
        other => other,
    }
}

/// IPv4 peers accepted on an IPv6 socket appear as ::ffff:a.b.c.d.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

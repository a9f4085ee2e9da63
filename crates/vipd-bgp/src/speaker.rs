//! The BGP speaker: one task per neighbor, each owning its TCP connection and driving a
//! [`Fsm`]; the routes to announce are shared through a `watch` channel of [`Rib`] snapshots,
//! so announce/withdraw are idempotent and batched (a peer sends the diff between what it sent
//! and the latest snapshot).
//!
//! ```text
//!   daemon ── announce/withdraw/initial_complete ──> watch<Arc<Rib>> ──> peer task (x N)
//!        └── shutdown(reason) ── broadcast ─────────────────────────────>   │  owns TcpStream
//!                                                                            │  runs Fsm
//!                                                                            v  status (watch)
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::fsm::{Action, Config as FsmConfig, Event, Fsm, Negotiated, State, Timer};
use crate::rib::{PeerCtx, Rib, RouteAttrs, updates};
use crate::wire::{Decoded, Message, Prefix, Session, Update};

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
    pub password: Option<String>,
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
    /// Session parameters.
    pub fsm: FsmConfig,
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
    listener: Option<JoinHandle<()>>,
}

type Inbound = BTreeMap<IpAddr, mpsc::Sender<TcpStream>>;

/// One running neighbor task.
#[derive(Debug)]
struct PeerHandle {
    cfg: PeerConfig,
    status: watch::Receiver<PeerStatus>,
    stop: broadcast::Sender<String>,
    task: JoinHandle<()>,
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
        let (rib, _) = watch::channel(Arc::new(Rib::default()));
        let (inbound, inbound_rx) = watch::channel(Inbound::new());
        let listen_fd = listen.as_ref().and_then(|l| match l.as_fd().try_clone_to_owned() {
            Ok(fd) => Some(fd),
            Err(e) => {
                warn!(error = %e, "cannot keep the listener's descriptor: TCP MD5 keys of neighbors added by a reload cannot be set");
                None
            }
        });
        let listener = listen.map(|l| tokio::spawn(accept_loop(l, inbound_rx)));
        let mut sp = Speaker {
            rib,
            peers: Vec::new(),
            inbound,
            listen_fd,
            listener,
        };
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
        let (stop, stop_rx) = broadcast::channel(1);
        let task =
            tokio::spawn(Peer::new(p.clone(), self.rib.subscribe(), stop_rx, tx, in_rx).run());
        self.peers.push(PeerHandle {
            cfg: p,
            status: rx,
            stop,
            task,
        });
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
            let _ = h.task.await;
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
        if let Some(old) = self
            .listener
            .replace(tokio::spawn(accept_loop(l, self.inbound.subscribe())))
        {
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
            h.task.abort();
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
        for h in self.peers {
            let _ = h.task.await;
        }
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

/// One neighbor's task state.
struct Peer {
    cfg: PeerConfig,
    fsm: Fsm,
    rib: watch::Receiver<Arc<Rib>>,
    stop: broadcast::Receiver<String>,
    status: watch::Sender<PeerStatus>,
    inbound: mpsc::Receiver<TcpStream>,
    conn: Option<TcpStream>,
    connecting: Option<
        std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<TcpStream>> + Send>>,
    >,
    timers: BTreeMap<TimerKey, Instant>,
    rbuf: Vec<u8>,
    sent: BTreeMap<Prefix, RouteAttrs>,
    eor_sent: bool,
    session: Session,
    ctx: Option<PeerCtx>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    ConnectRetry,
    Hold,
    Keepalive,
}

fn key(t: Timer) -> TimerKey {
    match t {
        Timer::ConnectRetry => TimerKey::ConnectRetry,
        Timer::Hold => TimerKey::Hold,
        Timer::Keepalive => TimerKey::Keepalive,
    }
}

fn timer(k: TimerKey) -> Timer {
    match k {
        TimerKey::ConnectRetry => Timer::ConnectRetry,
        TimerKey::Hold => Timer::Hold,
        TimerKey::Keepalive => Timer::Keepalive,
    }
}

impl Peer {
    fn new(
        cfg: PeerConfig,
        rib: watch::Receiver<Arc<Rib>>,
        stop: broadcast::Receiver<String>,
        status: watch::Sender<PeerStatus>,
        inbound: mpsc::Receiver<TcpStream>,
    ) -> Self {
        let seed = match cfg.addr.ip() {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a) as u64,
        } ^ u64::from(u32::from(cfg.fsm.router_id));
        let fsm = Fsm::new(cfg.fsm.clone(), seed);
        Peer {
            cfg,
            fsm,
            rib,
            stop,
            status,
            inbound,
            conn: None,
            connecting: None,
            timers: BTreeMap::new(),
            rbuf: Vec::new(),
            sent: BTreeMap::new(),
            eor_sent: false,
            session: Session::default(),
            ctx: None,
        }
    }

    async fn run(mut self) {
        self.handle(Event::Start).await;
        loop {
            let next_timer = self
                .timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, at)| (*k, *at));
            let established = self.fsm.state() == State::Established;
            let mut buf = [0u8; 16384];
            tokio::select! {
                r = self.stop.recv() => {
                    self.handle(Event::Stop(r.unwrap_or_else(|_| "speaker stopped".into()))).await;
                    break;
                }
                res = async { self.connecting.as_mut().expect("guarded").await }, if self.connecting.is_some() => {
                    self.connecting = None;
                    match res {
                        Ok(s) => {
                            self.conn = Some(s);
                            self.handle(Event::TcpUp).await;
                        }
                        Err(e) => self.handle(Event::TcpDown(format!("connect to {}: {e}", self.cfg.addr))).await,
                    }
                }
                n = async { self.conn.as_mut().expect("guarded").read(&mut buf).await }, if self.conn.is_some() => {
                    match n {
                        Ok(0) => self.handle(Event::TcpDown("closed by the peer".into())).await,
                        Ok(n) => { self.rbuf.extend_from_slice(&buf[..n]); self.read_frames().await; }
                        Err(e) => self.handle(Event::TcpDown(e.to_string())).await,
                    }
                }
                _ = tokio::time::sleep_until(next_timer.map_or_else(|| Instant::now() + Duration::from_secs(3600), |(_, at)| at)), if next_timer.is_some() => {
                    if let Some((k, _)) = next_timer {
                        self.timers.remove(&k);
                        self.handle(Event::TimerExpired(timer(k))).await;
                    }
                }
                Some(s) = self.inbound.recv() => {
                    // A passive neighbor connected. One connection at a time: a second one
                    // while a session exists is closed (the FSM answers it with Close).
                    if self.conn.is_none() && matches!(self.fsm.state(), State::Active | State::Connect) {
                        self.conn = Some(s);
                        self.handle(Event::TcpUp).await;
                    }
                }
                r = self.rib.changed(), if established => {
                    if r.is_err() { break; }
                    self.sync_routes().await;
                }
            }
        }
    }

    /// Decodes every complete message in the read buffer and feeds the FSM.
    async fn read_frames(&mut self) {
        loop {
            let len = match Message::frame_len(&self.rbuf, &self.session) {
                Ok(Some(l)) if self.rbuf.len() >= l => l,
                Ok(_) => return,
                Err(e) => {
                    self.rbuf.clear();
                    self.handle(Event::Malformed(e)).await;
                    return;
                }
            };
            let frame: Vec<u8> = self.rbuf.drain(..len).collect();
            let ev = match Message::decode(&frame, &self.session) {
                Ok(Decoded::Message(m)) => Event::Message(m),
                Ok(Decoded::Update(e)) => Event::UpdateTreatedAsWithdraw(e.reasons),
                Err(e) => Event::Malformed(e),
            };
            self.handle(ev).await;
            if self.conn.is_none() {
                self.rbuf.clear();
                return;
            }
        }
    }

    /// Feeds one event to the FSM and performs its actions.
    async fn handle(&mut self, ev: Event) {
        for a in self.fsm.handle(ev) {
            self.act(a).await;
        }
    }

    async fn act(&mut self, a: Action) {
        let peer = self.cfg.addr;
        match a {
            Action::Connect => self.connecting = Some(Box::pin(connect(self.cfg.clone()))),
            Action::Send(m) => self.send(&m).await,
            Action::StartTimer(t, d) => {
                self.timers.insert(key(t), Instant::now() + d);
            }
            Action::StopTimer(t) => {
                self.timers.remove(&key(t));
            }
            Action::Close => {
                if let Some(mut c) = self.conn.take() {
                    let _ = c.shutdown().await;
                }
                self.connecting = None;
            }
            Action::StateChange { from, to, reason } => {
                info!(neighbor = %peer, from = ?from, to = ?to, "BGP session {from:?} -> {to:?}: {reason}");
                self.status.send_modify(|s| {
                    if to == State::Idle {
                        s.last_error = Some(reason.clone());
                    }
                    s.state = to;
                    s.reason = reason;
                    if to == State::Established {
                        s.established_at = Some(std::time::SystemTime::now());
                    }
                });
            }
            Action::Established(n) => {
                self.session = n.session;
                self.ctx = Some(self.peer_ctx(&n));
                self.sent.clear();
                self.eor_sent = false;
                self.sync_routes().await;
            }
            Action::Down(reason) => {
                warn!(neighbor = %peer, "BGP session down: {reason}");
                self.sent.clear();
                self.session = Session::default();
                self.status.send_modify(|s| s.prefixes_sent = 0);
            }
            Action::ResendRoutes(afi, safi) => {
                info!(neighbor = %peer, "route refresh requested for {afi:?}/{safi:?}: resending");
                self.sent.clear();
                self.sync_routes().await;
            }
            Action::Warn(w) => warn!(neighbor = %peer, "{w}"),
        }
    }

    fn peer_ctx(&self, n: &Negotiated) -> PeerCtx {
        // The next hop is the session's own address unless configured: the configured local
        // address, else the one the kernel chose for the connection.
        let local = self.cfg.local_addr.or_else(|| {
            self.conn
                .as_ref()
                .and_then(|c| c.local_addr().ok())
                .map(|a| a.ip().to_canonical())
        });
        let ctx = PeerCtx {
            local_as: self.cfg.fsm.local_as,
            ebgp: self.cfg.fsm.local_as != self.cfg.fsm.remote_as,
            next_hop_v4: self.cfg.next_hop_v4.or(match local {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            }),
            next_hop_v6: self.cfg.next_hop_v6.or(match local {
                Some(IpAddr::V6(a)) => Some(a),
                _ => None,
            }),
            families: n.families.clone(),
        };
        for (afi, have) in [
            (crate::wire::Afi::Ipv4, ctx.next_hop_v4.is_some()),
            (crate::wire::Afi::Ipv6, ctx.next_hop_v6.is_some()),
        ] {
            if !have && ctx.families.iter().any(|(a, _)| *a == afi) {
                warn!(neighbor = %self.cfg.addr, "no {afi:?} next hop for this session (set ipv4_next_hop / ipv6_next_hop): its {afi:?} routes are not sent");
            }
        }
        ctx
    }

    /// Sends what changed since the last sync, then End-of-RIB once the daemon says the
    /// initial routes are complete.
    async fn sync_routes(&mut self) {
        let Some(ctx) = self.ctx.clone() else { return };
        let rib = self.rib.borrow_and_update().clone();
        let ups = updates(&self.sent, &rib.routes, &ctx);
        let n = ups.len() as u64;
        for u in ups {
            self.send(&Message::Update(Box::new(u))).await;
        }
        self.sent = rib
            .routes
            .iter()
            .filter(|(p, _)| {
                ctx.families
                    .iter()
                    .any(|(a, _)| (*a == crate::wire::Afi::Ipv4) == p.is_ipv4())
            })
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        if rib.initial_complete && !self.eor_sent {
            for (afi, safi) in ctx.families.clone() {
                self.send(&Message::Update(Box::new(Update::end_of_rib(afi, safi))))
                    .await;
            }
            self.eor_sent = true;
        }
        let sent = self.sent.len();
        self.status.send_modify(|s| {
            s.prefixes_sent = sent;
            s.updates_sent += n;
        });
    }

    async fn send(&mut self, m: &Message) {
        let bytes = match m.encode(&self.session) {
            Ok(b) => b,
            Err(e) => {
                warn!(neighbor = %self.cfg.addr, error = %e, "cannot encode a message; not sent");
                return;
            }
        };
        if let Some(c) = self.conn.as_mut() {
            if let Err(e) = c.write_all(&bytes).await {
                warn!(neighbor = %self.cfg.addr, error = %e, "write failed");
                self.conn = None;
                Box::pin(self.handle(Event::TcpDown(format!("write failed: {e}")))).await;
            }
        }
    }
}

/// Opens the TCP connection with the session's socket options set before the handshake.
async fn connect(cfg: PeerConfig) -> std::io::Result<TcpStream> {
    let sock = if cfg.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(key) = &cfg.password {
        vipd_sys::sockopt::set_tcp_md5(sock.as_fd(), cfg.addr.ip(), key.as_bytes())?;
    }
    let sref = socket2::SockRef::from(&sock);
    let ttl = if cfg.ttl_security { Some(255) } else { cfg.ttl };
    if let Some(ttl) = ttl {
        if cfg.addr.is_ipv4() {
            sref.set_ttl_v4(u32::from(ttl))?
        } else {
            sref.set_unicast_hops_v6(u32::from(ttl))?
        }
    }
    if cfg.ttl_security {
        vipd_sys::sockopt::set_min_ttl(sock.as_fd(), cfg.addr.is_ipv6(), 255)?;
    }
    if let Some(local) = cfg.local_addr {
        sock.bind(SocketAddr::new(local, 0))?;
    }
    let no_answer = if cfg.password.is_some() {
        "no answer (TCP MD5 is on: a password that differs from the router's, or none there, makes the SYN drop silently)"
    } else {
        "no answer"
    };
    let s = tokio::time::timeout(cfg.connect_timeout, sock.connect(cfg.addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, no_answer))??;
    s.set_nodelay(true)?;
    Ok(s)
}

//! One neighbor's task: it owns the connection's read half and the [`Writer`] of its write
//! half, drives the [`Fsm`] and executes its actions. It never waits for the socket: reads
//! are one branch of its select, writes are queued, so the hold timer, keepalives and stop
//! requests always run.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::follow::{self, Follow};
use super::writer::{Mark, WriteError, Writer};
use super::{BfdSource, PeerConfig, PeerStatus};
use crate::fsm::{Action, Event, Fsm, Negotiated, OPEN_HOLD, State, Timer};
use crate::rib::{PeerCtx, Rib, RouteAttrs, updates};
use crate::wire::{Decoded, Message, Prefix, Session, Update};

/// One neighbor's task state.
pub(super) struct Peer {
    cfg: PeerConfig,
    fsm: Fsm,
    rib: watch::Receiver<Arc<Rib>>,
    stop: broadcast::Receiver<String>,
    status: Arc<watch::Sender<PeerStatus>>,
    inbound: mpsc::Receiver<TcpStream>,
    /// The connection: its read half here, its write half in the writer.
    conn: Option<(OwnedReadHalf, Writer)>,
    connecting: Option<
        std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<TcpStream>> + Send>>,
    >,
    timers: BTreeMap<Timer, Instant>,
    rbuf: Vec<u8>,
    /// What the peer has been sent (or has queued), per prefix.
    sent: BTreeMap<Prefix, RouteAttrs>,
    /// The routes changed (or must all be resent) since the last round of updates.
    dirty: bool,
    eor_sent: bool,
    session: Session,
    ctx: Option<PeerCtx>,
    generation: Arc<AtomicU64>,
    /// The BFD session followed (None: BFD off for this neighbor).
    bfd: Option<Follow>,
}

/// What woke the peer task.
enum Wake {
    Stop(String),
    Connected(std::io::Result<TcpStream>),
    Read(std::io::Result<usize>),
    Timer(Timer),
    Inbound(TcpStream),
    RibChanged(bool),
    Fed,
    WriterFailed(WriteError),
    Bfd,
    BfdLookup,
}

impl Peer {
    pub(super) fn new(
        cfg: PeerConfig,
        rib: watch::Receiver<Arc<Rib>>,
        stop: broadcast::Receiver<String>,
        status: Arc<watch::Sender<PeerStatus>>,
        inbound: mpsc::Receiver<TcpStream>,
        bfd: Option<Option<BfdSource>>,
    ) -> Self {
        let seed = match cfg.addr.ip() {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a) as u64,
        } ^ u64::from(u32::from(cfg.fsm.router_id));
        let fsm = Fsm::new(cfg.fsm.clone(), seed);
        let bfd = bfd.map(|src| Follow::new(cfg.addr.ip(), src));
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
            dirty: false,
            eor_sent: false,
            session: Session::default(),
            ctx: None,
            generation: Arc::new(AtomicU64::new(0)),
            bfd,
        }
    }

    pub(super) async fn run(mut self) {
        self.handle(Event::Start);
        loop {
            if self.dirty && !self.conn.as_ref().is_some_and(|(_, w)| w.has_backlog()) {
                self.sync_routes();
            }
            match self.next().await {
                Wake::Stop(reason) => {
                    self.handle(Event::Stop(reason));
                    break;
                }
                Wake::Connected(Ok(s)) => self.connected(s),
                Wake::Connected(Err(e)) => {
                    self.handle(Event::TcpDown(format!("connect to {}: {e}", self.cfg.addr)))
                }
                Wake::Read(Ok(0)) => self.lost("closed by the peer".into()),
                Wake::Read(Ok(_)) => self.read_frames(),
                Wake::Read(Err(e)) => self.lost(e.to_string()),
                Wake::Timer(t) => {
                    self.timers.remove(&t);
                    self.handle(Event::TimerExpired(t));
                }
                Wake::Inbound(s) => {
                    // A passive neighbor connected. One connection at a time: a second one
                    // while a session exists is dropped.
                    if self.conn.is_none()
                        && matches!(self.fsm.state(), State::Active | State::Connect)
                    {
                        match accepted_sockopts(&s, &self.cfg) {
                            Ok(()) => self.connected(s),
                            // Fail closed: never a session without the GTSM asked for.
                            Err(e) => warn!(neighbor = %self.cfg.addr, error = %e,
                                "connection refused: cannot set its TTL / minimum TTL"),
                        }
                    }
                }
                Wake::RibChanged(true) => self.dirty = true,
                Wake::RibChanged(false) => break,
                Wake::Fed => {}
                Wake::WriterFailed(e) => self.lost(e.to_string()),
                Wake::Bfd => self.bfd_changed(),
                Wake::BfdLookup => {
                    if self.bfd.as_mut().is_some_and(Follow::lookup) {
                        self.bfd_changed();
                    }
                }
            }
        }
        // Stopped: the NOTIFICATION, if any, is flushed by the writer within its bound.
        if let Some((_, w)) = self.conn.take() {
            w.close();
        }
    }

    /// Waits for the next thing to do. Every branch is cancel safe.
    async fn next(&mut self) -> Wake {
        let next_timer = self.timers.iter().min_by_key(|(_, at)| **at);
        let timer_at = next_timer.map(|(t, at)| (*t, *at));
        let watch_rib = self.fsm.state() == State::Established && !self.dirty;
        let Peer {
            stop,
            connecting,
            conn,
            inbound,
            rib,
            rbuf,
            bfd,
            ..
        } = self;
        let missing = bfd.as_ref().is_some_and(Follow::missing);
        let bfd = bfd.as_mut().and_then(Follow::rx);
        let (rd, writer) = match conn {
            Some((r, w)) => (Some(r), Some(w)),
            None => (None, None),
        };
        tokio::select! {
            r = stop.recv() => Wake::Stop(r.unwrap_or_else(|_| "speaker stopped".into())),
            r = async { connecting.as_mut().expect("guarded").await }, if connecting.is_some() => {
                *connecting = None;
                Wake::Connected(r)
            }
            r = async { rd.expect("guarded").read_buf(rbuf).await }, if rd.is_some() => Wake::Read(r),
            _ = tokio::time::sleep_until(timer_at.map_or_else(Instant::now, |(_, at)| at)), if timer_at.is_some() => {
                Wake::Timer(timer_at.map(|(t, _)| t).expect("guarded"))
            }
            Some(s) = inbound.recv() => Wake::Inbound(s),
            r = rib.changed(), if watch_rib => Wake::RibChanged(r.is_ok()),
            r = async { writer.expect("guarded").wait().await }, if writer.is_some() => match r {
                None => Wake::Fed,
                Some(e) => Wake::WriterFailed(e),
            },
            () = async {
                // A closed channel: the session was removed (this neighbor is being
                // stopped or reconfigured) or the BFD task died (vipd exits on that).
                if bfd.expect("guarded").changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }, if bfd.is_some() => Wake::Bfd,
            () = tokio::time::sleep(follow::LOOKUP_EVERY), if missing => Wake::BfdLookup,
        }
    }

    /// Routes may be announced to this neighbor (see [`Follow::allowed`]).
    fn routes_allowed(&self) -> bool {
        self.bfd.as_ref().is_none_or(Follow::allowed)
    }

    /// The BFD session changed: a failure ends the BGP session; either way the routes are
    /// synced again (announced if allowed now, withdrawn if not).
    fn bfd_changed(&mut self) {
        let Some(f) = self.bfd.as_mut() else { return };
        if let follow::Verdict::Failed(why) = f.changed() {
            self.handle(Event::BfdDown(why));
        }
        if self.fsm.state() == State::Established {
            self.dirty = true;
        }
    }

    fn connected(&mut self, s: TcpStream) {
        let hold = self
            .fsm
            .negotiated()
            .map_or(self.cfg.fsm.hold_time, |n| n.hold_time);
        let stall = write_deadline(hold);
        let (rd, wr) = s.into_split();
        let w = Writer::start(wr, stall, self.status.clone(), self.generation.clone());
        self.conn = Some((rd, w));
        self.handle(Event::TcpUp);
    }

    /// The connection broke (read error, EOF, or the writer gave up).
    fn lost(&mut self, why: String) {
        if let Some((_, w)) = self.conn.take() {
            w.close();
        }
        self.handle(Event::TcpDown(why));
    }

    /// Decodes every complete message in the read buffer and feeds the FSM.
    fn read_frames(&mut self) {
        loop {
            let len = match Message::frame_len(&self.rbuf, &self.session) {
                Ok(Some(l)) if self.rbuf.len() >= l => l,
                Ok(_) => return,
                Err(e) => {
                    self.rbuf.clear();
                    self.handle(Event::Malformed(e));
                    return;
                }
            };
            let frame: Vec<u8> = self.rbuf.drain(..len).collect();
            let ev = match Message::decode(&frame, &self.session) {
                Ok(Decoded::Message(m)) => Event::Message(m),
                Ok(Decoded::Update(e)) => Event::UpdateTreatedAsWithdraw(e.reasons),
                Err(e) => Event::Malformed(e),
            };
            self.handle(ev);
            if self.conn.is_none() {
                self.rbuf.clear();
                return;
            }
        }
    }

    /// Feeds one event to the FSM and performs its actions.
    fn handle(&mut self, ev: Event) {
        for a in self.fsm.handle(ev) {
            self.act(a);
        }
    }

    fn act(&mut self, a: Action) {
        let peer = self.cfg.addr;
        match a {
            Action::Connect => self.connecting = Some(Box::pin(connect(self.cfg.clone()))),
            Action::Send(m) => self.send(&m, None),
            Action::StartTimer(t, d) => {
                self.timers.insert(t, Instant::now() + d);
            }
            Action::StopTimer(t) => {
                self.timers.remove(&t);
            }
            Action::Close => {
                if let Some((_, w)) = self.conn.take() {
                    w.close();
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
                if let Some((_, w)) = self.conn.as_mut() {
                    w.stall = write_deadline(n.hold_time);
                }
                self.sent.clear();
                self.eor_sent = false;
                self.dirty = true;
            }
            Action::Down(reason) => {
                warn!(neighbor = %peer, "BGP session down: {reason}");
                self.sent.clear();
                self.dirty = false;
                self.session = Session::default();
                self.status.send_modify(|s| s.prefixes_sent = 0);
            }
            Action::ResendRoutes(afi, safi) => {
                info!(neighbor = %peer, "route refresh requested for {afi:?}/{safi:?}: resending");
                self.sent.clear();
                self.dirty = true;
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
                .and_then(|(r, _)| r.local_addr().ok())
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

    /// Queues one round of updates: what changed since the last round, then End-of-RIB once
    /// the daemon says the initial routes are complete. The status counts them once the
    /// round's last message is written.
    fn sync_routes(&mut self) {
        // Without BFD Up (when followed), the neighbor gets withdrawals only, and no
        // End-of-RIB: a router keeping our routes from before a restart keeps them until
        // BFD is Up and the real table follows.
        let allowed = self.routes_allowed();
        self.dirty = false;
        let Some(ctx) = self.ctx.clone() else { return };
        let rib = self.rib.borrow_and_update().clone();
        let none = BTreeMap::new();
        let want = if allowed { &rib.routes } else { &none };
        let mut msgs: Vec<Message> = updates(&self.sent, want, &ctx)
            .into_iter()
            .map(|u| Message::Update(Box::new(u)))
            .collect();
        let n = msgs.len() as u64;
        self.sent = want
            .iter()
            .filter(|(p, _)| {
                ctx.families
                    .iter()
                    .any(|(a, _)| (*a == crate::wire::Afi::Ipv4) == p.is_ipv4())
            })
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        if allowed && rib.initial_complete && !self.eor_sent {
            msgs.extend(
                ctx.families
                    .iter()
                    .map(|(afi, safi)| Message::Update(Box::new(Update::end_of_rib(*afi, *safi)))),
            );
            self.eor_sent = true;
        }
        let mark = Mark {
            prefixes: self.sent.len(),
            updates: n,
        };
        let last = msgs.len().checked_sub(1);
        for (i, m) in msgs.iter().enumerate() {
            self.send(m, (Some(i) == last).then_some(mark));
        }
        if last.is_none() {
            self.status.send_modify(|s| s.prefixes_sent = mark.prefixes);
        }
    }

    /// Encodes and queues a message. KEEPALIVE and NOTIFICATION go ahead of waiting updates.
    fn send(&mut self, m: &Message, mark: Option<Mark>) {
        let bytes = match m.encode(&self.session) {
            Ok(b) => b,
            Err(e) => {
                warn!(neighbor = %self.cfg.addr, error = %e, "cannot encode a message; not sent");
                return;
            }
        };
        if let Some((_, w)) = self.conn.as_mut() {
            match m {
                Message::Keepalive | Message::Notification(_) => w.push_urgent(bytes),
                _ => w.push(bytes, mark),
            }
        }
    }
}

/// How long a message may wait to be written: the hold time (at least 3 s), or the OPEN hold
/// time when the session has none.
fn write_deadline(hold: u16) -> Duration {
    if hold == 0 {
        OPEN_HOLD
    } else {
        Duration::from_secs(u64::from(hold.max(3)))
    }
}

/// On an accepted connection, what [`connect`] sets before its SYN: the outgoing TTL (255
/// with GTSM, else the multihop TTL) and GTSM's minimum TTL, so that packets from farther
/// than the neighbor are dropped by the kernel from now on. An IPv4 neighbor on the
/// dual-stack listener takes the IPv4 options (Linux applies them to v4-mapped traffic).
fn accepted_sockopts(s: &TcpStream, cfg: &PeerConfig) -> std::io::Result<()> {
    let v4 = s.peer_addr()?.ip().to_canonical().is_ipv4();
    let sref = socket2::SockRef::from(s);
    let ttl = if cfg.ttl_security { Some(255) } else { cfg.ttl };
    if let Some(ttl) = ttl {
        if v4 {
            sref.set_ttl_v4(u32::from(ttl))?;
        } else {
            sref.set_unicast_hops_v6(u32::from(ttl))?;
        }
    }
    if cfg.ttl_security {
        vipd_sys::sockopt::set_min_ttl(s.as_fd(), !v4, 255)?;
    }
    Ok(())
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

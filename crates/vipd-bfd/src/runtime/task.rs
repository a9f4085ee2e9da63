//! The BFD task's loop: commands, datagrams and timers, one session map.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::sock::{self, Receivers};
use super::{Cmd, Peer, RESTART_TX, Resume, Statuses};
use crate::packet::{Diag, Packet, State, ttl_ok};
use crate::session::{Action, Session};

/// One session and what belongs to it.
struct Entry {
    peer: Peer,
    s: Session,
    tx: UdpSocket,
    port: u16,
    status: watch::Sender<crate::session::Status>,
}

/// A planned restart waiting for the routers' Finals.
struct Restart {
    deadline: Instant,
    reply: oneshot::Sender<Vec<Resume>>,
}

pub(super) struct Task {
    rx: Receivers,
    statuses: Statuses,
    cmd: mpsc::Receiver<Cmd>,
    sessions: BTreeMap<IpAddr, Entry>,
    /// Removed sessions still saying AdminDown until their deadline (RFC 5880 6.8.16: for
    /// a detection time, so that the router does not take the end for a failure).
    draining: Vec<(Entry, Instant)>,
    /// Sessions whose sending socket could not be opened (the source address not there
    /// yet, at boot): tried again every [`RETRY_EVERY`].
    retry: BTreeMap<IpAddr, Peer>,
    restart: Option<Restart>,
}

/// How long a removed session keeps saying AdminDown: past the router's detection time at
/// the slow rate a session falls back to (1 s x the usual multiplier of 3).
const DRAIN_FOR: Duration = Duration::from_secs(3);
/// How often a session without a sending socket is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(5);

impl Task {
    pub fn new(rx: Receivers, statuses: Statuses, cmd: mpsc::Receiver<Cmd>) -> Task {
        Task {
            rx,
            statuses,
            cmd,
            sessions: BTreeMap::new(),
            draining: Vec::new(),
            retry: BTreeMap::new(),
            restart: None,
        }
    }

    pub async fn run(mut self) {
        let mut buf = [0u8; 128];
        loop {
            let next = self
                .sessions
                .values()
                .chain(self.draining.iter().map(|(e, _)| e))
                .map(|e| Instant::from_std(e.s.next_deadline()))
                .chain(self.draining.iter().map(|(_, at)| *at))
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let restart_at = self.restart.as_ref().map(|r| r.deadline);
            tokio::select! {
                c = self.cmd.recv() => match c {
                    // The handle is gone: vipd is exiting.
                    None => return,
                    Some(Cmd::SetPeers(p, done)) => {
                        self.set_peers(p, &[]);
                        let _ = done.send(());
                    }
                    Some(Cmd::PrepareRestart(within, reply)) => self.slow_down(within, reply),
                },
                r = self.rx.single_v4.readable() => if r.is_ok() { self.drain(Which::SingleV4, &mut buf) },
                r = self.rx.multi_v4.readable() => if r.is_ok() { self.drain(Which::MultiV4, &mut buf) },
                r = readable(self.rx.single_v6.as_ref()) => if r.is_ok() { self.drain(Which::SingleV6, &mut buf) },
                r = readable(self.rx.multi_v6.as_ref()) => if r.is_ok() { self.drain(Which::MultiV6, &mut buf) },
                _ = tokio::time::sleep_until(next) => {
                    let now = Instant::now().into_std();
                    let due: Vec<IpAddr> = self
                        .sessions
                        .iter()
                        .filter(|(_, e)| e.s.next_deadline() <= now)
                        .map(|(a, _)| *a)
                        .collect();
                    for a in due {
                        if let Some(e) = self.sessions.get_mut(&a) {
                            let out = e.s.on_timer(now);
                            perform(e, out);
                        }
                    }
                    let at = Instant::from_std(now);
                    self.draining.retain(|(_, until)| *until > at);
                    for (e, _) in &mut self.draining {
                        if e.s.next_deadline() <= now {
                            let out = e.s.on_timer(now);
                            perform(e, out);
                        }
                    }
                }
                () = tokio::time::sleep(RETRY_EVERY), if !self.retry.is_empty() => {
                    let now = Instant::now().into_std();
                    for p in std::mem::take(&mut self.retry).into_values() {
                        self.start(now, p, None);
                    }
                }
                _ = tokio::time::sleep_until(restart_at.unwrap_or(next)), if restart_at.is_some() => {
                    self.finish_restart();
                }
            }
            if self.restart.is_some() && self.sessions.values().all(|e| !e.s.polling()) {
                self.finish_restart();
            }
        }
    }

    /// Starts, keeps, changes or removes sessions to match `peers`.
    pub fn set_peers(&mut self, peers: Vec<Peer>, resume: &[Resume]) {
        let now = Instant::now().into_std();
        let wanted: BTreeMap<IpAddr, Peer> = peers.into_iter().map(|p| (p.addr, p)).collect();
        self.retry.retain(|a, _| wanted.contains_key(a));
        let gone: Vec<IpAddr> = self
            .sessions
            .iter()
            .filter(|(a, e)| {
                wanted
                    .get(a)
                    .is_none_or(|p| p.local != e.peer.local || p.multihop != e.peer.multihop)
            })
            .map(|(a, _)| *a)
            .collect();
        for a in gone {
            if let Some(mut e) = self.sessions.remove(&a) {
                // Tell the router this is administrative, not a failure (RFC 5882 3.2).
                let out = e.s.set_admin_down(now, true, Diag::AdministrativelyDown);
                perform(&mut e, out);
                info!(neighbor = %a, "BFD session removed");
                self.draining.push((e, Instant::from_std(now) + DRAIN_FOR));
            }
        }
        if let Ok(mut m) = self.statuses.lock() {
            m.retain(|a, _| self.sessions.contains_key(a));
        }
        for (a, p) in wanted {
            if let Some(e) = self.sessions.get_mut(&a) {
                if e.peer.timing != p.timing {
                    let out = e.s.set_intervals(now, p.timing.min_tx, p.timing.min_rx);
                    e.s.set_multiplier(p.timing.multiplier);
                    e.peer = p;
                    perform(e, out);
                }
                continue;
            }
            // A session of the same neighbor still draining gives way to the new one.
            self.draining.retain(|(e, _)| e.peer.addr != a);
            let saved = resume
                .iter()
                .find(|r| r.addr == a && r.local == p.local && r.multihop == p.multihop);
            self.start(now, p, saved);
        }
    }

    /// Opens a session's socket and starts it (resumed from `saved` when given and its
    /// port and discriminator are still free); without a socket it is tried again later.
    fn start(&mut self, now: std::time::Instant, p: Peer, saved: Option<&Resume>) {
        let a = p.addr;
        let sock = match sock::sender(&p, saved.map(|r| r.src_port)) {
            Err(e) if saved.is_some() => {
                warn!(neighbor = %a, error = %e, "BFD: the saved source port is taken; the session starts afresh");
                sock::sender(&p, None)
            }
            r => r,
        };
        let (tx, port) = match sock {
            Ok(x) => x,
            Err(e) => {
                warn!(neighbor = %a, error = %e, "BFD: no sending socket; the session stays down (tried again every {RETRY_EVERY:?})");
                self.retry.insert(a, p);
                return;
            }
        };
        let (s, out) = match saved {
            Some(r) if port == r.src_port && self.disc_free(r.saved.local_disc) => {
                info!(neighbor = %a, "BFD session resumed from the previous process");
                Session::resume(p.timing, r.saved, now)
            }
            _ => (Session::new(p.timing, self.new_disc(), now), Vec::new()),
        };
        let (status, rx) = watch::channel(s.status());
        if let Ok(mut m) = self.statuses.lock() {
            m.insert(a, rx);
        }
        let mut e = Entry {
            peer: p,
            s,
            tx,
            port,
            status,
        };
        perform(&mut e, out);
        self.sessions.insert(a, e);
    }

    fn disc_free(&self, d: u32) -> bool {
        d != 0
            && self
                .sessions
                .values()
                .chain(self.draining.iter().map(|(e, _)| e))
                .all(|e| e.s.local_disc() != d)
    }

    fn new_disc(&self) -> u32 {
        loop {
            let d = fastrand::u32(1..);
            if self.disc_free(d) {
                return d;
            }
        }
    }

    /// Every datagram queued on one receive socket.
    fn drain(&mut self, which: Which, buf: &mut [u8]) {
        let sock = match which {
            Which::SingleV4 => Some(&self.rx.single_v4),
            Which::MultiV4 => Some(&self.rx.multi_v4),
            Which::SingleV6 => self.rx.single_v6.as_ref(),
            Which::MultiV6 => self.rx.multi_v6.as_ref(),
        };
        let Some(sock) = sock else { return };
        // At most 64 reads at a time: the timers must not starve behind a flood.
        let mut got = Vec::new();
        for _ in 0..64 {
            let r = sock.try_io(tokio::io::Interest::READABLE, || {
                vipd_sys::udp::recv_with_ttl(sock.as_fd(), buf)
            });
            match r {
                Ok((n, from, ttl)) => {
                    got.push((buf.get(..n).unwrap_or_default().to_vec(), from, ttl))
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // A pending error (an ICMP one) is consumed by the read: go on, at most 64
                // times per wake-up.
                Err(e) => debug!(error = %e, "BFD receive error"),
            }
        }
        for (datagram, from, ttl) in got {
            self.receive(which.multihop(), &datagram, from, ttl);
        }
    }

    /// One datagram: decoded, matched to its session, checked, handed to it.
    fn receive(&mut self, multihop: bool, datagram: &[u8], from: SocketAddr, ttl: Option<u8>) {
        let p = match Packet::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                debug!(from = %from, error = %e, "BFD packet discarded");
                return;
            }
        };
        let ip = from.ip().to_canonical();
        let entry = if p.your_disc != 0 {
            self.sessions
                .values_mut()
                .find(|e| e.s.local_disc() == p.your_disc)
        } else {
            self.sessions.get_mut(&ip)
        };
        let Some(e) = entry else {
            debug!(from = %from, "BFD packet for no session");
            return;
        };
        if e.peer.addr != ip || e.peer.multihop.is_some() != multihop {
            debug!(from = %from, "BFD packet from the wrong address or port for its session");
            return;
        }
        if !ttl.is_some_and(|t| ttl_ok(e.peer.multihop, t)) {
            debug!(from = %from, ?ttl, "BFD packet discarded: TTL (GTSM, RFC 5881)");
            return;
        }
        match e.s.on_packet(Instant::now().into_std(), &p) {
            Ok(out) => perform(e, out),
            Err(why) => debug!(from = %from, error = %why, "BFD packet discarded"),
        }
    }

    /// Slows every Up session down for a planned restart.
    fn slow_down(&mut self, within: Duration, reply: oneshot::Sender<Vec<Resume>>) {
        let now = Instant::now().into_std();
        for e in self.sessions.values_mut() {
            if e.s.state() == State::Up {
                let out = e.s.set_intervals(now, RESTART_TX, RESTART_TX);
                perform(e, out);
            }
        }
        self.restart = Some(Restart {
            deadline: Instant::now() + within,
            reply,
        });
    }

    fn finish_restart(&mut self) {
        let Some(r) = self.restart.take() else { return };
        let saved = self
            .sessions
            .values()
            .filter(|e| e.s.state() == State::Up)
            .map(|e| Resume {
                addr: e.peer.addr,
                local: e.peer.local,
                multihop: e.peer.multihop,
                src_port: e.port,
                saved: e.s.saved(),
            })
            .collect();
        let _ = r.reply.send(saved);
    }
}

/// Sends what the session asks, logs its changes, publishes its status.
fn perform(e: &mut Entry, out: Vec<Action>) {
    for a in out {
        match a {
            Action::Send(p) => {
                if let Err(err) = e.tx.try_send(&p.encode()) {
                    debug!(neighbor = %e.peer.addr, error = %err, "BFD send failed");
                }
            }
            Action::Changed { from, to, diag } => {
                if to == State::Up {
                    info!(neighbor = %e.peer.addr, "BFD session {from} -> {to}");
                } else {
                    warn!(neighbor = %e.peer.addr, "BFD session {from} -> {to}: {diag}");
                }
            }
        }
    }
    let st = e.s.status();
    e.status.send_if_modified(|old| {
        let changed = *old != st;
        *old = st;
        changed
    });
}

#[derive(Clone, Copy)]
enum Which {
    SingleV4,
    MultiV4,
    SingleV6,
    MultiV6,
}

impl Which {
    fn multihop(self) -> bool {
        matches!(self, Which::MultiV4 | Which::MultiV6)
    }
}

async fn readable(s: Option<&UdpSocket>) -> std::io::Result<()> {
    match s {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

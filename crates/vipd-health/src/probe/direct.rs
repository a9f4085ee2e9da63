//! Plain TCP and HTTP probes as state machines on one epoll instance of their own, driven by
//! the scheduler's task: no task, no waker and no tokio registration per probe.
//!
//! Why: at 10,000 checks a second the per-check cost is what matters, and most of it is
//! syscalls. Through tokio a check was `socket, connect, epoll_ctl ADD, getsockopt(SO_ERROR),
//! setsockopt(SO_LINGER), sendto, recvfrom, epoll_ctl DEL, close` plus a spawned task; here an
//! HTTP check is `socket, setsockopt(SO_LINGER), connect, sendto, epoll_ctl ADD, recvfrom,
//! close` (7; a TCP check 5; an HTTP check of a server the handshake has not reached yet 8,
//! the early `sendto` saying EAGAIN):
//! - connect success is read from the event (EPOLLOUT without EPOLLERR); SO_ERROR is asked
//!   only for a failure's reason;
//! - no `epoll_ctl DEL`: closing a socket removes it from the epoll set once no descriptor
//!   refers to it (a child between fork and exec may hold a close-on-exec copy for a moment;
//!   its late event then finds no probe under a token never reused), which is what tokio
//!   cannot assume and HAProxy does;
//! - edge-triggered from the start (IN|OUT|RDHUP): the connect completion, the response and
//!   the server's close each raise one event, no re-arming between them.
//!
//! The epoll descriptor itself is registered with tokio once ([`AsyncFd`]): when it becomes
//! readable, [`Direct::drain`] collects every finished probe. Deadlines stay the
//! scheduler's: it calls [`Direct::cancel`] (which closes the socket) and reports the stage
//! the probe reached. Used for `tcp` checks and `http` checks without TLS and without a body
//! regex (the others keep the tokio path, [`super::Probe::run_untimed`]); both paths give
//! the same outcome and reason for the same server (`tests/probes.rs` runs each case both
//! ways).

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;
use vipd_sys::epoll::{self, Epoll, Event};

use super::{Kind, Probe, SharedProbe, Stage, conn};
use crate::outcome::{Outcome, ProbeError};

/// Events taken per `epoll_wait`.
const BATCH: usize = 256;
/// Connect completion, response, close: one registration for the probe's life.
const EVENTS: u32 = epoll::IN | epoll::OUT | epoll::RDHUP | epoll::ET;

/// What a finished probe reports to the scheduler: its token and outcome.
pub type Done = (u64, Outcome);

/// One probe in flight.
struct Conn {
    sock: Socket,
    probe: SharedProbe,
    stage: Arc<Stage>,
    started: Instant,
    /// Bytes of the request already sent (HTTP).
    sent: usize,
    /// The response so far (HTTP).
    buf: Vec<u8>,
}

/// The epoll instance and its probes.
pub struct Direct {
    ep: AsyncFd<Epoll>,
    conns: HashMap<u64, Conn>,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("in_flight", &self.conns.len())
            .finish()
    }
}

impl Direct {
    /// A new epoll instance, registered with the current tokio runtime.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            ep: Epoll::new()?.register()?,
            conns: HashMap::new(),
        })
    }

    /// Whether `p` runs here rather than on the tokio path.
    pub fn handles(p: &Probe) -> bool {
        match &p.kind {
            Kind::Tcp => true,
            Kind::Http(h) => h.plain_status_only(),
            _ => false,
        }
    }

    /// Probes in flight.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Starts `p` under `token`. A probe that ends at once (the socket refused, the connect
    /// refused or done synchronously) returns its outcome instead.
    pub fn start(&mut self, token: u64, p: SharedProbe, stage: Arc<Stage>) -> Option<Outcome> {
        let started = Instant::now();
        stage.set(Stage::CONNECT);
        match self.open(&p) {
            Err(e) => Some(finish(&p, e.outcome(""), started)),
            Ok((sock, connected)) => {
                let mut c = Conn {
                    sock,
                    probe: p,
                    stage,
                    started,
                    sent: 0,
                    buf: Vec::new(),
                };
                if connected {
                    // Loopback may connect at once: carry on as after the event.
                    if let Some(o) = on_connected(&mut c, true) {
                        return Some(o);
                    }
                } else if let Some(o) = send_early(&mut c) {
                    return Some(o);
                }
                // Request out already: only the response (and errors) can matter.
                let events = if c.sent > 0 && c.sent == request(&c).len() {
                    epoll::IN | epoll::RDHUP | epoll::ET
                } else {
                    EVENTS
                };
                if let Err(e) = self.ep.get_ref().add(c.sock.as_fd(), events, token) {
                    // This host's limit (max_user_watches, memory), never the server's.
                    let reason = format!("not run, epoll_ctl: {}", conn::words(&e));
                    return Some(finish(
                        &c.probe,
                        Outcome::not_run(reason, Duration::ZERO),
                        started,
                    ));
                }
                self.conns.insert(token, c);
                None
            }
        }
    }

    /// Drops the probe `token` (its deadline passed): the socket is closed, which also takes
    /// it out of the epoll set.
    pub fn cancel(&mut self, token: u64) {
        self.conns.remove(&token);
    }

    /// Waits until some probe has news.
    pub async fn ready(&self) {
        if let Ok(mut g) = self.ep.readable().await {
            // Cleared before draining: an event arriving after the drain makes the epoll
            // descriptor readable again and wakes this anew.
            g.clear_ready();
        }
    }

    /// Handles every pending event; the finished probes are appended to `done`.
    pub fn drain(&mut self, done: &mut Vec<Done>) {
        let mut events = [Event::default(); BATCH];
        loop {
            // An error (EINTR) leaves the rest for the next wake-up.
            let n = self.ep.get_ref().ready(&mut events).unwrap_or(0);
            for ev in &events[..n] {
                let Some(c) = self.conns.get_mut(&ev.token) else {
                    continue; // cancelled meanwhile
                };
                if let Some(o) = on_event(c, ev.events) {
                    self.conns.remove(&ev.token);
                    done.push((ev.token, o));
                }
            }
            if n < BATCH {
                return;
            }
        }
    }

    /// A socket for `p`, connecting; `true` when already connected.
    fn open(&self, p: &Probe) -> Result<(Socket, bool), ProbeError> {
        let domain = if p.addr.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let sock = Socket::new(domain, Type::STREAM.nonblocking().cloexec(), None)
            .map_err(|e| ProbeError::local("socket", &e))?;
        // RST on close: no TIME_WAIT per check (see `conn::reset_on_close`).
        sock.set_linger(Some(Duration::ZERO))
            .map_err(|e| ProbeError::local("SO_LINGER", &e))?;
        if let Some(mark) = p.mark {
            sock.set_mark(mark)
                .map_err(|e| ProbeError::local("SO_MARK", &e))?;
        }
        if let Some(src) = conn::source_for(p)? {
            sock.bind(&std::net::SocketAddr::new(src, 0).into())
                .map_err(|e| format!("bind {src}: {}", conn::words(&e)))?;
        }
        match sock.connect(&p.addr.into()) {
            Ok(()) => Ok((sock, true)),
            // EINPROGRESS: the event says how it ends.
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((sock, false)),
            Err(e) => Err(ProbeError::Failed(format!("connect: {}", conn::words(&e)))),
        }
    }
}

/// The outcome with its latency and the tunnel-path prefix, as the tokio path gives it.
fn finish(p: &Probe, mut o: Outcome, started: Instant) -> Outcome {
    o.latency = started.elapsed();
    p.path_said(o)
}

/// The probe failed for `reason`.
fn failed(c: &Conn, reason: String) -> Option<Outcome> {
    Some(finish(
        &c.probe,
        Outcome::fail(reason, Duration::ZERO),
        c.started,
    ))
}

fn on_event(c: &mut Conn, flags: u32) -> Option<Outcome> {
    if c.stage.get() == Stage::CONNECT {
        if flags & epoll::ERR != 0 || (flags & epoll::HUP != 0 && flags & epoll::OUT == 0) {
            let reason = match c.sock.take_error() {
                Ok(Some(e)) => conn::words(&e),
                Ok(None) => "connection closed".to_string(),
                Err(e) => conn::words(&e),
            };
            return failed(c, format!("connect: {reason}"));
        }
        if flags & epoll::OUT == 0 {
            return None;
        }
        return on_connected(c, flags & (epoll::IN | epoll::RDHUP) != 0);
    }
    if c.sent < request(c).len() && flags & epoll::OUT != 0 {
        if let Some(o) = send_rest(c) {
            return Some(o);
        }
    }
    if flags & (epoll::IN | epoll::RDHUP | epoll::ERR | epoll::HUP) == 0 {
        return None; // writable only: nothing to read yet
    }
    read_response(c)
}

fn request(c: &Conn) -> &[u8] {
    match &c.probe.kind {
        Kind::Http(h) => h.request_bytes(),
        _ => &[],
    }
}

/// Connected: a TCP check passes; an HTTP check sends its request (and reads if the event
/// said there is something to read).
fn on_connected(c: &mut Conn, readable: bool) -> Option<Outcome> {
    if matches!(c.probe.kind, Kind::Tcp) {
        return Some(finish(
            &c.probe,
            Outcome::pass("TCP connect", Duration::ZERO),
            c.started,
        ));
    }
    c.stage.set(Stage::RESPONSE);
    if let Some(o) = send_rest(c) {
        return Some(o);
    }
    if readable { read_response(c) } else { None }
}

/// An HTTP check's request sent right after `connect`, before its completion is known (as
/// HAProxy does): when the handshake is already done (a near server: loopback, the same
/// host) the request is queued before the server accepts, which then reads it in the same
/// wake-up, and the connect's own event round is saved. Not connected yet (EAGAIN), the
/// request waits for the event as usual; refused already, it is the connect's failure.
fn send_early(c: &mut Conn) -> Option<Outcome> {
    if !matches!(c.probe.kind, Kind::Http(_)) {
        return None;
    }
    match c.sock.send_with_flags(request(c), libc::MSG_NOSIGNAL) {
        Ok(n) => {
            c.sent = n;
            c.stage.set(Stage::RESPONSE);
            None
        }
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock
                || e.raw_os_error() == Some(libc::ENOTCONN) =>
        {
            None
        }
        Err(e) => failed(c, format!("connect: {}", conn::words(&e))),
    }
}

fn send_rest(c: &mut Conn) -> Option<Outcome> {
    while c.sent < request(c).len() {
        let r = {
            let req = request(c);
            // No SIGPIPE for a peer gone: the error is the reason.
            c.sock.send_with_flags(&req[c.sent..], libc::MSG_NOSIGNAL)
        };
        match r {
            Ok(n) => c.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return failed(c, format!("write: {}", conn::words(&e))),
        }
    }
    None
}

/// Reads what is there (edge-triggered: until the socket would block) and judges it.
fn read_response(c: &mut Conn) -> Option<Outcome> {
    let probe = c.probe.clone();
    let Kind::Http(h) = &probe.kind else {
        return None;
    };
    loop {
        if let Some(r) = h.judge_status_line(&c.buf) {
            let o = r.unwrap_or_else(|reason| Outcome::fail(reason, Duration::ZERO));
            return Some(finish(&c.probe, o, c.started));
        }
        let mut chunk = [0u8; 4096];
        match (&c.sock).read(&mut chunk) {
            Ok(0) => return failed(c, super::http::closed_in_head(&c.buf)),
            Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return failed(c, format!("read: {}", conn::words(&e))),
        }
    }
}

/// Runs one probe on a driver of its own to the end or `p.timeout` (for tests and one-off
/// checks: the scheduler drives many on one driver instead).
pub async fn run_once(p: SharedProbe) -> io::Result<Outcome> {
    let mut d = Direct::new()?;
    let stage = Arc::new(Stage::default());
    if let Some(o) = d.start(1, p.clone(), stage.clone()) {
        return Ok(o);
    }
    let deadline = Instant::now() + p.timeout;
    let connect_deadline = Instant::now() + p.connect_timeout;
    let mut done = Vec::new();
    loop {
        let limit = if stage.get() == Stage::CONNECT {
            connect_deadline.min(deadline)
        } else {
            deadline
        };
        match tokio::time::timeout_at(limit, d.ready()).await {
            Ok(()) => {
                d.drain(&mut done);
                if let Some((_, o)) = done.pop() {
                    return Ok(o);
                }
            }
            Err(_) => {
                let is_connect = limit < deadline;
                if is_connect && stage.get() != Stage::CONNECT {
                    continue;
                }
                d.cancel(1);
                return Ok(p.timed_out(stage.get(), is_connect));
            }
        }
    }
}

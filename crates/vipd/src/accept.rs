//! Accept loops that cannot be turned against the daemon (the control socket, `/metrics`,
//! the backend's agent listener), in the mini-redis mould:
//!
//! - **a cap on connections**: each listener keeps at most `max` connections, so a flood of
//!   idle clients cannot take the descriptors the health probes need (an EMFILE there would
//!   mark healthy servers down and withdraw VIPs);
//! - **eviction, not queueing, at the cap** ([`Slots::admit`]): the connection that has been
//!   silent longest is closed to make room, and the loop yields so that it closes before the
//!   next accept. A scrape sends its request at once and is never the one evicted; a
//!   thousand idle connections cannot make it wait behind them (not even in the kernel's
//!   accept queue, which the loop keeps drained);
//! - **backoff on accept errors**: EMFILE and friends sleep 10 ms, doubling up to 1 s,
//!   instead of spinning on a listener that stays readable;
//! - **shutdown**: the loop ends when told to, and in-flight connections end by their own
//!   deadlines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tracing::warn;

/// The longest accept backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// One connection's place under the cap.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    /// Milliseconds since the listener's epoch when it last received a byte.
    last_read: AtomicU64,
    /// Chosen to make room (told once).
    evicting: std::sync::atomic::AtomicBool,
    /// Told when the connection must close (evicted).
    evict: Notify,
    slots: Arc<Slots>,
}

impl Slot {
    /// Notes that bytes arrived.
    pub fn touch(&self) {
        self.last_read.store(self.slots.now_ms(), Ordering::Relaxed);
    }

    /// Resolves when the connection was chosen to make room.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut v) = self.slots.live.lock() {
            v.retain(|(id, _)| *id != self.id);
        }
    }
}

/// The connections of one listener.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    epoch: Instant,
    next: AtomicU64,
    live: Mutex<Vec<(u64, std::sync::Weak<Slot>)>>,
    evictions: AtomicU64,
}

impl Slots {
    /// At most `max` connections.
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            live: Mutex::new(Vec::new()),
            evictions: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A slot for a new connection. At the cap, the connection silent the longest is told to
    /// close (it keeps its slot until it has). Never waits: a connection left in the
    /// kernel's accept queue is one vipd cannot evict, and a scrape queued behind a thousand
    /// of them would wait for SYN retransmissions. The accept loop yields after each
    /// eviction instead, so that the evicted connection closes before the next accept.
    pub fn admit(self: &Arc<Self>) -> Arc<Slot> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            id,
            last_read: AtomicU64::new(self.now_ms()),
            evicting: std::sync::atomic::AtomicBool::new(false),
            evict: Notify::new(),
            slots: self.clone(),
        });
        let Ok(mut v) = self.live.lock() else {
            return slot;
        };
        v.retain(|(_, w)| w.strong_count() > 0);
        let live: Vec<Arc<Slot>> = v.iter().filter_map(|(_, w)| w.upgrade()).collect();
        let staying = live
            .iter()
            .filter(|s| !s.evicting.load(Ordering::Relaxed))
            .count();
        if staying >= self.max {
            if let Some(victim) = live
                .iter()
                .filter(|s| !s.evicting.load(Ordering::Relaxed))
                .min_by_key(|s| s.last_read.load(Ordering::Relaxed))
            {
                victim.evicting.store(true, Ordering::Relaxed);
                victim.evict.notify_one();
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        v.push((id, Arc::downgrade(&slot)));
        slot
    }

    /// Connections now.
    #[cfg(test)]
    pub fn live(&self) -> usize {
        self.live
            .lock()
            .map(|v| v.iter().filter(|(_, w)| w.strong_count() > 0).count())
            .unwrap_or(0)
    }

    /// Connections closed to make room, since start.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

/// Whether an accept error is about the one connection (retry at once) rather than the
/// process or the system (back off).
fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::Interrupted
    )
}

/// A listener the loop can take connections from.
pub trait Accept: Sized {
    /// A connection.
    type Io;
    /// The listener as a plain socket, to hand to another runtime.
    type Std: Send + 'static;
    /// The next connection.
    fn accept(&self) -> impl std::future::Future<Output = std::io::Result<Self::Io>> + Send;
    /// Registers the socket with the runtime this is called on.
    fn from_std(s: Self::Std) -> std::io::Result<Self>;
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    type Std = std::net::TcpListener;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        tokio::net::TcpListener::accept(self).await.map(|(s, _)| s)
    }
    fn from_std(s: Self::Std) -> std::io::Result<Self> {
        tokio::net::TcpListener::from_std(s)
    }
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    type Std = std::os::unix::net::UnixListener;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
    }
    fn from_std(s: Self::Std) -> std::io::Result<Self> {
        tokio::net::UnixListener::from_std(s)
    }
}

/// Accepts until `shutdown` turns true, handing each connection and its slot to `serve`
/// (which should end when the slot is evicted). `name` is for the logs. The listener comes
/// as a plain (non-blocking) socket and is registered with the runtime that polls this: the
/// edge tasks run on a runtime of their own, so that a busy director never delays a
/// `/healthcheck`.
pub async fn run<L, F, Fut>(
    name: &'static str,
    l: L::Std,
    slots: Arc<Slots>,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) where
    L: Accept,
    F: Fn(L::Io, Arc<Slot>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = match L::from_std(l) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listener = name, error = %e, "cannot serve");
            return;
        }
    };
    let mut backoff = Duration::from_millis(10);
    let mut warned: Option<(Instant, u64)> = None;
    loop {
        let r = tokio::select! {
            r = l.accept() => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match r {
            Ok(io) => {
                backoff = Duration::from_millis(10);
                let before = slots.evictions();
                let slot = slots.admit();
                let ev = slots.evictions();
                if ev > warned.map_or(0, |(_, n)| n)
                    && warned.is_none_or(|(at, _)| at.elapsed() > Duration::from_secs(10))
                {
                    warn!(
                        listener = name,
                        cap = slots.max,
                        evicted = ev,
                        "connection cap reached: the longest silent connections are closed"
                    );
                    warned = Some((Instant::now(), ev));
                }
                tokio::spawn(serve(io, slot));
                if ev > before {
                    // Let the evicted connection close (and give its descriptor back) before
                    // the next accept: a burst cannot pile descriptors up.
                    tokio::task::yield_now().await;
                }
            }
            Err(e) if transient(&e) => {}
            Err(e) => {
                warn!(listener = name, error = %e, "accept failed; retrying in {backoff:?}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_longest_silent_connection_is_evicted() {
        let slots = Slots::new(2);
        let a = slots.admit();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let b = slots.admit();
        tokio::time::sleep(Duration::from_millis(5)).await;
        a.touch(); // a spoke last: b is the silent one
        assert_eq!(slots.live(), 2);
        let c = slots.admit();
        tokio::time::timeout(Duration::from_secs(1), b.evicted())
            .await
            .expect("b evicted");
        assert_eq!(slots.evictions(), 1);
        drop(b);
        assert_eq!(slots.live(), 2);
        drop((a, c));
        assert_eq!(slots.live(), 0);
    }

    #[tokio::test]
    async fn each_admission_at_the_cap_evicts_another_connection() {
        let slots = Slots::new(2);
        let a = slots.admit();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let b = slots.admit();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let _c = slots.admit(); // evicts a
        let _d = slots.admit(); // a is already going: evicts b, not a again
        assert_eq!(slots.evictions(), 2);
        tokio::time::timeout(Duration::from_secs(1), a.evicted())
            .await
            .expect("a evicted");
        tokio::time::timeout(Duration::from_secs(1), b.evicted())
            .await
            .expect("b evicted");
    }
}

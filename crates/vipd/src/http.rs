//! Serves an axum router on a TCP listener under [`crate::accept`]'s limits, with what
//! `axum::serve` lacks: a deadline on request headers (a client that opens a connection
//! and sends nothing, or one byte a second, is closed after [`HEADER_TIMEOUT`]) and a cap on
//! connections with eviction of the longest silent one ([`MAX_CONNS`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::accept::{Slot, Slots};

/// A request's headers must arrive within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections kept at most. Far below the descriptors kept aside for everything but probes
/// (`FD_RESERVE` in tasks.rs), so no number of clients can starve the health checks.
pub const MAX_CONNS: usize = 128;

/// The listen backlog: a burst of connections (a thousand opened at once) must wait in
/// the kernel's accept queue, not lose its SYNs. A dropped SYN costs a scrape a one-second
/// retransmission; the queue is drained as fast as connections arrive (evicting at the cap).
const BACKLOG: i32 = 4096;

/// A listening socket on `addr` (SO_REUSEADDR, a deep backlog), ready for [`serve`].
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// Serves `app` on `l` (a non-blocking listener) until `shutdown`.
pub async fn serve(
    l: std::net::TcpListener,
    app: Router,
    slots: Arc<Slots>,
    shutdown: watch::Receiver<bool>,
) {
    crate::accept::run::<TcpListener, _, _>("http", l, slots, shutdown, move |io, slot| {
        serve_conn(io, slot, app.clone())
    })
    .await;
}

async fn serve_conn(io: TcpStream, slot: Arc<Slot>, app: Router) {
    let io = TokioIo::new(Touching {
        io,
        slot: slot.clone(),
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(io, TowerToHyperService::new(app));
    tokio::select! {
        _ = conn => {}
        () = slot.evicted() => {}
    }
}

/// A connection that tells its slot when bytes arrive (what eviction goes by).
struct Touching {
    io: TcpStream,
    slot: Arc<Slot>,
}

impl AsyncRead for Touching {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.slot.touch();
        }
        r
    }
}

impl AsyncWrite for Touching {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

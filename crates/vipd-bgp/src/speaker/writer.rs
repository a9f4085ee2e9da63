//! The write side of one BGP connection: a task of its own that owns the socket's write
//! half, fed through a bounded queue, with a deadline on every message.
//!
//! Why: a router that stops reading (zero window) used to block `write_all` inside the peer
//! task, and with it the hold timer, the keepalives, stop requests and so reloads and
//! shutdown. Now the peer task only queues; it never waits for the socket. Memory stays
//! bounded: the queue holds [`QUEUE`] messages, and the peer keeps at most one round of
//! route updates beside it ([`Writer::backlog`]) and computes the next round only once that
//! one is queued. A message not on the wire within the deadline it was queued with (the hold
//! time) ends the session: the peer is not reading, and its routes from us are stale anyway.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::PeerStatus;

/// Messages in flight between the peer task and the writer.
pub(super) const QUEUE: usize = 64;

/// How long a closing connection may take to write what is queued (the NOTIFICATION last).
pub(super) const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// Why the writer stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    /// A message waited longer than its deadline.
    #[error("a message waited {0:?} without being written: the peer is not reading")]
    Stalled(Duration),
    /// The socket refused the write.
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What the status says once a round of updates is on the wire.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mark {
    /// Prefixes announced to the peer after this round.
    pub prefixes: usize,
    /// UPDATE messages in this round.
    pub updates: u64,
}

/// One encoded message, the instant by which it must be written, and, on the last message
/// of a round of updates, what to report once it is.
#[derive(Debug)]
pub(super) struct Frame {
    bytes: Vec<u8>,
    by: Instant,
    stall: Duration,
    mark: Option<Mark>,
}

/// The peer task's side of one connection's writer.
#[derive(Debug)]
pub(super) struct Writer {
    tx: mpsc::Sender<Frame>,
    /// Messages not yet in the queue (it was full), in order.
    backlog: VecDeque<Frame>,
    task: Option<JoinHandle<Result<(), WriteError>>>,
    /// Which connection's writer may still report marks: bumped at close, so a writer
    /// flushing a dead connection never overwrites the status of the next one.
    generation: Arc<AtomicU64>,
    /// How long a message may wait (the hold time).
    pub stall: Duration,
}

impl Writer {
    /// Starts the writer task for `w`; marks are reported on `status`.
    pub fn start(
        w: OwnedWriteHalf,
        stall: Duration,
        status: Arc<watch::Sender<PeerStatus>>,
        generation: Arc<AtomicU64>,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mine = generation.load(Ordering::Relaxed);
        let task = tokio::spawn(write_loop(w, rx, status, generation.clone(), mine));
        Writer {
            tx,
            backlog: VecDeque::new(),
            task: Some(task),
            generation,
            stall,
        }
    }

    /// Queues a message behind the others.
    pub fn push(&mut self, bytes: Vec<u8>, mark: Option<Mark>) {
        let f = self.frame(bytes, mark);
        if self.backlog.is_empty() {
            match self.tx.try_send(f) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(f) | mpsc::error::TrySendError::Closed(f)) => {
                    self.backlog.push_back(f)
                }
            }
        } else {
            self.backlog.push_back(f);
        }
    }

    /// Queues a message ahead of the backlog (KEEPALIVE, NOTIFICATION): it cannot be late
    /// because a round of updates is waiting for room in the queue.
    pub fn push_urgent(&mut self, bytes: Vec<u8>) {
        let f = self.frame(bytes, None);
        match self.tx.try_send(f) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(f) | mpsc::error::TrySendError::Closed(f)) => {
                self.backlog.push_front(f)
            }
        }
    }

    fn frame(&self, bytes: Vec<u8>, mark: Option<Mark>) -> Frame {
        Frame {
            bytes,
            by: Instant::now() + self.stall,
            stall: self.stall,
            mark,
        }
    }

    /// Whether messages wait for room in the queue.
    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Waits until one waiting message moved into the queue (`None`), or the writer task
    /// ended (why). Cancel safe, for a select! branch: nothing moves unless the queue had
    /// room, and the task's result is kept until read.
    pub async fn wait(&mut self) -> Option<WriteError> {
        if !self.backlog.is_empty() {
            if let Ok(permit) = self.tx.reserve().await {
                if let Some(f) = self.backlog.pop_front() {
                    permit.send(f);
                }
                return None;
            }
            // The queue is closed: the task ended; say why.
        }
        let Some(task) = self.task.as_mut() else {
            return std::future::pending().await;
        };
        let r = task.await;
        self.task = None;
        Some(match r {
            Ok(Err(e)) => e,
            Ok(Ok(())) => WriteError::Io(std::io::Error::other("writer stopped")),
            Err(e) => WriteError::Io(std::io::Error::other(format!("writer task: {e}"))),
        })
    }

    /// Ends the connection's write side: what fits in the queue is written (at most
    /// [`CLOSE_FLUSH`]), then the socket is shut down; what does not fit is dropped.
    pub fn close(mut self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        while let Some(f) = self.backlog.pop_front() {
            if self.tx.try_send(f).is_err() {
                break;
            }
        }
        let Some(mut task) = self.task.take() else {
            return;
        };
        drop(self);
        // Bounded: a peer that does not read cannot keep the socket (or this task) alive.
        tokio::spawn(async move {
            if tokio::time::timeout(CLOSE_FLUSH, &mut task).await.is_err() {
                task.abort();
            }
        });
    }
}

impl Drop for Writer {
    /// Dropped without [`Writer::close`] (graceful restart, the peer task aborted): the
    /// connection goes without another byte.
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn write_loop(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Frame>,
    status: Arc<watch::Sender<PeerStatus>>,
    generation: Arc<AtomicU64>,
    mine: u64,
) -> Result<(), WriteError> {
    while let Some(f) = rx.recv().await {
        match tokio::time::timeout_at(f.by, w.write_all(&f.bytes)).await {
            Ok(r) => r?,
            Err(_) => return Err(WriteError::Stalled(f.stall)),
        }
        if let Some(m) = f.mark {
            if generation.load(Ordering::Relaxed) == mine {
                status.send_modify(|s| {
                    s.prefixes_sent = m.prefixes;
                    s.updates_sent += m.updates;
                });
            }
        }
    }
    w.shutdown().await?;
    Ok(())
}

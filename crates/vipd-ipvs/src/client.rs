//! Async client of the IPVS family.
//!
//! One [`IpvsClient`] owns one generic netlink socket; the connection task that drives it is
//! spawned on the current tokio runtime when the client is created, so the socket lives in
//! the network namespace of the thread that called [`IpvsClient::connect`].

use std::time::Duration;

use futures::StreamExt;
use genetlink::{GenetlinkError, GenetlinkHandle};
use netlink_packet_core::{
    Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_generic::GenlMessage;
use netlink_sys::{
    AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_GENERIC,
};

use crate::attr::Nested;
use crate::message::{IpvsAttr, IpvsCmd, IpvsMessage};
use crate::model::{Dest, Service, ServiceKey, family_of};
use crate::op::Op;

/// What went wrong talking to IPVS. Every variant names the operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpvsError {
    /// The kernel has no IPVS family in this namespace.
    #[error(
        "IPVS is not available in this kernel or network namespace ({0}); load it with `modprobe ip_vs`"
    )]
    NotAvailable(std::io::Error),
    /// The netlink socket could not be opened.
    #[error("cannot open a generic netlink socket: {0}")]
    Socket(std::io::Error),
    /// The kernel answered the operation with an error.
    #[error("IPVS {op} failed: {source}")]
    Kernel {
        /// The operation: `GET_INFO`, or a write as its `ipvsadm` equivalent.
        op: String,
        /// errno from the kernel.
        source: std::io::Error,
    },
    /// The request could not be sent or the reply could not be read.
    #[error("IPVS {op}: {detail}")]
    Transport {
        /// The operation.
        op: String,
        /// What failed.
        detail: String,
    },
    /// The reply lacked something the operation needs.
    #[error("IPVS {op}: unexpected reply: {detail}")]
    Protocol {
        /// The operation.
        op: String,
        /// What was missing or wrong.
        detail: String,
    },
}

/// IPVS version as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Patch.
    pub patch: u8,
}

impl Version {
    /// Decodes `major << 16 | minor << 8 | patch`.
    pub fn from_u32(v: u32) -> Self {
        let [_, major, minor, patch] = v.to_be_bytes();
        Self {
            major,
            minor,
            patch,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Reply of `GET_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// IPVS version.
    pub version: Version,
    /// Buckets of the connection hash table (`ip_vs.conn_tab_bits`).
    pub conn_tab_size: u32,
}

/// Reply of `GET_CONFIG`: connection timeouts in seconds (`ipvsadm --set`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Established TCP.
    pub tcp: u32,
    /// TCP after FIN.
    pub tcp_fin: u32,
    /// UDP.
    pub udp: u32,
}

/// A connection to the kernel's IPVS family.
#[derive(Debug)]
pub struct IpvsClient {
    handle: GenetlinkHandle,
    /// The connection's driver: when it ends (a send error ends it), pending replies end
    /// early and look complete, so every dump checks it is still running.
    conn: tokio::task::JoinHandle<()>,
    batch: Batcher,
}

/// A second, raw socket for batched writes (see [`IpvsClient::apply_batched`]).
struct Batcher {
    sock: TokioSocket,
    family: u16,
    seq: u32,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("family", &self.family)
            .field("seq", &self.seq)
            .finish()
    }
}

/// At most this many requests share one `sendmsg`...
const BATCH_MSGS: usize = 128;
/// ...and at most this many bytes (the kernel refuses a datagram above the send buffer).
const BATCH_BYTES: usize = 64 * 1024;
/// How long to wait for a batch's acknowledgement before giving it up as unknown.
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

impl IpvsClient {
    /// Opens a generic netlink socket, spawns its driver on the current runtime and resolves
    /// the IPVS family, so that a missing `ip_vs` is reported here and not at first use.
    pub async fn connect() -> Result<Self, IpvsError> {
        let (conn, handle, _) = genetlink::new_connection().map_err(IpvsError::Socket)?;
        let conn = tokio::spawn(conn);
        let resolved =
            tokio::time::timeout(REQUEST_TIMEOUT, handle.resolve_family::<IpvsMessage>())
                .await
                .map_err(|_| IpvsError::Transport {
                    op: "resolve family".into(),
                    detail: format!("no answer within {REQUEST_TIMEOUT:?}"),
                })?;
        match resolved {
            Ok(f) => {
                let mut sock = TokioSocket::new(NETLINK_GENERIC).map_err(IpvsError::Socket)?;
                let s = sock.socket_mut();
                s.bind_auto().map_err(IpvsError::Socket)?;
                s.connect(&SocketAddr::new(0, 0))
                    .map_err(IpvsError::Socket)?;
                // Error reports carry only the failed request's header, so a whole batch of
                // them fits the receive buffer.
                s.set_cap_ack(true).map_err(IpvsError::Socket)?;
                Ok(Self {
                    handle,
                    conn,
                    batch: Batcher {
                        sock,
                        family: f.id,
                        seq: 1,
                    },
                })
            }
            Err(GenetlinkError::NetlinkError(e)) if e.raw_os_error() == Some(2) => {
                Err(IpvsError::NotAvailable(e))
            }
            Err(e) => Err(IpvsError::Transport {
                op: "resolve family".into(),
                detail: e.to_string(),
            }),
        }
    }

    /// `GET_INFO`: version and connection table size (first line of `ipvsadm -Ln`).
    pub async fn info(&mut self) -> Result<Info, IpvsError> {
        const OP: &str = "GET_INFO";
        let reply = self
            .request_one(OP, IpvsMessage::new(IpvsCmd::GetInfo))
            .await?;
        let mut version = None;
        let mut size = None;
        for a in reply.attrs {
            match a {
                IpvsAttr::InfoVersion(v) => version = Some(Version::from_u32(v)),
                IpvsAttr::InfoConnTabSize(s) => size = Some(s),
                _ => {}
            }
        }
        match (version, size) {
            (Some(version), Some(conn_tab_size)) => Ok(Info {
                version,
                conn_tab_size,
            }),
            _ => Err(IpvsError::Protocol {
                op: OP.into(),
                detail: "version or table size missing".into(),
            }),
        }
    }

    /// `GET_CONFIG`: connection timeouts (`ipvsadm -L --timeout`).
    pub async fn timeouts(&mut self) -> Result<Timeouts, IpvsError> {
        const OP: &str = "GET_CONFIG";
        let reply = self
            .request_one(OP, IpvsMessage::new(IpvsCmd::GetConfig))
            .await?;
        let (mut tcp, mut tcp_fin, mut udp) = (None, None, None);
        for a in reply.attrs {
            match a {
                IpvsAttr::TimeoutTcp(v) => tcp = Some(v),
                IpvsAttr::TimeoutTcpFin(v) => tcp_fin = Some(v),
                IpvsAttr::TimeoutUdp(v) => udp = Some(v),
                _ => {}
            }
        }
        match (tcp, tcp_fin, udp) {
            (Some(tcp), Some(tcp_fin), Some(udp)) => Ok(Timeouts { tcp, tcp_fin, udp }),
            _ => Err(IpvsError::Protocol {
                op: OP.into(),
                detail: "a timeout attribute is missing".into(),
            }),
        }
    }

    /// `SET_CONFIG`: connection timeouts in seconds (`ipvsadm --set TCP TCPFIN UDP`); 0
    /// leaves a timeout unchanged, as in ipvsadm.
    pub async fn set_timeouts(&mut self, t: Timeouts) -> Result<(), IpvsError> {
        let op = format!("ipvsadm --set {} {} {}", t.tcp, t.tcp_fin, t.udp);
        let msg = IpvsMessage {
            cmd: IpvsCmd::SetConfig,
            attrs: vec![
                IpvsAttr::TimeoutTcp(t.tcp),
                IpvsAttr::TimeoutTcpFin(t.tcp_fin),
                IpvsAttr::TimeoutUdp(t.udp),
            ],
        };
        request(&self.handle, &op, msg, NLM_F_REQUEST | NLM_F_ACK)
            .await
            .map(|_| ())
    }

    /// Sends a request expecting exactly one reply message.
    async fn request_one(
        &mut self,
        op: &'static str,
        msg: IpvsMessage,
    ) -> Result<IpvsMessage, IpvsError> {
        let mut replies = request(&self.handle, op, msg, NLM_F_REQUEST).await?;
        replies.pop().ok_or(IpvsError::Protocol {
            op: op.into(),
            detail: "no reply message".into(),
        })
    }

    /// A dump whose connection died meanwhile may be cut short: refuse it.
    fn alive(&self, op: &str) -> Result<(), IpvsError> {
        if self.conn.is_finished() {
            return Err(IpvsError::Transport {
                op: op.into(),
                detail: "the netlink connection failed; the reply may be incomplete".into(),
            });
        }
        Ok(())
    }

    /// Every service, in the kernel's hash order (`ipvsadm -Ln` without destinations).
    pub async fn services(&mut self) -> Result<Vec<Service>, IpvsError> {
        const OP: &str = "GET_SERVICE dump";
        let replies = request(
            &self.handle,
            OP,
            IpvsMessage::new(IpvsCmd::GetService),
            NLM_F_REQUEST | NLM_F_DUMP,
        )
        .await?;
        self.alive(OP)?;
        replies
            .iter()
            .filter_map(|m| {
                m.attrs.iter().find_map(|a| match a {
                    IpvsAttr::Service(n) => Some(n),
                    _ => None,
                })
            })
            .map(|n| {
                Service::from_attrs(&n.attrs).map_err(|e| IpvsError::Protocol {
                    op: OP.into(),
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    /// The destinations of a service IN KERNEL LIST ORDER (head first, the order `mh` walks
    /// to build its table; `ipvsadm -Ln --nosort`).
    pub async fn dests(&mut self, key: &ServiceKey) -> Result<Vec<Dest>, IpvsError> {
        let op = format!("GET_DEST dump of {key}");
        let msg = IpvsMessage {
            cmd: IpvsCmd::GetDest,
            attrs: vec![IpvsAttr::Service(Nested::new(key.attrs()))],
        };
        let replies = request(&self.handle, &op, msg, NLM_F_REQUEST | NLM_F_DUMP).await?;
        self.alive(&op)?;
        let family = family_of(key);
        replies
            .iter()
            .filter_map(|m| {
                m.attrs.iter().find_map(|a| match a {
                    IpvsAttr::Dest(n) => Some(n),
                    _ => None,
                })
            })
            .map(|n| {
                Dest::from_attrs(&n.attrs, family).map_err(|e| IpvsError::Protocol {
                    op: op.clone(),
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    /// Every service with its destinations in list order.
    pub async fn dump(&mut self) -> Result<Vec<(Service, Vec<Dest>)>, IpvsError> {
        let services = self.services().await?;
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            let d = self.dests(&s.key).await?;
            out.push((s, d));
        }
        Ok(out)
    }

    /// Executes one write and waits for the kernel's acknowledgement.
    pub async fn apply(&mut self, op: &Op) -> Result<(), IpvsError> {
        write(&self.handle, op).await
    }

    /// Executes writes with up to `window` requests in flight on the socket, and returns one
    /// result per operation, in order. Operations are sent in order and the kernel handles
    /// one socket's requests in order, so a later operation sees the earlier ones' effects;
    /// `window = 1` waits for each acknowledgement before sending the next.
    pub async fn apply_all(&mut self, ops: &[Op], window: usize) -> Vec<Result<(), IpvsError>> {
        // Each future owns its request, so that many can be in flight on one socket.
        let pending: Vec<_> = ops
            .iter()
            .map(|op| {
                let (handle, name, msg) = (self.handle.clone(), op.to_string(), op.message());
                async move {
                    request(&handle, &name, msg, NLM_F_REQUEST | NLM_F_ACK)
                        .await
                        .map(|_| ())
                }
            })
            .collect();
        futures::stream::iter(pending)
            .buffered(window.max(1))
            .collect()
            .await
    }
}

impl IpvsClient {
    /// Executes writes in batches: up to 128 requests (64 KiB) per `sendmsg`, without asking
    /// the kernel to acknowledge each one. Netlink reports failures anyway (an error message
    /// carrying the request's sequence number); only the last request of each batch asks
    /// for an acknowledgement, which proves the kernel processed the whole batch (it handles
    /// one socket's requests in order). Returns one result per operation, in order.
    ///
    /// Compared with one request and one acknowledgement per operation, this divides the
    /// number of system calls by about a hundred, which is what large programmings are made
    /// of (see testbed/bench/ipvs). If error reports were lost (ENOBUFS) or the batch was not
    /// acknowledged in time, its operations are reported as failed with that reason, so the
    /// caller re-reads the kernel instead of trusting them.
    pub async fn apply_batched(&mut self, ops: &[Op]) -> Vec<Result<(), IpvsError>> {
        let mut results: Vec<Result<(), IpvsError>> = Vec::with_capacity(ops.len());
        for chunk in Chunks::new(ops) {
            let out = self.batch.run(&ops[chunk.clone()]).await;
            results.extend(out);
        }
        results
    }
}

/// Splits operations into batches of at most BATCH_MSGS requests.
struct Chunks<'a> {
    ops: &'a [Op],
    at: usize,
}

impl<'a> Chunks<'a> {
    fn new(ops: &'a [Op]) -> Self {
        Self { ops, at: 0 }
    }
}

impl Iterator for Chunks<'_> {
    type Item = std::ops::Range<usize>;
    fn next(&mut self) -> Option<Self::Item> {
        (self.at < self.ops.len()).then(|| {
            let start = self.at;
            self.at = (start + BATCH_MSGS).min(self.ops.len());
            start..self.at
        })
    }
}

impl Batcher {
    /// Encodes `ops` into datagrams of at most BATCH_BYTES (normally one), sends them, and
    /// collects the outcome of each operation.
    async fn run(&mut self, ops: &[Op]) -> Vec<Result<(), IpvsError>> {
        let first_seq = self.seq;
        let mut datagrams: Vec<Vec<u8>> = vec![Vec::with_capacity(BATCH_BYTES)];
        let mut last_at = 0;
        for op in ops {
            let mut genl = GenlMessage::from_payload(op.message());
            genl.set_resolved_family_id(self.family);
            let mut m = NetlinkMessage::from(genl);
            m.header.flags = NLM_F_REQUEST;
            m.header.sequence_number = self.seq;
            self.seq = self.seq.wrapping_add(1);
            m.finalize();
            let len = m.buffer_len();
            if datagrams
                .last()
                .is_some_and(|d| !d.is_empty() && d.len() + len > BATCH_BYTES)
            {
                datagrams.push(Vec::with_capacity(BATCH_BYTES));
            }
            let d = datagrams.last_mut().expect("one datagram at least");
            last_at = d.len();
            d.resize(last_at + len, 0);
            m.emit(&mut d[last_at..]);
        }
        // The last request asks for an acknowledgement: nlmsg_flags is at offset 6.
        let last = datagrams.last_mut().expect("one datagram at least");
        let flags = u16::from_ne_bytes([last[last_at + 6], last[last_at + 7]]) | NLM_F_ACK;
        last[last_at + 6..last_at + 8].copy_from_slice(&flags.to_ne_bytes());
        let last_seq = first_seq.wrapping_add(ops.len() as u32 - 1);

        let mut errors: Vec<Option<std::io::Error>> = (0..ops.len()).map(|_| None).collect();
        let lost = |why: String| -> Vec<Result<(), IpvsError>> {
            ops.iter()
                .map(|op| {
                    Err(IpvsError::Transport {
                        op: op.to_string(),
                        detail: why.clone(),
                    })
                })
                .collect()
        };
        for d in &datagrams {
            if let Err(e) = self.sock.send(d).await {
                return lost(format!("batch not sent: {e}"));
            }
        }
        let collect = async {
            loop {
                let (data, _) = self.sock.recv_from_full().await?;
                let mut rest = &data[..];
                while rest.len() >= 16 {
                    let buf = NetlinkBuffer::new_checked(rest)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    let len = (buf.length() as usize).max(16).min(rest.len());
                    let seq = buf.sequence_number();
                    let msg = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(&rest[..len]);
                    rest = &rest[((len + 3) & !3).min(rest.len())..];
                    let idx = seq.wrapping_sub(first_seq) as usize;
                    if let Ok(NetlinkMessage {
                        payload: NetlinkPayload::Error(e),
                        ..
                    }) = msg
                    {
                        if idx < errors.len() && e.code.is_some() {
                            errors[idx] = Some(e.to_io());
                        }
                        if seq == last_seq {
                            return Ok::<(), std::io::Error>(());
                        }
                    }
                }
            }
        };
        match tokio::time::timeout(BATCH_TIMEOUT, collect).await {
            Err(_) => return lost("no acknowledgement of the batch in time; state unknown".into()),
            Ok(Err(e)) => return lost(format!("error reports may be lost ({e}); state unknown")),
            Ok(Ok(())) => {}
        }
        ops.iter()
            .zip(errors)
            .map(|(op, e)| match e {
                None => Ok(()),
                Some(source) => Err(IpvsError::Kernel {
                    op: op.to_string(),
                    source,
                }),
            })
            .collect()
    }
}

async fn write(handle: &GenetlinkHandle, op: &Op) -> Result<(), IpvsError> {
    request(
        handle,
        &op.to_string(),
        op.message(),
        NLM_F_REQUEST | NLM_F_ACK,
    )
    .await
    .map(|_| ())
}

/// Sends one request and collects its reply messages; a kernel error becomes
/// [`IpvsError::Kernel`] naming `op`.
async fn request(
    handle: &GenetlinkHandle,
    op: &str,
    msg: IpvsMessage,
    flags: u16,
) -> Result<Vec<IpvsMessage>, IpvsError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request_now(handle, op, msg, flags)).await {
        Ok(r) => r,
        Err(_) => Err(IpvsError::Transport {
            op: op.into(),
            detail: format!("no answer within {REQUEST_TIMEOUT:?}"),
        }),
    }
}

/// How long one request (a dump included) may wait for its answer: well under a systemd
/// `WatchdogSec` of 30 s. A kernel that does not answer is a transport error (the IPVS task
/// then reconnects), never a task stuck forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

async fn request_now(
    handle: &GenetlinkHandle,
    op: &str,
    msg: IpvsMessage,
    flags: u16,
) -> Result<Vec<IpvsMessage>, IpvsError> {
    let mut nl = NetlinkMessage::from(GenlMessage::from_payload(msg));
    nl.header.flags = flags;
    let mut handle = handle.clone();
    let mut replies = handle.request(nl).await.map_err(|e| IpvsError::Transport {
        op: op.into(),
        detail: e.to_string(),
    })?;
    let mut out = Vec::new();
    while let Some(r) = replies.next().await {
        let r = r.map_err(|e| IpvsError::Transport {
            op: op.into(),
            detail: format!("cannot decode the reply: {e}"),
        })?;
        match r.payload {
            NetlinkPayload::InnerMessage(genl) => out.push(genl.payload),
            NetlinkPayload::Error(e) if e.code.is_some() => {
                return Err(IpvsError::Kernel {
                    op: op.into(),
                    source: e.to_io(),
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

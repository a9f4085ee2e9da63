//! Async client of the IPVS family.
//!
//! One [`IpvsClient`] owns one generic netlink socket; the connection task that drives it is
//! spawned on the current tokio runtime when the client is created, so the socket lives in
//! the network namespace of the thread that called [`IpvsClient::connect`].

use futures::StreamExt;
use genetlink::{GenetlinkError, GenetlinkHandle};
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;

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
}

impl IpvsClient {
    /// Opens a generic netlink socket, spawns its driver on the current runtime and resolves
    /// the IPVS family, so that a missing `ip_vs` is reported here and not at first use.
    pub async fn connect() -> Result<Self, IpvsError> {
        let (conn, handle, _) = genetlink::new_connection().map_err(IpvsError::Socket)?;
        tokio::spawn(conn);
        match handle.resolve_family::<IpvsMessage>().await {
            Ok(_) => Ok(Self { handle }),
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

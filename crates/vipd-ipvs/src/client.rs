//! Async client of the IPVS family.
//!
//! One [`IpvsClient`] owns one generic netlink socket; the connection task that drives it is
//! spawned on the current tokio runtime when the client is created, so the socket lives in
//! the network namespace of the thread that called [`IpvsClient::connect`].

use futures::StreamExt;
use genetlink::{GenetlinkError, GenetlinkHandle};
use netlink_packet_core::{NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;

use crate::message::{IpvsAttr, IpvsCmd, IpvsMessage};

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
        /// The operation, e.g. `GET_INFO`.
        op: &'static str,
        /// errno from the kernel.
        source: std::io::Error,
    },
    /// The request could not be sent or the reply could not be read.
    #[error("IPVS {op}: {detail}")]
    Transport {
        /// The operation.
        op: &'static str,
        /// What failed.
        detail: String,
    },
    /// The reply lacked something the operation needs.
    #[error("IPVS {op}: unexpected reply: {detail}")]
    Protocol {
        /// The operation.
        op: &'static str,
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
                op: "resolve family",
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
                op: OP,
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
                op: OP,
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
        let mut nl = NetlinkMessage::from(GenlMessage::from_payload(msg));
        nl.header.flags = NLM_F_REQUEST;
        let mut replies = self
            .handle
            .request(nl)
            .await
            .map_err(|e| IpvsError::Transport {
                op,
                detail: e.to_string(),
            })?;
        let mut found = None;
        while let Some(r) = replies.next().await {
            let r = r.map_err(|e| IpvsError::Transport {
                op,
                detail: format!("cannot decode the reply: {e}"),
            })?;
            match r.payload {
                NetlinkPayload::InnerMessage(genl) => found = Some(genl.payload),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(IpvsError::Kernel {
                        op,
                        source: e.to_io(),
                    });
                }
                _ => {}
            }
        }
        found.ok_or(IpvsError::Protocol {
            op,
            detail: "no reply message".into(),
        })
    }
}

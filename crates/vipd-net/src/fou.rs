//! The kernel's FOU listeners ("foo over UDP", generic netlink family `fou`): the receive
//! side of IPVS's GUE encapsulation. `ip fou add port 6080 gue` opens a kernel UDP socket
//! that strips the UDP and GUE headers and hands the inner packet to the protocol the GUE
//! header names (4: an ipip device, 41: an ip6ip6 one), which then receives it like any
//! tunnelled packet.
//!
//! A listener is keyed by (family, port). The kernel has no owner tag for them: vipd adds the
//! ports its configuration names and removes only ports it added (see the backend role).

use futures::StreamExt;
use genetlink::GenetlinkHandle;
use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, ErrorContext, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
    NetlinkMessage, NetlinkPayload, Nla, NlaBuffer, NlasIterator, Parseable, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

use crate::link::{Change, NetError};

const FOU_GENL_NAME: &str = "fou";
const FOU_GENL_VERSION: u8 = 1;

const FOU_CMD_ADD: u8 = 1;
const FOU_CMD_DEL: u8 = 2;
const FOU_CMD_GET: u8 = 3;

const FOU_ATTR_PORT: u16 = 1;
const FOU_ATTR_AF: u16 = 2;
const FOU_ATTR_IPPROTO: u16 = 3;
const FOU_ATTR_TYPE: u16 = 4;

const FOU_ENCAP_GUE: u8 = 2;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// errno of a listener that exists already (the port's UDP socket is taken: -EADDRINUSE;
/// `fou_add_to_port_list` says -EALREADY).
const EADDRINUSE: i32 = 98;
const EALREADY: i32 = 114;
/// errno of a listener that does not exist (`fou_destroy`: -EINVAL).
const EINVAL: i32 = 22;

/// How long one request may wait for the kernel.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A FOU command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FouCmd {
    /// `FOU_CMD_ADD`.
    Add,
    /// `FOU_CMD_DEL`.
    Del,
    /// `FOU_CMD_GET` (with `NLM_F_DUMP`: every listener).
    Get,
    /// A command vipd does not know.
    Other(u8),
}

impl From<u8> for FouCmd {
    fn from(v: u8) -> Self {
        match v {
            FOU_CMD_ADD => Self::Add,
            FOU_CMD_DEL => Self::Del,
            FOU_CMD_GET => Self::Get,
            o => Self::Other(o),
        }
    }
}

impl From<FouCmd> for u8 {
    fn from(c: FouCmd) -> u8 {
        match c {
            FouCmd::Add => FOU_CMD_ADD,
            FouCmd::Del => FOU_CMD_DEL,
            FouCmd::Get => FOU_CMD_GET,
            FouCmd::Other(o) => o,
        }
    }
}

/// A FOU attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FouAttr {
    /// The UDP port (host order here, network order on the wire).
    Port(u16),
    /// The address family (2 or 10).
    Af(u8),
    /// The inner protocol of a direct (non-GUE) listener.
    IpProto(u8),
    /// 1: direct, 2: GUE.
    Type(u8),
    /// An attribute vipd does not interpret, kept byte for byte.
    Other(DefaultNla),
}

impl Nla for FouAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Port(_) => 2,
            Self::Af(_) | Self::IpProto(_) | Self::Type(_) => 1,
            Self::Other(n) => n.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Port(_) => FOU_ATTR_PORT,
            Self::Af(_) => FOU_ATTR_AF,
            Self::IpProto(_) => FOU_ATTR_IPPROTO,
            Self::Type(_) => FOU_ATTR_TYPE,
            Self::Other(n) => n.kind(),
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            Self::Port(p) => buf[..2].copy_from_slice(&p.to_be_bytes()),
            Self::Af(v) | Self::IpProto(v) | Self::Type(v) => buf[0] = *v,
            Self::Other(n) => n.emit_value(buf),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for FouAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        let byte = |what: &str| -> Result<u8, DecodeError> {
            v.first()
                .copied()
                .ok_or_else(|| DecodeError::from(format!("FOU attribute {what}: empty")))
        };
        Ok(match buf.kind() {
            FOU_ATTR_PORT => {
                let b: [u8; 2] = v
                    .get(..2)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| DecodeError::from("FOU_ATTR_PORT: short"))?;
                Self::Port(u16::from_be_bytes(b))
            }
            FOU_ATTR_AF => Self::Af(byte("AF")?),
            FOU_ATTR_IPPROTO => Self::IpProto(byte("IPPROTO")?),
            FOU_ATTR_TYPE => Self::Type(byte("TYPE")?),
            _ => Self::Other(DefaultNla::parse(buf).context("FOU attribute")?),
        })
    }
}

/// One FOU generic netlink message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FouMessage {
    /// The command.
    pub cmd: FouCmd,
    /// Its attributes, in wire order.
    pub attrs: Vec<FouAttr>,
}

impl GenlFamily for FouMessage {
    fn family_name() -> &'static str {
        FOU_GENL_NAME
    }
    fn command(&self) -> u8 {
        self.cmd.into()
    }
    fn version(&self) -> u8 {
        FOU_GENL_VERSION
    }
}

impl Emitable for FouMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for FouMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let attrs = NlasIterator::new(buf)
            .map(|nla| nla.and_then(|nla| FouAttr::parse(&nla)))
            .collect::<Result<Vec<_>, _>>()
            .context("FOU message attributes")?;
        Ok(Self {
            cmd: header.cmd.into(),
            attrs,
        })
    }
}

/// A GUE listener: one UDP port of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuePort {
    /// The UDP port.
    pub port: u16,
    /// IPv6 (`ip -6 fou`) rather than IPv4.
    pub v6: bool,
}

impl GuePort {
    /// The equivalent `ip` command (`add` or `del`).
    pub fn ip_command(&self, verb: &str) -> String {
        let six = if self.v6 { " -6" } else { "" };
        match verb {
            "add" => format!("ip{six} fou add port {} gue", self.port),
            v => format!("ip{six} fou {v} port {}", self.port),
        }
    }

    fn af(&self) -> FouAttr {
        FouAttr::Af(if self.v6 { AF_INET6 } else { AF_INET })
    }

    /// `ip fou add port P gue`, attributes in iproute2's order.
    fn add_attrs(&self) -> Vec<FouAttr> {
        vec![
            FouAttr::Port(self.port),
            FouAttr::Type(FOU_ENCAP_GUE),
            self.af(),
        ]
    }

    /// `ip fou del port P`.
    fn attrs(&self) -> Vec<FouAttr> {
        vec![FouAttr::Port(self.port), self.af()]
    }
}

/// One listener as the kernel lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FouListener {
    /// Port and family.
    pub at: GuePort,
    /// GUE (rather than direct FOU of one protocol).
    pub gue: bool,
}

impl FouListener {
    fn from_attrs(attrs: &[FouAttr]) -> Option<Self> {
        let mut port = None;
        let mut af = None;
        let mut ty = None;
        for a in attrs {
            match a {
                FouAttr::Port(p) => port = Some(*p),
                FouAttr::Af(f) => af = Some(*f),
                FouAttr::Type(t) => ty = Some(*t),
                _ => {}
            }
        }
        Some(Self {
            at: GuePort {
                port: port?,
                v6: af? == AF_INET6,
            },
            gue: ty == Some(FOU_ENCAP_GUE),
        })
    }
}

/// A generic netlink socket bound to the `fou` family.
#[derive(Debug, Clone)]
pub struct Fou {
    handle: GenetlinkHandle,
}

impl Fou {
    /// Opens a generic netlink socket and spawns its driver (the family is resolved, and the
    /// `fou` module loaded by the kernel, at the first request).
    pub fn connect() -> std::io::Result<Self> {
        let (conn, handle, _) = genetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// Every listener (`ip fou show` and `ip -6 fou show`).
    pub async fn listeners(&self) -> Result<Vec<FouListener>, NetError> {
        let msg = FouMessage {
            cmd: FouCmd::Get,
            attrs: Vec::new(),
        };
        let replies = self
            .request("ip fou show", msg, NLM_F_REQUEST | NLM_F_DUMP)
            .await?;
        Ok(replies
            .iter()
            .filter_map(|m| FouListener::from_attrs(&m.attrs))
            .collect())
    }

    /// Adds a GUE listener; one already there is [`Change::Unchanged`].
    pub async fn ensure_gue(&self, at: GuePort) -> Result<Change, NetError> {
        let msg = FouMessage {
            cmd: FouCmd::Add,
            attrs: at.add_attrs(),
        };
        match self
            .request(&at.ip_command("add"), msg, NLM_F_REQUEST | NLM_F_ACK)
            .await
        {
            Ok(_) => Ok(Change::Changed),
            Err(e) if e.errno == Some(EADDRINUSE) || e.errno == Some(EALREADY) => {
                // Ours from an earlier pass, or another program's UDP socket on that port.
                if self.listeners().await?.iter().any(|l| l.at == at && l.gue) {
                    Ok(Change::Unchanged)
                } else {
                    Err(NetError {
                        detail: format!(
                            "{}: the port is taken by another socket or a non-GUE listener",
                            e.detail
                        ),
                        ..e
                    })
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the listener on `at`; none there is [`Change::Unchanged`].
    pub async fn remove(&self, at: GuePort) -> Result<Change, NetError> {
        let msg = FouMessage {
            cmd: FouCmd::Del,
            attrs: at.attrs(),
        };
        match self
            .request(&at.ip_command("del"), msg, NLM_F_REQUEST | NLM_F_ACK)
            .await
        {
            Ok(_) => Ok(Change::Changed),
            Err(e) if e.errno == Some(EINVAL) => Ok(Change::Unchanged),
            Err(e) => Err(e),
        }
    }

    async fn request(
        &self,
        op: &str,
        msg: FouMessage,
        flags: u16,
    ) -> Result<Vec<FouMessage>, NetError> {
        let err = |detail: String, errno: Option<i32>| NetError {
            op: op.to_string(),
            detail,
            errno,
        };
        let run = async {
            let mut nl = NetlinkMessage::from(GenlMessage::from_payload(msg));
            nl.header.flags = flags;
            let mut handle = self.handle.clone();
            let mut replies = handle
                .request(nl)
                .await
                .map_err(|e| err(e.to_string(), None))?;
            let mut out = Vec::new();
            while let Some(r) = replies.next().await {
                let r = r.map_err(|e| err(format!("cannot decode the reply: {e}"), None))?;
                match r.payload {
                    NetlinkPayload::InnerMessage(genl) => out.push(genl.payload),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        let errno = e.code.map(|c| -c.get());
                        return Err(err(e.to_io().to_string(), errno));
                    }
                    _ => {}
                }
            }
            Ok(out)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, run)
            .await
            .map_err(|_| err(format!("no answer within {REQUEST_TIMEOUT:?}"), None))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attributes of `ip -6 fou add port 6080 gue` as Debian 12's iproute2 sends them
    /// (strace of its sendmsg in the UML guest): port in network order, type, family.
    const IP6_FOU_ADD_6080_GUE: &[u8] = &[
        6, 0, 1, 0, 0x17, 0xc0, 0, 0, // FOU_ATTR_PORT 6080 (be16) + pad
        5, 0, 4, 0, 2, 0, 0, 0, // FOU_ATTR_TYPE GUE + pad
        5, 0, 2, 0, 10, 0, 0, 0, // FOU_ATTR_AF AF_INET6 + pad
    ];

    #[test]
    fn add_encodes_as_iproute2_does() {
        let msg = FouMessage {
            cmd: FouCmd::Add,
            attrs: GuePort {
                port: 6080,
                v6: true,
            }
            .add_attrs(),
        };
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        assert_eq!(buf, IP6_FOU_ADD_6080_GUE);
        let back = FouMessage::parse_with_param(
            &buf,
            GenlHeader {
                cmd: FOU_CMD_ADD,
                version: FOU_GENL_VERSION,
            },
        )
        .unwrap();
        assert_eq!(back, msg);
        let l = FouListener::from_attrs(&back.attrs).unwrap();
        assert_eq!(
            l,
            FouListener {
                at: GuePort {
                    port: 6080,
                    v6: true
                },
                gue: true
            }
        );
    }

    #[test]
    fn unknown_attributes_survive_and_short_ones_are_errors() {
        // FOU_ATTR_LOCAL_V4 (6), which vipd does not interpret.
        let raw = [8u8, 0, 6, 0, 192, 0, 2, 1];
        let m = FouMessage::parse_with_param(&raw, GenlHeader { cmd: 3, version: 1 }).unwrap();
        assert!(matches!(m.attrs[0], FouAttr::Other(_)));
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        assert_eq!(buf, raw);
        let short = [5u8, 0, 1, 0, 0x17, 0, 0, 0];
        assert!(FouMessage::parse_with_param(&short, GenlHeader { cmd: 3, version: 1 }).is_err());
    }

    #[test]
    fn commands_name_the_ip_equivalent() {
        let p = GuePort {
            port: 6080,
            v6: false,
        };
        assert_eq!(p.ip_command("add"), "ip fou add port 6080 gue");
        assert_eq!(
            GuePort { v6: true, ..p }.ip_command("del"),
            "ip -6 fou del port 6080"
        );
    }
}

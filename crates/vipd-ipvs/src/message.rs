//! The IPVS generic netlink message: a command and its attributes.
//!
//! Attribute numbers mean different things depending on the command (`IPVS_INFO_ATTR_VERSION`
//! and `IPVS_CMD_ATTR_SERVICE` are both 1), so attributes are decoded with the command as
//! context. Attributes vipd does not know yet decode to [`IpvsAttr::Other`] and re-emit byte
//! for byte, so a message survives a decode/encode round trip whatever it carries.

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, ErrorContext, Nla, NlaBuffer, NlasIterator, Parseable,
    ParseableParametrized, parse_u32,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use crate::attr::{DestAttr, Nested, SvcAttr, nested_kind, parse_nested};
use crate::constants::*;

/// An IPVS command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IpvsCmd {
    /// Create a virtual service.
    NewService,
    /// Change a virtual service.
    SetService,
    /// Delete a virtual service.
    DelService,
    /// Get or dump virtual services.
    GetService,
    /// Add a destination (real server).
    NewDest,
    /// Change a destination.
    SetDest,
    /// Delete a destination.
    DelDest,
    /// Dump a service's destinations.
    GetDest,
    /// Start a connection-sync daemon.
    NewDaemon,
    /// Stop a connection-sync daemon.
    DelDaemon,
    /// Get connection-sync daemons.
    GetDaemon,
    /// Set TCP / TCP FIN / UDP timeouts.
    SetConfig,
    /// Get TCP / TCP FIN / UDP timeouts.
    GetConfig,
    /// Unused by the kernel.
    SetInfo,
    /// Version and connection table size.
    GetInfo,
    /// Zero counters.
    Zero,
    /// Delete every service (vipd never sends it).
    Flush,
    /// A command number this crate does not know.
    Other(u8),
}

impl From<IpvsCmd> for u8 {
    fn from(c: IpvsCmd) -> u8 {
        use IpvsCmd::*;
        match c {
            NewService => IPVS_CMD_NEW_SERVICE,
            SetService => IPVS_CMD_SET_SERVICE,
            DelService => IPVS_CMD_DEL_SERVICE,
            GetService => IPVS_CMD_GET_SERVICE,
            NewDest => IPVS_CMD_NEW_DEST,
            SetDest => IPVS_CMD_SET_DEST,
            DelDest => IPVS_CMD_DEL_DEST,
            GetDest => IPVS_CMD_GET_DEST,
            NewDaemon => IPVS_CMD_NEW_DAEMON,
            DelDaemon => IPVS_CMD_DEL_DAEMON,
            GetDaemon => IPVS_CMD_GET_DAEMON,
            SetConfig => IPVS_CMD_SET_CONFIG,
            GetConfig => IPVS_CMD_GET_CONFIG,
            SetInfo => IPVS_CMD_SET_INFO,
            GetInfo => IPVS_CMD_GET_INFO,
            Zero => IPVS_CMD_ZERO,
            Flush => IPVS_CMD_FLUSH,
            Other(n) => n,
        }
    }
}

impl From<u8> for IpvsCmd {
    fn from(n: u8) -> IpvsCmd {
        use IpvsCmd::*;
        match n {
            IPVS_CMD_NEW_SERVICE => NewService,
            IPVS_CMD_SET_SERVICE => SetService,
            IPVS_CMD_DEL_SERVICE => DelService,
            IPVS_CMD_GET_SERVICE => GetService,
            IPVS_CMD_NEW_DEST => NewDest,
            IPVS_CMD_SET_DEST => SetDest,
            IPVS_CMD_DEL_DEST => DelDest,
            IPVS_CMD_GET_DEST => GetDest,
            IPVS_CMD_NEW_DAEMON => NewDaemon,
            IPVS_CMD_DEL_DAEMON => DelDaemon,
            IPVS_CMD_GET_DAEMON => GetDaemon,
            IPVS_CMD_SET_CONFIG => SetConfig,
            IPVS_CMD_GET_CONFIG => GetConfig,
            IPVS_CMD_SET_INFO => SetInfo,
            IPVS_CMD_GET_INFO => GetInfo,
            IPVS_CMD_ZERO => Zero,
            IPVS_CMD_FLUSH => Flush,
            n => Other(n),
        }
    }
}

impl IpvsCmd {
    /// True for the commands whose attributes are `IPVS_INFO_ATTR_*`.
    fn uses_info_attrs(self) -> bool {
        matches!(self, IpvsCmd::GetInfo | IpvsCmd::SetInfo)
    }
}

/// A top-level attribute of an IPVS message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IpvsAttr {
    /// `IPVS_CMD_ATTR_SERVICE`: a service.
    Service(Nested<SvcAttr>),
    /// `IPVS_CMD_ATTR_DEST`: a destination.
    Dest(Nested<DestAttr>),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP`, seconds.
    TimeoutTcp(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP_FIN`, seconds.
    TimeoutTcpFin(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_UDP`, seconds.
    TimeoutUdp(u32),
    /// `IPVS_INFO_ATTR_VERSION`: `major << 16 | minor << 8 | patch`.
    InfoVersion(u32),
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE`: buckets of the connection hash table.
    InfoConnTabSize(u32),
    /// Anything else, kept verbatim (sync daemon attributes, unknown kinds).
    Other(DefaultNla),
}

impl Nla for IpvsAttr {
    fn value_len(&self) -> usize {
        match self {
            IpvsAttr::TimeoutTcp(_)
            | IpvsAttr::TimeoutTcpFin(_)
            | IpvsAttr::TimeoutUdp(_)
            | IpvsAttr::InfoVersion(_)
            | IpvsAttr::InfoConnTabSize(_) => 4,
            IpvsAttr::Service(n) => n.attrs.as_slice().buffer_len(),
            IpvsAttr::Dest(n) => n.attrs.as_slice().buffer_len(),
            IpvsAttr::Other(n) => n.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            IpvsAttr::TimeoutTcp(_) => IPVS_CMD_ATTR_TIMEOUT_TCP,
            IpvsAttr::TimeoutTcpFin(_) => IPVS_CMD_ATTR_TIMEOUT_TCP_FIN,
            IpvsAttr::TimeoutUdp(_) => IPVS_CMD_ATTR_TIMEOUT_UDP,
            IpvsAttr::InfoVersion(_) => IPVS_INFO_ATTR_VERSION,
            IpvsAttr::InfoConnTabSize(_) => IPVS_INFO_ATTR_CONN_TAB_SIZE,
            IpvsAttr::Service(n) => nested_kind(IPVS_CMD_ATTR_SERVICE, n.flag),
            IpvsAttr::Dest(n) => nested_kind(IPVS_CMD_ATTR_DEST, n.flag),
            IpvsAttr::Other(n) => n.kind(),
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            IpvsAttr::TimeoutTcp(v)
            | IpvsAttr::TimeoutTcpFin(v)
            | IpvsAttr::TimeoutUdp(v)
            | IpvsAttr::InfoVersion(v)
            | IpvsAttr::InfoConnTabSize(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            IpvsAttr::Service(n) => n.attrs.as_slice().emit(buf),
            IpvsAttr::Dest(n) => n.attrs.as_slice().emit(buf),
            IpvsAttr::Other(n) => n.emit_value(buf),
        }
    }
}

impl IpvsAttr {
    /// Decodes one attribute of a message carrying `cmd`.
    pub fn parse(buf: &NlaBuffer<&[u8]>, cmd: IpvsCmd) -> Result<Self, DecodeError> {
        let v = buf.value();
        let kind = buf.kind();
        let u32_of =
            |what: &str| parse_u32(v).context(format!("invalid IPVS attribute {what} ({kind})"));
        Ok(if cmd.uses_info_attrs() {
            match kind {
                IPVS_INFO_ATTR_VERSION => IpvsAttr::InfoVersion(u32_of("INFO_ATTR_VERSION")?),
                IPVS_INFO_ATTR_CONN_TAB_SIZE => {
                    IpvsAttr::InfoConnTabSize(u32_of("INFO_ATTR_CONN_TAB_SIZE")?)
                }
                _ => IpvsAttr::Other(DefaultNla::parse(buf)?),
            }
        } else {
            match kind {
                IPVS_CMD_ATTR_SERVICE => {
                    IpvsAttr::Service(parse_nested(buf, "service", SvcAttr::parse)?)
                }
                IPVS_CMD_ATTR_DEST => {
                    IpvsAttr::Dest(parse_nested(buf, "destination", DestAttr::parse)?)
                }
                IPVS_CMD_ATTR_TIMEOUT_TCP => IpvsAttr::TimeoutTcp(u32_of("CMD_ATTR_TIMEOUT_TCP")?),
                IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => {
                    IpvsAttr::TimeoutTcpFin(u32_of("CMD_ATTR_TIMEOUT_TCP_FIN")?)
                }
                IPVS_CMD_ATTR_TIMEOUT_UDP => IpvsAttr::TimeoutUdp(u32_of("CMD_ATTR_TIMEOUT_UDP")?),
                _ => IpvsAttr::Other(DefaultNla::parse(buf)?),
            }
        })
    }
}

/// One IPVS generic netlink message (the payload after the genl header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsMessage {
    /// The command.
    pub cmd: IpvsCmd,
    /// Its attributes, in wire order.
    pub attrs: Vec<IpvsAttr>,
}

impl IpvsMessage {
    /// A message with no attributes.
    pub fn new(cmd: IpvsCmd) -> Self {
        Self {
            cmd,
            attrs: Vec::new(),
        }
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }
    fn command(&self) -> u8 {
        self.cmd.into()
    }
    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let cmd = IpvsCmd::from(header.cmd);
        let attrs = NlasIterator::new(buf)
            .map(|nla| nla.and_then(|nla| IpvsAttr::parse(&nla, cmd)))
            .collect::<Result<Vec<_>, _>>()
            .context(format!(
                "failed to parse the attributes of IPVS command {cmd:?}"
            ))?;
        Ok(Self { cmd, attrs })
    }
}

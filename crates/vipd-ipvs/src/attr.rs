//! Nested attributes: service, destination and statistics, as on the wire.
//!
//! Each enum keeps what it does not know in `Other`, and [`Nested`] remembers whether the
//! sender set `NLA_F_NESTED` (libnl does on requests, the kernel does not on dumps), so that
//! decoding then encoding any captured message gives back the same bytes.

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, ErrorContext, NLA_F_NESTED, Nla, NlaBuffer, NlasIterator,
    Parseable, parse_string, parse_u8, parse_u16, parse_u32, parse_u64,
};

use crate::constants::*;

/// A list of attributes nested in one attribute of kind `K`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nested<T> {
    /// The attributes, in wire order.
    pub attrs: Vec<T>,
    /// Whether `NLA_F_NESTED` was (or is to be) set on the container.
    pub flag: bool,
}

impl<T> Nested<T> {
    /// Attributes to send (flag set, as libnl does).
    pub fn new(attrs: Vec<T>) -> Self {
        Self { attrs, flag: true }
    }
}

/// Parses nested attributes of a container, each with `parse_one`.
pub(crate) fn parse_nested<T>(
    buf: &NlaBuffer<&[u8]>,
    what: &str,
    parse_one: impl Fn(&NlaBuffer<&[u8]>) -> Result<T, DecodeError>,
) -> Result<Nested<T>, DecodeError> {
    let attrs = NlasIterator::new(buf.value())
        .map(|n| n.and_then(|n| parse_one(&n)))
        .collect::<Result<Vec<_>, _>>()
        .context(format!("invalid nested {what} attributes"))?;
    Ok(Nested {
        attrs,
        flag: buf.nested_flag(),
    })
}

pub(crate) fn nested_kind(kind: u16, flag: bool) -> u16 {
    if flag { kind | NLA_F_NESTED } else { kind }
}

fn fixed<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N], DecodeError> {
    v.try_into()
        .map_err(|_| DecodeError::from(format!("{what}: expected {N} bytes, got {}", v.len())))
}

fn be16(v: &[u8], what: &str) -> Result<u16, DecodeError> {
    Ok(u16::from_be_bytes(fixed::<2>(v, what)?))
}

/// A NUL-terminated string attribute with its exact wire length (the kernel pads names).
fn emit_cstr(s: &str, len: usize, buf: &mut [u8]) {
    buf[..len].fill(0);
    buf[..s.len()].copy_from_slice(s.as_bytes());
}

/// `{u32 flags; u32 mask}` of IPVS_SVC_ATTR_FLAGS, host byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flags {
    /// Flag values.
    pub flags: u32,
    /// Which flags the message sets.
    pub mask: u32,
}

/// An attribute of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SvcAttr {
    /// Address family (AF_INET, AF_INET6).
    Af(u16),
    /// IP protocol (TCP 6, UDP 17, SCTP 132).
    Protocol(u16),
    /// Address, as the 16 bytes of `union nf_inet_addr` (or 4 when a sender sends 4).
    Addr(Vec<u8>),
    /// Port, network byte order on the wire.
    Port(u16),
    /// Firewall mark (fwmark services have no address/port).
    Fwmark(u32),
    /// Scheduler name, and the attribute's wire length (name + NUL + padding).
    SchedName(String, usize),
    /// Flags and mask.
    Flags(Flags),
    /// Persistence timeout, seconds.
    Timeout(u32),
    /// Persistence netmask: an IPv4 mask in network order bytes, or an IPv6 prefix length.
    Netmask(u32),
    /// 32-bit statistics.
    Stats(Nested<StatsAttr>),
    /// Persistence engine name (and wire length).
    PeName(String, usize),
    /// 64-bit statistics.
    Stats64(Nested<StatsAttr>),
    /// Anything else.
    Other(DefaultNla),
}

impl Nla for SvcAttr {
    fn value_len(&self) -> usize {
        use SvcAttr::*;
        match self {
            Af(_) | Protocol(_) | Port(_) => 2,
            Addr(a) => a.len(),
            Fwmark(_) | Timeout(_) | Netmask(_) => 4,
            SchedName(_, len) | PeName(_, len) => *len,
            Flags(_) => 8,
            Stats(n) | Stats64(n) => n.attrs.as_slice().buffer_len(),
            Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use SvcAttr::*;
        match self {
            Af(_) => IPVS_SVC_ATTR_AF,
            Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            Addr(_) => IPVS_SVC_ATTR_ADDR,
            Port(_) => IPVS_SVC_ATTR_PORT,
            Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            SchedName(..) => IPVS_SVC_ATTR_SCHED_NAME,
            Flags(_) => IPVS_SVC_ATTR_FLAGS,
            Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            Stats(n) => nested_kind(IPVS_SVC_ATTR_STATS, n.flag),
            PeName(..) => IPVS_SVC_ATTR_PE_NAME,
            Stats64(n) => nested_kind(IPVS_SVC_ATTR_STATS64, n.flag),
            Other(n) => n.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        use SvcAttr::*;
        match self {
            Af(v) | Protocol(v) => buf[..2].copy_from_slice(&v.to_ne_bytes()),
            Port(p) => buf[..2].copy_from_slice(&p.to_be_bytes()),
            Addr(a) => buf[..a.len()].copy_from_slice(a),
            Fwmark(v) | Timeout(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            Netmask(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            SchedName(s, len) | PeName(s, len) => emit_cstr(s, *len, buf),
            Flags(f) => {
                buf[..4].copy_from_slice(&f.flags.to_ne_bytes());
                buf[4..8].copy_from_slice(&f.mask.to_ne_bytes());
            }
            Stats(n) | Stats64(n) => n.attrs.as_slice().emit(buf),
            Other(n) => n.emit_value(buf),
        }
    }
}

impl SvcAttr {
    /// Decodes one service attribute.
    pub fn parse(buf: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        use SvcAttr::*;
        let v = buf.value();
        Ok(match buf.kind() {
            IPVS_SVC_ATTR_AF => Af(parse_u16(v).context("IPVS_SVC_ATTR_AF")?),
            IPVS_SVC_ATTR_PROTOCOL => Protocol(parse_u16(v).context("IPVS_SVC_ATTR_PROTOCOL")?),
            IPVS_SVC_ATTR_ADDR => Addr(v.to_vec()),
            IPVS_SVC_ATTR_PORT => Port(be16(v, "IPVS_SVC_ATTR_PORT")?),
            IPVS_SVC_ATTR_FWMARK => Fwmark(parse_u32(v).context("IPVS_SVC_ATTR_FWMARK")?),
            IPVS_SVC_ATTR_SCHED_NAME => SchedName(
                parse_string(v).context("IPVS_SVC_ATTR_SCHED_NAME")?,
                v.len(),
            ),
            IPVS_SVC_ATTR_FLAGS => {
                let b = fixed::<8>(v, "IPVS_SVC_ATTR_FLAGS")?;
                Flags(self::Flags {
                    flags: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                    mask: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
                })
            }
            IPVS_SVC_ATTR_TIMEOUT => Timeout(parse_u32(v).context("IPVS_SVC_ATTR_TIMEOUT")?),
            IPVS_SVC_ATTR_NETMASK => Netmask(parse_u32(v).context("IPVS_SVC_ATTR_NETMASK")?),
            IPVS_SVC_ATTR_STATS => Stats(parse_nested(buf, "service stats", StatsAttr::parse)?),
            IPVS_SVC_ATTR_PE_NAME => {
                PeName(parse_string(v).context("IPVS_SVC_ATTR_PE_NAME")?, v.len())
            }
            IPVS_SVC_ATTR_STATS64 => {
                Stats64(parse_nested(buf, "service stats64", StatsAttr::parse)?)
            }
            _ => Other(DefaultNla::parse(buf)?),
        })
    }
}

/// An attribute of a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DestAttr {
    /// Address (16 bytes of `union nf_inet_addr`).
    Addr(Vec<u8>),
    /// Port, network byte order on the wire.
    Port(u16),
    /// Forwarding method (IP_VS_CONN_F_*).
    FwdMethod(u32),
    /// Weight.
    Weight(u32),
    /// Upper connection threshold (0: none).
    UThresh(u32),
    /// Lower connection threshold.
    LThresh(u32),
    /// Active connections.
    ActiveConns(u32),
    /// Inactive connections.
    InactConns(u32),
    /// Persistent connections.
    PersistConns(u32),
    /// 32-bit statistics.
    Stats(Nested<StatsAttr>),
    /// Address family of the destination (may differ from the service's with tunnels).
    AddrFamily(u16),
    /// 64-bit statistics.
    Stats64(Nested<StatsAttr>),
    /// Tunnel type (IP_VS_CONN_F_TUNNEL_TYPE_*).
    TunType(u8),
    /// Tunnel (GUE) port, network byte order on the wire.
    TunPort(u16),
    /// Tunnel flags (checksum options).
    TunFlags(u16),
    /// Anything else.
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        use DestAttr::*;
        match self {
            Addr(a) => a.len(),
            Port(_) | AddrFamily(_) | TunPort(_) | TunFlags(_) => 2,
            TunType(_) => 1,
            FwdMethod(_) | Weight(_) | UThresh(_) | LThresh(_) | ActiveConns(_) | InactConns(_)
            | PersistConns(_) => 4,
            Stats(n) | Stats64(n) => n.attrs.as_slice().buffer_len(),
            Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use DestAttr::*;
        match self {
            Addr(_) => IPVS_DEST_ATTR_ADDR,
            Port(_) => IPVS_DEST_ATTR_PORT,
            FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            UThresh(_) => IPVS_DEST_ATTR_U_THRESH,
            LThresh(_) => IPVS_DEST_ATTR_L_THRESH,
            ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            InactConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            Stats(n) => nested_kind(IPVS_DEST_ATTR_STATS, n.flag),
            AddrFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            Stats64(n) => nested_kind(IPVS_DEST_ATTR_STATS64, n.flag),
            TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            Other(n) => n.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        use DestAttr::*;
        match self {
            Addr(a) => buf[..a.len()].copy_from_slice(a),
            Port(p) | TunPort(p) => buf[..2].copy_from_slice(&p.to_be_bytes()),
            AddrFamily(v) | TunFlags(v) => buf[..2].copy_from_slice(&v.to_ne_bytes()),
            TunType(t) => buf[0] = *t,
            FwdMethod(v) | Weight(v) | UThresh(v) | LThresh(v) | ActiveConns(v) | InactConns(v)
            | PersistConns(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            Stats(n) | Stats64(n) => n.attrs.as_slice().emit(buf),
            Other(n) => n.emit_value(buf),
        }
    }
}

impl DestAttr {
    /// Decodes one destination attribute.
    pub fn parse(buf: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        use DestAttr::*;
        let v = buf.value();
        let u32_of = |what: &'static str| parse_u32(v).context(what);
        Ok(match buf.kind() {
            IPVS_DEST_ATTR_ADDR => Addr(v.to_vec()),
            IPVS_DEST_ATTR_PORT => Port(be16(v, "IPVS_DEST_ATTR_PORT")?),
            IPVS_DEST_ATTR_FWD_METHOD => FwdMethod(u32_of("IPVS_DEST_ATTR_FWD_METHOD")?),
            IPVS_DEST_ATTR_WEIGHT => Weight(u32_of("IPVS_DEST_ATTR_WEIGHT")?),
            IPVS_DEST_ATTR_U_THRESH => UThresh(u32_of("IPVS_DEST_ATTR_U_THRESH")?),
            IPVS_DEST_ATTR_L_THRESH => LThresh(u32_of("IPVS_DEST_ATTR_L_THRESH")?),
            IPVS_DEST_ATTR_ACTIVE_CONNS => ActiveConns(u32_of("IPVS_DEST_ATTR_ACTIVE_CONNS")?),
            IPVS_DEST_ATTR_INACT_CONNS => InactConns(u32_of("IPVS_DEST_ATTR_INACT_CONNS")?),
            IPVS_DEST_ATTR_PERSIST_CONNS => PersistConns(u32_of("IPVS_DEST_ATTR_PERSIST_CONNS")?),
            IPVS_DEST_ATTR_STATS => {
                Stats(parse_nested(buf, "destination stats", StatsAttr::parse)?)
            }
            IPVS_DEST_ATTR_ADDR_FAMILY => {
                AddrFamily(parse_u16(v).context("IPVS_DEST_ATTR_ADDR_FAMILY")?)
            }
            IPVS_DEST_ATTR_STATS64 => {
                Stats64(parse_nested(buf, "destination stats64", StatsAttr::parse)?)
            }
            IPVS_DEST_ATTR_TUN_TYPE => TunType(parse_u8(v).context("IPVS_DEST_ATTR_TUN_TYPE")?),
            IPVS_DEST_ATTR_TUN_PORT => TunPort(be16(v, "IPVS_DEST_ATTR_TUN_PORT")?),
            IPVS_DEST_ATTR_TUN_FLAGS => TunFlags(parse_u16(v).context("IPVS_DEST_ATTR_TUN_FLAGS")?),
            _ => Other(DefaultNla::parse(buf)?),
        })
    }
}

/// A statistics counter. In `*_STATS` the counters are u32 except bytes (u64); in
/// `*_STATS64` all are u64. The value keeps its wire width.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatsAttr {
    /// A counter (`IPVS_STATS_ATTR_*` kind) of 4 or 8 bytes.
    Counter {
        /// Which counter.
        kind: u16,
        /// Its value.
        value: u64,
        /// 4 or 8.
        width: u8,
    },
    /// Padding or anything else.
    Other(DefaultNla),
}

impl Nla for StatsAttr {
    fn value_len(&self) -> usize {
        match self {
            StatsAttr::Counter { width, .. } => usize::from(*width),
            StatsAttr::Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            StatsAttr::Counter { kind, .. } => *kind,
            StatsAttr::Other(n) => n.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            StatsAttr::Counter {
                value, width: 4, ..
            } => buf[..4].copy_from_slice(&(*value as u32).to_ne_bytes()),
            StatsAttr::Counter { value, .. } => buf[..8].copy_from_slice(&value.to_ne_bytes()),
            StatsAttr::Other(n) => n.emit_value(buf),
        }
    }
}

impl StatsAttr {
    /// Decodes one counter.
    pub fn parse(buf: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        let v = buf.value();
        let kind = buf.kind();
        if !(IPVS_STATS_ATTR_CONNS..=IPVS_STATS_ATTR_OUTBPS).contains(&kind) {
            return Ok(StatsAttr::Other(DefaultNla::parse(buf)?));
        }
        Ok(match v.len() {
            4 => StatsAttr::Counter {
                kind,
                value: u64::from(parse_u32(v)?),
                width: 4,
            },
            8 => StatsAttr::Counter {
                kind,
                value: parse_u64(v)?,
                width: 8,
            },
            n => {
                return Err(DecodeError::from(format!(
                    "IPVS stats attribute {kind}: {n} bytes, expected 4 or 8"
                )));
            }
        })
    }
}

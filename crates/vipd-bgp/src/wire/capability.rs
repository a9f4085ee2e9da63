//! OPEN capabilities (RFC 5492) vipd speaks, with a fallback for the rest.

use super::reader::Reader;

/// Address family identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Afi {
    /// IPv4 (1).
    Ipv4,
    /// IPv6 (2).
    Ipv6,
    /// Another AFI.
    Other(u16),
}

impl From<u16> for Afi {
    fn from(v: u16) -> Self {
        match v {
            1 => Afi::Ipv4,
            2 => Afi::Ipv6,
            n => Afi::Other(n),
        }
    }
}

impl From<Afi> for u16 {
    fn from(a: Afi) -> u16 {
        match a {
            Afi::Ipv4 => 1,
            Afi::Ipv6 => 2,
            Afi::Other(n) => n,
        }
    }
}

/// Subsequent address family identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Safi {
    /// Unicast (1).
    Unicast,
    /// Another SAFI.
    Other(u8),
}

impl From<u8> for Safi {
    fn from(v: u8) -> Self {
        if v == 1 {
            Safi::Unicast
        } else {
            Safi::Other(v)
        }
    }
}

impl From<Safi> for u8 {
    fn from(s: Safi) -> u8 {
        match s {
            Safi::Unicast => 1,
            Safi::Other(n) => n,
        }
    }
}

/// One family in the graceful-restart capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GrFamily {
    /// AFI.
    pub afi: Afi,
    /// SAFI.
    pub safi: Safi,
    /// Forwarding state preserved (F bit).
    pub forwarding: bool,
}

/// A capability advertised in OPEN.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Capability {
    /// Multiprotocol extensions (RFC 4760), code 1.
    Multiprotocol(Afi, Safi),
    /// Route refresh (RFC 2918), code 2.
    RouteRefresh,
    /// Extended message (RFC 8654), code 6: messages up to 65535 bytes.
    ExtendedMessage,
    /// Graceful restart (RFC 4724), code 64.
    GracefulRestart {
        /// R bit: this speaker has restarted.
        restarting: bool,
        /// N bit (RFC 8538): notification messages are handled gracefully too.
        notification: bool,
        /// Restart time in seconds (12 bits).
        time: u16,
        /// Families whose state is preserved.
        families: Vec<GrFamily>,
    },
    /// 4-octet AS numbers (RFC 6793), code 65.
    FourOctetAs(u32),
    /// Enhanced route refresh (RFC 7313), code 70.
    EnhancedRouteRefresh,
    /// Anything else, kept as received.
    Other {
        /// Capability code.
        code: u8,
        /// Value.
        value: Vec<u8>,
    },
}

impl Capability {
    pub(crate) fn decode(code: u8, value: &[u8]) -> Option<Capability> {
        let mut r = Reader::new(value);
        let cap = match code {
            1 if value.len() == 4 => {
                let afi = r.u16()?;
                r.u8()?;
                Capability::Multiprotocol(afi.into(), r.u8()?.into())
            }
            2 if value.is_empty() => Capability::RouteRefresh,
            6 if value.is_empty() => Capability::ExtendedMessage,
            64 if value.len() >= 2 && (value.len() - 2) % 4 == 0 => {
                let flags_time = r.u16()?;
                let mut families = Vec::new();
                while !r.is_empty() {
                    let afi = r.u16()?.into();
                    let safi = r.u8()?.into();
                    let f = r.u8()?;
                    families.push(GrFamily {
                        afi,
                        safi,
                        forwarding: f & 0x80 != 0,
                    });
                }
                Capability::GracefulRestart {
                    restarting: flags_time & 0x8000 != 0,
                    notification: flags_time & 0x4000 != 0,
                    time: flags_time & 0x0fff,
                    families,
                }
            }
            65 if value.len() == 4 => Capability::FourOctetAs(r.u32()?),
            70 if value.is_empty() => Capability::EnhancedRouteRefresh,
            _ => Capability::Other {
                code,
                value: value.to_vec(),
            },
        };
        Some(cap)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let (code, value): (u8, Vec<u8>) = match self {
            Capability::Multiprotocol(a, s) => {
                let a = u16::from(*a).to_be_bytes();
                (1, vec![a[0], a[1], 0, u8::from(*s)])
            }
            Capability::RouteRefresh => (2, vec![]),
            Capability::ExtendedMessage => (6, vec![]),
            Capability::GracefulRestart {
                restarting,
                notification,
                time,
                families,
            } => {
                let mut ft = time & 0x0fff;
                if *restarting {
                    ft |= 0x8000;
                }
                if *notification {
                    ft |= 0x4000;
                }
                let mut v = ft.to_be_bytes().to_vec();
                for f in families {
                    v.extend(u16::from(f.afi).to_be_bytes());
                    v.push(f.safi.into());
                    v.push(if f.forwarding { 0x80 } else { 0 });
                }
                (64, v)
            }
            Capability::FourOctetAs(asn) => (65, asn.to_be_bytes().to_vec()),
            Capability::EnhancedRouteRefresh => (70, vec![]),
            Capability::Other { code, value } => (*code, value.clone()),
        };
        out.push(code);
        out.push(value.len() as u8);
        out.extend(value);
    }
}

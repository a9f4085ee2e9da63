//! IP prefixes as NLRI: a length byte and the minimum number of address bytes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::reader::Reader;

/// An IPv4 or IPv6 prefix with its host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// A prefix; host bits are cleared. `None` when `len` exceeds the family's width.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = if len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(len))
                };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(len))
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Some(Prefix { addr, len })
    }

    /// A host route (/32 or /128), how VIPs are announced.
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// Network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    /// Prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }
    /// True for IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.len);
        let n = usize::from(self.len).div_ceil(8);
        match self.addr {
            IpAddr::V4(a) => out.extend(&a.octets()[..n]),
            IpAddr::V6(a) => out.extend(&a.octets()[..n]),
        }
    }

    /// Decodes a list of prefixes of one family; `None` on any length error (RFC 7606:
    /// an NLRI field that cannot be parsed).
    pub(crate) fn decode_all(buf: &[u8], v6: bool) -> Option<Vec<Prefix>> {
        let mut r = Reader::new(buf);
        let mut out = Vec::new();
        let max = if v6 { 128 } else { 32 };
        while !r.is_empty() {
            let len = r.u8()?;
            if len > max {
                return None;
            }
            let bytes = r.bytes(usize::from(len).div_ceil(8))?;
            let addr = if v6 {
                let mut o = [0u8; 16];
                o[..bytes.len()].copy_from_slice(bytes);
                IpAddr::V6(Ipv6Addr::from(o))
            } else {
                let mut o = [0u8; 4];
                o[..bytes.len()].copy_from_slice(bytes);
                IpAddr::V4(Ipv4Addr::from(o))
            };
            out.push(Prefix::new(addr, len)?);
        }
        Some(out)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

//! The DNS messages of a DNS check (RFC 1035): one query, one response read just far enough
//! to judge it (the id, that it is a response, the rcode, and the A/AAAA answers). Pure and
//! bounded: a response is untrusted input, every read is checked, a compression loop ends.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record types a check may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Name server.
    Ns,
    /// Start of authority.
    Soa,
    /// Mail exchanger.
    Mx,
    /// Text.
    Txt,
    /// Canonical name.
    Cname,
}

impl QType {
    /// The wire value.
    pub fn code(self) -> u16 {
        match self {
            QType::A => 1,
            QType::Ns => 2,
            QType::Cname => 5,
            QType::Soa => 6,
            QType::Mx => 15,
            QType::Txt => 16,
            QType::Aaaa => 28,
        }
    }

    /// From its name (`"A"`, `"aaaa"`...).
    pub fn parse(s: &str) -> Option<QType> {
        Some(match s.to_ascii_uppercase().as_str() {
            "A" => QType::A,
            "AAAA" => QType::Aaaa,
            "NS" => QType::Ns,
            "SOA" => QType::Soa,
            "MX" => QType::Mx,
            "TXT" => QType::Txt,
            "CNAME" => QType::Cname,
            _ => return None,
        })
    }
}

/// Why a name cannot be asked for, or a response cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The name is not a DNS name (empty label, label over 63 bytes, name over 253).
    #[error("invalid name {0:?}")]
    Name(String),
    /// The response ends before what its header announces.
    #[error("truncated response")]
    Truncated,
    /// Not an answer to this query.
    #[error("not a response to this query (id {got}, expected {want})")]
    Id {
        /// Its id.
        got: u16,
        /// The query's.
        want: u16,
    },
    /// The QR bit is not set.
    #[error("a query, not a response")]
    NotResponse,
    /// A name's compression pointers loop or point forward.
    #[error("bad name compression")]
    Compression,
}

/// A response, as far as a check reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// RCODE (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED...).
    pub rcode: u8,
    /// TC: the answer did not fit (the check still judges the rcode).
    pub truncated: bool,
    /// Answer records.
    pub answers: u16,
    /// The A and AAAA addresses among them.
    pub addresses: Vec<IpAddr>,
}

/// RCODE in words.
#[derive(Clone, Copy, Debug)]
pub struct Rcode(pub u8);

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            _ => return write!(f, "rcode {}", self.0),
        })
    }
}

/// The query: one question, recursion desired.
pub fn query(id: u16, name: &str, qtype: QType) -> Result<Vec<u8>, DnsError> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if (trimmed.is_empty() && name != ".") || trimmed.len() > 253 {
        return Err(DnsError::Name(name.to_string()));
    }
    // "." is the root (keepalived's default question: the root's SOA).
    for label in trimmed.split('.').filter(|_| !trimmed.is_empty()) {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::Name(name.to_string()));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.code().to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    Ok(q)
}

/// Reads a response to query `id`.
pub fn parse(buf: &[u8], id: u16) -> Result<Response, DnsError> {
    let u16_at = |i: usize| -> Result<u16, DnsError> {
        buf.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(DnsError::Truncated)
    };
    let got = u16_at(0)?;
    if got != id {
        return Err(DnsError::Id { got, want: id });
    }
    let flags = u16_at(2)?;
    if flags & 0x8000 == 0 {
        return Err(DnsError::NotResponse);
    }
    let (qd, an) = (u16_at(4)?, u16_at(6)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(buf, at)? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..an {
        at = skip_name(buf, at)?;
        let rtype = u16_at(at)?;
        let len = usize::from(u16_at(at + 8)?);
        let data = buf.get(at + 10..at + 10 + len).ok_or(DnsError::Truncated)?;
        match (rtype, len) {
            (1, 4) => addresses.push(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (28, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(data);
                addresses.push(IpAddr::V6(Ipv6Addr::from(o)));
            }
            _ => {}
        }
        at += 10 + len;
    }
    Ok(Response {
        rcode: (flags & 0x000F) as u8,
        truncated: flags & 0x0200 != 0,
        answers: an,
        addresses,
    })
}

/// The offset after the name at `at` (labels, or a compression pointer that ends it).
fn skip_name(buf: &[u8], mut at: usize) -> Result<usize, DnsError> {
    // A name is at most 255 bytes: this many labels cannot be honest.
    for _ in 0..128 {
        let len = *buf.get(at).ok_or(DnsError::Truncated)?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xC0 == 0xC0 => {
                buf.get(at + 1).ok_or(DnsError::Truncated)?;
                return Ok(at + 2);
            }
            l if l & 0xC0 != 0 => return Err(DnsError::Compression),
            l => at += 1 + usize::from(l),
        }
    }
    Err(DnsError::Compression)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response as a server sends it: the question echoed, one A answer with a pointer.
    fn answer(id: u16, rcode: u8, ip: [u8; 4]) -> Vec<u8> {
        let mut r = query(id, "www.example.com", QType::A).expect("query");
        r[2] = 0x81;
        r[3] = 0x80 | rcode;
        r[7] = 1;
        r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&ip);
        r
    }

    #[test]
    fn queries_are_rfc_1035() {
        let q = query(0x1234, "www.example.com.", QType::Aaaa).expect("query");
        assert_eq!(
            q,
            [
                0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'w', b'w', 7, b'e', b'x',
                b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 0, 28, 0, 1
            ]
        );
        assert!(query(1, "a..b", QType::A).is_err());
        assert!(query(1, &"x".repeat(64), QType::A).is_err());
        assert!(query(1, "", QType::A).is_err());
        assert_eq!(
            query(1, ".", QType::Soa).expect("root")[12..],
            [0, 0, 6, 0, 1]
        );
    }

    #[test]
    fn responses_give_rcode_and_addresses() {
        let r = parse(&answer(7, 0, [192, 0, 2, 1]), 7).expect("parse");
        assert_eq!((r.rcode, r.answers), (0, 1));
        assert_eq!(r.addresses, ["192.0.2.1".parse::<IpAddr>().expect("ip")]);
        assert_eq!(parse(&answer(7, 3, [0; 4]), 7).expect("parse").rcode, 3);
        assert_eq!(
            parse(&answer(7, 0, [0; 4]), 8),
            Err(DnsError::Id { got: 7, want: 8 })
        );
    }

    /// Every prefix of a valid response, and a self-referencing name, end in an error, not a
    /// panic or a loop.
    #[test]
    fn hostile_responses_are_errors() {
        let good = answer(9, 0, [10, 0, 0, 1]);
        for n in 0..good.len() {
            assert!(parse(&good[..n], 9).is_err(), "prefix {n}");
        }
        let mut looped = good.clone();
        looped[12] = 0x40; // reserved label type
        assert!(parse(&looped, 9).is_err());
        let mut q = query(9, "a", QType::A).expect("query");
        q[2] = 0x80;
        assert_eq!(parse(&q, 9).map(|r| r.rcode), Ok(0), "no answer is fine");
    }
}

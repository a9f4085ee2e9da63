//! OPEN messages (RFC 4271 4.2), with capabilities in optional parameters (RFC 5492) and
//! the extended optional parameters length of RFC 9072.

use std::net::Ipv4Addr;

use super::capability::Capability;
use super::message::WireError;
use super::reader::Reader;

/// The 2-octet AS sent in OPEN by a speaker whose AS does not fit (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// An OPEN message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// The speaker's AS (from the 4-octet capability when present).
    pub asn: u32,
    /// Proposed hold time in seconds.
    pub hold_time: u16,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Capabilities, in the order sent.
    pub capabilities: Vec<Capability>,
}

impl Open {
    pub(crate) fn decode(body: &[u8]) -> Result<Open, WireError> {
        let mut r = Reader::new(body);
        let short = || WireError::new(1, 2, vec![], "truncated OPEN");
        let version = r.u8().ok_or_else(short)?;
        if version != 4 {
            return Err(WireError::new(
                2,
                1,
                vec![0, 4],
                format!("unsupported BGP version {version}"),
            ));
        }
        let my_as = r.u16().ok_or_else(short)?;
        let hold_time = r.u16().ok_or_else(short)?;
        if matches!(hold_time, 1 | 2) {
            return Err(WireError::new(
                2,
                6,
                vec![],
                format!("unacceptable hold time {hold_time}"),
            ));
        }
        let router_id = Ipv4Addr::from(r.u32().ok_or_else(short)?);
        if router_id.is_unspecified() {
            return Err(WireError::new(2, 3, vec![], "BGP identifier 0.0.0.0"));
        }
        let mut opt_len = usize::from(r.u8().ok_or_else(short)?);
        let mut extended = false;
        // RFC 9072: length 255 and a first parameter type of 255 announce 2-byte lengths.
        if opt_len == 255 && r.rest().first() == Some(&255) {
            r.u8();
            opt_len = usize::from(r.u16().ok_or_else(short)?);
            extended = true;
        }
        if opt_len != r.remaining() {
            return Err(WireError::new(
                1,
                2,
                vec![],
                format!(
                    "optional parameters length {opt_len} but {} bytes",
                    r.remaining()
                ),
            ));
        }
        let mut caps = Vec::new();
        while !r.is_empty() {
            let ptype = r.u8().ok_or_else(short)?;
            let plen = if extended {
                r.u16()
            } else {
                r.u8().map(u16::from)
            }
            .ok_or_else(short)?;
            let pval = r
                .bytes(usize::from(plen))
                .ok_or_else(|| WireError::new(2, 0, vec![], "optional parameter past the end"))?;
            if ptype != 2 {
                return Err(WireError::new(
                    2,
                    4,
                    vec![],
                    format!("unsupported optional parameter {ptype}"),
                ));
            }
            let mut c = Reader::new(pval);
            while !c.is_empty() {
                let code = c.u8().ok_or_else(short)?;
                let len = c.u8().ok_or_else(short)?;
                let val = c.bytes(usize::from(len)).ok_or_else(|| {
                    WireError::new(2, 0, vec![], format!("capability {code} past the end"))
                })?;
                caps.push(Capability::decode(code, val).ok_or_else(|| {
                    WireError::new(2, 0, vec![], format!("malformed capability {code}"))
                })?);
            }
        }
        let asn = caps
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(u32::from(my_as));
        if asn == 0 {
            return Err(WireError::new(2, 2, vec![], "AS 0"));
        }
        Ok(Open {
            asn,
            hold_time,
            router_id,
            capabilities: caps,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(4);
        let my_as = u16::try_from(self.asn).unwrap_or(AS_TRANS);
        out.extend(my_as.to_be_bytes());
        out.extend(self.hold_time.to_be_bytes());
        out.extend(self.router_id.octets());
        let mut caps = Vec::new();
        for c in &self.capabilities {
            c.encode(&mut caps);
        }
        if caps.is_empty() {
            out.push(0);
        } else if caps.len() + 2 <= 255 {
            // One capabilities parameter holding them all.
            out.push((caps.len() + 2) as u8);
            out.push(2);
            out.push(caps.len() as u8);
            out.extend(caps);
        } else {
            // RFC 9072 extended format.
            out.extend([255, 255]);
            out.extend(((caps.len() + 3) as u16).to_be_bytes());
            out.push(2);
            out.extend((caps.len() as u16).to_be_bytes());
            out.extend(caps);
        }
    }

    /// The negotiated hold time: the smaller of both, 0 if either is 0.
    pub fn negotiate_hold(ours: u16, theirs: u16) -> u16 {
        if ours == 0 || theirs == 0 {
            0
        } else {
            ours.min(theirs)
        }
    }
}

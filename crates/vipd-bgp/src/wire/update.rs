//! UPDATE messages and path attributes, with RFC 7606 error handling.
//!
//! Decoding sorts every problem into one of RFC 7606's outcomes:
//! * **session reset** ([`WireError`]): the message cannot be delimited (withdrawn or
//!   attribute lengths past the end), an NLRI field cannot be parsed, or MP_REACH/UNREACH is
//!   malformed or repeated;
//! * **treat-as-withdraw** ([`UpdateError`]): an attribute that matters for the routes is
//!   malformed (ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES, LARGE_COMMUNITIES, a
//!   flags error, an attribute running past the attribute section, a missing mandatory one):
//!   the routes are taken as withdrawn and the session stays up;
//! * **attribute discard**: a malformed ATOMIC_AGGREGATE or AGGREGATOR, or a repeated
//!   attribute, is dropped with a note in [`Attrs::discarded`] and the UPDATE is accepted.
//!
//! Unknown attributes are kept verbatim in [`Attrs::unknown`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::capability::{Afi, Safi};
use super::message::{Session, WireError};
use super::open::AS_TRANS;
use super::prefix::Prefix;
use super::reader::Reader;

pub(crate) const F_OPTIONAL: u8 = 0x80;
pub(crate) const F_TRANSITIVE: u8 = 0x40;
const F_EXTENDED: u8 = 0x10;

const ORIGIN: u8 = 1;
const AS_PATH: u8 = 2;
const NEXT_HOP: u8 = 3;
const MED: u8 = 4;
const LOCAL_PREF: u8 = 5;
const ATOMIC_AGGREGATE: u8 = 6;
const AGGREGATOR: u8 = 7;
const COMMUNITIES: u8 = 8;
const MP_REACH: u8 = 14;
const MP_UNREACH: u8 = 15;
const AS4_PATH: u8 = 17;
const LARGE_COMMUNITIES: u8 = 32;
/// EXTENDED COMMUNITIES (RFC 4360): sent from [`RawAttr`] (vipd does not interpret them).
pub(crate) const EXTENDED_COMMUNITIES: u8 = 16;

/// ORIGIN values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// 0: learned from an IGP (what vipd announces: every director must send the same).
    Igp,
    /// 1.
    Egp,
    /// 2.
    Incomplete,
}

/// An AS_PATH segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AsSegment {
    /// AS_SET (1).
    Set(Vec<u32>),
    /// AS_SEQUENCE (2).
    Sequence(Vec<u32>),
    /// Confederation segments and unknown types (3, 4, ...), with their type.
    Other(u8, Vec<u32>),
}

/// MP_REACH_NLRI for IPv4/IPv6 unicast (RFC 4760, 2545).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpReach {
    /// AFI.
    pub afi: Afi,
    /// SAFI.
    pub safi: Safi,
    /// Next hop: one global address, then optionally an IPv6 link-local one.
    pub next_hops: Vec<IpAddr>,
    /// Announced prefixes.
    pub nlri: Vec<Prefix>,
}

/// MP_UNREACH_NLRI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpUnreach {
    /// AFI.
    pub afi: Afi,
    /// SAFI.
    pub safi: Safi,
    /// Withdrawn prefixes.
    pub withdrawn: Vec<Prefix>,
}

/// An attribute kept as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAttr {
    /// Flags (extended-length bit as received).
    pub flags: u8,
    /// Type code.
    pub code: u8,
    /// Value.
    pub value: Vec<u8>,
}

/// The path attributes of an UPDATE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH (empty on iBGP announcements).
    pub as_path: Vec<AsSegment>,
    /// NEXT_HOP (IPv4 NLRI).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE.
    pub atomic_aggregate: bool,
    /// AGGREGATOR (AS, address).
    pub aggregator: Option<(u32, Ipv4Addr)>,
    /// COMMUNITIES (RFC 1997).
    pub communities: Vec<u32>,
    /// LARGE_COMMUNITIES (RFC 8092).
    pub large_communities: Vec<(u32, u32, u32)>,
    /// MP_REACH_NLRI.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI.
    pub mp_unreach: Option<MpUnreach>,
    /// Attributes vipd does not interpret (AS4_PATH, extended communities, ...).
    pub unknown: Vec<RawAttr>,
    /// Attributes dropped under RFC 7606's attribute-discard rule, with why.
    pub discarded: Vec<String>,
}

/// An UPDATE message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn IPv4 prefixes.
    pub withdrawn: Vec<Prefix>,
    /// Path attributes.
    pub attrs: Attrs,
    /// Announced IPv4 prefixes.
    pub nlri: Vec<Prefix>,
}

/// An UPDATE that RFC 7606 says to treat as a withdrawal of its routes (the session stays).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateError {
    /// Every prefix the UPDATE announced or withdrew: all are now withdrawn.
    pub withdrawn: Vec<Prefix>,
    /// What was wrong.
    pub reasons: Vec<String>,
}

fn reset(subcode: u8, reason: impl Into<String>) -> WireError {
    WireError::new(3, subcode, vec![], reason)
}

impl Update {
    /// The End-of-RIB marker of a family (RFC 4724): an empty UPDATE for IPv4 unicast, an
    /// UPDATE with an empty MP_UNREACH_NLRI otherwise.
    pub fn end_of_rib(afi: Afi, safi: Safi) -> Update {
        let mut u = Update::default();
        if (afi, safi) != (Afi::Ipv4, Safi::Unicast) {
            u.attrs.mp_unreach = Some(MpUnreach {
                afi,
                safi,
                withdrawn: vec![],
            });
        }
        u
    }

    /// The family this UPDATE is the End-of-RIB of, if it is one.
    pub fn end_of_rib_family(&self) -> Option<(Afi, Safi)> {
        let a = &self.attrs;
        let bare = self.withdrawn.is_empty() && self.nlri.is_empty() && a.mp_reach.is_none();
        let only_unreach = a.origin.is_none()
            && a.as_path.is_empty()
            && a.next_hop.is_none()
            && a.unknown.is_empty();
        match &a.mp_unreach {
            None if bare && *a == Attrs::default() => Some((Afi::Ipv4, Safi::Unicast)),
            Some(u) if bare && only_unreach && u.withdrawn.is_empty() => Some((u.afi, u.safi)),
            _ => None,
        }
    }

    /// Decodes an UPDATE body. Outer error: reset the session; inner error: treat as
    /// withdraw.
    pub(crate) fn decode(
        body: &[u8],
        s: &Session,
    ) -> Result<Result<Update, UpdateError>, WireError> {
        let mut r = Reader::new(body);
        let wlen = usize::from(
            r.u16()
                .ok_or_else(|| reset(1, "UPDATE shorter than its length fields"))?,
        );
        let wbytes = r
            .bytes(wlen)
            .ok_or_else(|| reset(1, format!("withdrawn routes length {wlen} past the end")))?;
        let alen = usize::from(
            r.u16()
                .ok_or_else(|| reset(1, "no total path attribute length"))?,
        );
        let abytes = r.bytes(alen).ok_or_else(|| {
            reset(
                1,
                format!("total path attribute length {alen} past the end"),
            )
        })?;
        let withdrawn = Prefix::decode_all(wbytes, false)
            .ok_or_else(|| reset(10, "malformed withdrawn routes"))?;
        let nlri =
            Prefix::decode_all(r.rest(), false).ok_or_else(|| reset(10, "malformed NLRI"))?;
        let mut u = Update {
            withdrawn,
            attrs: Attrs::default(),
            nlri,
        };
        let mut errors = Vec::new();
        let seen = decode_attrs(abytes, s, &mut u.attrs, &mut errors)?;

        let announces = !u.nlri.is_empty()
            || u.attrs
                .mp_reach
                .as_ref()
                .is_some_and(|m| !m.nlri.is_empty());
        if announces {
            if u.attrs.origin.is_none() {
                errors.push("missing ORIGIN".into());
            }
            if !seen[usize::from(AS_PATH)] {
                errors.push("missing AS_PATH".into());
            }
            if !u.nlri.is_empty() && u.attrs.next_hop.is_none() {
                errors.push("missing NEXT_HOP".into());
            }
        }
        if errors.is_empty() {
            return Ok(Ok(u));
        }
        let mut gone = u.withdrawn.clone();
        gone.extend(&u.nlri);
        if let Some(m) = &u.attrs.mp_reach {
            gone.extend(&m.nlri);
        }
        if let Some(m) = &u.attrs.mp_unreach {
            gone.extend(&m.withdrawn);
        }
        Ok(Err(UpdateError {
            withdrawn: gone,
            reasons: errors,
        }))
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>, s: &Session) {
        let mut w = Vec::new();
        for p in &self.withdrawn {
            p.encode(&mut w);
        }
        out.extend((w.len() as u16).to_be_bytes());
        out.extend(w);
        let mut a = Vec::new();
        encode_attrs(&self.attrs, s, &mut a);
        out.extend((a.len() as u16).to_be_bytes());
        out.extend(a);
        for p in &self.nlri {
            p.encode(out);
        }
    }
}

/// Decodes the attribute section; returns which attribute types were present (an empty
/// AS_PATH, valid on iBGP, decodes to no segment but is present).
fn decode_attrs(
    buf: &[u8],
    s: &Session,
    a: &mut Attrs,
    errors: &mut Vec<String>,
) -> Result<[bool; 256], WireError> {
    let mut r = Reader::new(buf);
    let mut seen = [false; 256];
    while !r.is_empty() {
        let (Some(flags), Some(code)) = (r.u8(), r.u8()) else {
            errors.push("truncated attribute header".into());
            return Ok(seen);
        };
        let len = if flags & F_EXTENDED != 0 {
            r.u16()
        } else {
            r.u8().map(u16::from)
        };
        let Some(value) = len.and_then(|l| r.bytes(usize::from(l))) else {
            if matches!(code, MP_REACH | MP_UNREACH) {
                return Err(reset(
                    1,
                    format!("attribute {code} runs past the attribute section"),
                ));
            }
            errors.push(format!("attribute {code} runs past the attribute section"));
            return Ok(seen);
        };
        if std::mem::replace(&mut seen[usize::from(code)], true) {
            if matches!(code, MP_REACH | MP_UNREACH) {
                return Err(reset(1, format!("attribute {code} appears twice")));
            }
            a.discarded.push(format!("repeated attribute {code}"));
            continue;
        }
        decode_attr(flags, code, value, s, a, errors)?;
    }
    Ok(seen)
}

/// Expected (optional, transitive) bits of the attributes vipd interprets.
fn expected_flags(code: u8) -> Option<u8> {
    Some(match code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => F_TRANSITIVE,
        MED | MP_REACH | MP_UNREACH => F_OPTIONAL,
        AGGREGATOR | COMMUNITIES | LARGE_COMMUNITIES => F_OPTIONAL | F_TRANSITIVE,
        _ => return None,
    })
}

fn decode_attr(
    flags: u8,
    code: u8,
    v: &[u8],
    s: &Session,
    a: &mut Attrs,
    errors: &mut Vec<String>,
) -> Result<(), WireError> {
    if let Some(want) = expected_flags(code) {
        if flags & (F_OPTIONAL | F_TRANSITIVE) != want {
            if matches!(code, MP_REACH | MP_UNREACH) {
                return Err(reset(
                    4,
                    format!("attribute {code} with flags {flags:#04x}"),
                ));
            }
            if matches!(code, ATOMIC_AGGREGATE | AGGREGATOR) {
                a.discarded
                    .push(format!("attribute {code} with flags {flags:#04x}"));
            } else {
                errors.push(format!("attribute {code} with flags {flags:#04x}"));
            }
            return Ok(());
        }
    }
    let u32_of = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes);
    match code {
        ORIGIN => match v {
            [0] => a.origin = Some(Origin::Igp),
            [1] => a.origin = Some(Origin::Egp),
            [2] => a.origin = Some(Origin::Incomplete),
            _ => errors.push(format!("invalid ORIGIN {v:?}")),
        },
        AS_PATH => match decode_as_path(v, if s.four_octet_as { 4 } else { 2 }) {
            Some(p) => a.as_path = p,
            None => errors.push("malformed AS_PATH".into()),
        },
        NEXT_HOP => match u32_of(v) {
            Some(n) => a.next_hop = Some(Ipv4Addr::from(n)),
            None => errors.push(format!("NEXT_HOP of {} bytes", v.len())),
        },
        MED => match u32_of(v) {
            Some(n) => a.med = Some(n),
            None => errors.push(format!("MED of {} bytes", v.len())),
        },
        LOCAL_PREF => match u32_of(v) {
            Some(n) => a.local_pref = Some(n),
            None => errors.push(format!("LOCAL_PREF of {} bytes", v.len())),
        },
        ATOMIC_AGGREGATE if v.is_empty() => a.atomic_aggregate = true,
        ATOMIC_AGGREGATE => a
            .discarded
            .push(format!("ATOMIC_AGGREGATE of {} bytes", v.len())),
        AGGREGATOR => {
            let asn_len = if s.four_octet_as { 4 } else { 2 };
            if v.len() == asn_len + 4 {
                let asn = if asn_len == 4 {
                    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
                } else {
                    u32::from(u16::from_be_bytes([v[0], v[1]]))
                };
                let ip = Ipv4Addr::new(v[asn_len], v[asn_len + 1], v[asn_len + 2], v[asn_len + 3]);
                a.aggregator = Some((asn, ip));
            } else {
                a.discarded.push(format!("AGGREGATOR of {} bytes", v.len()));
            }
        }
        COMMUNITIES if v.len() % 4 == 0 => {
            a.communities = v
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
        }
        COMMUNITIES => errors.push(format!("COMMUNITIES of {} bytes", v.len())),
        LARGE_COMMUNITIES if v.len() % 12 == 0 && !v.is_empty() => {
            a.large_communities = v
                .chunks_exact(12)
                .map(|c| {
                    let w = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                    (w(0), w(4), w(8))
                })
                .collect();
        }
        LARGE_COMMUNITIES => errors.push(format!("LARGE_COMMUNITIES of {} bytes", v.len())),
        MP_REACH => match decode_mp_reach(v)? {
            Some(m) => a.mp_reach = Some(m),
            None => a.unknown.push(RawAttr {
                flags,
                code,
                value: v.to_vec(),
            }),
        },
        MP_UNREACH => match decode_mp_unreach(v)? {
            Some(m) => a.mp_unreach = Some(m),
            None => a.unknown.push(RawAttr {
                flags,
                code,
                value: v.to_vec(),
            }),
        },
        _ if flags & F_OPTIONAL == 0 => {
            errors.push(format!("unrecognized well-known attribute {code}"))
        }
        _ => a.unknown.push(RawAttr {
            flags,
            code,
            value: v.to_vec(),
        }),
    }
    Ok(())
}

fn decode_as_path(v: &[u8], asn_len: usize) -> Option<Vec<AsSegment>> {
    let mut r = Reader::new(v);
    let mut out = Vec::new();
    while !r.is_empty() {
        let kind = r.u8()?;
        let n = usize::from(r.u8()?);
        if n == 0 {
            return None;
        }
        let mut asns = Vec::with_capacity(n);
        for _ in 0..n {
            asns.push(if asn_len == 4 {
                r.u32()?
            } else {
                u32::from(r.u16()?)
            });
        }
        out.push(match kind {
            1 => AsSegment::Set(asns),
            2 => AsSegment::Sequence(asns),
            3 | 4 => AsSegment::Other(kind, asns),
            _ => return None,
        });
    }
    Some(out)
}

/// `Ok(None)`: a family vipd does not decode (kept raw). `Err`: malformed (reset).
fn decode_mp_reach(v: &[u8]) -> Result<Option<MpReach>, WireError> {
    let bad = |why: &str| reset(9, format!("malformed MP_REACH_NLRI: {why}"));
    let mut r = Reader::new(v);
    let afi: Afi = r.u16().ok_or_else(|| bad("truncated"))?.into();
    let safi: Safi = r.u8().ok_or_else(|| bad("truncated"))?.into();
    let nh_len = usize::from(r.u8().ok_or_else(|| bad("truncated"))?);
    let nh = r
        .bytes(nh_len)
        .ok_or_else(|| bad("next hop past the end"))?;
    r.u8().ok_or_else(|| bad("no reserved byte"))?;
    if safi != Safi::Unicast || !matches!(afi, Afi::Ipv4 | Afi::Ipv6) {
        return Ok(None);
    }
    let v6 = |b: &[u8]| {
        <[u8; 16]>::try_from(b)
            .ok()
            .map(|o| IpAddr::V6(Ipv6Addr::from(o)))
    };
    let next_hops = match (afi, nh_len) {
        (Afi::Ipv4, 4) => vec![IpAddr::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3]))],
        (_, 16) => vec![v6(nh).ok_or_else(|| bad("next hop"))?],
        (_, 32) => vec![
            v6(&nh[..16]).ok_or_else(|| bad("next hop"))?,
            v6(&nh[16..]).ok_or_else(|| bad("next hop"))?,
        ],
        (_, n) => return Err(bad(&format!("next hop of {n} bytes"))),
    };
    let nlri = Prefix::decode_all(r.rest(), afi == Afi::Ipv6).ok_or_else(|| bad("NLRI"))?;
    Ok(Some(MpReach {
        afi,
        safi,
        next_hops,
        nlri,
    }))
}

fn decode_mp_unreach(v: &[u8]) -> Result<Option<MpUnreach>, WireError> {
    let bad = |why: &str| reset(9, format!("malformed MP_UNREACH_NLRI: {why}"));
    let mut r = Reader::new(v);
    let afi: Afi = r.u16().ok_or_else(|| bad("truncated"))?.into();
    let safi: Safi = r.u8().ok_or_else(|| bad("truncated"))?.into();
    if safi != Safi::Unicast || !matches!(afi, Afi::Ipv4 | Afi::Ipv6) {
        return Ok(None);
    }
    let withdrawn =
        Prefix::decode_all(r.rest(), afi == Afi::Ipv6).ok_or_else(|| bad("withdrawn routes"))?;
    Ok(Some(MpUnreach {
        afi,
        safi,
        withdrawn,
    }))
}

fn push_attr(out: &mut Vec<u8>, flags: u8, code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.extend([flags | F_EXTENDED, code]);
        out.extend((value.len() as u16).to_be_bytes());
    } else {
        out.extend([flags & !F_EXTENDED, code, value.len() as u8]);
    }
    out.extend(value);
}

fn encode_as_path(path: &[AsSegment], four: bool) -> Vec<u8> {
    let mut v = Vec::new();
    for seg in path {
        let (kind, asns) = match seg {
            AsSegment::Set(a) => (1, a),
            AsSegment::Sequence(a) => (2, a),
            AsSegment::Other(k, a) => (*k, a),
        };
        // A segment holds at most 255 ASNs: split longer ones.
        for chunk in asns.chunks(255) {
            v.push(kind);
            v.push(chunk.len() as u8);
            for asn in chunk {
                if four {
                    v.extend(asn.to_be_bytes());
                } else {
                    v.extend(u16::try_from(*asn).unwrap_or(AS_TRANS).to_be_bytes());
                }
            }
        }
    }
    v
}

fn encode_attrs(a: &Attrs, s: &Session, out: &mut Vec<u8>) {
    if let Some(o) = a.origin {
        push_attr(
            out,
            F_TRANSITIVE,
            ORIGIN,
            &[match o {
                Origin::Igp => 0,
                Origin::Egp => 1,
                Origin::Incomplete => 2,
            }],
        );
    }
    let as_path_present = a.origin.is_some() || !a.as_path.is_empty();
    if as_path_present {
        push_attr(
            out,
            F_TRANSITIVE,
            AS_PATH,
            &encode_as_path(&a.as_path, s.four_octet_as),
        );
    }
    if let Some(nh) = a.next_hop {
        push_attr(out, F_TRANSITIVE, NEXT_HOP, &nh.octets());
    }
    if let Some(m) = a.med {
        push_attr(out, F_OPTIONAL, MED, &m.to_be_bytes());
    }
    if let Some(l) = a.local_pref {
        push_attr(out, F_TRANSITIVE, LOCAL_PREF, &l.to_be_bytes());
    }
    if a.atomic_aggregate {
        push_attr(out, F_TRANSITIVE, ATOMIC_AGGREGATE, &[]);
    }
    if let Some((asn, ip)) = a.aggregator {
        let mut v = if s.four_octet_as {
            asn.to_be_bytes().to_vec()
        } else {
            u16::try_from(asn)
                .unwrap_or(AS_TRANS)
                .to_be_bytes()
                .to_vec()
        };
        v.extend(ip.octets());
        push_attr(out, F_OPTIONAL | F_TRANSITIVE, AGGREGATOR, &v);
    }
    if !a.communities.is_empty() {
        let v: Vec<u8> = a.communities.iter().flat_map(|c| c.to_be_bytes()).collect();
        push_attr(out, F_OPTIONAL | F_TRANSITIVE, COMMUNITIES, &v);
    }
    if let Some(m) = &a.mp_reach {
        let mut v = u16::from(m.afi).to_be_bytes().to_vec();
        v.push(m.safi.into());
        let nh: Vec<u8> = m
            .next_hops
            .iter()
            .flat_map(|h| match h {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            })
            .collect();
        v.push(nh.len() as u8);
        v.extend(nh);
        v.push(0);
        for p in &m.nlri {
            p.encode(&mut v);
        }
        push_attr(out, F_OPTIONAL, MP_REACH, &v);
    }
    if let Some(m) = &a.mp_unreach {
        let mut v = u16::from(m.afi).to_be_bytes().to_vec();
        v.push(m.safi.into());
        for p in &m.withdrawn {
            p.encode(&mut v);
        }
        push_attr(out, F_OPTIONAL, MP_UNREACH, &v);
    }
    // To a speaker without 4-octet AS support, the real path travels in AS4_PATH.
    if !s.four_octet_as && a.as_path.iter().flat_map(segment_asns).any(|x| *x > 0xffff) {
        push_attr(
            out,
            F_OPTIONAL | F_TRANSITIVE,
            AS4_PATH,
            &encode_as_path(&a.as_path, true),
        );
    }
    if !a.large_communities.is_empty() {
        let v: Vec<u8> = a
            .large_communities
            .iter()
            .flat_map(|(x, y, z)| [x.to_be_bytes(), y.to_be_bytes(), z.to_be_bytes()].concat())
            .collect();
        push_attr(out, F_OPTIONAL | F_TRANSITIVE, LARGE_COMMUNITIES, &v);
    }
    for u in &a.unknown {
        push_attr(out, u.flags, u.code, &u.value);
    }
}

fn segment_asns(s: &AsSegment) -> &[u32] {
    match s {
        AsSegment::Set(a) | AsSegment::Sequence(a) | AsSegment::Other(_, a) => a,
    }
}

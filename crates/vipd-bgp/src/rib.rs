//! The routes vipd announces, and the UPDATEs that bring a peer from what it was sent to
//! what it should have. Pure: the speaker's peer tasks call [`updates`] on every change.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::update::{
    AsSegment, EXTENDED_COMMUNITIES, F_OPTIONAL, F_TRANSITIVE, MpReach, MpUnreach, RawAttr,
};
use crate::wire::{Afi, Attrs, Origin, Prefix, Safi, Update};

/// Attributes of one announced route, as the daemon chooses them. ORIGIN is always IGP and
/// there is no MED unless set: every director must send identical attributes for the routers
/// to build an ECMP route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteAttrs {
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (iBGP only; 100 when unset).
    pub local_pref: Option<u32>,
    /// Standard communities.
    pub communities: Vec<u32>,
    /// Large communities.
    pub large_communities: Vec<(u32, u32, u32)>,
    /// Extended communities (RFC 4360), as their 8 octets.
    pub extended_communities: Vec<[u8; 8]>,
    /// Extra copies of the local AS on eBGP sessions (AS-path prepending). Not applied on
    /// iBGP, where the path is empty and the peer would drop a path holding its own AS.
    pub prepend: u8,
}

/// The routes to announce to every peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rib {
    /// Prefix -> attributes.
    pub routes: BTreeMap<Prefix, RouteAttrs>,
    /// The daemon finished its first health pass: End-of-RIB may be sent (graceful restart:
    /// an early End-of-RIB would make routers drop routes not yet re-announced).
    pub initial_complete: bool,
}

/// What a peer session needs to build UPDATEs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCtx {
    /// Our AS.
    pub local_as: u32,
    /// The peer is in another AS.
    pub ebgp: bool,
    /// NEXT_HOP of IPv4 routes.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop of IPv6 routes.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Families negotiated.
    pub families: Vec<(Afi, Safi)>,
}

/// Prefixes per UPDATE, so that a message stays under 4096 bytes with room for attributes:
/// IPv4 prefixes take at most 5 bytes, IPv6 ones 17, and attributes stay under 600.
const V4_PER_UPDATE: usize = 600;
const V6_PER_UPDATE: usize = 200;

/// UPDATEs that turn `sent` into `want` for a peer: withdrawals first, then announcements
/// grouped by identical attributes (one UPDATE carries many prefixes). Prefixes of families
/// not negotiated are skipped.
pub fn updates(
    sent: &BTreeMap<Prefix, RouteAttrs>,
    want: &BTreeMap<Prefix, RouteAttrs>,
    ctx: &PeerCtx,
) -> Vec<Update> {
    let allowed = |p: &Prefix| {
        ctx.families.contains(&(
            if p.is_ipv4() { Afi::Ipv4 } else { Afi::Ipv6 },
            Safi::Unicast,
        ))
    };
    let mut out = Vec::new();
    let gone: Vec<Prefix> = sent
        .keys()
        .filter(|p| !want.contains_key(p) && allowed(p))
        .copied()
        .collect();
    let (gone4, gone6): (Vec<Prefix>, Vec<Prefix>) = gone.into_iter().partition(Prefix::is_ipv4);
    for chunk in gone4.chunks(V4_PER_UPDATE) {
        out.push(Update {
            withdrawn: chunk.to_vec(),
            ..Update::default()
        });
    }
    for chunk in gone6.chunks(V6_PER_UPDATE) {
        let mut u = Update::default();
        u.attrs.mp_unreach = Some(MpUnreach {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
            withdrawn: chunk.to_vec(),
        });
        out.push(u);
    }
    let mut groups: BTreeMap<&RouteAttrs, (Vec<Prefix>, Vec<Prefix>)> = BTreeMap::new();
    for (p, a) in want
        .iter()
        .filter(|(p, a)| allowed(p) && sent.get(p) != Some(a))
    {
        let g = groups.entry(a).or_default();
        if p.is_ipv4() {
            g.0.push(*p)
        } else {
            g.1.push(*p)
        }
    }
    for (attrs, (v4, v6)) in groups {
        if let Some(nh) = ctx.next_hop_v4 {
            for chunk in v4.chunks(V4_PER_UPDATE) {
                let mut a = base_attrs(attrs, ctx);
                a.next_hop = Some(nh);
                out.push(Update {
                    withdrawn: vec![],
                    attrs: a,
                    nlri: chunk.to_vec(),
                });
            }
        }
        if let Some(nh) = ctx.next_hop_v6 {
            for chunk in v6.chunks(V6_PER_UPDATE) {
                let mut a = base_attrs(attrs, ctx);
                a.mp_reach = Some(MpReach {
                    afi: Afi::Ipv6,
                    safi: Safi::Unicast,
                    next_hops: vec![IpAddr::V6(nh)],
                    nlri: chunk.to_vec(),
                });
                out.push(Update {
                    withdrawn: vec![],
                    attrs: a,
                    nlri: vec![],
                });
            }
        }
    }
    out
}

fn base_attrs(r: &RouteAttrs, ctx: &PeerCtx) -> Attrs {
    Attrs {
        origin: Some(Origin::Igp),
        as_path: if ctx.ebgp {
            vec![AsSegment::Sequence(vec![
                ctx.local_as;
                1 + usize::from(r.prepend)
            ])]
        } else {
            vec![]
        },
        med: r.med,
        local_pref: if ctx.ebgp {
            None
        } else {
            Some(r.local_pref.unwrap_or(100))
        },
        communities: r.communities.clone(),
        large_communities: r.large_communities.clone(),
        unknown: if r.extended_communities.is_empty() {
            Vec::new()
        } else {
            vec![RawAttr {
                flags: F_OPTIONAL | F_TRANSITIVE,
                code: EXTENDED_COMMUNITIES,
                value: r.extended_communities.concat(),
            }]
        },
        ..Attrs::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Message, Session};

    fn ctx(ebgp: bool) -> PeerCtx {
        PeerCtx {
            local_as: 4_200_000_001,
            ebgp,
            next_hop_v4: Some(Ipv4Addr::new(192, 0, 2, 10)),
            next_hop_v6: Some("2001:db8::a".parse().unwrap()),
            families: vec![(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)],
        }
    }

    fn host(s: &str) -> Prefix {
        Prefix::host(s.parse().unwrap())
    }

    #[test]
    fn equal_attributes_share_an_update_and_fit_4096_bytes() {
        let mut want = BTreeMap::new();
        for i in 0..10_000u32 {
            want.insert(
                Prefix::host(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))),
                RouteAttrs::default(),
            );
        }
        let u = updates(&BTreeMap::new(), &want, &ctx(true));
        assert_eq!(u.len(), 10_000usize.div_ceil(V4_PER_UPDATE));
        let s = Session {
            four_octet_as: true,
            extended_message: false,
        };
        for x in &u {
            assert!(
                Message::Update(Box::new(x.clone())).encode(&s).is_ok(),
                "fits in 4096 bytes"
            );
        }
    }

    #[test]
    fn diff_is_idempotent_and_minimal() {
        let mut want = BTreeMap::new();
        want.insert(host("198.51.100.1"), RouteAttrs::default());
        want.insert(
            host("2001:db8::1"),
            RouteAttrs {
                med: Some(10),
                ..RouteAttrs::default()
            },
        );
        let u = updates(&BTreeMap::new(), &want, &ctx(false));
        assert_eq!(u.len(), 2);
        assert!(
            updates(&want, &want, &ctx(false)).is_empty(),
            "nothing to send twice"
        );
        let mut less = want.clone();
        less.remove(&host("2001:db8::1"));
        let w = updates(&want, &less, &ctx(false));
        assert_eq!(w.len(), 1);
        assert_eq!(
            w[0].attrs.mp_unreach.as_ref().unwrap().withdrawn,
            vec![host("2001:db8::1")]
        );
    }

    #[test]
    fn ebgp_prepends_our_as_and_ibgp_sets_local_pref() {
        let mut want = BTreeMap::new();
        want.insert(host("198.51.100.1"), RouteAttrs::default());
        let e = &updates(&BTreeMap::new(), &want, &ctx(true))[0];
        assert_eq!(
            e.attrs.as_path,
            vec![AsSegment::Sequence(vec![4_200_000_001])]
        );
        assert_eq!(
            (e.attrs.local_pref, e.attrs.origin, e.attrs.med),
            (None, Some(Origin::Igp), None)
        );
        let i = &updates(&BTreeMap::new(), &want, &ctx(false))[0];
        assert!(i.attrs.as_path.is_empty());
        assert_eq!(i.attrs.local_pref, Some(100));
    }

    /// Prepends on eBGP only; extended communities go out as attribute 16, and the encoded
    /// UPDATE decodes back to them (a peer sees what was configured).
    #[test]
    fn prepends_and_extended_communities() {
        let mut want = BTreeMap::new();
        let rt = [0x00, 0x02, 0xFD, 0xE8, 0, 0, 0, 100];
        want.insert(
            host("198.51.100.1"),
            RouteAttrs {
                prepend: 2,
                extended_communities: vec![rt],
                ..RouteAttrs::default()
            },
        );
        let e = &updates(&BTreeMap::new(), &want, &ctx(true))[0];
        assert_eq!(
            e.attrs.as_path,
            vec![AsSegment::Sequence(vec![4_200_000_001; 3])]
        );
        let i = &updates(&BTreeMap::new(), &want, &ctx(false))[0];
        assert!(i.attrs.as_path.is_empty(), "no prepend on iBGP");
        let s = Session {
            four_octet_as: true,
            ..Session::default()
        };
        let bytes = Message::Update(Box::new(e.clone()))
            .encode(&s)
            .expect("encode");
        let crate::wire::Decoded::Message(Message::Update(back)) =
            Message::decode(&bytes, &s).expect("decode")
        else {
            panic!("not a well-formed UPDATE");
        };
        let ext: Vec<_> = back.attrs.unknown.iter().filter(|u| u.code == 16).collect();
        assert_eq!(ext.len(), 1);
        assert_eq!(
            (ext[0].flags & 0xC0, ext[0].value.as_slice()),
            (0xC0, &rt[..])
        );
    }

    #[test]
    fn families_not_negotiated_are_skipped() {
        let mut c = ctx(true);
        c.families = vec![(Afi::Ipv6, Safi::Unicast)];
        let mut want = BTreeMap::new();
        want.insert(host("198.51.100.1"), RouteAttrs::default());
        assert!(updates(&BTreeMap::new(), &want, &c).is_empty());
    }
}

//! Differential tests against an independent BGP implementation, netgauze-bgp-pkt (pinned).
//!
//! One cycle covers both directions: a generated message is encoded by vipd; netgauze must
//! parse it (and see the same prefixes and attributes); netgauze re-encodes it, and the bytes
//! must be vipd's exactly; vipd decodes netgauze's bytes back to the original message.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::path_attribute::PathAttributeValue;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;
use proptest::prelude::*;
use vipd_bgp::wire::update::{AsSegment, MpReach};
use vipd_bgp::wire::{
    Afi, Attrs, Capability, GrFamily, Message, Open, Origin, Prefix, Safi, Session, Update,
};

const S: Session = Session {
    four_octet_as: true,
    extended_message: false,
};

/// vipd bytes -> netgauze message -> netgauze bytes (must equal) -> vipd message (must equal).
fn cycle(m: &Message) -> BgpMessage {
    let ours = m.encode(&S).expect("vipd encodes");
    let mut ctx = BgpParsingContext::default(); // 4-octet ASNs, strict
    let theirs = BgpMessage::parse(&mut SliceReader::new(&ours), &mut ctx)
        .unwrap_or_else(|e| panic!("netgauze rejects vipd's bytes: {e:?}\n{m:?}"));
    let mut buf = Vec::new();
    theirs
        .write(&mut Cursor::new(&mut buf))
        .expect("netgauze encodes");
    assert_eq!(buf, ours, "netgauze re-encodes differently: {theirs:?}");
    match Message::decode(&buf, &S).expect("vipd decodes netgauze's bytes") {
        vipd_bgp::wire::Decoded::Message(back) => assert_eq!(&back, m),
        other => panic!("{other:?}"),
    }
    theirs
}

fn update(
    v4: &[(u32, u8)],
    v6: &[(u128, u8)],
    path: &[u32],
    comms: &[u32],
    large: &[(u32, u32, u32)],
    med: Option<u32>,
    lp: Option<u32>,
) -> Update {
    let mut u = Update {
        nlri: v4
            .iter()
            .map(|(a, l)| Prefix::new(IpAddr::V4(Ipv4Addr::from(*a)), *l).expect("v4"))
            .collect(),
        ..Update::default()
    };
    u.attrs = Attrs {
        origin: Some(Origin::Igp),
        as_path: if path.is_empty() {
            vec![]
        } else {
            vec![AsSegment::Sequence(path.to_vec())]
        },
        next_hop: (!v4.is_empty()).then(|| Ipv4Addr::new(192, 0, 2, 10)),
        med,
        local_pref: lp,
        communities: comms.to_vec(),
        large_communities: large.to_vec(),
        mp_reach: (!v6.is_empty()).then(|| MpReach {
            afi: Afi::Ipv6,
            safi: Safi::Unicast,
            next_hops: vec![IpAddr::V6("2001:db8::c000:20a".parse().expect("nh"))],
            nlri: v6
                .iter()
                .map(|(a, l)| Prefix::new(IpAddr::V6(Ipv6Addr::from(*a)), *l).expect("v6"))
                .collect(),
        }),
        ..Attrs::default()
    };
    u
}

#[test]
fn keepalive_open_notification_route_refresh() {
    cycle(&Message::Keepalive);
    cycle(&Message::Open(Open {
        asn: 4_200_000_001,
        hold_time: 9,
        router_id: Ipv4Addr::new(192, 0, 2, 10),
        capabilities: vec![
            Capability::Multiprotocol(Afi::Ipv4, Safi::Unicast),
            Capability::Multiprotocol(Afi::Ipv6, Safi::Unicast),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::GracefulRestart {
                restarting: true,
                notification: false,
                time: 120,
                families: vec![
                    GrFamily {
                        afi: Afi::Ipv4,
                        safi: Safi::Unicast,
                        forwarding: true,
                    },
                    GrFamily {
                        afi: Afi::Ipv6,
                        safi: Safi::Unicast,
                        forwarding: true,
                    },
                ],
            },
            Capability::FourOctetAs(4_200_000_001),
        ],
    }));
    cycle(&Message::Notification(
        vipd_bgp::wire::Notification::shutdown("drained"),
    ));
}

#[test]
fn end_of_rib_is_recognised_by_netgauze() {
    for (afi, safi) in [(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)] {
        match cycle(&Message::Update(Box::new(Update::end_of_rib(afi, safi)))) {
            BgpMessage::Update(u) => assert!(u.end_of_rib().is_some(), "{u:?}"),
            other => panic!("{other:?}"),
        }
    }
}

proptest! {
    #[test]
    fn updates_agree_with_netgauze(
        // Unicast networks only: netgauze refuses multicast ones in unicast NLRI (a policy
        // check, not an encoding one; vipd announces only its own unicast VIPs).
        v4 in prop::collection::vec((0u32..0xe000_0000, 0u8..=32), 0..30),
        v6 in prop::collection::vec((0u128..(0xff_u128 << 120), 0u8..=128), 0..30),
        path in prop::collection::vec(1u32.., 0..20),
        comms in prop::collection::vec(any::<u32>(), 0..8),
        large in prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>()), 0..8),
        med in proptest::option::of(any::<u32>()),
        lp in proptest::option::of(any::<u32>()),
    ) {
        let u = update(&v4, &v6, &path, &comms, &large, med, lp);
        let BgpMessage::Update(theirs) = cycle(&Message::Update(Box::new(u.clone()))) else { panic!("not an UPDATE") };
        // Semantics, not just bytes: netgauze sees the same routes and attributes.
        let nlri: Vec<String> = theirs.nlri().iter().map(|n| n.network().address().to_string()).collect();
        prop_assert_eq!(nlri, u.nlri.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        for a in theirs.path_attributes() {
            match a.value() {
                PathAttributeValue::Communities(c) => prop_assert_eq!(c.communities().len(), comms.len()),
                PathAttributeValue::LargeCommunities(c) => prop_assert_eq!(c.communities().len(), large.len()),
                PathAttributeValue::MultiExitDiscriminator(m) => prop_assert_eq!(Some(m.metric()), med),
                PathAttributeValue::LocalPreference(l) => prop_assert_eq!(Some(l.metric()), lp),
                _ => {}
            }
        }
    }
}

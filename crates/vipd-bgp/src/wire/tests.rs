//! Codec tests: round trips, RFC 7606 outcomes, and inputs that must never panic.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::message::Decoded;
use super::update::{AsSegment, MpReach, UpdateError};
use super::*;

const FOUR: Session = Session {
    four_octet_as: true,
    extended_message: false,
};

fn roundtrip(m: &Message, s: &Session) -> Vec<u8> {
    let bytes = m.encode(s).expect("encode");
    match Message::decode(&bytes, s).expect("decode") {
        Decoded::Message(back) => assert_eq!(&back, m),
        Decoded::Update(e) => panic!("treat-as-withdraw: {e:?}"),
    }
    bytes
}

fn p(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').expect("prefix");
    Prefix::new(a.parse().expect("addr"), l.parse().expect("len")).expect("valid")
}

fn announce() -> Update {
    Update {
        withdrawn: vec![],
        attrs: Attrs {
            origin: Some(Origin::Igp),
            as_path: vec![AsSegment::Sequence(vec![4_200_000_001])],
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 10)),
            med: Some(10),
            communities: vec![0xFFFF_0000, (65000 << 16) | 80],
            large_communities: vec![(4_200_000_001, 1, 443)],
            ..Attrs::default()
        },
        nlri: vec![p("198.51.100.1/32"), p("198.51.100.20/32")],
    }
}

#[test]
fn keepalive_is_19_bytes() {
    let b = roundtrip(&Message::Keepalive, &Session::default());
    assert_eq!(b.len(), 19);
    assert_eq!(&b[16..], &[0, 19, 4]);
}

#[test]
fn open_with_capabilities_round_trips_and_uses_as_trans() {
    let o = Open {
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
                families: vec![GrFamily {
                    afi: Afi::Ipv6,
                    safi: Safi::Unicast,
                    forwarding: true,
                }],
            },
            Capability::FourOctetAs(4_200_000_001),
            Capability::Other {
                code: 73,
                value: b"lb1".to_vec(),
            },
        ],
    };
    let b = roundtrip(&Message::Open(o), &Session::default());
    assert_eq!(
        u16::from_be_bytes([b[20], b[21]]),
        AS_TRANS,
        "my AS field of a 4-octet AS"
    );
}

#[test]
fn open_errors_map_to_notifications() {
    let mut o = Message::Open(Open {
        asn: 65000,
        hold_time: 90,
        router_id: Ipv4Addr::new(1, 2, 3, 4),
        capabilities: vec![],
    })
    .encode(&Session::default())
    .unwrap();
    o[19] = 3; // version
    let e = Message::decode(&o, &Session::default()).unwrap_err();
    assert_eq!((e.code, e.subcode, e.data.clone()), (2, 1, vec![0, 4]));
    o[19] = 4;
    o[22..24].copy_from_slice(&2u16.to_be_bytes()); // hold time 2
    assert_eq!(
        Message::decode(&o, &Session::default())
            .unwrap_err()
            .subcode,
        6
    );
}

#[test]
fn header_errors() {
    let mut k = Message::Keepalive.encode(&Session::default()).unwrap();
    k[0] = 0;
    assert_eq!(
        Message::decode(&k, &Session::default())
            .unwrap_err()
            .subcode,
        1
    );
    let mut k = Message::Keepalive.encode(&Session::default()).unwrap();
    k[18] = 9;
    let e = Message::decode(&k, &Session::default()).unwrap_err();
    assert_eq!((e.code, e.subcode, e.data), (1, 3, vec![9]));
    let mut big = vec![0xff; 16];
    big.extend(5000u16.to_be_bytes());
    big.push(2);
    assert_eq!(
        Message::frame_len(&big, &Session::default())
            .unwrap_err()
            .subcode,
        2
    );
    let ext = Session {
        extended_message: true,
        ..Session::default()
    };
    assert_eq!(Message::frame_len(&big, &ext).unwrap(), Some(5000));
}

#[test]
fn ipv4_update_with_every_attribute_round_trips() {
    roundtrip(&Message::Update(Box::new(announce())), &FOUR);
    // Two-octet sessions: AS_TRANS in AS_PATH and the real path in AS4_PATH.
    let two = Session::default();
    let b = Message::Update(Box::new(announce())).encode(&two).unwrap();
    let Decoded::Message(Message::Update(u)) = Message::decode(&b, &two).unwrap() else {
        panic!()
    };
    assert_eq!(
        u.attrs.as_path,
        vec![AsSegment::Sequence(vec![u32::from(AS_TRANS)])]
    );
    assert!(
        u.attrs.unknown.iter().any(|a| a.code == 17),
        "AS4_PATH carried"
    );
}

#[test]
fn ipv6_update_with_global_and_link_local_next_hop() {
    let mut u = Update::default();
    u.attrs.origin = Some(Origin::Igp);
    u.attrs.mp_reach = Some(MpReach {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        next_hops: vec![
            "2001:db8::c000:20a".parse().unwrap(),
            "fe80::1".parse().unwrap(),
        ],
        nlri: vec![p("2001:db8::c633:6401/128")],
    });
    roundtrip(&Message::Update(Box::new(u)), &FOUR);
}

#[test]
fn end_of_rib_markers() {
    for (afi, safi) in [(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)] {
        let u = Update::end_of_rib(afi, safi);
        let b = roundtrip(&Message::Update(Box::new(u.clone())), &FOUR);
        assert_eq!(u.end_of_rib_family(), Some((afi, safi)));
        if afi == Afi::Ipv4 {
            assert_eq!(b.len(), 23, "an empty UPDATE");
        }
    }
    assert_eq!(announce().end_of_rib_family(), None);
}

#[test]
fn notification_shutdown_communication() {
    let n = Notification::shutdown("maintenance: drained by /etc/lb/disable");
    let b = roundtrip(&Message::Notification(n.clone()), &FOUR);
    assert_eq!(b[19..21], [6, 2]);
    assert_eq!(
        n.to_string(),
        "Cease / Administrative Shutdown (6/2): \"maintenance: drained by /etc/lb/disable\""
    );
    let long = "é".repeat(200);
    let n = Notification::shutdown(&long);
    assert!(
        n.data[0] as usize <= 255 && n.shutdown_reason().is_some(),
        "truncated on a char boundary"
    );
    assert_eq!(
        Notification {
            code: 4,
            subcode: 0,
            data: vec![]
        }
        .to_string(),
        "Hold Timer Expired / - (4/0)"
    );
}

#[test]
fn route_refresh() {
    let r = RouteRefresh {
        afi: Afi::Ipv6,
        subtype: RouteRefreshSubtype::Begin,
        safi: Safi::Unicast,
    };
    roundtrip(&Message::RouteRefresh(r), &FOUR);
    let mut b = Message::RouteRefresh(r).encode(&FOUR).unwrap();
    b.push(0);
    b[17] += 1;
    assert_eq!(
        Message::decode(&b, &FOUR).unwrap_err().code,
        7,
        "RFC 7313: wrong length"
    );
}

/// An UPDATE with a hand-built attribute section.
fn update_with_attrs(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend((attrs.len() as u16).to_be_bytes());
    body.extend(attrs);
    body.extend(nlri);
    let mut m = vec![0xff; 16];
    m.extend(((19 + body.len()) as u16).to_be_bytes());
    m.push(2);
    m.extend(body);
    m
}

const GOOD: &[u8] = &[0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 192, 0, 2, 1];
const NLRI: &[u8] = &[32, 198, 51, 100, 1];

fn outcome(attrs: &[u8], nlri: &[u8]) -> Result<Decoded, WireError> {
    Message::decode(&update_with_attrs(attrs, nlri), &FOUR)
}

fn treat_as_withdraw(attrs: &[u8]) -> UpdateError {
    match outcome(attrs, NLRI) {
        Ok(Decoded::Update(e)) => {
            assert_eq!(e.withdrawn, vec![p("198.51.100.1/32")]);
            e
        }
        other => panic!("expected treat-as-withdraw, got {other:?}"),
    }
}

#[test]
fn rfc7606_treat_as_withdraw() {
    let with = |extra: &[u8]| [GOOD, extra].concat();
    assert!(matches!(outcome(GOOD, NLRI), Ok(Decoded::Message(_))));
    let e = treat_as_withdraw(&[&[0x40, 1, 1, 7][..], &GOOD[4..]].concat());
    assert!(e.reasons[0].contains("ORIGIN"), "{e:?}");
    treat_as_withdraw(&with(&[0xc0, 8, 3, 1, 2, 3])); // COMMUNITIES not a multiple of 4
    treat_as_withdraw(&with(&[0xc0, 32, 4, 0, 0, 0, 1])); // LARGE_COMMUNITIES of 4 bytes
    treat_as_withdraw(&with(&[0x80, 4, 2, 0, 1])); // MED of 2 bytes
    treat_as_withdraw(&with(&[0x80, 1, 1, 0])[4..]); // ORIGIN flagged optional (and first one cut)
    treat_as_withdraw(&[&GOOD[..11], &[0, 0]].concat()); // NEXT_HOP length 4 but 2 bytes left
    treat_as_withdraw(&GOOD[..7]); // no NEXT_HOP for IPv4 NLRI
    treat_as_withdraw(&with(&[0x40, 99, 0])); // unrecognized well-known attribute
}

#[test]
fn rfc7606_attribute_discard_keeps_the_update() {
    let with = |extra: &[u8]| [GOOD, extra].concat();
    for bad in [
        &[0xc0, 7, 3, 1, 2, 3][..],
        &[0x40, 6, 1, 0][..],
        &[0x80, 4, 4, 0, 0, 0, 1, 0x80, 4, 4, 0, 0, 0, 2][..],
    ] {
        match outcome(&with(bad), NLRI) {
            Ok(Decoded::Message(Message::Update(u))) => {
                assert!(!u.attrs.discarded.is_empty(), "{u:?}")
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // Unknown optional attributes are kept verbatim.
    let Ok(Decoded::Message(Message::Update(u))) = outcome(&with(&[0xc0, 99, 2, 7, 7]), NLRI)
    else {
        panic!()
    };
    assert_eq!(u.attrs.unknown[0].value, vec![7, 7]);
}

#[test]
fn rfc7606_session_reset() {
    // Withdrawn routes length past the end.
    let mut m = update_with_attrs(GOOD, NLRI);
    m[19..21].copy_from_slice(&500u16.to_be_bytes());
    assert_eq!(Message::decode(&m, &FOUR).unwrap_err().subcode, 1);
    // NLRI that cannot be parsed.
    assert_eq!(outcome(GOOD, &[33, 1, 2, 3, 4, 5]).unwrap_err().subcode, 10);
    assert_eq!(outcome(GOOD, &[24, 1]).unwrap_err().subcode, 10);
    // Malformed or repeated MP_REACH_NLRI.
    let mp = [0x80, 14, 5, 0, 2, 1, 16, 0];
    assert_eq!(outcome(&mp, &[]).unwrap_err().code, 3);
    let ok_unreach = [0x80, 15, 3, 0, 2, 1];
    assert!(outcome(&ok_unreach, &[]).is_ok());
    assert!(outcome(&[ok_unreach, ok_unreach].concat(), &[]).is_err());
}

proptest! {
    /// Whatever a peer sends, decoding returns; it never panics.
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..600), kind in 0u8..8, four in any::<bool>()) {
        let s = Session { four_octet_as: four, extended_message: false };
        let mut m = vec![0xff; 16];
        m.extend(((19 + body.len()) as u16).to_be_bytes());
        m.push(kind);
        m.extend(&body);
        let _ = Message::decode(&m, &s);
        let _ = Message::decode(&body, &s);
        let _ = Message::frame_len(&body, &s);
    }

    /// Structured garbage: a valid UPDATE frame around random attributes.
    #[test]
    fn random_attributes_never_panic(attrs in prop::collection::vec(any::<u8>(), 0..300), nlri in prop::collection::vec(any::<u8>(), 0..40)) {
        let _ = outcome(&attrs, &nlri);
    }

    /// Generated UPDATEs survive encode -> decode.
    #[test]
    fn generated_updates_round_trip(
        v4 in prop::collection::vec((any::<u32>(), 0u8..=32), 0..20),
        v6 in prop::collection::vec((any::<u128>(), 0u8..=128), 0..20),
        path in prop::collection::vec(1u32.., 0..300),
        comms in prop::collection::vec(any::<u32>(), 0..10),
        large in prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>()), 0..10),
        med in proptest::option::of(any::<u32>()),
        lp in proptest::option::of(any::<u32>()),
    ) {
        let mut u = Update {
            nlri: v4.iter().map(|(a, l)| Prefix::new(IpAddr::from(Ipv4Addr::from(*a)), *l).unwrap()).collect(),
            ..Update::default()
        };
        u.attrs.origin = Some(Origin::Igp);
        u.attrs.as_path = if path.is_empty() { vec![] } else { vec![AsSegment::Sequence(path.clone())] };
        u.attrs.next_hop = (!u.nlri.is_empty()).then(|| Ipv4Addr::new(192, 0, 2, 1));
        u.attrs.med = med;
        u.attrs.local_pref = lp;
        u.attrs.communities = comms;
        u.attrs.large_communities = large;
        if !v6.is_empty() {
            u.attrs.mp_reach = Some(MpReach {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
                next_hops: vec!["2001:db8::1".parse().unwrap()],
                nlri: v6.iter().map(|(a, l)| Prefix::new(IpAddr::from(std::net::Ipv6Addr::from(*a)), *l).unwrap()).collect(),
            });
        }
        let s = Session { four_octet_as: true, extended_message: true };
        let b = Message::Update(Box::new(u.clone())).encode(&s).unwrap();
        // Long paths split into segments of 255: compare the flattened path.
        let Decoded::Message(Message::Update(back)) = Message::decode(&b, &s).unwrap() else { panic!() };
        let flat = |p: &[AsSegment]| p.iter().flat_map(|s| match s { AsSegment::Sequence(a) => a.clone(), _ => vec![] }).collect::<Vec<_>>();
        prop_assert_eq!(flat(&back.attrs.as_path), path);
        let mut back = back;
        back.attrs.as_path = u.attrs.as_path.clone();
        prop_assert_eq!(*back, u);
    }
}

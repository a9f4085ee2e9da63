//! A hostile peer on a raw socket: after a normal handshake it sends malformed UPDATEs and
//! messages. The speaker must never crash, keep the session where RFC 7606 says
//! treat-as-withdraw, and answer with the right NOTIFICATION (then reconnect) where it says
//! reset.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

use vipd_bgp::fsm::{Config, State};
use vipd_bgp::speaker::{PeerConfig, Speaker};
use vipd_bgp::wire::{Afi, Capability, Decoded, Message, Open, Safi, Session};

fn read_msg(s: &mut TcpStream) -> Message {
    let mut hdr = [0u8; 19];
    s.read_exact(&mut hdr).expect("header");
    let len = usize::from(u16::from_be_bytes([hdr[16], hdr[17]]));
    let mut body = vec![0u8; len - 19];
    s.read_exact(&mut body).expect("body");
    let whole = [&hdr[..], &body].concat();
    match Message::decode(
        &whole,
        &Session {
            four_octet_as: true,
            extended_message: false,
        },
    )
    .expect("speaker sends valid messages")
    {
        Decoded::Message(m) => m,
        Decoded::Update(e) => panic!("{e:?}"),
    }
}

/// Accepts the speaker's connection and completes the handshake.
fn handshake(l: &TcpListener) -> TcpStream {
    let (mut s, _) = l.accept().expect("accept");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert!(matches!(read_msg(&mut s), Message::Open(_)));
    let open = Message::Open(Open {
        asn: 65010,
        hold_time: 30,
        router_id: Ipv4Addr::new(10, 9, 9, 9),
        capabilities: vec![
            Capability::Multiprotocol(Afi::Ipv4, Safi::Unicast),
            Capability::FourOctetAs(65010),
        ],
    });
    s.write_all(&open.encode(&Session::default()).expect("open"))
        .expect("send");
    s.write_all(&Message::Keepalive.encode(&Session::default()).expect("ka"))
        .expect("send");
    assert!(matches!(read_msg(&mut s), Message::Keepalive));
    // The initial routes, up to End-of-RIB: later reads only see answers to our probes.
    loop {
        if let Message::Update(u) = read_msg(&mut s) {
            if u.end_of_rib_family().is_some() {
                return s;
            }
        }
    }
}

fn update_frame(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
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

/// Sends `frame`, then expects either nothing (session kept) or a NOTIFICATION with `code`.
fn expect_after(s: &mut TcpStream, frame: &[u8], notification: Option<(u8, u8)>) {
    s.write_all(frame).expect("send");
    match notification {
        None => {
            // Still up: a ROUTE-REFRESH gets our route again, not a NOTIFICATION (answers
            // are rate-limited: this one may wait for the end of the previous hold-down).
            s.write_all(&[&[0xff; 16][..], &[0, 23, 5, 0, 1, 0, 1]].concat())
                .expect("rr");
            s.set_read_timeout(Some(
                vipd_bgp::fsm::REFRESH_INTERVAL + Duration::from_secs(2),
            ))
            .expect("timeout");
            loop {
                match read_msg(s) {
                    Message::Update(u) => {
                        assert_eq!(u.nlri.len(), 1, "the route, resent: {u:?}");
                        break;
                    }
                    Message::Keepalive => continue,
                    m => panic!("expected the route resent after the probe, got {m:?}"),
                }
            }
        }
        Some((code, sub)) => loop {
            match read_msg(s) {
                Message::Notification(n) => {
                    assert_eq!((n.code, n.subcode), (code, sub), "{n}");
                    break;
                }
                Message::Keepalive | Message::Update(_) => continue,
                m => panic!("unexpected {m:?}"),
            }
        },
    }
}

#[tokio::test(flavor = "current_thread")]
async fn malformed_input_never_crashes_and_gets_rfc7606_treatment() {
    let l = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = l.local_addr().expect("addr").port();
    let peer = std::thread::spawn(move || {
        let mut s = handshake(&l);
        let good = [0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 10, 0, 0, 1];
        let nlri = [32, 198, 51, 100, 9];
        // Treat-as-withdraw: the session stays.
        expect_after(
            &mut s,
            &update_frame(&[&[0x40, 1, 1, 9][..], &good[4..]].concat(), &nlri),
            None,
        ); // bad ORIGIN
        expect_after(
            &mut s,
            &update_frame(&[&good[..], &[0xc0, 8, 3, 1, 2, 3]].concat(), &nlri),
            None,
        ); // COMMUNITIES of 3 bytes
        expect_after(
            &mut s,
            &update_frame(&[&good[..], &[0xc0, 32, 5, 1, 2, 3, 4, 5]].concat(), &nlri),
            None,
        ); // LARGE_COMMUNITIES of 5
        expect_after(
            &mut s,
            &update_frame(&[&good[..], &[0x40, 5, 200, 1]].concat(), &nlri),
            None,
        ); // length past the section
        // Reset: an NLRI that cannot be parsed.
        expect_after(
            &mut s,
            &update_frame(&good, &[40, 1, 2, 3, 4, 5]),
            Some((3, 10)),
        );
        // The speaker reconnects; then an oversized message (no extended-message capability).
        let mut s = handshake(&l);
        let mut big = vec![0xff; 16];
        big.extend(5000u16.to_be_bytes());
        big.push(2);
        big.extend(vec![0u8; 4981]);
        expect_after(&mut s, &big, Some((1, 2)));
        // And a truncated attribute header at the very end of the section.
        let mut s = handshake(&l);
        expect_after(
            &mut s,
            &update_frame(&[&good[..], &[0x40]].concat(), &nlri),
            None,
        );
        // A bad marker: connection not synchronized.
        let mut bad = Message::Keepalive.encode(&Session::default()).expect("ka");
        bad[3] = 0;
        expect_after(&mut s, &bad, Some((1, 1)));
        handshake(&l)
    });
    let base = common::neighbor(
        &format!("127.0.0.1:{port}"),
        "127.0.0.1",
        65000,
        65010,
        common::V4,
    );
    let speaker = Speaker::start(vec![PeerConfig {
        description: None,
        local_addr: None,
        next_hop_v4: Some(Ipv4Addr::LOCALHOST),
        fsm: Config {
            hold_time: 30,
            connect_retry: Duration::from_millis(200),
            ..base.fsm.clone()
        },
        ..base
    }]);
    // A route to resend: the hostile peer's ROUTE-REFRESH probes that the session is up.
    speaker.announce(
        vipd_bgp::wire::Prefix::host("198.51.100.1".parse().expect("ip")),
        Default::default(),
    );
    speaker.initial_complete();
    let _last =
        tokio::task::spawn_blocking(move || peer.join().expect("the hostile peer's script passed"))
            .await
            .expect("join");
    // Still alive and established after all of it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while speaker.status()[0].1.state != State::Established
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = speaker.status()[0].1.clone();
    assert_eq!(st.state, State::Established, "{st:?}");
    assert!(
        st.last_error
            .unwrap_or_default()
            .contains("malformed message"),
        "the last reset names its cause"
    );
    speaker.shutdown("test done").await;
}

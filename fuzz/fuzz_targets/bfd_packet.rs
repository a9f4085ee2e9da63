//! Any datagram on the BFD ports: decoded or refused, never a panic; what decodes encodes
//! back to itself; a session fed any sequence of them (with time passing) never panics and
//! never advertises a zero discriminator.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vipd_bfd::packet::Packet;
use vipd_bfd::session::{Action, Config, Session};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::decode(data) {
        if !p.auth {
            assert_eq!(Packet::decode(&p.encode()), Ok(p));
        }
    }
    let start = Instant::now();
    let mut now = start;
    let mut s = Session::new(Config::default(), 0x1234, now);
    for chunk in data.chunks(25) {
        let (step, body) = chunk.split_first().unwrap_or((&0, &[]));
        now += Duration::from_millis(u64::from(*step) * 4);
        let mut out = s.on_timer(now);
        if let Ok(p) = Packet::decode(body) {
            // The session's own discriminator, so that the packet is not just discarded.
            let p = Packet {
                your_disc: if p.your_disc == 0 { 0 } else { s.local_disc() },
                ..p
            };
            out.extend(s.on_packet(now, &p).unwrap_or_default());
        }
        for a in out {
            if let Action::Send(p) = a {
                assert_ne!(p.my_disc, 0);
                assert!(!(p.poll && p.fin));
            }
        }
    }
});

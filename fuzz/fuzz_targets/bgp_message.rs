//! Any bytes a BGP peer can send: decoding must return, never panic, under every session
//! setting; whatever decodes must re-encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipd_bgp::wire::{Decoded, Message, Session};

fuzz_target!(|data: &[u8]| {
    for four_octet_as in [false, true] {
        for extended_message in [false, true] {
            let s = Session { four_octet_as, extended_message };
            let _ = Message::frame_len(data, &s);
            if let Ok(Decoded::Message(m)) = Message::decode(data, &s) {
                let _ = m.encode(&s);
            }
        }
    }
});

//! Any datagram a DNS check can receive: read or refused with a reason, never a panic or a
//! loop; addresses only from answers that hold a whole one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipd_health::dns::parse;

fuzz_target!(|data: &[u8]| {
    let id = data.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    match parse(data, id) {
        Ok(r) => assert!(r.addresses.len() <= usize::from(r.answers)),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

//! Any reply an agent can send (binary, huge, nonsense): parsed or refused with a reason,
//! never a panic; a weight is never above HAProxy's 256%.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipd_health::agent::{MAX_WEIGHT_PCT, parse};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse(&text) {
        Ok(r) => {
            assert!(r.weight_pct.is_none_or(|w| w <= MAX_WEIGHT_PCT));
            let _ = r.outcome("agent", std::time::Duration::ZERO);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

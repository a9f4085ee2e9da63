//! Any configuration text: loading returns a config or located diagnostics, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = vipd_config::load_str(text, "fuzz.toml") {
            let _ = e.to_string();
        }
    }
});

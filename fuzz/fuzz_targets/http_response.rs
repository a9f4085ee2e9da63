//! Any bytes a backend can answer an HTTP check with: the status line, the headers and a
//! chunked body parse to a value or an error, never a panic (a chunk size of
//! `ffffffffffffffff` included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipd_health::http_parse::{Chunked, dechunk, find, header, status_code};

fuzz_target!(|data: &[u8]| {
    let _ = status_code(data);
    if let Some(end) = find(data, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
        let _ = header(&head, "content-length");
        let _ = header(&head, "transfer-encoding");
        if let Chunked::Complete(body) = dechunk(&data[end + 4..]) {
            assert!(body.len() <= data.len());
        }
    }
    let _ = dechunk(data);
});

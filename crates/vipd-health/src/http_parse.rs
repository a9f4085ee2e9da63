//! The pure part of the HTTP check: a response's status line and a chunked body, from bytes
//! a backend sent (any bytes: these run on hostile input and are fuzzed). Chunk sizes are
//! parsed by `httparse`; every length is checked arithmetic, so `ffffffffffffffff` is just
//! an invalid or incomplete body, never an overflow.

use std::fmt;

/// Why bytes are not an HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotHttp(String);

impl fmt::Display for NotHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `HTTP/1.1 200 OK` -> 200.
pub fn status_code(buf: &[u8]) -> Result<u16, NotHttp> {
    let line_end = find(buf, b"\r\n").unwrap_or(buf.len());
    let line = String::from_utf8_lossy(&buf[..line_end]);
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        let shown: String = line.chars().take(40).collect();
        return Err(NotHttp(format!("not an HTTP response: {shown:?}")));
    }
    code.parse()
        .map_err(|_| NotHttp(format!("not an HTTP status: {code:?}")))
}

/// A header's value from a lowercased head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// A chunked body, decoded as far as the bytes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunked {
    /// Every chunk up to the last (size 0) one: the body.
    Complete(Vec<u8>),
    /// More bytes are needed.
    Incomplete,
    /// Not chunked encoding (a bad size line, a chunk not followed by CRLF, a size beyond
    /// this machine's addresses).
    Invalid,
}

/// Decodes a chunked body (RFC 9112 7.1; trailers are not read).
pub fn dechunk(mut b: &[u8]) -> Chunked {
    let mut out = Vec::new();
    loop {
        match httparse::parse_chunk_size(b) {
            Ok(httparse::Status::Complete((used, size))) => {
                b = &b[used..];
                if size == 0 {
                    return Chunked::Complete(out);
                }
                let Some(need) = usize::try_from(size).ok().and_then(|s| s.checked_add(2)) else {
                    return Chunked::Invalid;
                };
                if b.len() < need {
                    return Chunked::Incomplete;
                }
                if &b[need - 2..need] != b"\r\n" {
                    return Chunked::Invalid;
                }
                out.extend_from_slice(&b[..need - 2]);
                b = &b[need..];
            }
            Ok(httparse::Status::Partial) => return Chunked::Incomplete,
            Err(_) => return Chunked::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Ok(204));
        assert_eq!(status_code(b"HTTP/1.0 503\r\n"), Ok(503));
        assert!(status_code(b"SSH-2.0-OpenSSH_9.2\r\n").is_err());
        assert!(status_code(b"HTTP/1.1 2000 x\r\n").is_err());
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n"),
            Chunked::Complete(b"Wikipedia".to_vec())
        );
        assert_eq!(dechunk(b"4\r\nWik"), Chunked::Incomplete);
        assert_eq!(dechunk(b"4\r\nWikiXX5\r\n"), Chunked::Invalid);
        assert_eq!(dechunk(b"zz\r\n"), Chunked::Invalid);
    }

    #[test]
    fn a_huge_chunk_size_is_neither_a_panic_nor_an_allocation() {
        // The previous parser computed size + 2 and panicked (debug) or wrapped (release).
        let r = dechunk(b"ffffffffffffffff\r\nabc\r\n0\r\n\r\n");
        assert!(matches!(r, Chunked::Incomplete | Chunked::Invalid), "{r:?}");
        assert_eq!(dechunk(b"fffffffffffffffff\r\n"), Chunked::Invalid);
    }
}

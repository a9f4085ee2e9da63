//! HTTP(S) checks: a minimal HTTP/1.1 client, one fresh connection per check.
//!
//! Why not reqwest (the project's HTTP client of choice elsewhere): a check must connect to
//! the real server's address whatever the Host header says, with its own SNI, no pool, no
//! redirects, a connect timeout apart from the total one, and cost a few microseconds of CPU
//! because a director runs thousands a second. A request built once, one write, and a read
//! of the status line (plus the body only when a regex needs it) does all of that.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::conn::{self, words};
use super::{Probe, Stage, tls};
use crate::http_parse::{Chunked, dechunk, find, header, status_code};
use crate::outcome::{Outcome, ProbeError};

/// Largest response head read (status line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// Largest body read for `body_regex`.
const MAX_BODY: usize = 64 * 1024;

/// What an HTTP probe is built from.
#[derive(Debug)]
pub struct HttpParams<'a> {
    pub addr: SocketAddr,
    pub tls: bool,
    pub head: bool,
    pub path: &'a str,
    pub expect_status: Vec<vipd_config::StatusRange>,
    pub host: Option<&'a str>,
    pub body_regex: Option<&'a str>,
    /// Pass when `body_regex` does not match.
    pub body_regex_no_match: bool,
    pub headers: &'a BTreeMap<String, String>,
    pub tls_verify: bool,
    /// CAs to verify with instead of the system's (PEM).
    pub tls_ca: Option<&'a std::path::Path>,
    /// Client certificate chain and key (PEM).
    pub tls_client: Option<(&'a std::path::Path, &'a std::path::Path)>,
    pub sni: Option<&'a str>,
}

/// A prepared HTTP(S) check.
#[derive(Debug)]
pub struct HttpProbe {
    request: Vec<u8>,
    expect: Vec<vipd_config::StatusRange>,
    expect_words: String,
    body_regex: Option<Regex>,
    /// Pass when `body_regex` does not match.
    no_match: bool,
    head: bool,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl HttpProbe {
    /// Prepares the request and TLS settings.
    pub fn new(p: HttpParams<'_>) -> Result<Self, String> {
        let host = match p.host {
            Some(h) => h.to_string(),
            None => match (p.addr, p.tls) {
                (SocketAddr::V4(a), false) if a.port() == 80 => a.ip().to_string(),
                (SocketAddr::V4(a), true) if a.port() == 443 => a.ip().to_string(),
                (SocketAddr::V6(a), false) if a.port() == 80 => format!("[{}]", a.ip()),
                (SocketAddr::V6(a), true) if a.port() == 443 => format!("[{}]", a.ip()),
                (a, _) => a.to_string(),
            },
        };
        let method = if p.head { "HEAD" } else { "GET" };
        let mut req = format!("{method} {} HTTP/1.1\r\n", p.path);
        // A configured header replaces the built-in one of the same name (matched without
        // case, as HTTP names are): two User-Agent lines would be a malformed request to a
        // strict server. `Connection: close` is not replaceable (the config refuses it): the
        // probe reads the answer until the server closes.
        let configured = |name: &str| p.headers.keys().any(|k| k.eq_ignore_ascii_case(name));
        for (name, value) in [
            ("Host", host.as_str()),
            ("User-Agent", "vipd-health"),
            ("Accept", "*/*"),
        ] {
            if !configured(name) {
                req.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        req.push_str("Connection: close\r\n");
        for (k, v) in p.headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let body_regex = match p.body_regex {
            Some(r) => Some(Regex::new(r).map_err(|e| format!("body_regex: {e}"))?),
            None => None,
        };
        let tls = if p.tls {
            let name = match p.sni {
                Some(s) => rustls::pki_types::ServerName::try_from(s.to_string())
                    .map_err(|e| format!("sni {s:?}: {e}"))?,
                None => rustls::pki_types::ServerName::IpAddress(p.addr.ip().into()),
            };
            let cfg = if p.tls_ca.is_some() || p.tls_client.is_some() {
                tls::custom(p.tls_verify, p.tls_ca, p.tls_client)?
            } else {
                tls::config(p.tls_verify)?
            };
            Some((cfg, name))
        } else {
            None
        };
        let expect_words = p
            .expect_status
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Ok(HttpProbe {
            request: req.into_bytes(),
            expect: p.expect_status,
            expect_words,
            body_regex,
            no_match: p.body_regex_no_match,
            head: p.head,
            tls,
        })
    }

    /// Whether the check needs nothing but a plain connection and the status line (no TLS,
    /// no body regex): such checks run on the direct driver (`probe::direct`).
    pub fn plain_status_only(&self) -> bool {
        self.tls.is_none() && self.body_regex.is_none()
    }

    /// The request, built once.
    pub fn request_bytes(&self) -> &[u8] {
        &self.request
    }

    /// For a check that needs the status line only: what the response so far says, or None
    /// while more is needed. The same reasons as the tokio path's [`HttpProbe::run`].
    pub fn judge_status_line(&self, buf: &[u8]) -> Option<Result<Outcome, String>> {
        if find(buf, b"\r\n").is_none() {
            if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
                return Some(Err(status_code(buf)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()));
            }
            if buf.len() >= MAX_HEAD {
                return Some(Err(format!("response head longer than {MAX_HEAD} bytes")));
            }
            return None;
        }
        let status = match status_code(buf) {
            Ok(s) => s,
            Err(e) => return Some(Err(e.to_string())),
        };
        Some(Ok(if self.expect.iter().any(|r| r.contains(status)) {
            Outcome::pass(format!("HTTP {status}"), Duration::ZERO)
        } else {
            Outcome::fail(
                format!("HTTP {status} (expected {})", self.expect_words),
                Duration::ZERO,
            )
        }))
    }

    /// Runs the check within its own timeouts.
    pub async fn run(&self, p: &Probe) -> Outcome {
        let stage = Stage::default();
        match tokio::time::timeout(p.timeout, self.exchange(p, &stage, true)).await {
            Ok(o) => o,
            Err(_) => p.timed_out(stage.get(), false),
        }
    }

    /// Runs the check with no timer of its own: the scheduler enforces the deadlines (see
    /// `Probe::run_untimed`).
    pub async fn run_untimed(&self, p: &Probe, stage: &Stage) -> Outcome {
        self.exchange(p, stage, false).await
    }

    async fn exchange(&self, p: &Probe, stage: &Stage, timed: bool) -> Outcome {
        match self.exchange_inner(p, stage, timed).await {
            Ok(o) => o,
            Err(e) => e.outcome(""),
        }
    }

    async fn exchange_inner(
        &self,
        p: &Probe,
        stage: &Stage,
        timed: bool,
    ) -> Result<Outcome, ProbeError> {
        let tcp = conn::connect(p, timed).await?;
        conn::reset_on_close(&tcp);
        match &self.tls {
            None => Ok(self.talk(tcp, stage).await?),
            Some((cfg, name)) => {
                stage.set(Stage::TLS);
                let s = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS: {}", words(&e)))?;
                Ok(self.talk(s, stage).await?)
            }
        }
    }

    async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut s: S,
        stage: &Stage,
    ) -> Result<Outcome, String> {
        stage.set(Stage::RESPONSE);
        s.write_all(&self.request)
            .await
            .map_err(|e| format!("write: {}", words(&e)))?;
        let mut buf = Vec::with_capacity(if self.body_regex.is_some() { 4096 } else { 512 });
        // The status line is all a check without a body regex needs.
        let need_all_head = self.body_regex.is_some();
        let head_end = loop {
            if let Some(i) = find(&buf, if need_all_head { b"\r\n\r\n" } else { b"\r\n" }) {
                break i;
            }
            if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
                return Err(status_code(&buf)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default());
            }
            if buf.len() >= MAX_HEAD {
                return Err(format!("response head longer than {MAX_HEAD} bytes"));
            }
            if read_more(&mut s, &mut buf).await? == 0 {
                return Err(closed_in_head(&buf));
            }
        };
        let status = status_code(&buf).map_err(|e| e.to_string())?;
        if !self.expect.iter().any(|r| r.contains(status)) {
            return Ok(Outcome::fail(
                format!("HTTP {status} (expected {})", self.expect_words),
                Duration::ZERO,
            ));
        }
        let Some(re) = &self.body_regex else {
            return Ok(Outcome::pass(format!("HTTP {status}"), Duration::ZERO));
        };
        if self.head {
            return Ok(Outcome::pass(format!("HTTP {status}"), Duration::ZERO));
        }
        stage.set(Stage::BODY);
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let mut body = buf.split_off(head_end + 4);
        let length = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
        let chunked = header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
        loop {
            let done = match length {
                Some(n) => body.len() >= n,
                None if chunked => dechunk(&body) != Chunked::Incomplete,
                None => false,
            };
            if done || body.len() >= MAX_BODY {
                break;
            }
            if read_more(&mut s, &mut body).await? == 0 {
                if length.is_some() || chunked {
                    return Err(format!(
                        "connection closed in the body ({} bytes)",
                        body.len()
                    ));
                }
                break;
            }
        }
        let body = if chunked {
            match dechunk(&body) {
                Chunked::Complete(b) => b,
                // Cut at the body limit: matched as far as it goes.
                Chunked::Incomplete => body,
                Chunked::Invalid => {
                    return Err(format!("invalid chunked body ({} bytes)", body.len()));
                }
            }
        } else {
            body
        };
        let text = String::from_utf8_lossy(&body);
        if self.no_match {
            return Ok(if re.is_match(&text) {
                Outcome::fail(
                    format!("HTTP {status}, body matches /{}/ (must not)", re.as_str()),
                    Duration::ZERO,
                )
            } else {
                Outcome::pass(
                    format!("HTTP {status}, body does not match /{}/", re.as_str()),
                    Duration::ZERO,
                )
            });
        }
        if re.is_match(&text) {
            Ok(Outcome::pass(
                format!("HTTP {status}, body matches /{}/", re.as_str()),
                Duration::ZERO,
            ))
        } else {
            Ok(Outcome::fail(
                format!("HTTP {status}, body does not match /{}/", re.as_str()),
                Duration::ZERO,
            ))
        }
    }
}

/// The reason of a server that closed before the end of the response head.
pub(super) fn closed_in_head(buf: &[u8]) -> String {
    if buf.is_empty() {
        "connection closed before a response".to_string()
    } else {
        format!(
            "connection closed in the response head ({} bytes)",
            buf.len()
        )
    }
}

async fn read_more<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Result<usize, String> {
    let mut chunk = [0u8; 4096];
    let n = s
        .read(&mut chunk)
        .await
        .map_err(|e| format!("read: {}", words(&e)))?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_built_once_with_host_and_headers() {
        let headers = BTreeMap::from([("X-Check".to_string(), "vipd".to_string())]);
        let p = HttpProbe::new(HttpParams {
            addr: "10.0.0.5:8080".parse().expect("addr"),
            tls: false,
            head: false,
            path: "/healthz",
            expect_status: vec!["200".parse().expect("200"), "204".parse().expect("204")],
            host: Some("www.example.com"),
            body_regex: None,
            body_regex_no_match: false,
            headers: &headers,
            tls_verify: true,
            tls_ca: None,
            tls_client: None,
            sni: None,
        })
        .expect("probe");
        assert_eq!(
            String::from_utf8_lossy(&p.request),
            "GET /healthz HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: vipd-health\r\nAccept: */*\r\nConnection: close\r\nX-Check: vipd\r\n\r\n"
        );
        assert_eq!(p.expect_words, "200, 204");
    }

    /// The shipped example sets its own User-Agent: it must be the only one sent.
    #[test]
    fn a_configured_header_replaces_the_built_in_one() {
        let headers = BTreeMap::from([
            ("user-agent".to_string(), "lb-check/1".to_string()),
            ("Host".to_string(), "app.example".to_string()),
        ]);
        let p = HttpProbe::new(HttpParams {
            addr: "10.0.0.5:80".parse().expect("addr"),
            tls: false,
            head: true,
            path: "/",
            expect_status: vec!["200".parse().expect("200")],
            host: None,
            body_regex: None,
            body_regex_no_match: false,
            headers: &headers,
            tls_verify: true,
            tls_ca: None,
            tls_client: None,
            sni: None,
        })
        .expect("probe");
        assert_eq!(
            String::from_utf8_lossy(&p.request),
            "HEAD / HTTP/1.1\r\nAccept: */*\r\nConnection: close\r\nHost: app.example\r\nuser-agent: lb-check/1\r\n\r\n"
        );
    }
}

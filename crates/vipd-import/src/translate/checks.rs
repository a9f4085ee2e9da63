//! keepalived's checkers (`HTTP_GET`, `SSL_GET`, `TCP_CHECK`, `MISC_CHECK`) as vipd checks.
//!
//! keepalived's timing is inherited: a checker's `delay_loop`, `retry`, `delay_before_retry`
//! and `connect_timeout` come from the checker, else its real server, else its virtual
//! server, else the checker type's default (keepalived 2.2 `check_data.c`, `check_api.c`):
//! - `delay_loop` (60 s) is vipd's `interval`;
//! - a server goes down after `retry` failed retries (default 1, 0 for `MISC_CHECK`), each
//!   `delay_before_retry` apart (default 1 s, 3 s for HTTP): vipd's `fall = retry + 1` and
//!   `fast_interval`;
//! - it comes back at the first success: `rise = 1`;
//! - `connect_timeout` (5 s) bounds the whole check: vipd's `timeout`.

use std::net::IpAddr;

use super::model::{Check, Kind, Out, written};
use crate::Stmt;

/// Timing keys as inherited down the levels.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timing {
    pub delay_loop_ms: Option<u64>,
    pub retry: Option<u32>,
    pub delay_before_retry_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
}

impl Timing {
    /// Takes the timing keywords of one level; returns whether `s` was one.
    pub(crate) fn take(&mut self, s: &Stmt, out: &mut Out) -> bool {
        let secs = |out: &mut Out| match s.arg(0).and_then(seconds_ms) {
            Some(v) => Some(v),
            None => {
                out.omit(&s.origin, written(s), "not a number of seconds");
                None
            }
        };
        match s.keyword.as_str() {
            "delay_loop" => self.delay_loop_ms = secs(out).or(self.delay_loop_ms),
            "delay_before_retry" => {
                self.delay_before_retry_ms = secs(out).or(self.delay_before_retry_ms)
            }
            "connect_timeout" => self.connect_timeout_ms = secs(out).or(self.connect_timeout_ms),
            "retry" | "nb_get_retry" => match s.arg(0).and_then(|a| a.parse().ok()) {
                Some(r) => self.retry = Some(r),
                None => out.omit(&s.origin, written(s), "not a whole number"),
            },
            _ => return false,
        }
        true
    }

    /// This level's keys, else the outer level's.
    pub(crate) fn under(self, outer: Timing) -> Timing {
        Timing {
            delay_loop_ms: self.delay_loop_ms.or(outer.delay_loop_ms),
            retry: self.retry.or(outer.retry),
            delay_before_retry_ms: self.delay_before_retry_ms.or(outer.delay_before_retry_ms),
            connect_timeout_ms: self.connect_timeout_ms.or(outer.connect_timeout_ms),
        }
    }
}

/// keepalived's timer syntax: seconds, possibly with a fraction (`2.5`).
pub(crate) fn seconds_ms(s: &str) -> Option<u64> {
    let v: f64 = s.parse().ok()?;
    (0.0..86_400.0)
        .contains(&v)
        .then(|| (v * 1000.0).round() as u64)
}

/// Is `s` a checker block.
pub(crate) fn is_checker(keyword: &str) -> bool {
    matches!(
        keyword,
        "HTTP_GET"
            | "SSL_GET"
            | "TCP_CHECK"
            | "MISC_CHECK"
            | "DNS_CHECK"
            | "SMTP_CHECK"
            | "UDP_CHECK"
            | "PING_CHECK"
            | "FILE_CHECK"
            | "BFD_CHECK"
    )
}

/// The vipd checks of one checker block (an `HTTP_GET` with two `url`s gives two checks:
/// keepalived wants every url to pass, as vipd wants every check of a server to pass).
pub(crate) fn checker(
    s: &Stmt,
    rs_addr: IpAddr,
    outer: Timing,
    host: Option<&str>,
    out: &mut Out,
) -> Vec<Check> {
    let kind = match s.keyword.as_str() {
        "HTTP_GET" => Kind::Http,
        "SSL_GET" => Kind::Https,
        "TCP_CHECK" => Kind::Tcp,
        "MISC_CHECK" => Kind::Exec,
        "DNS_CHECK" => Kind::Dns,
        other => {
            let why = match other {
                "SMTP_CHECK" => "vipd has no SMTP check; a TCP or exec check can stand in",
                "BFD_CHECK" => "vipd has no BFD check of real servers",
                "FILE_CHECK" => {
                    "keepalived's FILE_CHECK tracks a weight file; vipd's file check differs: write it by hand"
                }
                _ => "vipd has no such check",
            };
            out.omit(&s.origin, &s.keyword, why);
            return Vec::new();
        }
    };
    let mut t = Timing::default();
    let mut c = Check {
        kind,
        interval_ms: 0,
        timeout_ms: 0,
        rise: 1,
        fall: 0,
        fast_interval_ms: None,
        port: None,
        source_address: None,
        path: None,
        expect_status: None,
        body_regex: None,
        body_regex_no_match: false,
        host: host
            .filter(|_| matches!(kind, Kind::Http | Kind::Https))
            .map(str::to_string),
        tls_verify: (kind == Kind::Https).then_some(false),
        command: None,
        args: Vec::new(),
        user: None,
        dynamic_weight: false,
        dns: (kind == Kind::Dns).then(|| (".".to_string(), "SOA".to_string())),
        tls_client: if kind == Kind::Https {
            out.ssl_client.clone()
        } else {
            None
        },
        origin: Some(s.origin.clone()),
    };
    let mut urls: Vec<&Stmt> = Vec::new();
    let mut misc_timeout: Option<u64> = None;
    for k in s.children() {
        if t.take(k, out) {
            continue;
        }
        match k.keyword.as_str() {
            "connect_port" => match k.arg(0).and_then(|p| p.parse().ok()) {
                Some(p) => c.port = Some(p),
                None => out.omit(&k.origin, written(k), "not a port"),
            },
            "connect_ip" => match k.arg(0).and_then(|a| a.parse::<IpAddr>().ok()) {
                Some(a) if a == rs_addr => {}
                _ => out.omit(
                    &k.origin,
                    written(k),
                    "vipd probes the real server's own address",
                ),
            },
            "bindto" => match k.arg(0).and_then(|a| a.parse().ok()) {
                Some(a) => c.source_address = Some(a),
                None => out.omit(&k.origin, written(k), "not an address"),
            },
            "virtualhost" if matches!(kind, Kind::Http | Kind::Https) => {
                c.host = k.arg(0).map(str::to_string)
            }
            "url" if matches!(kind, Kind::Http | Kind::Https) => urls.push(k),
            "misc_path" if kind == Kind::Exec => misc_path(k, &mut c, out),
            "misc_timeout" if kind == Kind::Exec => misc_timeout = k.arg(0).and_then(seconds_ms),
            "user" if kind == Kind::Exec => {
                c.user = k.arg(0).map(str::to_string);
                if k.args.len() > 1 {
                    out.omit(
                        &k.origin,
                        written(k),
                        "vipd runs the check with the user's primary group",
                    );
                }
            }
            "misc_dynamic" if kind == Kind::Exec => c.dynamic_weight = true,
            "name" if kind == Kind::Dns => {
                if let (Some(d), Some(n)) = (c.dns.as_mut(), k.arg(0)) {
                    d.0 = n.to_string();
                }
            }
            "type" if kind == Kind::Dns => {
                if let (Some(d), Some(t)) = (c.dns.as_mut(), k.arg(0)) {
                    d.1 = t.to_ascii_uppercase();
                }
            }
            "warmup" => out.omit(
                &k.origin,
                written(k),
                "vipd spreads checks with a jitter instead of a start-up delay",
            ),
            "log_all_failures" => out.omit(
                &k.origin,
                written(k),
                "vipd logs every change of state with its reason",
            ),
            _ => out.omit(&k.origin, written(k), "no vipd equivalent"),
        }
    }
    let t = t.under(outer);
    // check_misc.c, check_dns.c (3 retries, delay_before_retry = delay_loop), check_api.c.
    let default_retry = match kind {
        Kind::Exec => 0,
        Kind::Dns => 3,
        _ => 1,
    };
    c.interval_ms = t.delay_loop_ms.unwrap_or(60_000).max(10);
    let default_dbr = match kind {
        Kind::Http | Kind::Https => 3000,
        Kind::Dns => c.interval_ms,
        _ => 1000,
    };
    c.fall = t.retry.unwrap_or(default_retry).saturating_add(1);
    let timeout = match kind {
        Kind::Exec => misc_timeout.unwrap_or(c.interval_ms),
        _ => t.connect_timeout_ms.unwrap_or(5000),
    };
    // vipd refuses a timeout beyond the interval: keepalived would let checks overlap.
    c.timeout_ms = timeout.min(c.interval_ms).max(1);
    if c.fall > 1 {
        let f = t.delay_before_retry_ms.unwrap_or(default_dbr);
        c.fast_interval_ms = Some(f.clamp(10, c.interval_ms));
    }
    if kind == Kind::Exec && c.command.is_none() {
        out.omit(&s.origin, "MISC_CHECK", "no misc_path: nothing to run");
        return Vec::new();
    }
    if !matches!(kind, Kind::Http | Kind::Https) {
        return vec![c];
    }
    if urls.is_empty() {
        out.omit(&s.origin, &s.keyword, "no url block: nothing to request");
        return Vec::new();
    }
    urls.iter().filter_map(|u| url(u, &c, out)).collect()
}

/// One `url { path ...; status_code ...; }`.
fn url(u: &Stmt, base: &Check, out: &mut Out) -> Option<Check> {
    let mut c = base.clone();
    c.origin = Some(u.origin.clone());
    let mut codes: Vec<(u16, u16)> = Vec::new();
    for k in u.children() {
        match k.keyword.as_str() {
            "path" => c.path = k.arg(0).map(str::to_string),
            "status_code" => {
                for a in &k.args {
                    match status_range(a) {
                        Some(r) => codes.push(r),
                        None => out.omit(&k.origin, written(k), "not a status or a range"),
                    }
                }
            }
            "digest" => out.omit(
                &k.origin,
                written(k),
                "vipd does not hash the body; body_regex can match its content",
            ),
            "regex" => c.body_regex = k.arg(0).map(str::to_string),
            "regex_no_match" => c.body_regex_no_match = true,
            _ => out.omit(&k.origin, written(k), "no vipd equivalent"),
        }
    }
    if c.path.as_deref().is_none_or(str::is_empty) {
        out.omit(&u.origin, "url", "no path");
        return None;
    }
    if c.body_regex_no_match && c.body_regex.is_none() {
        out.omit(&u.origin, "regex_no_match", "no regex to invert");
        c.body_regex_no_match = false;
    }
    // No status_code: keepalived's default is any 2xx (check_http.c
    // HTTP_DEFAULT_STATUS_CODE_MIN/MAX), and so is vipd's.
    codes.sort_unstable();
    codes.dedup();
    c.expect_status = (!codes.is_empty()).then_some(codes);
    Some(c)
}

/// `200` or `200-299`.
fn status_range(a: &str) -> Option<(u16, u16)> {
    let (lo, hi) = match a.split_once('-') {
        Some((l, h)) => (l.parse().ok()?, h.parse().ok()?),
        None => {
            let v = a.parse().ok()?;
            (v, v)
        }
    };
    ((100..=599).contains(&lo) && (lo..=599).contains(&hi)).then_some((lo, hi))
}

/// `misc_path "/usr/local/bin/check arg"`: keepalived runs it with `/bin/sh -c`; vipd runs a
/// program without a shell, so only a plain command line is carried over.
fn misc_path(k: &Stmt, c: &mut Check, out: &mut Out) {
    if let Some(words) = command_line(k, out) {
        c.command = Some(words[0].clone());
        c.args = words[1..].to_vec();
    }
}

/// A command line of keepalived's (a check's `misc_path`, a notify script) as argv, when
/// vipd can run it: split without a shell, its program named by an absolute path. Else the
/// statement is reported and `None`.
pub(crate) fn command_line(k: &Stmt, out: &mut Out) -> Option<Vec<String>> {
    match crate::exabgp::shell_split(&k.args.join(" ")) {
        Ok(words) if words.first().is_some_and(|w| w.starts_with('/')) => Some(words),
        Ok(_) => {
            out.omit(
                &k.origin,
                written(k),
                "vipd runs programs by their absolute path, without a shell: write the full path",
            );
            None
        }
        Err(e) => {
            out.omit(
                &k.origin,
                written(k),
                format!("needs a shell ({e}): wrap it in a script and name the script"),
            );
            None
        }
    }
}

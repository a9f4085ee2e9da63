//! Rules of health checks, named (`[[check]]`) and inline.

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use super::{NAME_HINT, Sink, good_name};
use crate::diag::{Diagnostic, Path};
use crate::model::{CheckDef, CheckKind, Config, HttpMethod};

/// Validates `[[check]]` tables and returns the set of defined names.
pub(super) fn named<'a>(cfg: &'a Config, s: &mut Sink) -> BTreeSet<&'a str> {
    let mut names = BTreeSet::new();
    for (i, c) in cfg.checks.iter().enumerate() {
        let p = Path::root().key("check").idx(i);
        match &c.name {
            None => s.push(
                Diagnostic::error(p.clone(), "a [[check]] needs a name")
                    .hint("add name = \"...\" and refer to it from checks = [\"...\"]"),
            ),
            Some(n) if !good_name(n) => s.push(
                Diagnostic::error(p.key("name"), format!("invalid check name {n:?}"))
                    .hint(NAME_HINT),
            ),
            Some(n) => {
                if !names.insert(n.as_str()) {
                    s.push(
                        Diagnostic::error(p.key("name"), format!("check {n:?} is defined twice"))
                            .hint("give each [[check]] a distinct name"),
                    );
                }
            }
        }
        check_def(c, &p, s);
    }
    names
}

/// The keys that belong to one kind only, with the kinds that accept them.
fn kind_keys(c: &CheckDef) -> Vec<(&'static str, bool, &'static [CheckKind])> {
    use CheckKind::*;
    const HTTP: &[CheckKind] = &[Http, Https];
    vec![
        ("path", c.path.is_some(), HTTP),
        ("method", c.method.is_some(), HTTP),
        ("expect_status", c.expect_status.is_some(), HTTP),
        ("host", c.host.is_some(), HTTP),
        ("body_regex", c.body_regex.is_some(), HTTP),
        ("body_regex_no_match", c.body_regex_no_match, HTTP),
        ("headers", c.headers.is_some(), HTTP),
        ("tls_verify", c.tls_verify.is_some(), &[Https]),
        ("tls_ca", c.tls_ca.is_some(), &[Https]),
        ("tls_cert", c.tls_cert.is_some(), &[Https]),
        ("tls_key", c.tls_key.is_some(), &[Https]),
        ("sni", c.sni.is_some(), &[Https]),
        ("command", c.command.is_some(), &[Exec]),
        ("args", c.args.is_some(), &[Exec]),
        ("dynamic_weight", c.dynamic_weight, &[Exec]),
        ("user", c.user.is_some(), &[Exec]),
        ("file", c.file.is_some(), &[File]),
        ("dns_name", c.dns_name.is_some(), &[Dns]),
        ("dns_type", c.dns_type.is_some(), &[Dns]),
        ("dns_answer", c.dns_answer.is_some(), &[Dns]),
        ("port", c.port.is_some(), &[Http, Https, Tcp, Agent, Dns]),
        ("via", !c.via.is_direct(), &[Http, Https, Tcp]),
        (
            "source_address",
            c.source_address.is_some(),
            &[Http, Https, Tcp, Agent, Dns],
        ),
        (
            "connect_timeout",
            c.connect_timeout.is_some(),
            &[Http, Https, Tcp, Agent],
        ),
    ]
}

/// Rules of one check definition (named or inline) at path `p`.
pub(super) fn check_def(c: &CheckDef, p: &Path, s: &mut Sink) {
    let kind = c.kind.as_str();
    for (key, present, kinds) in kind_keys(c) {
        if present && !kinds.contains(&c.kind) {
            let ok: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            s.push(
                Diagnostic::error(
                    p.key(key),
                    format!("`{key}` does not apply to a {kind} check"),
                )
                .hint(format!("`{key}` is only for kind = {}", ok.join(" / "))),
            );
        }
    }
    for (key, v) in [("rise", c.rise), ("fall", c.fall)] {
        if v == 0 {
            s.push(
                Diagnostic::error(p.key(key), format!("{key} must be at least 1"))
                    .hint("the usual values are rise = 2, fall = 3"),
            );
        }
    }
    timing(c, p, s);
    match c.kind {
        CheckKind::Http | CheckKind::Https => http(c, p, s),
        CheckKind::Agent if c.port.is_none() => s.push(
            Diagnostic::error(p.key("kind"), "an agent check needs a port")
                .hint("set port = 5555 (the agent's port, not the service's)"),
        ),
        CheckKind::Exec => match &c.command {
            None => s.push(
                Diagnostic::error(p.key("kind"), "an exec check needs a command")
                    .hint("set command = \"/usr/local/bin/check\" and optionally args = [...]"),
            ),
            Some(cmd) if !cmd.is_absolute() => s.push(
                Diagnostic::error(
                    p.key("command"),
                    format!("{} is not an absolute path", cmd.display()),
                )
                .hint("vipd does not search PATH: write the full path"),
            ),
            Some(_) => {
                if let Some(u) = &c.user {
                    match vipd_sys::process::user_ids(u) {
                        Ok(Some(_)) => {}
                        Ok(None) => s.push(
                            Diagnostic::error(p.key("user"), format!("no user {u:?} on this host"))
                                .hint("create it (useradd --system), or remove `user` to run as root without capabilities"),
                        ),
                        Err(e) => s.push(
                            Diagnostic::error(
                                p.key("user"),
                                format!("cannot look user {u:?} up: {e}"),
                            )
                            .hint("check the name; vipd looks users up with getpwnam at load"),
                        ),
                    }
                }
            }
        },
        CheckKind::Dns => dns(c, p, s),
        CheckKind::File => match &c.file {
            None => s.push(
                Diagnostic::error(p.key("kind"), "a file check needs a file")
                    .hint("set file = \"/etc/lb/agent-check\""),
            ),
            Some(f) if !f.is_absolute() => s.push(
                Diagnostic::error(
                    p.key("file"),
                    format!("{} is not an absolute path", f.display()),
                )
                .hint("write the full path, starting with /"),
            ),
            Some(_) => {}
        },
        _ => {}
    }
    if c.port == Some(0) {
        s.push(Diagnostic::error(p.key("port"), "port 0 cannot be probed").hint("use 1..=65535"));
    }
    if let Some(d) = &c.damping {
        let dp = p.key("damping");
        if d.window.is_zero() || d.penalty.is_zero() {
            s.push(
                Diagnostic::error(dp.clone(), "damping window and penalty must be above 0")
                    .hint("e.g. damping = { window = \"60s\", max_flaps = 4, penalty = \"120s\" }"),
            );
        }
        if d.max_flaps == 0 {
            s.push(
                Diagnostic::error(dp.key("max_flaps"), "max_flaps must be at least 1")
                    .hint("e.g. max_flaps = 4"),
            );
        }
    }
}

fn timing(c: &CheckDef, p: &Path, s: &mut Sink) {
    let min = StdDuration::from_millis(10);
    if c.interval.get() < min {
        s.push(
            Diagnostic::error(
                p.key("interval"),
                format!("interval {} is too short", c.interval),
            )
            .hint("use at least 10ms; 1s to 10s is usual"),
        );
    }
    if c.timeout.is_zero() {
        s.push(
            Diagnostic::error(p.key("timeout"), "timeout must be above 0")
                .hint("e.g. timeout = \"1s\""),
        );
    } else if c.timeout > c.interval {
        s.push(
            Diagnostic::error(
                p.key("timeout"),
                format!(
                    "timeout {} is longer than interval {}",
                    c.timeout, c.interval
                ),
            )
            .hint("a check must end before the next one starts: lower timeout or raise interval"),
        );
    }
    if let Some(ct) = c.connect_timeout {
        if ct.is_zero() || ct > c.timeout {
            s.push(
                Diagnostic::error(p.key("connect_timeout"), format!("connect_timeout {ct} must be above 0 and at most timeout {}", c.timeout))
                    .hint("connect_timeout bounds the TCP handshake alone; timeout bounds the whole check"),
            );
        }
    }
    if let Some(f) = c.fast_interval {
        if f.get() < min || f > c.interval {
            s.push(
                Diagnostic::error(
                    p.key("fast_interval"),
                    format!(
                        "fast_interval {f} must be between 10ms and interval {}",
                        c.interval
                    ),
                )
                .hint("it shortens the wait while a rise/fall transition is pending"),
            );
        }
    }
    if c.jitter.0 > 50 {
        s.push(
            Diagnostic::error(p.key("jitter"), format!("jitter {} is above 50%", c.jitter))
                .hint("10% spreads checks well; more delays detection"),
        );
    }
}

fn http(c: &CheckDef, p: &Path, s: &mut Sink) {
    if let Some(path) = &c.path {
        if !path.starts_with('/') || path.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            s.push(
                Diagnostic::error(p.key("path"), format!("invalid request path {path:?}"))
                    .hint("start with / and use no spaces, e.g. \"/healthcheck\""),
            );
        }
    }
    if let Some(st) = &c.expect_status {
        if st.is_empty() {
            s.push(
                Diagnostic::error(p.key("expect_status"), "expect_status is empty")
                    .hint("e.g. expect_status = [200]"),
            );
        }
        for (i, code) in st.iter().enumerate() {
            if !code.is_valid() {
                s.push(
                    Diagnostic::error(
                        p.key("expect_status").idx(i),
                        format!("{code} is not an HTTP status or range of them"),
                    )
                    .hint("use 100..=599, a range low to high: e.g. 204 or \"200-299\""),
                );
            }
        }
    }
    if let Some(re) = &c.body_regex {
        if let Err(e) = regex::Regex::new(re) {
            s.push(
                Diagnostic::error(p.key("body_regex"), format!("invalid regex: {e}"))
                    .hint("see https://docs.rs/regex for the syntax"),
            );
        }
        if c.method == Some(HttpMethod::Head) {
            s.push(
                Diagnostic::error(p.key("body_regex"), "a HEAD response has no body to match")
                    .hint("use method = \"GET\" or remove body_regex"),
            );
        }
    }
    for (key, f) in [
        ("tls_ca", &c.tls_ca),
        ("tls_cert", &c.tls_cert),
        ("tls_key", &c.tls_key),
    ] {
        if let Some(f) = f {
            super::absolute(f, p.key(key), s);
        }
    }
    if c.tls_cert.is_some() != c.tls_key.is_some() {
        let (key, other) = if c.tls_cert.is_some() {
            ("tls_cert", "tls_key")
        } else {
            ("tls_key", "tls_cert")
        };
        s.push(
            Diagnostic::error(p.key(key), format!("{key} without {other}"))
                .hint("a client certificate needs its key: give both"),
        );
    }
    if c.tls_ca.is_some() && c.tls_verify == Some(false) {
        s.push(
            Diagnostic::error(p.key("tls_ca"), "tls_ca with tls_verify = false")
                .hint("tls_ca says which CAs to verify with: remove one of the two"),
        );
    }
    if c.body_regex_no_match && c.body_regex.is_none() {
        s.push(
            Diagnostic::error(
                p.key("body_regex_no_match"),
                "body_regex_no_match needs a body_regex",
            )
            .hint("add body_regex = \"...\": the check passes when the body does not match it"),
        );
    }
    for (name, value) in c.headers.iter().flatten() {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token || value.contains(['\r', '\n']) {
            s.push(
                Diagnostic::error(
                    p.key("headers").key(name),
                    format!("invalid header {name:?}"),
                )
                .hint("header names are tokens (letters, digits, -); values have no line breaks"),
            );
        } else if ["connection", "content-length", "transfer-encoding"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            // The probe sends `Connection: close` and no body; these would contradict it.
            s.push(
                Diagnostic::error(
                    p.key("headers").key(name),
                    format!("header {name:?} is set by the probe itself"),
                )
                .hint("the probe sends `Connection: close` and no body; remove this header"),
            );
        } else if name.eq_ignore_ascii_case("host") && c.host.is_some() {
            s.push(
                Diagnostic::error(
                    p.key("headers").key(name),
                    "the Host header is given twice: `host` and `headers`",
                )
                .hint("keep `host = ...` (it also sets the default SNI) and remove the header"),
            );
        }
    }
    for key in ["host", "sni"] {
        let v = if key == "host" { &c.host } else { &c.sni };
        if let Some(h) = v {
            if h.is_empty() || h.contains(|ch: char| ch.is_whitespace() || ch == '/') {
                s.push(
                    Diagnostic::error(p.key(key), format!("invalid {key} {h:?}"))
                        .hint("a host name such as \"www.example.com\""),
                );
            }
        }
    }
}

/// A DNS check needs a name to ask for, a type vipd can ask, and an answer of that type.
fn dns(c: &CheckDef, p: &Path, s: &mut Sink) {
    const TYPES: [&str; 7] = ["A", "AAAA", "NS", "SOA", "MX", "TXT", "CNAME"];
    match &c.dns_name {
        None => s.push(
            Diagnostic::error(p.key("kind"), "a dns check needs a dns_name")
                .hint("set dns_name = \"www.example.com\", a name the server answers for"),
        ),
        Some(n) => {
            let t = n.strip_suffix('.').unwrap_or(n);
            let bad_label = !t.is_empty() && t.split('.').any(|l| l.is_empty() || l.len() > 63);
            if (t.is_empty() && n != ".") || t.len() > 253 || bad_label {
                s.push(
                    Diagnostic::error(p.key("dns_name"), format!("invalid DNS name {n:?}"))
                        .hint("labels of 1 to 63 bytes, 253 in all, e.g. \"www.example.com\""),
                );
            }
        }
    }
    let ty = c.dns_type.as_deref().unwrap_or("A").to_ascii_uppercase();
    if !TYPES.contains(&ty.as_str()) {
        s.push(
            Diagnostic::error(p.key("dns_type"), format!("unknown DNS type {ty:?}"))
                .hint(format!("one of {}", TYPES.join(", "))),
        );
    }
    if let Some(a) = c.dns_answer {
        let fits = (ty == "A" && a.is_ipv4()) || (ty == "AAAA" && a.is_ipv6());
        if !fits {
            s.push(
                Diagnostic::error(
                    p.key("dns_answer"),
                    format!("an answer {a} cannot come with dns_type {ty}"),
                )
                .hint("dns_answer is an IPv4 address with A, IPv6 with AAAA"),
            );
        }
    }
}

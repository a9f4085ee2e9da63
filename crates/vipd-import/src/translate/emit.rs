//! Writes the translation: a header that says what was and was not translated, then
//! `[global]`, `[bgp]`, the `[[check]]`s and the `[[service]]`s, each with its source
//! location and the omissions found inside it.

use std::collections::BTreeSet;

use super::model::{Check, Kind, Out, Service};
use super::out::{Doc, Value, duration};

/// Returns the TOML text and a one-line summary.
pub(crate) fn emit(out: &mut Out, sources: &[String]) -> (String, String) {
    let checks = name_checks(&out.services);
    let n_rs: usize = out.services.iter().map(|s| s.real_servers.len()).sum();
    let mut summary = format!(
        "{} service(s), {} real server(s), {} check(s)",
        out.services.len(),
        n_rs,
        checks.len()
    );
    if let Some(b) = &out.bgp {
        summary.push_str(&format!(", {} BGP neighbor(s)", b.neighbors.len()));
    }
    let mut placed: BTreeSet<usize> = BTreeSet::new();
    for s in &out.services {
        placed.extend(s.omitted.clone());
    }
    for n in out.bgp.iter().flat_map(|b| &b.neighbors) {
        placed.extend(n.omitted.clone());
    }

    let mut d = Doc::default();
    d.comment(&format!(
        "vipd configuration written by `vipd import` from {}.\nTranslated: {summary}.\nCheck it with `vipd check-config` and read the notes below before using it.",
        sources.join(" and ")
    ));
    if out.omissions.is_empty() {
        d.comment("\nEverything was translated.");
    } else {
        d.comment(&format!(
            "\nNot translated ({}), each also marked NOT TRANSLATED where it belongs:",
            out.omissions.len()
        ));
        for o in &out.omissions {
            d.comment(&format!("  {o}"));
        }
    }
    if !out.replaced.is_empty() {
        d.comment("\nReplaced by vipd's own design:");
        for r in &out.replaced {
            d.comment(&format!("  {r}"));
        }
    }
    d.comment("\nBehaviour that differs:");
    d.comment("  vipd spreads each check's interval by up to 10% (jitter); keepalived does not.");
    for x in &out.differences {
        d.comment(&format!("  {x}"));
    }
    let top: Vec<String> = out
        .omissions
        .iter()
        .enumerate()
        .filter(|(i, _)| !placed.contains(i))
        .map(|(_, o)| format!("NOT TRANSLATED {o}"))
        .collect();

    d.blank();
    d.table("global");
    for t in &top {
        d.comment(t);
    }
    if let Some(r) = out.router_id {
        d.kv(
            "router_id",
            Value::Str(r.to_string()),
            Some("ExaBGP router-id"),
        );
    }
    if let Some(f) = &out.drain_file {
        d.kv(
            "drain_file",
            Value::Str(f.clone()),
            Some("healthcheck --disable"),
        );
    }
    if let Some((tcp, fin, udp)) = out.ipvs_timeouts {
        d.blank();
        d.table("global.ipvs_timeouts");
        d.kv("tcp", Value::Str(format!("{tcp}s")), Some("lvs_timeouts"));
        d.kv("tcp_fin", Value::Str(format!("{fin}s")), None);
        d.kv("udp", Value::Str(format!("{udp}s")), None);
    }
    bgp(&mut d, out);
    for (c, name) in &checks {
        check(&mut d, c, name);
    }
    for s in &out.services {
        service(&mut d, s, &checks, out);
    }
    (d.finish(), summary)
}

fn bgp(d: &mut Doc, out: &Out) {
    let Some(b) = &out.bgp else {
        if out.withdraw_on_stop {
            d.comment("omega: keepalived ran quorum_down on stop; with [bgp], set withdraw_on_stop = true");
        }
        return;
    };
    d.blank();
    d.table("bgp");
    d.kv("local_as", Value::Int(u64::from(b.local_as)), None);
    if let Some(h) = b.hold_time {
        d.kv("hold_time", Value::Int(u64::from(h)), None);
    }
    if out.withdraw_on_stop {
        d.kv(
            "withdraw_on_stop",
            Value::Bool(true),
            Some("omega: withdraw on stop instead of graceful restart"),
        );
    }
    for n in &b.neighbors {
        d.blank();
        d.comment(&format!("from {}", n.origin));
        for i in n.omitted.clone() {
            d.comment(&format!("NOT TRANSLATED {}", out.omissions[i]));
        }
        for note in &n.notes {
            d.comment(note);
        }
        d.array_table("bgp.neighbor");
        d.kv("address", Value::Str(n.address.to_string()), None);
        d.kv("remote_as", Value::Int(u64::from(n.remote_as)), None);
        if let Some(l) = n.local_address {
            d.kv("local_address", Value::Str(l.to_string()), None);
        }
        if let Some(p) = &n.password {
            d.kv(
                "password",
                Value::Str(p.clone()),
                Some("keep this file mode 600, or use password_file"),
            );
        }
        if n.passive {
            d.kv("passive", Value::Bool(true), None);
        }
        if let Some(m) = n.multihop {
            d.kv("multihop", Value::Int(u64::from(m)), None);
        }
        if let Some(t) = &n.description {
            d.kv("description", Value::Str(t.clone()), None);
        }
        let own = if n.address.is_ipv4() { "ipv4" } else { "ipv6" };
        if !n.families.is_empty() && n.families != [own] {
            d.kv(
                "families",
                Value::Strs(n.families.iter().map(|f| f.to_string()).collect()),
                None,
            );
        }
    }
}

/// Each distinct check once, named after the first service that uses it.
fn name_checks(services: &[Service]) -> Vec<(Check, String)> {
    let mut named: Vec<(Check, String)> = Vec::new();
    for s in services {
        for c in s.real_servers.iter().flat_map(|r| &r.checks) {
            if named.iter().any(|(n, _)| same(n, c)) {
                continue;
            }
            let base = format!("{}-{}", s.name, c.kind.as_str());
            let mut name = base.clone();
            let mut i = 2;
            while named.iter().any(|(_, n)| *n == name) {
                name = format!("{base}-{i}");
                i += 1;
            }
            named.push((c.clone(), name));
        }
    }
    named
}

/// Equal except where they were written.
fn same(a: &Check, b: &Check) -> bool {
    Check {
        origin: None,
        ..a.clone()
    } == Check {
        origin: None,
        ..b.clone()
    }
}

fn names_of(list: &[Check], checks: &[(Check, String)]) -> Vec<String> {
    list.iter()
        .filter_map(|c| {
            checks
                .iter()
                .find(|(n, _)| same(n, c))
                .map(|(_, n)| n.clone())
        })
        .collect()
}

fn check(d: &mut Doc, c: &Check, name: &str) {
    d.blank();
    if let Some(o) = &c.origin {
        d.comment(&format!("from {o}"));
    }
    d.array_table("check");
    d.kv("name", Value::Str(name.into()), None);
    d.kv("kind", Value::Str(c.kind.as_str().into()), None);
    d.kv(
        "interval",
        Value::Str(duration(c.interval_ms)),
        Some("delay_loop"),
    );
    d.kv("timeout", Value::Str(duration(c.timeout_ms)), None);
    d.kv(
        "rise",
        Value::Int(u64::from(c.rise)),
        Some("keepalived: up at the first success"),
    );
    d.kv("fall", Value::Int(u64::from(c.fall)), Some("retry + 1"));
    if let Some(f) = c.fast_interval_ms {
        d.kv(
            "fast_interval",
            Value::Str(duration(f)),
            Some("delay_before_retry"),
        );
    }
    if let Some(p) = c.port {
        d.kv("port", Value::Int(u64::from(p)), Some("connect_port"));
    }
    if let Some(a) = c.source_address {
        d.kv("source_address", Value::Str(a.to_string()), Some("bindto"));
    }
    if let Some(p) = &c.path {
        d.kv("path", Value::Str(p.clone()), None);
    }
    if let Some(e) = &c.expect_status {
        d.kv(
            "expect_status",
            Value::Statuses(e.clone()),
            Some("status_code"),
        );
    }
    if let Some(h) = &c.host {
        d.kv("host", Value::Str(h.clone()), Some("virtualhost"));
    }
    if let Some(r) = &c.body_regex {
        d.kv("body_regex", Value::Str(r.clone()), Some("regex"));
    }
    if c.body_regex_no_match {
        d.kv(
            "body_regex_no_match",
            Value::Bool(true),
            Some("regex_no_match"),
        );
    }
    if c.kind == Kind::Https {
        d.kv(
            "tls_verify",
            Value::Bool(c.tls_verify.unwrap_or(false)),
            Some("keepalived's SSL_GET does not verify certificates"),
        );
    }
    if let Some((cert, key)) = &c.tls_client {
        d.kv(
            "tls_cert",
            Value::Str(cert.clone()),
            Some("SSL certificate"),
        );
        d.kv("tls_key", Value::Str(key.clone()), Some("SSL key"));
    }
    if let Some(cmd) = &c.command {
        d.kv("command", Value::Str(cmd.clone()), Some("misc_path"));
        if !c.args.is_empty() {
            d.kv("args", Value::Strs(c.args.clone()), None);
        }
    }
    if let Some(u) = &c.user {
        d.kv("user", Value::Str(u.clone()), None);
    }
    if let Some((name, ty)) = &c.dns {
        d.kv("dns_name", Value::Str(name.clone()), Some("name"));
        d.kv("dns_type", Value::Str(ty.clone()), Some("type"));
    }
    if c.dynamic_weight {
        d.kv("dynamic_weight", Value::Bool(true), Some("misc_dynamic"));
    }
}

fn service(d: &mut Doc, s: &Service, checks: &[(Check, String)], out: &Out) {
    d.blank();
    d.comment(&format!("from {}", s.origin));
    for i in s.omitted.clone() {
        d.comment(&format!("NOT TRANSLATED {}", out.omissions[i]));
    }
    for n in &s.notes {
        d.comment(n);
    }
    d.array_table("service");
    d.kv("name", Value::Str(s.name.clone()), None);
    d.kv("vip", Value::Str(s.vip.to_string()), None);
    d.kv("port", Value::Int(u64::from(s.port)), None);
    if s.udp {
        d.kv("protocol", Value::Str("udp".into()), None);
    }
    d.kv(
        "scheduler",
        Value::Str(s.scheduler.clone()),
        Some("lvs_sched"),
    );
    if let Some(p) = s.mh_port {
        d.kv("mh_port", Value::Bool(p), Some("mh-port"));
    }
    if let Some(f) = s.mh_fallback {
        d.kv("mh_fallback", Value::Bool(f), Some("mh-fallback"));
    }
    d.kv(
        "forwarding",
        Value::Str(s.forwarding.into()),
        Some("lvs_method"),
    );
    if let Some((t, port)) = s.tunnel_type {
        d.kv("tunnel_type", Value::Str(t.into()), None);
        if let Some(p) = port {
            d.kv("tunnel_port", Value::Int(u64::from(p)), None);
        }
    }
    if let Some(q) = s.quorum {
        d.kv("quorum", Value::Int(u64::from(q)), None);
    }
    if let Some(h) = s.hysteresis {
        d.kv("hysteresis", Value::Int(u64::from(h)), None);
    }
    d.kv(
        "alpha",
        Value::Bool(s.alpha),
        Some(if s.alpha {
            "alpha: real servers start down"
        } else {
            "no alpha: real servers start up, as in keepalived"
        }),
    );
    d.kv(
        "on_failure",
        Value::Str(if s.inhibit { "inhibit" } else { "remove" }.into()),
        Some(if s.inhibit {
            "inhibit_on_failure"
        } else {
            "keepalived's default: a failed real server is removed"
        }),
    );
    let lists: Vec<Vec<String>> = s
        .real_servers
        .iter()
        .map(|r| names_of(&r.checks, checks))
        .collect();
    let shared = !lists.is_empty() && !lists[0].is_empty() && lists.iter().all(|l| *l == lists[0]);
    if shared {
        d.kv("checks", Value::Strs(lists[0].clone()), None);
    }
    if let Some((a, p)) = s.sorry {
        let port = if p == s.port {
            String::new()
        } else {
            format!(", port = {p}")
        };
        d.raw(
            "sorry_server",
            &format!("{{ address = \"{a}\"{port} }}"),
            "sorry_server",
        );
    }
    if let Some((t, m)) = s.persistence {
        d.blank();
        d.table("service.persistence");
        d.kv(
            "timeout",
            Value::Str(format!("{t}s")),
            Some("persistence_timeout"),
        );
        if let Some(m) = m {
            d.kv(
                "netmask",
                Value::Int(u64::from(m)),
                Some("persistence_granularity"),
            );
        }
    }
    announce(d, s, out);
    hooks(d, s);
    for (r, list) in s.real_servers.iter().zip(&lists) {
        d.blank();
        for n in &r.notes {
            d.comment(n);
        }
        d.array_table("service.real_server");
        d.kv("address", Value::Str(r.address.to_string()), None);
        if let Some(p) = r.port {
            d.kv("port", Value::Int(u64::from(p)), None);
        }
        d.kv("weight", Value::Int(u64::from(r.weight)), None);
        if !shared && (!list.is_empty() || lists.iter().any(|l| !l.is_empty())) {
            d.kv("checks", Value::Strs(list.clone()), None);
        }
    }
}

fn announce(d: &mut Doc, s: &Service, out: &Out) {
    let a = &s.announce;
    if a == &Default::default() {
        return;
    }
    d.blank();
    d.table("service.announce");
    if a.enabled == Some(false) {
        let why = if out.bgp.is_none() {
            "keepalived alone announces nothing: import with --exabgp, or add [bgp] and remove this"
        } else {
            "not announced by ExaBGP"
        };
        d.kv("enabled", Value::Bool(false), Some(why));
    }
    if let Some(m) = a.med {
        d.kv(
            "med",
            Value::Int(u64::from(m)),
            Some("healthcheck up metric"),
        );
    }
    if let Some(m) = a.drained_med {
        d.kv(
            "drained_med",
            Value::Int(u64::from(m)),
            Some("healthcheck disabled metric"),
        );
    }
    if let Some(l) = a.local_pref {
        d.kv("local_pref", Value::Int(u64::from(l)), None);
    }
    if !a.communities.is_empty() {
        d.kv("communities", Value::Strs(a.communities.clone()), None);
    }
    if !a.large_communities.is_empty() {
        d.kv(
            "large_communities",
            Value::Strs(a.large_communities.clone()),
            None,
        );
    }
    if !a.extended_communities.is_empty() {
        d.kv(
            "extended_communities",
            Value::Strs(a.extended_communities.clone()),
            None,
        );
    }
    if let Some(p) = a.prepend {
        d.kv("prepend", Value::Int(u64::from(p)), Some("--as-path"));
    }
    for (name, st, note) in [
        (
            "service.announce.down",
            &a.down,
            "healthcheck down metric (no --withdraw-on-down)",
        ),
        (
            "service.announce.drained",
            &a.drained,
            "healthcheck disabled state",
        ),
    ] {
        let Some(st) = st else { continue };
        if a.enabled == Some(false) {
            // vipd refuses route states on a VIP it does not announce.
            d.comment(&format!("{note}: not written, the VIP is not announced"));
            continue;
        }
        d.blank();
        d.comment(note);
        d.table(name);
        if let Some(m) = st.med {
            d.kv("med", Value::Int(u64::from(m)), None);
        }
        if let Some(c) = &st.communities {
            d.kv(
                "communities",
                Value::Strs(c.clone()),
                Some("--disabled-community"),
            );
        }
        if let Some(p) = st.prepend {
            d.kv("prepend", Value::Int(u64::from(p)), None);
        }
    }
}

fn hooks(d: &mut Doc, s: &Service) {
    let h = &s.hooks;
    if h == &Default::default() {
        return;
    }
    d.blank();
    d.table("service.hooks");
    for (key, v, from) in [
        ("real_server_up", &h.real_server_up, "notify_up"),
        ("real_server_down", &h.real_server_down, "notify_down"),
        ("quorum_up", &h.quorum_up, "quorum_up"),
        ("quorum_down", &h.quorum_down, "quorum_down"),
    ] {
        if let Some(argv) = v {
            d.kv(key, Value::Strs(argv.clone()), Some(from));
        }
    }
}

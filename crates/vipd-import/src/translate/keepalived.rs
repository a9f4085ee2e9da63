//! keepalived's LVS half (`virtual_server`, `virtual_server_group`, `real_server`, the
//! checkers, `global_defs`' IPVS keys) as vipd services. Everything else (VRRP, notify
//! scripts, SNMP, ...) is reported with its file:line.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::checks::{self, Timing};
use super::model::{Announce, Out, RealServer, Service, written};
use crate::Stmt;

/// Members of each `virtual_server_group`: (VIP, port).
type Groups = BTreeMap<String, Vec<(IpAddr, u16)>>;

/// Translates the statements of a keepalived.conf.
pub(crate) fn translate(stmts: &[Stmt], out: &mut Out) {
    let groups = groups(stmts, out);
    // The SSL block applies to every SSL_GET, wherever it is written.
    for s in stmts.iter().filter(|s| s.keyword == "SSL") {
        ssl(s, out);
    }
    for s in stmts {
        match s.keyword.as_str() {
            "virtual_server_group" | "SSL" => {}
            "virtual_server" => virtual_server(s, &groups, out),
            "global_defs" => global_defs(s, out),
            "vrrp_instance" | "vrrp_sync_group" | "vrrp_script" | "vrrp_track_process"
            | "track_file" | "static_ipaddress" | "static_routes" | "static_rules" => out.omit(
                &s.origin,
                written(s),
                "VRRP and static addresses: vipd announces the VIP with BGP from every director instead of moving it between them",
            ),
            k if k.starts_with(['@', '$', '~']) => out.omit(
                &s.origin,
                written(s),
                "keepalived's conditional/definition syntax: expand it first (keepalived -t --config-test prints the effective file)",
            ),
            _ => out.omit(&s.origin, written(s), "no vipd equivalent"),
        }
    }
}

fn groups(stmts: &[Stmt], out: &mut Out) -> Groups {
    let mut g = Groups::new();
    for s in stmts.iter().filter(|s| s.keyword == "virtual_server_group") {
        let Some(name) = s.arg(0) else {
            out.omit(&s.origin, written(s), "a group needs a name");
            continue;
        };
        let mut members = Vec::new();
        for m in s.children() {
            if m.keyword == "fwmark" {
                out.omit(
                    &m.origin,
                    written(m),
                    "a vipd firewall-mark service also names the VIP it announces, which keepalived does not know: write it by hand ([[service]] with fwmark = N and vip)",
                );
                continue;
            }
            let port = m.arg(0).and_then(|p| p.parse::<u16>().ok());
            match (range(&m.keyword), port) {
                (Some(vips), Some(port)) => members.extend(vips.into_iter().map(|v| (v, port))),
                _ => out.omit(&m.origin, written(m), "expected ADDRESS[-LAST] PORT"),
            }
        }
        g.insert(name.to_string(), members);
    }
    g
}

/// `192.0.2.1`, or keepalived's range `192.0.2.1-4` (the last byte of IPv4, the last
/// 16-bit group of IPv6, in hex).
fn range(s: &str) -> Option<Vec<IpAddr>> {
    let Some((first, last)) = s.rsplit_once('-') else {
        return s.parse().ok().map(|a| vec![a]);
    };
    let first: IpAddr = first.parse().ok()?;
    match first {
        IpAddr::V4(a) => {
            let o = a.octets();
            let last: u8 = last.parse().ok()?;
            (o[3] <= last).then(|| {
                (o[3]..=last)
                    .map(|b| IpAddr::from([o[0], o[1], o[2], b]))
                    .collect()
            })
        }
        IpAddr::V6(a) => {
            let mut seg = a.segments();
            let last = u16::from_str_radix(last, 16).ok()?;
            (seg[7] <= last && last - seg[7] < 256).then(|| {
                (seg[7]..=last)
                    .map(|x| {
                        seg[7] = x;
                        IpAddr::from(seg)
                    })
                    .collect()
            })
        }
    }
}

/// `SSL { certificate F; key F; ca F; password P }`: keepalived presents the certificate but
/// never verifies the server (no SSL_VERIFY_PEER in check_ssl.c), `ca` included.
fn ssl(s: &Stmt, out: &mut Out) {
    let (mut cert, mut key) = (None, None);
    for k in s.children() {
        match (k.keyword.as_str(), k.arg(0)) {
            ("certificate", Some(f)) => cert = Some(f.to_string()),
            ("key", Some(f)) => key = Some(f.to_string()),
            ("ca", Some(_)) => out.omit(
                &k.origin,
                written(k),
                "keepalived loads it but never verifies the server: the checks keep tls_verify = false (set tls_ca and remove tls_verify to verify)",
            ),
            ("password", _) => out.omit(
                &k.origin,
                "password",
                "vipd reads unencrypted PEM keys only: decrypt the key file",
            ),
            _ => out.omit(&k.origin, written(k), "no vipd equivalent"),
        }
    }
    match (cert, key) {
        (Some(c), Some(k)) => out.ssl_client = Some((c, k)),
        (None, None) => {}
        _ => out.omit(
            &s.origin,
            "SSL",
            "a client certificate needs both certificate and key",
        ),
    }
}

fn global_defs(s: &Stmt, out: &mut Out) {
    for k in s.children() {
        match k.keyword.as_str() {
            "lvs_timeouts" => lvs_timeouts(k, out),
            "router_id" => out.omit(
                &k.origin,
                written(k),
                "keepalived's router_id is a name; vipd's is an IPv4 address (taken from ExaBGP's router-id when given)",
            ),
            "lvs_sync_daemon" => out.omit(
                &k.origin,
                written(k),
                "no connection sync: every director computes the same Maglev table, so a flow moved by ECMP reaches the same real server",
            ),
            "lvs_flush" | "lvs_flush_onstop" => out.differences.push(format!(
                "{}: {}: vipd never flushes IPVS; it removes only the services it created and keeps them across restarts",
                k.origin,
                written(k)
            )),
            _ => out.omit(&k.origin, written(k), "no vipd equivalent"),
        }
    }
}

/// `lvs_timeouts tcp 7200 tcpfin 120 udp 300`: vipd sets all three or none.
fn lvs_timeouts(k: &Stmt, out: &mut Out) {
    let mut t: BTreeMap<&str, u64> = BTreeMap::new();
    for pair in k.args.chunks(2) {
        match (
            pair.first().map(String::as_str),
            pair.get(1).and_then(|v| v.parse().ok()),
        ) {
            (Some(n @ ("tcp" | "tcpfin" | "udp")), Some(v)) if v > 0 => {
                t.insert(n, v);
            }
            _ => {
                out.omit(&k.origin, written(k), "expected tcp N tcpfin N udp N");
                return;
            }
        }
    }
    match (t.get("tcp"), t.get("tcpfin"), t.get("udp")) {
        (Some(&a), Some(&b), Some(&c)) => out.ipvs_timeouts = Some((a, b, c)),
        _ => out.omit(
            &k.origin,
            written(k),
            "vipd sets the three IPVS timeouts together: give tcp, tcpfin and udp",
        ),
    }
}

fn virtual_server(s: &Stmt, groups: &Groups, out: &mut Out) {
    let targets: Vec<(IpAddr, u16)> = match (s.arg(0), s.arg(1)) {
        (Some("group"), Some(name)) => match groups.get(name) {
            Some(m) => m.clone(),
            None => {
                out.omit(
                    &s.origin,
                    written(s),
                    "no virtual_server_group of this name",
                );
                return;
            }
        },
        (Some("fwmark"), _) => {
            out.omit(
                &s.origin,
                written(s),
                "a vipd firewall-mark service also names the VIP it announces, which keepalived does not know: write it by hand ([[service]] with fwmark = N and vip)",
            );
            return;
        }
        (Some(ip), Some(port)) => match (ip.parse(), port.parse()) {
            (Ok(ip), Ok(port)) if port > 0 => vec![(ip, port)],
            _ => {
                out.omit(&s.origin, written(s), "expected ADDRESS PORT");
                return;
            }
        },
        _ => {
            out.omit(&s.origin, written(s), "expected ADDRESS PORT");
            return;
        }
    };
    let group = (s.arg(0) == Some("group")).then(|| s.arg(1).unwrap_or_default());
    let first = out.omissions.len();
    let Some(mut template) = body(s, out) else {
        return;
    };
    template.omitted = first..out.omissions.len();
    for (i, (vip, port)) in targets.iter().enumerate() {
        let mut svc = template.clone();
        svc.vip = *vip;
        svc.port = *port;
        svc.name = match group {
            Some(g) if targets.len() > 1 => name(&format!("{g}-{}", i + 1)),
            Some(g) => name(g),
            None => name(&format!("vs-{vip}-{port}")),
        };
        finish(&mut svc, out);
        svc.omitted.end = out.omissions.len();
        out.services.push(svc);
    }
}

/// A service name vipd accepts (A-Z a-z 0-9 - _ ., at most 64).
fn name(s: &str) -> String {
    let n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    n.chars().take(64).collect()
}

/// The settings of a `virtual_server` block, VIP and port left to the caller.
fn body(s: &Stmt, out: &mut Out) -> Option<Service> {
    let mut svc = Service {
        name: String::new(),
        vip: IpAddr::from([0, 0, 0, 0]),
        port: 0,
        udp: false,
        scheduler: "wlc".into(), // ipvsadm's and keepalived's default
        mh_port: None,
        mh_fallback: None,
        forwarding: "nat", // keepalived's default lvs_method
        persistence: None,
        quorum: None,
        hysteresis: None,
        alpha: false,
        inhibit: false,
        real_servers: Vec::new(),
        announce: Announce::default(),
        origin: s.origin.clone(),
        notes: Vec::new(),
        tunnel_type: None,
        omitted: 0..0,
        hooks: Default::default(),
        sorry: None,
    };
    let mut timing = Timing::default();
    let mut host: Option<String> = None;
    let (mut port_flag, mut fallback_flag) = (false, false);
    let mut flag_at: Option<&Stmt> = None;
    let mut scheduler_seen = false;
    let mut protocol_seen = false;
    let mut persistence: (Option<u64>, Option<u8>) = (None, None);
    // Real servers last: they inherit what the virtual server sets, wherever it is written.
    let (rs, rest): (Vec<&Stmt>, Vec<&Stmt>) = s
        .children()
        .iter()
        .partition(|k| k.keyword == "real_server");
    for k in rest {
        if timing.take(k, out) {
            continue;
        }
        let arg = k.arg(0).unwrap_or_default();
        match k.keyword.as_str() {
            "lvs_sched" | "lb_algo" => {
                svc.scheduler = arg.to_string();
                scheduler_seen = true;
            }
            "lvs_method" | "lb_kind" => lvs_method(k, &mut svc, out),
            "protocol" => {
                protocol_seen = true;
                match arg {
                    "TCP" => svc.udp = false,
                    "UDP" => svc.udp = true,
                    _ => {
                        out.omit(&k.origin, written(k), "vipd programs TCP and UDP services");
                        return None;
                    }
                }
            }
            // keepalived 2.2 (check_parser.c lbflags_handler) applies sh-* only when the
            // scheduler named so far is sh, mh-* only when it is mh; flag-N always.
            "flag-2" | "flag-1" | "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
                let kw = k.keyword.as_str();
                let applies = kw.starts_with("flag-")
                    || (scheduler_seen && kw.starts_with(svc.scheduler.as_str()));
                if !applies {
                    out.omit(
                        &k.origin,
                        written(k),
                        format!(
                            "keepalived ignores it here ({}): written as keepalived programs the service, without this flag",
                            if scheduler_seen {
                                format!("it applies to the {} scheduler only", &kw[..2])
                            } else {
                                "it comes before lvs_sched".to_string()
                            }
                        ),
                    );
                } else if kw.ends_with("port") || kw == "flag-2" {
                    port_flag = true;
                    flag_at = flag_at.or(Some(k));
                } else {
                    fallback_flag = true;
                    flag_at = flag_at.or(Some(k));
                }
            }
            "persistence_timeout" => persistence.0 = arg.parse().ok().or(Some(360)),
            "persistence_granularity" => persistence.1 = granularity(arg),
            "quorum" => svc.quorum = arg.parse().ok(),
            "hysteresis" => svc.hysteresis = arg.parse().ok(),
            "alpha" => svc.alpha = true,
            "omega" => out.withdraw_on_stop = true,
            "inhibit_on_failure" => svc.inhibit = arg != "false",
            "virtualhost" => host = Some(arg.to_string()),
            "quorum_up" | "quorum_down" => {
                if let Some(argv) = checks::command_line(k, out) {
                    if k.keyword == "quorum_up" {
                        svc.hooks.quorum_up = Some(argv);
                    } else {
                        svc.hooks.quorum_down = Some(argv);
                    }
                }
            }
            "sorry_server" => match (
                k.arg(0).and_then(|a| a.parse().ok()),
                k.arg(1).and_then(|p| p.parse().ok()),
            ) {
                (Some(a), Some(p)) => svc.sorry = Some((a, p)),
                _ => out.omit(&k.origin, written(k), "expected ADDRESS PORT"),
            },
            "sorry_server_inhibit" => out.omit(
                &k.origin,
                written(k),
                "vipd takes the sorry server out of IPVS when a real server returns (no weight-0 entry)",
            ),
            "sorry_server_lvs_method" => out.omit(
                &k.origin,
                written(k),
                "vipd forwards to the sorry server as to the real servers (the service's forwarding)",
            ),
            _ => out.omit(&k.origin, written(k), "no vipd equivalent"),
        }
    }
    if !protocol_seen {
        // check_data.c: "no protocol set - defaulting to UDP" (the kernel's 0 means UDP).
        svc.udp = true;
        out.differences.push(format!(
            "{}: {}: no protocol line: keepalived 2.2 programs a UDP service; translated as protocol = \"udp\" (add protocol TCP to the keepalived file if TCP was meant)",
            s.origin,
            written(s)
        ));
    }
    if let (Some(t), m) = persistence {
        svc.persistence = Some((t, m));
    } else if persistence.1.is_some() {
        svc.persistence = Some((360, persistence.1));
    }
    if svc.scheduler == "mh" {
        // keepalived sets neither flag unless told; vipd sets both by default.
        svc.mh_port = Some(port_flag);
        svc.mh_fallback = Some(fallback_flag);
    } else if let Some(k) = flag_at {
        out.omit(
            &k.origin,
            written(k),
            format!(
                "vipd sets these flags with the mh scheduler only (this service uses {})",
                svc.scheduler
            ),
        );
    }
    for r in rs {
        if let Some(r) = real_server(r, &svc, timing, host.as_deref(), out) {
            svc.real_servers.push(r);
        }
    }
    Some(svc)
}

/// `lvs_method NAT|DR|TUN [type ipip|gre|gue] [port N]`.
fn lvs_method(k: &Stmt, svc: &mut Service, out: &mut Out) {
    svc.forwarding = match k.arg(0) {
        Some("NAT") => "nat",
        Some("DR") => "dr",
        Some("TUN") => "tunnel",
        _ => {
            out.omit(&k.origin, written(k), "expected NAT, DR or TUN");
            return;
        }
    };
    let mut words = k.args[1..].iter().map(String::as_str);
    while let Some(w) = words.next() {
        match (w, words.next()) {
            ("type", Some(t @ ("ipip" | "gre" | "gue"))) => {
                let t: &'static str = match t {
                    "gre" => "gre",
                    "gue" => "gue",
                    _ => "ipip",
                };
                svc.tunnel_type = Some((t, None));
            }
            ("port", Some(p)) => {
                if let (Some((t, _)), Ok(p)) = (svc.tunnel_type, p.parse()) {
                    svc.tunnel_type = Some((t, Some(p)));
                }
            }
            _ => {
                out.omit(
                    &k.origin,
                    written(k),
                    "vipd sets the tunnel type and GUE port only",
                );
                return;
            }
        }
    }
}

/// `255.255.255.0` -> 24; an IPv6 granularity is already a prefix length.
fn granularity(s: &str) -> Option<u8> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(m)) => {
            let bits = u32::from(m);
            (bits.leading_ones() + bits.trailing_zeros() == 32).then(|| bits.leading_ones() as u8)
        }
        Ok(IpAddr::V6(_)) => None,
        Err(_) => s.parse().ok(),
    }
}

fn real_server(
    s: &Stmt,
    svc: &Service,
    outer: Timing,
    host: Option<&str>,
    out: &mut Out,
) -> Option<RealServer> {
    let Some(address) = s.arg(0).and_then(|a| a.parse::<IpAddr>().ok()) else {
        out.omit(&s.origin, written(s), "expected ADDRESS [PORT]");
        return None;
    };
    let mut r = RealServer {
        address,
        port: s.arg(1).and_then(|p| p.parse().ok()),
        weight: 1,
        checks: Vec::new(),
        notes: Vec::new(),
        inhibit: None,
        notify: [None, None],
    };
    let mut timing = Timing::default();
    let mut host = host.map(str::to_string);
    let (chk, rest): (Vec<&Stmt>, Vec<&Stmt>) = s
        .children()
        .iter()
        .partition(|k| checks::is_checker(&k.keyword));
    for k in rest {
        if timing.take(k, out) {
            continue;
        }
        match k.keyword.as_str() {
            "weight" => match k.arg(0).and_then(|w| w.parse().ok()) {
                Some(w) => r.weight = w,
                None => out.omit(&k.origin, written(k), "not a weight"),
            },
            "inhibit_on_failure" => r.inhibit = Some(k.arg(0) != Some("false")),
            "virtualhost" => host = k.arg(0).map(str::to_string),
            "notify_up" | "notify_down" => {
                if let Some(a) = checks::command_line(k, out) {
                    r.notify[usize::from(k.keyword == "notify_down")] = Some((a, k.origin.clone()));
                }
            }
            "lvs_method"
                if k.arg(0).map(str::to_ascii_lowercase).as_deref()
                    == Some(match svc.forwarding {
                        "tunnel" => "tun",
                        f => f,
                    }) => {}
            _ => out.omit(&k.origin, written(k), "no vipd equivalent"),
        }
    }
    let timing = timing.under(outer);
    for c in chk {
        r.checks
            .extend(checks::checker(c, address, timing, host.as_deref(), out));
    }
    Some(r)
}

/// Per-service facts that need the whole service: the port of non-NAT real servers, the
/// inhibit setting, the kernel's destination order.
fn finish(svc: &mut Service, out: &mut Out) {
    let port = svc.port;
    let nat = svc.forwarding == "nat";
    if let Some((a, p)) = svc.sorry {
        if p != port && !nat {
            // As for real servers: IPVS uses the service port without NAT.
            svc.sorry = Some((a, port));
        }
    }
    let inhibit = svc.inhibit;
    let mut mixed = false;
    for r in &mut svc.real_servers {
        if r.port == Some(port) || r.port.is_none() {
            r.port = None;
        } else if !nat {
            r.notes.push(format!(
                "keepalived's port {} dropped: IPVS uses the service port without NAT",
                r.port.unwrap_or_default()
            ));
            r.port = None;
        }
        if r.inhibit.is_some_and(|i| i != inhibit) {
            mixed = true;
        }
    }
    if mixed {
        out.omit(
            &svc.origin,
            "inhibit_on_failure on some real servers only",
            "vipd inhibits or removes for a whole service: the virtual server's setting is used",
        );
    }
    // notify_up / notify_down: vipd's hooks are per service (the environment names the real
    // server), so every real server must name the same program.
    for i in 0..2 {
        let all: Vec<Option<&(Vec<String>, crate::Origin)>> = svc
            .real_servers
            .iter()
            .map(|r| r.notify[i].as_ref())
            .collect();
        let first = all.iter().flatten().next().map(|(a, _)| a.clone());
        let Some(first) = first else { continue };
        if all.iter().all(|x| x.is_some_and(|(a, _)| *a == first)) {
            if i == 0 {
                svc.hooks.real_server_up = Some(first);
            } else {
                svc.hooks.real_server_down = Some(first);
            }
        } else {
            for (a, at) in all.iter().flatten() {
                out.omit(
                    at,
                    format!("{} {}", ["notify_up", "notify_down"][i], a.join(" ")),
                    "vipd runs one real_server_up/down hook per service (VIPD_RS_ADDRESS says which server): the real servers here differ",
                );
            }
        }
    }
    // keepalived adds real servers in file order and the kernel puts each new destination
    // at the head of the list; vipd keeps them in ascending (address, port) order.
    if matches!(svc.scheduler.as_str(), "mh" | "sh" | "dh") && svc.real_servers.len() > 1 {
        let keys: Vec<(IpAddr, u16)> = svc
            .real_servers
            .iter()
            .map(|r| (r.address, r.port.unwrap_or(port)))
            .collect();
        if !keys.windows(2).all(|w| w[0] > w[1]) {
            out.differences.push(format!(
                "{}: service {}: keepalived's kernel destination order (reverse file order) differs from vipd's (ascending address): while both run, ECMP moves send flows to other real servers (docs/MIGRATING.md, step 3)",
                svc.origin, svc.name
            ));
        }
    }
}

//! ExaBGP's half: its neighbors become `[bgp]`, its healthcheck options the route
//! attributes and drain of the services whose VIPs it announced.
//!
//! In the design vipd replaces, the healthcheck's `--cmd` only tests a file keepalived
//! touches on quorum; vipd decides on its own quorum, so that command, and the timing of its
//! checks, have no counterpart: the header lists them as replaced.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::model::{Bgp, Neighbor, Out, written};
use crate::Stmt;
use crate::exabgp::{Healthcheck, is_healthcheck_command, parse_healthcheck_args};

/// A healthcheck, and where it was configured.
pub(crate) struct Hc {
    pub opts: Healthcheck,
    pub origin: crate::Origin,
}

/// Reads neighbors and healthcheck processes.
pub(crate) fn translate(stmts: &[Stmt], out: &mut Out) -> Result<Vec<Hc>, super::ImportError> {
    let mut templates: BTreeMap<String, Vec<Stmt>> = BTreeMap::new();
    let mut hcs = Vec::new();
    let mut neighbors: Vec<(&Stmt, Vec<Stmt>)> = Vec::new();
    for s in stmts {
        match s.keyword.as_str() {
            "process" => {
                let run = s.children().iter().find(|k| k.keyword == "run");
                match run {
                    Some(r) if is_healthcheck_command(&r.args) => {
                        let opts = parse_healthcheck_args(&r.args).map_err(|e| {
                            super::ImportError::Healthcheck {
                                origin: r.origin.to_string(),
                                source: e,
                            }
                        })?;
                        hcs.push(Hc {
                            opts,
                            origin: r.origin.clone(),
                        });
                    }
                    _ => out.omit(
                        &s.origin,
                        written(s),
                        "vipd runs no ExaBGP API process; only the healthcheck program is translated",
                    ),
                }
            }
            "template" => {
                for t in s.children().iter().filter(|t| t.keyword == "neighbor") {
                    if let Some(n) = t.arg(0) {
                        templates.insert(n.to_string(), t.children().to_vec());
                    }
                }
            }
            "neighbor" => neighbors.push((s, Vec::new())),
            "group" => {
                // ExaBGP 3: a group's statements apply to the neighbors in it.
                let shared: Vec<Stmt> = s
                    .children()
                    .iter()
                    .filter(|k| k.keyword != "neighbor")
                    .cloned()
                    .collect();
                for n in s.children().iter().filter(|k| k.keyword == "neighbor") {
                    neighbors.push((n, shared.clone()));
                }
            }
            _ => out.omit(&s.origin, written(s), "no vipd equivalent"),
        }
    }
    let mut bgp: Option<Bgp> = None;
    for (n, shared) in neighbors {
        neighbor(n, &shared, &templates, &mut bgp, out);
    }
    out.bgp = bgp;
    Ok(hcs)
}

fn neighbor(
    n: &Stmt,
    shared: &[Stmt],
    templates: &BTreeMap<String, Vec<Stmt>>,
    bgp: &mut Option<Bgp>,
    out: &mut Out,
) {
    let Some(address) = n.arg(0).and_then(|a| a.parse::<IpAddr>().ok()) else {
        out.omit(&n.origin, written(n), "expected neighbor ADDRESS");
        return;
    };
    // Inherited statements first, the neighbor's own last (they override).
    let mut items: Vec<&Stmt> = shared.iter().collect();
    for k in n.children().iter().filter(|k| k.keyword == "inherit") {
        for t in &k.args {
            match templates.get(t) {
                Some(v) => items.extend(v.iter()),
                None => out.omit(&k.origin, written(k), "no template of this name"),
            }
        }
    }
    items.extend(n.children().iter().filter(|k| k.keyword != "inherit"));
    let mut nb = Neighbor {
        address,
        remote_as: 0,
        local_address: None,
        password: None,
        passive: false,
        description: None,
        families: Vec::new(),
        multihop: None,
        origin: n.origin.clone(),
        notes: Vec::new(),
        omitted: out.omissions.len()..out.omissions.len(),
    };
    let (mut local_as, mut hold) = (None::<u32>, None::<u16>);
    for k in items {
        let arg = k.arg(0).unwrap_or_default();
        match k.keyword.as_str() {
            "router-id" => match arg.parse() {
                Ok(r) if out.router_id.is_none_or(|o| o == r) => out.router_id = Some(r),
                _ => out.omit(
                    &k.origin,
                    written(k),
                    "vipd has one router ID: the first one is used",
                ),
            },
            "local-address" => nb.local_address = arg.parse().ok(),
            "local-as" => local_as = arg.parse().ok(),
            "peer-as" => nb.remote_as = arg.parse().unwrap_or(0),
            "hold-time" => hold = arg.parse().ok(),
            "md5-password" => nb.password = Some(arg.to_string()),
            "passive" => nb.passive = arg != "false",
            "description" => nb.description = Some(k.args.join(" ")),
            "outgoing-ttl" => nb.multihop = arg.parse().ok(),
            "family" => {
                for f in k.children() {
                    match (f.keyword.as_str(), f.arg(0)) {
                        ("ipv4", Some("unicast")) => nb.families.push("ipv4"),
                        ("ipv6", Some("unicast")) => nb.families.push("ipv6"),
                        _ => out.omit(
                            &f.origin,
                            written(f),
                            "vipd announces IPv4 and IPv6 unicast",
                        ),
                    }
                }
            }
            // The link to the healthcheck process: vipd announces every VIP to every
            // neighbor of its family.
            "api" | "process" => {}
            "capability" => {
                for c in k.children() {
                    out.omit(
                        &c.origin,
                        written(c),
                        "vipd negotiates its own capabilities (graceful restart is [bgp.graceful_restart], on by default)",
                    );
                }
            }
            _ => out.omit(&k.origin, written(k), "no vipd equivalent"),
        }
    }
    nb.omitted.end = out.omissions.len();
    if nb.remote_as == 0 {
        out.omit(&n.origin, written(n), "no peer-as");
        return;
    }
    let Some(local_as) = local_as else {
        out.omit(&n.origin, written(n), "no local-as");
        return;
    };
    match bgp {
        None => {
            *bgp = Some(Bgp {
                local_as,
                hold_time: hold,
                neighbors: vec![nb],
            })
        }
        Some(b) if b.local_as == local_as => {
            if hold != b.hold_time {
                nb.notes.push(format!(
                    "ExaBGP's hold-time here was {}; vipd uses one for all neighbors",
                    hold.map_or("its default".into(), |h| h.to_string())
                ));
            }
            b.neighbors.push(nb)
        }
        Some(_) => out.omit(
            &n.origin,
            written(n),
            "a different local-as: vipd speaks with one AS",
        ),
    }
}

/// Applies the healthchecks' options to the services of their VIPs.
pub(crate) fn apply(hcs: &[Hc], out: &mut Out) {
    let mut announced: BTreeMap<IpAddr, usize> = BTreeMap::new();
    let mut any_ips = false;
    let mut drain: Option<String> = None;
    for hc in hcs {
        let o = &hc.opts;
        let at = &hc.origin;
        let ips: Vec<IpAddr> = o
            .ips
            .iter()
            .filter_map(|i| i.split('/').next().and_then(|a| a.parse().ok()))
            .collect();
        any_ips |= !ips.is_empty();
        let up = o.up_metric.unwrap_or(100);
        let step = o.increase.unwrap_or(1);
        // ExaBGP raises every state's metric by --increase for each further --ip.
        let nth = |base: u32, i: usize| base.saturating_add(step.saturating_mul(i as u32));
        for (i, ip) in ips.iter().enumerate() {
            announced.insert(*ip, i);
            if !out.services.iter().any(|s| s.vip == *ip) {
                out.omit(
                    at,
                    format!("--ip {ip}"),
                    "no keepalived virtual_server has this VIP",
                );
            }
        }
        let targets: Vec<usize> = (0..out.services.len())
            .filter(|&i| ips.is_empty() || ips.contains(&out.services[i].vip))
            .collect();
        let paths = as_paths(o, out.bgp.as_ref(), at, &mut out.omissions);
        let ext = ext_communities(o.extended_community.as_deref(), at, &mut out.omissions);
        for i in targets {
            let vip = out.services[i].vip;
            let n = announced.get(&vip).copied().unwrap_or(0);
            let a = &mut out.services[i].announce;
            a.med = Some(nth(up, n));
            a.local_pref = o.local_preference;
            a.communities = words(o.community.as_deref());
            a.large_communities = words(o.large_community.as_deref());
            a.extended_communities = ext.clone();
            a.prepend = paths[0];
            let disabled = o.disabled_community.as_deref().map(|c| words(Some(c)));
            if !o.withdraw_on_down {
                a.drained_med = Some(nth(o.disabled_metric.unwrap_or(500), n));
                a.down = Some(super::model::StateOut {
                    med: Some(nth(o.down_metric.unwrap_or(1000), n)),
                    communities: disabled.clone(),
                    prepend: paths[1],
                });
            }
            if disabled.is_some() || paths[2].is_some() {
                a.drained = Some(super::model::StateOut {
                    med: None,
                    communities: disabled,
                    prepend: paths[2],
                });
            }
        }
        if let Some(d) = &o.disable {
            let d = d.display().to_string();
            if drain.as_ref().is_some_and(|x| *x != d) {
                out.omit(
                    at,
                    format!("--disable {d}"),
                    "vipd has one drain file per node",
                );
            } else {
                drain = Some(d);
            }
        }
        if o.withdraw_on_down {
            out.differences.push(format!(
                "{at}: drain: ExaBGP withdrew at once; vipd first re-announces with GRACEFUL_SHUTDOWN (65535:0) for drain_delay (30s), then withdraws"
            ));
        } else {
            out.differences.push(format!(
                "{at}: no --withdraw-on-down: the down metric is [service.announce.down] (quorum lost: announced with MED {}); vipd still withdraws a VIP IPVS does not hold, and before the first health pass",
                o.down_metric.unwrap_or(1000)
            ));
            out.differences.push(format!(
                "{at}: drain: ExaBGP kept announcing with the disabled metric; vipd announces with drained_med and GRACEFUL_SHUTDOWN for drain_delay (30s), then withdraws"
            ));
        }
        if let Some(nh) = o.next_hop.as_deref().filter(|n| *n != "self") {
            out.omit(
                at,
                format!("--next-hop {nh}"),
                "vipd announces its session's own address as next hop",
            );
        }
        let mut replaced = vec![];
        if let Some(c) = &o.cmd {
            replaced.push(format!("--cmd {c:?}"));
        }
        for (k, v) in [
            ("--interval", o.interval),
            ("--fast-interval", o.fast_interval),
            ("--rise", o.rise),
            ("--fall", o.fall),
            ("--timeout", o.timeout),
        ] {
            if let Some(v) = v {
                replaced.push(format!("{k} {v}"));
            }
        }
        if !replaced.is_empty() {
            out.replaced.push(format!(
                "{at}: {}: the check of keepalived's quorum file; vipd announces on its own quorum",
                replaced.join(" ")
            ));
        }
        if let Some(n) = &o.name {
            out.omit(
                at,
                format!("--name {n}"),
                "the healthcheck's own label; vipd names each service after its virtual server",
            );
        }
        for (k, v) in &o.other {
            let k = k.trim_start_matches('-');
            let what = match v {
                Some(v) => format!("--{k} {v}"),
                None => format!("--{k}"),
            };
            out.omit(
                at,
                what,
                "an ExaBGP healthcheck option without a vipd counterpart",
            );
        }
    }
    if any_ips {
        for s in &mut out.services {
            if !announced.contains_key(&s.vip) {
                s.announce.enabled = Some(false);
                s.notes
                    .push("ExaBGP's healthcheck did not announce this VIP (--ip)".into());
            }
        }
    }
    if let Some(d) = drain.filter(|d| d != "/etc/lb/disable") {
        out.drain_file = Some(d);
    }
}

fn words(s: Option<&str>) -> Vec<String> {
    s.map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// `--as-path` and the per-state ones (up, down, disabled) as vipd prepends: only a path made
/// of the local AS alone translates (ExaBGP sends a given path as is, so `65001 65001` from AS
/// 65001 is one prepend), and only over eBGP (vipd refuses prepends with iBGP neighbors).
fn as_paths(
    o: &Healthcheck,
    bgp: Option<&super::model::Bgp>,
    at: &crate::Origin,
    omissions: &mut Vec<super::model::Omission>,
) -> [Option<u8>; 3] {
    let mut r = [None; 3];
    for (i, p) in o.state_as_paths.iter().enumerate() {
        let Some(path) = p.as_ref().or(o.as_path.as_ref()) else {
            continue;
        };
        let option = match (i, p.is_some()) {
            (0, true) => "--up-as-path",
            (1, true) => "--down-as-path",
            (2, true) => "--disabled-as-path",
            _ => "--as-path",
        };
        let asns: Vec<u32> = path
            .split_whitespace()
            .filter_map(|a| a.parse().ok())
            .collect();
        let ebgp = bgp.is_some_and(|b| {
            !b.neighbors.is_empty() && b.neighbors.iter().all(|n| n.remote_as != b.local_as)
        });
        let own = bgp.map(|b| b.local_as);
        let n = path.split_whitespace().count();
        let ok = n > 0
            && asns.len() == n
            && own.is_some_and(|own| asns.iter().all(|a| *a == own))
            && ebgp
            && n <= 11;
        if ok {
            r[i] = u8::try_from(n - 1).ok().filter(|p| *p > 0);
        } else if !omissions
            .iter()
            .any(|x| x.origin == *at && x.what == format!("{option} {path}"))
        {
            omissions.push(super::model::Omission {
                origin: at.clone(),
                what: format!("{option} {path}"),
                why:
                    "vipd prepends its own AS on eBGP sessions only; other paths are not translated"
                        .into(),
            });
        }
    }
    r
}

/// `--extended-community`: the route target / origin ones vipd sends; the rest reported.
fn ext_communities(
    v: Option<&str>,
    at: &crate::Origin,
    omissions: &mut Vec<super::model::Omission>,
) -> Vec<String> {
    let mut keep = Vec::new();
    for w in words(v) {
        if w.parse::<vipd_config::ExtCommunity>().is_ok() {
            keep.push(w);
        } else {
            omissions.push(super::model::Omission {
                origin: at.clone(),
                what: format!("--extended-community {w}"),
                why: "vipd sends route target and route origin extended communities only".into(),
            });
        }
    }
    keep
}

//! Rules against keys that would be accepted and then have no effect: a setting the running
//! daemon ignores is worse than an error, because the operator believes it is in force.

use std::collections::{BTreeMap, BTreeSet};

use super::Sink;
use crate::diag::{Diagnostic, Path};
use crate::model::{CheckKind, Config, Role};

/// Runs the rules that need the whole configuration.
pub(super) fn usage(cfg: &Config, s: &mut Sink) {
    backend_role(cfg, s);
    unreferenced_checks(cfg, s);
    agent_check_ports(cfg, s);
    shared_vip_announce(cfg, s);
    fwmarks(cfg, s);
    for (i, svc) in cfg.services.iter().enumerate() {
        let p = Path::root().key("service").idx(i);
        if svc.mh_port.is_some() && svc.scheduler != crate::types::Scheduler::Mh {
            s.push(
                Diagnostic::error(p.key("mh_port"), "mh_port needs scheduler = \"mh\"")
                    .hint("remove mh_port, or use the mh scheduler"),
            );
        }
        if let Some(h) = &svc.hooks {
            hooks(h, &p.key("hooks"), s);
        }
        if let Some(sorry) = &svc.sorry_server {
            sorry_server(svc, sorry, &p.key("sorry_server"), s);
        }
        let a = &svc.announce;
        announce_states(cfg, a, &p.key("announce"), s);
        if !a.graceful_shutdown {
            for (key, set) in [
                ("drained_med", a.drained_med.is_some()),
                ("drain_delay", a.drain_delay.is_some()),
                ("drained", a.drained.is_some()),
            ] {
                if set {
                    s.push(
                        Diagnostic::error(
                            p.key("announce").key(key),
                            format!("{key} has no effect with graceful_shutdown = false"),
                        )
                        .hint("without graceful shutdown a drain withdraws the route at once: remove this key, or set graceful_shutdown = true"),
                    );
                }
            }
        }
    }
}

/// The sorry server is forwarded to as the real servers are: the same rules, and not one of
/// them.
fn sorry_server(
    svc: &crate::model::Service,
    sorry: &crate::model::SorryServer,
    p: &Path,
    s: &mut Sink,
) {
    use crate::model::Forwarding;
    let port = sorry.port.unwrap_or(svc.port);
    let problem = if !super::unicast(sorry.address) {
        Some((
            format!("{} cannot be a sorry server", sorry.address),
            "use a unicast address",
        ))
    } else if sorry.address.is_ipv4() != svc.vip.is_ipv4() && svc.forwarding != Forwarding::Tunnel {
        Some((
            format!(
                "sorry server {} and VIP {} are of different families",
                sorry.address, svc.vip
            ),
            "only tunnel forwarding carries one family over the other",
        ))
    } else if port == 0 || (port != svc.port && svc.forwarding != Forwarding::Nat) {
        Some((
            format!("sorry server port {port} cannot be used"),
            "without NAT the port is the service's (IPVS cannot change it): remove port",
        ))
    } else if svc
        .real_servers
        .iter()
        .any(|r| r.address == sorry.address && svc.port_of(r) == port)
    {
        Some((
            format!("sorry server {}:{port} is a real server", sorry.address),
            "a sorry server stands in for the real servers: use another one",
        ))
    } else {
        None
    };
    if let Some((msg, hint)) = problem {
        s.push(Diagnostic::error(p.clone(), msg).hint(hint));
    }
}

/// Each hook names an absolute program; the timeout is something a hook can finish in.
fn hooks(h: &crate::model::Hooks, p: &Path, s: &mut Sink) {
    for (key, argv) in [
        ("real_server_up", &h.real_server_up),
        ("real_server_down", &h.real_server_down),
        ("quorum_up", &h.quorum_up),
        ("quorum_down", &h.quorum_down),
    ] {
        let Some(argv) = argv else { continue };
        match argv.first() {
            None => s.push(
                Diagnostic::error(p.key(key), format!("{key} is empty"))
                    .hint("[\"/usr/local/bin/program\", \"argument\", ...], or remove the key"),
            ),
            Some(prog) if !prog.starts_with('/') => s.push(
                Diagnostic::error(p.key(key), format!("{prog:?} is not an absolute path")).hint(
                    "hooks run without a shell or PATH lookup: name the program by its full path",
                ),
            ),
            Some(_) => {}
        }
    }
    let t = h.timeout.get();
    if t < std::time::Duration::from_millis(100) || t > std::time::Duration::from_secs(3600) {
        s.push(
            Diagnostic::error(p.key("timeout"), "hook timeout must be 100ms to 1h")
                .hint("the default is 10s"),
        );
    }
}

/// Most AS-path prepends, and the keys of the per-state tables.
const MAX_PREPEND: u8 = 10;

fn announce_states(cfg: &Config, a: &crate::model::Announce, p: &Path, s: &mut Sink) {
    let ibgp = cfg
        .bgp
        .as_ref()
        .is_some_and(|b| b.neighbors.iter().any(|n| n.remote_as == b.local_as));
    let prepends = [
        (p.key("prepend"), Some(a.prepend).filter(|v| *v > 0)),
        (
            p.key("drained").key("prepend"),
            a.drained.as_ref().and_then(|d| d.prepend),
        ),
        (
            p.key("down").key("prepend"),
            a.down.as_ref().and_then(|d| d.prepend),
        ),
    ];
    for (at, v) in prepends {
        let Some(v) = v else { continue };
        if v > MAX_PREPEND {
            s.push(
                Diagnostic::error(at.clone(), format!("prepend {v} is above {MAX_PREPEND}"))
                    .hint("a few prepends already make a path lose; 1 to 3 is usual"),
            );
        }
        if ibgp && v > 0 {
            s.push(
                Diagnostic::error(at, "AS-path prepend with an iBGP neighbor")
                    .hint("iBGP routes carry no AS path (a router drops a path with its own AS): use med or local_pref"),
            );
        }
    }
    if a.drained_med.is_some() && a.drained.as_ref().is_some_and(|d| d.med.is_some()) {
        s.push(
            Diagnostic::error(
                p.key("drained").key("med"),
                "the drained MED is given twice: drained_med and [announce.drained] med",
            )
            .hint("keep one of them"),
        );
    }
    if let Some(f) = &a.drain_file {
        super::absolute(f, p.key("drain_file"), s);
        if *f == cfg.global.drain_file {
            s.push(
                Diagnostic::error(
                    p.key("drain_file"),
                    "this is the node's drain file (global.drain_file)",
                )
                .hint("a VIP's own drain file must be another file; the node's drains every VIP already"),
            );
        }
    }
    if !a.enabled && (a.down.is_some() || a.drained.is_some() || a.drain_file.is_some()) {
        s.push(
            Diagnostic::error(
                p.key("enabled"),
                "announce.enabled = false, but the route's states are configured",
            )
            .hint("remove [announce.down], [announce.drained] and drain_file, or announce the VIP"),
        );
    }
}

/// `[bgp]` and the IPVS settings are director things: a backend never starts them.
fn backend_role(cfg: &Config, s: &mut Sink) {
    if cfg.global.role != Role::Backend {
        return;
    }
    if cfg.bgp.is_some() {
        s.push(
            Diagnostic::error(Path::root().key("bgp"), "a backend does not speak BGP")
                .hint("remove [bgp]: the directors announce the VIPs; a backend receives tunnelled traffic"),
        );
    }
    if cfg.global.ipvs_timeouts.is_some() {
        s.push(
            Diagnostic::error(
                Path::root().key("global").key("ipvs_timeouts"),
                "a backend does not program IPVS",
            )
            .hint("remove [global.ipvs_timeouts] from the backend's configuration"),
        );
    }
}

/// A `[[check]]` nothing refers to would never run.
fn unreferenced_checks(cfg: &Config, s: &mut Sink) {
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for svc in &cfg.services {
        used.extend(svc.checks.iter().map(String::as_str));
        for rs in &svc.real_servers {
            used.extend(rs.checks.iter().flatten().map(String::as_str));
        }
    }
    if let Some(a) = cfg.backend.as_ref().and_then(|b| b.agent.as_ref()) {
        used.extend(a.checks.iter().map(String::as_str));
    }
    for (i, c) in cfg.checks.iter().enumerate() {
        if let Some(n) = &c.name {
            if !used.contains(n.as_str()) {
                let hint = if cfg.global.role == Role::Backend {
                    "list it in [backend.agent] checks, or remove it"
                } else {
                    "list it in a service's or real server's checks, or remove it"
                };
                s.push(
                    Diagnostic::warning(
                        Path::root().key("check").idx(i).key("name"),
                        format!("check {n:?} is used nowhere: it never runs"),
                    )
                    .hint(hint),
                );
            }
        }
    }
}

/// A backend's local checks probe 127.0.0.1: there is no real server whose port they could
/// default to, so a network check must name its port.
fn agent_check_ports(cfg: &Config, s: &mut Sink) {
    let Some(a) = cfg.backend.as_ref().and_then(|b| b.agent.as_ref()) else {
        return;
    };
    for (i, c) in cfg.checks.iter().enumerate() {
        let listed = c.name.as_ref().is_some_and(|n| a.checks.contains(n));
        let network = matches!(
            c.kind,
            CheckKind::Http | CheckKind::Https | CheckKind::Tcp | CheckKind::Agent
        );
        if listed && network && c.port.is_none() {
            s.push(
                Diagnostic::error(
                    Path::root().key("check").idx(i),
                    format!(
                        "check {:?} runs on this backend (127.0.0.1) and needs a port",
                        c.name.as_deref().unwrap_or_default()
                    ),
                )
                .hint("add port = ... (the port this node's L7 server listens on)"),
            );
        }
    }
}

/// A mark is one IPVS service per family; a check of a real server that has no port (a
/// firewall-mark service's) must name the port it probes.
fn fwmarks(cfg: &Config, s: &mut Sink) {
    let mut seen: BTreeMap<(u32, bool), usize> = BTreeMap::new();
    for (i, svc) in cfg.services.iter().enumerate() {
        let Some(mark) = svc.fwmark else { continue };
        let p = Path::root().key("service").idx(i);
        if let Some(j) = seen.insert((mark, svc.vip.is_ipv6()), i) {
            s.push(
                Diagnostic::error(
                    p.key("fwmark"),
                    format!(
                        "fwmark {mark} is already service {:?}'s",
                        cfg.services[j].name
                    ),
                )
                .hint("one mark (per address family) is one IPVS service: use another mark"),
            );
        }
        for (k, rs) in svc.real_servers.iter().enumerate() {
            if svc.port_of(rs) != 0 {
                continue;
            }
            let names = rs.checks.as_ref().unwrap_or(&svc.checks);
            for name in names {
                let Some(c) = cfg.checks.iter().find(|c| c.name.as_ref() == Some(name)) else {
                    continue;
                };
                let network = matches!(
                    c.kind,
                    CheckKind::Http
                        | CheckKind::Https
                        | CheckKind::Tcp
                        | CheckKind::Agent
                        | CheckKind::Dns
                );
                if network && c.port.is_none() {
                    s.push(
                        Diagnostic::error(
                            p.key("real_server").idx(k),
                            format!(
                                "check {name:?} has no port to probe on {} (a firewall-mark service's real servers have none)",
                                rs.address
                            ),
                        )
                        .hint("give the check a port = ..."),
                    );
                }
            }
        }
    }
}

/// Services sharing a VIP share its one route: their `[service.announce]` must agree, or
/// which one the route follows would be an accident of file order.
fn shared_vip_announce(cfg: &Config, s: &mut Sink) {
    let mut first: BTreeMap<std::net::IpAddr, usize> = BTreeMap::new();
    for (i, svc) in cfg.services.iter().enumerate() {
        match first.get(&svc.vip) {
            None => {
                first.insert(svc.vip, i);
            }
            Some(&j) if cfg.services[j].announce != svc.announce => {
                let other = &cfg.services[j].name;
                s.push(
                    Diagnostic::error(
                        Path::root().key("service").idx(i).key("announce"),
                        format!(
                            "service {:?} announces VIP {} differently from service {other:?}",
                            svc.name, svc.vip
                        ),
                    )
                    .hint("one VIP is one route: give every service of this VIP the same [service.announce]"),
                );
            }
            Some(_) => {}
        }
    }
}

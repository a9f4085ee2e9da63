//! Rules of `[backend]`, the L7-node role.

use std::collections::{BTreeMap, BTreeSet};

use super::services::check_names;
use super::{Sink, absolute, unicast};
use crate::diag::{Diagnostic, Path};
use crate::model::{Backend, TunnelMode};

/// IFNAMSIZ - 1.
const MAX_IFNAME: usize = 15;

pub(super) fn backend(b: &Backend, defined: &BTreeSet<&str>, s: &mut Sink) {
    let p = Path::root().key("backend");
    let mut devs: BTreeMap<&str, usize> = BTreeMap::new();
    let mut vips: BTreeMap<std::net::IpAddr, String> = BTreeMap::new();
    for (i, t) in b.tunnels.iter().enumerate() {
        let tp = p.key("tunnel").idx(i);
        let name_ok = !t.name.is_empty()
            && t.name.len() <= MAX_IFNAME
            && t.name != "."
            && t.name != ".."
            && !t
                .name
                .contains(|c: char| c == '/' || c == ':' || c == '.' || c.is_whitespace());
        if !name_ok {
            s.push(
                Diagnostic::error(tp.key("name"), format!("invalid device name {:?}", t.name))
                    .hint("1 to 15 bytes, no '/', ':', '.' or spaces (e.g. \"tunlv6\"): a dot cannot be named in the device's rp_filter sysctl"),
            );
        } else if let Some(first) = devs.insert(&t.name, i) {
            s.push(
                Diagnostic::error(
                    tp.key("name"),
                    format!("device {:?} is defined twice", t.name),
                )
                .hint(format!("backend.tunnel[{first}] has it already")),
            );
        }
        let v4 = t.mode.outer_v4();
        // The kernel keeps one catch-all device per mode and namespace (tunl0, ip6tnl0,
        // gre0, ip6gre0) that receives from any address; another device without endpoints
        // collides with it.
        let catch_all = t.mode.catch_all();
        if t.local.is_none() && t.name != catch_all {
            s.push(
                Diagnostic::error(tp.key("name"), format!("tunnel {:?} has no local address", t.name))
                    .hint(format!("set local = \"<this node's address>\", or name it {catch_all:?}: the kernel's device that receives from any address")),
            );
        }
        if let Some(l) = t.local {
            if l.is_ipv4() != v4 || !unicast(l) {
                s.push(
                    Diagnostic::error(
                        tp.key("local"),
                        format!("local {l} does not fit mode {:?}", t.mode.as_str()),
                    )
                    .hint("ipip and gre tunnels have an IPv4 unicast local address, ip6ip6 and ip6gre an IPv6 one"),
                );
            }
        }
        for (j, v) in t.vips.iter().enumerate() {
            if let Some(hint) = vip_misfit(t, *v) {
                s.push(
                    Diagnostic::error(
                        tp.key("vips").idx(j),
                        format!(
                            "VIP {v} cannot arrive over {:?} device {:?}",
                            t.mode.as_str(),
                            t.name
                        ),
                    )
                    .hint(hint),
                );
            }
            vip(*v, &t.name, tp.key("vips").idx(j), &mut vips, s);
        }
        match (t.mode, t.gue_port) {
            (_, None) => {}
            (_, Some(0)) => s.push(
                Diagnostic::error(tp.key("gue_port"), "GUE needs a fixed UDP port")
                    .hint("the port the directors' services use as tunnel_port, e.g. 6080"),
            ),
            (TunnelMode::Ipip | TunnelMode::Ip6ip6, Some(_)) => {}
            (TunnelMode::Gre | TunnelMode::Ip6gre, Some(_)) => s.push(
                Diagnostic::error(
                    tp.key("gue_port"),
                    "IPVS's GUE carries IP in UDP, never GRE",
                )
                .hint("put gue_port on an ipip (IPv4 real server) or ip6ip6 (IPv6 real server) device"),
            ),
        }
    }
    for (j, v) in b.loopback_vips.iter().enumerate() {
        vip(*v, "lo", p.key("loopback_vips").idx(j), &mut vips, s);
    }
    if b.tunnels.is_empty() && b.loopback_vips.is_empty() {
        s.push(
            Diagnostic::error(p.clone(), "[backend] receives no VIP")
                .hint("add [[backend.tunnel]] with vips = [...] (tunnel forwarding) or loopback_vips (dr)"),
        );
    }
    if !b.tunnels.is_empty() && b.allowed_directors.is_empty() {
        s.push(
            Diagnostic::warning(
                p.key("tunnel"),
                "tunnels accept encapsulated packets from any source",
            )
            .hint("list the directors in backend.allowed_directors to filter the others out"),
        );
    }
    for (j, d) in b.allowed_directors.iter().enumerate() {
        if !unicast(*d) {
            s.push(
                Diagnostic::error(
                    p.key("allowed_directors").idx(j),
                    format!("{d} is not a director address"),
                )
                .hint("use the directors' unicast addresses"),
            );
        }
    }
    if let Some(a) = &b.agent {
        let ap = p.key("agent");
        absolute(&a.state_file, ap.key("state_file"), s);
        if a.listen.port() == 0 {
            s.push(
                Diagnostic::error(ap.key("listen"), "the agent needs a fixed port")
                    .hint("e.g. listen = \"[::]:5555\""),
            );
        }
        check_names(&a.checks, &ap.key("checks"), defined, s);
    }
}

fn vip(
    v: std::net::IpAddr,
    dev: &str,
    at: Path,
    seen: &mut BTreeMap<std::net::IpAddr, String>,
    s: &mut Sink,
) {
    if !unicast(v) {
        s.push(
            Diagnostic::error(at.clone(), format!("{v} cannot be a VIP"))
                .hint("use the service's unicast VIP"),
        );
    }
    if let Some(other) = seen.insert(v, dev.to_string()) {
        s.push(
            Diagnostic::error(at, format!("VIP {v} is already on {other}"))
                .hint("put each VIP on one device"),
        );
    }
}

/// Why VIP `v` cannot be received on tunnel `t`, if it cannot.
fn vip_misfit(t: &crate::model::BackendTunnel, v: std::net::IpAddr) -> Option<&'static str> {
    match (t.mode, v.is_ipv4()) {
        // IPv6 in IPv4 is protocol 41 (sit), which an ipip device does not take.
        (TunnelMode::Ipip, false) => Some(
            "an ipip device takes IPv4 inside IPv4 only: put the IPv6 VIP on an ip6ip6 device (IPv6 real server) or a gre device",
        ),
        // The catch-all keeps its ip6ip6 protocol (the kernel refuses to change it), so
        // IPv4 inside IPv6 needs a device of vipd's in `mode any`.
        (TunnelMode::Ip6ip6, true) if t.name == TunnelMode::Ip6ip6.catch_all() => Some(
            "ip6tnl0 takes IPv6 inside IPv6 only: use a named ip6ip6 device with local = \"<this node's IPv6 address>\" (vipd creates it in mode any)",
        ),
        _ => None,
    }
}

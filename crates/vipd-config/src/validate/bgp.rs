//! Rules of `[bgp]` and its neighbors.

use std::collections::BTreeMap;

use super::{Sink, unicast};
use crate::diag::{Diagnostic, Path};
use crate::model::{Bgp, Config, Family, Neighbor};
use crate::types::{Duration, Secret};

/// AS_TRANS (RFC 6793): never a real AS.
const AS_TRANS: u32 = 23456;
/// TCP_MD5SIG_MAXKEYLEN in the kernel.
const MD5_MAX_KEY: usize = 80;

pub(super) fn bgp(cfg: &Config, b: &Bgp, s: &mut Sink) {
    let p = Path::root().key("bgp");
    asn(b.local_as, p.key("local_as"), s);
    match b.router_id.or(cfg.global.router_id) {
        None => s
            .push(Diagnostic::error(p.clone(), "no BGP router ID").hint(
                "set bgp.router_id or global.router_id to one of this node's IPv4 addresses",
            )),
        Some(r) if r.is_unspecified() => s.push(
            Diagnostic::error(
                p.key("router_id"),
                "router_id 0.0.0.0 is not allowed (RFC 6286)",
            )
            .hint("use one of this node's IPv4 addresses"),
        ),
        Some(_) => {}
    }
    if matches!(b.hold_time, 1 | 2) {
        s.push(
            Diagnostic::error(
                p.key("hold_time"),
                format!("hold_time {} is not allowed", b.hold_time),
            )
            .hint("RFC 4271 allows 0 (no keepalives) or at least 3 seconds"),
        );
    }
    if let Some(k) = b.keepalive {
        if b.hold_time == 0 && k != 0 {
            s.push(
                Diagnostic::error(p.key("keepalive"), "keepalive is set but hold_time is 0")
                    .hint("with hold_time = 0 no keepalives are sent: remove keepalive"),
            );
        } else if b.hold_time != 0 && (k == 0 || k >= b.hold_time) {
            s.push(
                Diagnostic::error(
                    p.key("keepalive"),
                    format!("keepalive {k} must be between 1 and hold_time - 1"),
                )
                .hint(format!(
                    "the usual value is hold_time / 3 = {}",
                    b.hold_time / 3
                )),
            );
        }
    }
    if b.connect_retry == 0 {
        s.push(
            Diagnostic::error(
                p.key("connect_retry"),
                "connect_retry must be at least 1 second",
            )
            .hint("e.g. connect_retry = 5"),
        );
    }
    if b.graceful_restart.restart_time > 4095 {
        s.push(
            Diagnostic::error(
                p.key("graceful_restart").key("restart_time"),
                format!(
                    "restart_time {} does not fit the 12-bit field",
                    b.graceful_restart.restart_time
                ),
            )
            .hint("use at most 4095 seconds (RFC 4724)"),
        );
    }
    if b.neighbors.is_empty() {
        s.push(
            Diagnostic::warning(
                p.clone(),
                "[bgp] has no neighbor: nothing will be announced",
            )
            .hint("add [[bgp.neighbor]] tables for the routers"),
        );
    }
    bfd(
        b.bfd.min_tx,
        b.bfd.min_rx,
        b.bfd.multiplier,
        &p.key("bfd"),
        s,
    );
    let mut seen: BTreeMap<_, usize> = BTreeMap::new();
    for (i, n) in b.neighbors.iter().enumerate() {
        let np = p.key("neighbor").idx(i);
        if let Some(first) = seen.insert((n.address, n.port), i) {
            s.push(
                Diagnostic::error(
                    np.key("address"),
                    format!("neighbor {} is configured twice", n.address),
                )
                .hint(format!("merge it with bgp.neighbor[{first}]")),
            );
        }
        neighbor(n, &np, s);
        if let Some(nb) = &n.bfd {
            let e = n.effective_bfd(&b.bfd);
            let at = np.key("bfd");
            bfd(
                nb.min_tx.map(|_| e.min_tx).unwrap_or(MIN_BFD_INTERVAL),
                nb.min_rx.map(|_| e.min_rx).unwrap_or(MIN_BFD_INTERVAL),
                nb.multiplier.unwrap_or(1),
                &at,
                s,
            );
        }
    }
}

/// The fastest BFD interval accepted: a userspace daemon on a busy host cannot promise
/// better (BIRD's floor is 10 ms too).
const MIN_BFD_INTERVAL: Duration = Duration::from_millis(10);
/// The slowest.
const MAX_BFD_INTERVAL: Duration = Duration::from_secs(60);

/// BFD intervals and multiplier, at `p` (`bgp.bfd` or a neighbor's `bfd`).
fn bfd(min_tx: Duration, min_rx: Duration, multiplier: u8, p: &Path, s: &mut Sink) {
    for (key, v) in [("min_tx", min_tx), ("min_rx", min_rx)] {
        if v.get() < MIN_BFD_INTERVAL.get() || v.get() > MAX_BFD_INTERVAL.get() {
            s.push(
                Diagnostic::error(p.key(key), format!("{key} {v} is outside 10ms..=60s"))
                    .hint("routers usually run 100ms-1s; 100ms x 3 detects a failure in 300 ms"),
            );
        }
    }
    if multiplier == 0 {
        s.push(
            Diagnostic::error(p.key("multiplier"), "multiplier must be at least 1")
                .hint("3 is usual: a router is down after 3 intervals without a packet"),
        );
    }
}

fn asn(a: u32, at: Path, s: &mut Sink) {
    if a == 0 || a == AS_TRANS {
        s.push(
            Diagnostic::error(at, format!("AS {a} is reserved"))
                .hint("use a real AS number (private: 64512..=65534 or 4200000000..=4294967294)"),
        );
    }
}

fn neighbor(n: &Neighbor, p: &Path, s: &mut Sink) {
    asn(n.remote_as, p.key("remote_as"), s);
    if !unicast(n.address) {
        s.push(
            Diagnostic::error(
                p.key("address"),
                format!("{} is not a unicast address", n.address),
            )
            .hint("use the router's interface or loopback address"),
        );
    }
    if n.port == 0 {
        s.push(
            Diagnostic::error(p.key("port"), "port 0 is not a TCP port")
                .hint("the BGP port is 179"),
        );
    }
    if let Some(l) = n.local_address {
        if l.is_ipv4() != n.address.is_ipv4() {
            s.push(
                Diagnostic::error(
                    p.key("local_address"),
                    format!(
                        "local_address {l} and address {} are of different families",
                        n.address
                    ),
                )
                .hint("a TCP session has one family: use a local address of the neighbor's family"),
            );
        }
    }
    if n.password.is_some() && n.password_file.is_some() {
        s.push(
            Diagnostic::error(
                p.key("password_file"),
                "password and password_file are both set",
            )
            .hint("keep one: password_file keeps the key out of this file"),
        );
    }
    if let Some(pw) = n.password.as_ref().map(Secret::expose) {
        if pw.is_empty() || pw.len() > MD5_MAX_KEY {
            s.push(
                Diagnostic::error(
                    p.key("password"),
                    format!("password must be 1 to {MD5_MAX_KEY} bytes"),
                )
                .hint("the kernel's TCP_MD5SIG key is at most 80 bytes"),
            );
        }
    }
    match n.multihop {
        Some(0) => s.push(
            Diagnostic::error(p.key("multihop"), "multihop must be at least 1")
                .hint("it is the TTL of outgoing packets; 1 means directly connected"),
        ),
        Some(_) if n.ttl_security => s.push(
            Diagnostic::error(
                p.key("ttl_security"),
                "ttl_security and multihop cannot both be set",
            )
            .hint("GTSM (ttl_security) sends TTL 255 and accepts only directly connected peers"),
        ),
        _ => {}
    }
    let fams = n.effective_families();
    if fams.is_empty() {
        s.push(
            Diagnostic::error(p.key("families"), "families is empty")
                .hint("list at least one of \"ipv4\", \"ipv6\""),
        );
    }
    for (j, f) in fams.iter().enumerate() {
        if fams[..j].contains(f) {
            s.push(
                Diagnostic::error(p.key("families").idx(j), "family listed twice")
                    .hint("list each family once"),
            );
        }
    }
    let own = Family::of(n.address);
    if fams.contains(&Family::Ipv6) && own == Family::Ipv4 && n.ipv6_next_hop.is_none() {
        s.push(
            Diagnostic::error(
                p.key("families"),
                "IPv6 routes on an IPv4 session need an IPv6 next hop",
            )
            .hint("set ipv6_next_hop to this node's IPv6 address on the link to the router"),
        );
    }
    if fams.contains(&Family::Ipv4) && own == Family::Ipv6 && n.ipv4_next_hop.is_none() {
        s.push(
            Diagnostic::error(
                p.key("families"),
                "IPv4 routes on an IPv6 session need an IPv4 next hop",
            )
            .hint("set ipv4_next_hop to this node's IPv4 address on the link to the router"),
        );
    }
    if n.ipv4_next_hop.is_some() && !fams.contains(&Family::Ipv4) {
        s.push(
            Diagnostic::warning(
                p.key("ipv4_next_hop"),
                "ipv4_next_hop is set but ipv4 is not negotiated",
            )
            .hint("add \"ipv4\" to families or remove ipv4_next_hop"),
        );
    }
    if n.ipv6_next_hop.is_some() && !fams.contains(&Family::Ipv6) {
        s.push(
            Diagnostic::warning(
                p.key("ipv6_next_hop"),
                "ipv6_next_hop is set but ipv6 is not negotiated",
            )
            .hint("add \"ipv6\" to families or remove ipv6_next_hop"),
        );
    }
}

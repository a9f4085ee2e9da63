//! A digest of one IPVS service as the kernel forwards it, to compare directors.
//!
//! Every director of a tier must compute the same `mh` table, or an ECMP rehash sends a
//! flow to another backend and breaks it. The table depends on the scheduler and its flags,
//! the destinations in kernel list order (Maglev fills its slots taking the destinations in
//! turn), their weights and how packets reach them. The digest covers exactly those, read
//! from the kernel view (not the configuration), so a director whose kernel differs from
//! its peers' shows a different digest whatever the reason.
//!
//! Connection counters and statistics are left out: they differ between directors without
//! changing where a new flow goes. The hash is FNV-1a 64 over a canonical text: stable across
//! versions and machines, enough to tell tables apart by accident (not against forgery,
//! which the comparison does not need).

use std::fmt::Write as _;

use vipd_ipvs::{Dest, Service};

/// The canonical text the digest hashes, one line per item (shown by `vipd status` when two
/// directors disagree and an operator wants to see why).
pub fn table_text(svc: &Service, dests: &[Dest]) -> String {
    let mut t = String::with_capacity(64 + 48 * dests.len());
    let _ = writeln!(
        t,
        "{} {} flags={:#x} timeout={} netmask={:#x} pe={}",
        svc.key,
        svc.scheduler,
        svc.flags & Service::FLAG_MASK,
        svc.timeout,
        svc.netmask,
        svc.pe_name.as_deref().unwrap_or("-"),
    );
    for d in dests {
        let _ = writeln!(
            t,
            "{} {:?} weight={} thresholds={}/{} tunnel={:?}/{}/{:#x}",
            std::net::SocketAddr::new(d.addr, d.port),
            d.forward,
            d.weight,
            d.u_thresh,
            d.l_thresh,
            d.tun_type,
            d.tun_port,
            d.tun_flags,
        );
    }
    t
}

/// The digest of a service's forwarding table: 16 hex digits.
pub fn table_digest(svc: &Service, dests: &[Dest]) -> String {
    format!("{:016x}", fnv1a64(table_text(svc, dests).as_bytes()))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipd_ipvs::{Forward, Protocol, ServiceKey};

    fn svc() -> Service {
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: "198.51.100.10".parse().unwrap(),
            port: 80,
        };
        let mut s = Service::new(key, "mh");
        s.flags = vipd_ipvs::constants::IP_VS_SVC_F_SCHED1;
        s
    }

    fn dests() -> Vec<Dest> {
        ["10.8.0.11", "10.8.0.12", "10.8.0.13"]
            .iter()
            .map(|a| Dest::new(a.parse().unwrap(), 80, Forward::Tunnel, 1))
            .collect()
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn same_table_same_digest_whatever_the_counters() {
        let a = table_digest(&svc(), &dests());
        let mut busy = dests();
        busy[0].active_conns = 40;
        busy[1].inact_conns = 7;
        let mut s = svc();
        s.flags |= vipd_ipvs::constants::IP_VS_SVC_F_HASHED;
        assert_eq!(a, table_digest(&s, &busy));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn order_weight_forwarding_and_flags_change_it() {
        let base = table_digest(&svc(), &dests());
        let mut reordered = dests();
        reordered.swap(0, 2);
        let mut weighted = dests();
        weighted[1].weight = 2;
        let mut nat = dests();
        nat[2].forward = Forward::Masq;
        let mut fallback = svc();
        fallback.flags |= vipd_ipvs::constants::IP_VS_SVC_F_SCHED2;
        let mut fewer = dests();
        fewer.pop();
        for (what, d) in [
            ("order", table_digest(&svc(), &reordered)),
            ("weight", table_digest(&svc(), &weighted)),
            ("forwarding", table_digest(&svc(), &nat)),
            ("flags", table_digest(&fallback, &dests())),
            ("destinations", table_digest(&svc(), &fewer)),
        ] {
            assert_ne!(d, base, "{what} must change the digest");
        }
    }
}

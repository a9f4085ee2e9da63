//! Reconciler tests against a model of the kernel's destination list (head insertion, edits
//! in place), including property tests over random histories.

use std::collections::BTreeSet;
use std::net::IpAddr;

use proptest::prelude::*;
use vipd_ipvs::model::host_netmask;
use vipd_ipvs::{Dest, Forward, Op, Protocol, Service, ServiceKey};

use crate::{DesiredService, KernelView, canonical_order, plan};

/// The kernel as the reconciler must assume it behaves: the view mirrors it (head
/// insertion, edits in place, errors on duplicates and missing objects).
type Kernel = KernelView;

trait ApplyAll {
    fn apply_all(&mut self, ops: &[Op]);
    fn list(&self, vip: &str) -> &Vec<Dest>;
}

impl ApplyAll for Kernel {
    fn apply_all(&mut self, ops: &[Op]) {
        for op in ops {
            self.apply(op).unwrap_or_else(|e| panic!("{op}: {e}"));
        }
    }
    fn list(&self, vip: &str) -> &Vec<Dest> {
        &self.get(&key(vip)).expect("service").1
    }
}

fn key(vip: &str) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: vip.parse().unwrap(),
        port: 80,
    }
}

fn svc(vip: &str) -> Service {
    let k = key(vip);
    Service {
        key: k,
        scheduler: "mh".into(),
        flags: 0x10,
        timeout: 0,
        netmask: host_netmask(false),
        pe_name: None,
        stats: None,
    }
}

fn dest(last: u8, weight: u32) -> Dest {
    Dest::new(IpAddr::from([192, 0, 2, last]), 80, Forward::Tunnel, weight)
}

fn want(vip: &str, dests: Vec<Dest>) -> DesiredService {
    DesiredService {
        service: svc(vip),
        dests,
    }
}

fn order(k: &Kernel, vip: &str) -> Vec<(u8, u32)> {
    let list = k.list(vip);
    list.iter()
        .map(|d| match d.addr {
            IpAddr::V4(a) => (a.octets()[3], d.weight),
            IpAddr::V6(_) => unreachable!(),
        })
        .collect()
}

#[test]
fn from_empty_creates_in_canonical_order() {
    let d = [want(
        "198.51.100.1",
        vec![dest(30, 3), dest(10, 1), dest(20, 2)],
    )];
    let p = plan(&d, &Kernel::default(), &BTreeSet::new());
    assert_eq!(p.ops.len(), 5);
    // Staged: created without a scheduler, filled, then switched to mh (one table build).
    assert!(matches!(&p.ops[0], Op::NewService(s) if s.scheduler == "none"));
    assert!(matches!(&p.ops[4], Op::SetService(s) if s.scheduler == "mh" && s.flags == 0x10));
    let mut k = Kernel::default();
    k.apply_all(&p.ops);
    assert_eq!(order(&k, "198.51.100.1"), [(10, 1), (20, 2), (30, 3)]);
}

#[test]
fn single_destination_services_are_not_staged() {
    let p = plan(
        &[want("198.51.100.1", vec![dest(10, 1)])],
        &Kernel::default(),
        &BTreeSet::new(),
    );
    assert!(
        matches!(&p.ops[..], [Op::NewService(s), Op::NewDest(..)] if s.scheduler == "mh"),
        "{:?}",
        p.ops
    );
}

#[test]
fn desired_state_makes_zero_writes() {
    let d = [want("198.51.100.1", vec![dest(10, 1), dest(20, 2)])];
    let mut k = Kernel::default();
    k.apply_all(&plan(&d, &Kernel::default(), &BTreeSet::new()).ops);
    let again = plan(&d, &k, &BTreeSet::new());
    assert!(again.ops.is_empty() && again.drift.is_empty(), "{again:?}");
    // Dump counters differ from what vipd would write: still nothing to do.
    k.first_mut().1[0].active_conns = 7;
    k.first_mut().0.flags |= vipd_ipvs::constants::IP_VS_SVC_F_HASHED;
    assert!(plan(&d, &k, &BTreeSet::new()).ops.is_empty());
}

#[test]
fn one_weight_change_is_one_operation() {
    let mut d = [want(
        "198.51.100.1",
        vec![dest(10, 1), dest(20, 2), dest(30, 3)],
    )];
    let mut k = Kernel::default();
    k.apply_all(&plan(&d, &Kernel::default(), &BTreeSet::new()).ops);
    d[0].dests[1].weight = 0;
    let p = plan(&d, &k, &BTreeSet::new());
    assert_eq!(p.ops, vec![Op::SetDest(key("198.51.100.1"), dest(20, 0))]);
}

#[test]
fn foreign_services_are_reported_and_untouched() {
    let mut k = Kernel::default();
    k.apply_all(&[
        Op::NewService(svc("203.0.113.9")),
        Op::NewDest(key("203.0.113.9"), dest(99, 1)),
    ]);
    let d = [want("198.51.100.1", vec![dest(10, 1)])];
    let p = plan(&d, &k, &BTreeSet::new());
    assert_eq!(p.foreign, vec![key("203.0.113.9")]);
    assert!(
        p.ops.iter().all(|op| *op.service() != key("203.0.113.9")),
        "{:?}",
        p.ops
    );
}

#[test]
fn owned_service_removed_from_config_is_deleted() {
    let mut k = Kernel::default();
    k.apply_all(
        &plan(
            &[want("198.51.100.2", vec![dest(10, 1)])],
            &Kernel::default(),
            &BTreeSet::new(),
        )
        .ops,
    );
    let owned = BTreeSet::from([key("198.51.100.2")]);
    let p = plan(&[], &k, &owned);
    assert_eq!(p.ops, vec![Op::DelService(key("198.51.100.2"))]);
    assert!(p.foreign.is_empty());
}

#[test]
fn drift_is_repaired_and_described() {
    let d = [want("198.51.100.1", vec![dest(10, 1), dest(20, 2)])];
    let mut k = Kernel::default();
    k.apply_all(&plan(&d, &Kernel::default(), &BTreeSet::new()).ops);
    // Behind vipd's back: ipvsadm -e ... -w 9; ipvsadm -a ... 192.0.2.77; scheduler changed.
    k.apply_all(&[
        Op::SetDest(key("198.51.100.1"), dest(20, 9)),
        Op::NewDest(key("198.51.100.1"), dest(77, 1)),
    ]);
    k.first_mut().0.scheduler = "rr".into();
    let p = plan(&d, &k, &BTreeSet::new());
    assert_eq!(p.drift.len(), 3, "{:?}", p.drift);
    assert!(
        p.drift.iter().any(|s| s.contains("weight 9 -> 2")),
        "{:?}",
        p.drift
    );
    k.apply_all(&p.ops);
    assert_eq!(order(&k, "198.51.100.1"), [(10, 1), (20, 2)]);
    assert_eq!(k.first_mut().0.scheduler, "mh");
}

#[test]
fn reorder_touches_only_the_prefix() {
    // History: .20 then .30 added (list [.30, .20]); desired adds .10 which sorts first.
    let mut k = Kernel::default();
    k.apply_all(&[
        Op::NewService(svc("198.51.100.1")),
        Op::NewDest(key("198.51.100.1"), dest(30, 1)),
        Op::NewDest(key("198.51.100.1"), dest(20, 1)),
    ]);
    let d = [want(
        "198.51.100.1",
        vec![dest(10, 1), dest(20, 1), dest(30, 1)],
    )];
    let p = plan(&d, &k, &BTreeSet::new());
    assert_eq!(
        p.ops,
        vec![Op::NewDest(key("198.51.100.1"), dest(10, 1))],
        "a head add needs nothing else"
    );
    // History: .20 added after .30 => [.20, .30]... reversed: [.30] then .20 at head is fine;
    // now make [.20, .30] wrong by adding .30 last.
    let mut k = Kernel::default();
    k.apply_all(&[
        Op::NewService(svc("198.51.100.1")),
        Op::NewDest(key("198.51.100.1"), dest(20, 1)),
        Op::NewDest(key("198.51.100.1"), dest(30, 1)),
    ]);
    let d = [want("198.51.100.1", vec![dest(20, 1), dest(30, 1)])];
    let p = plan(&d, &k, &BTreeSet::new());
    assert_eq!(
        p.ops,
        vec![
            Op::DelDest(key("198.51.100.1"), dest(20, 1).addr, 80),
            Op::NewDest(key("198.51.100.1"), dest(20, 1))
        ],
        "only .20 moves; .30 is the kept suffix"
    );
    k.apply_all(&p.ops);
    assert_eq!(order(&k, "198.51.100.1"), [(20, 1), (30, 1)]);
}

#[test]
fn canonical_order_sorts_v4_before_v6_then_by_port() {
    let mut v = vec![
        Dest::new("2001:db8::1".parse().unwrap(), 80, Forward::Tunnel, 1),
        Dest::new("192.0.2.2".parse().unwrap(), 81, Forward::Tunnel, 1),
        Dest::new("192.0.2.2".parse().unwrap(), 80, Forward::Tunnel, 1),
    ];
    canonical_order(&mut v);
    let keys: Vec<String> = v.iter().map(|d| format!("{}:{}", d.addr, d.port)).collect();
    assert_eq!(keys, ["192.0.2.2:80", "192.0.2.2:81", "2001:db8::1:80"]);
}

/// A random history on one service: each step adds, deletes or reweights a destination.
fn history() -> impl Strategy<Value = Vec<(u8, u8, u32)>> {
    prop::collection::vec((0u8..3, 1u8..9, 0u32..4), 0..30)
}

fn run_history(h: &[(u8, u8, u32)]) -> Kernel {
    let mut k = Kernel::default();
    k.apply_all(&[Op::NewService(svc("198.51.100.1"))]);
    for &(what, last, w) in h {
        let op = match what {
            0 => Op::NewDest(key("198.51.100.1"), dest(last, w)),
            1 => Op::DelDest(key("198.51.100.1"), dest(last, w).addr, 80),
            _ => Op::SetDest(key("198.51.100.1"), dest(last, w)),
        };
        let _ = k.apply(&op); // invalid steps (duplicates, missing) are simply refused
    }
    k
}

proptest! {
    /// Whatever two directors went through, one plan each brings them to the same list:
    /// the desired destinations, in canonical order, with the desired weights; and then
    /// nothing more to do.
    #[test]
    fn any_history_converges_to_the_same_list(
        h1 in history(),
        h2 in history(),
        want_set in prop::collection::btree_map(1u8..9, 0u32..4, 0..8),
    ) {
        let d = [want("198.51.100.1", want_set.iter().map(|(l, w)| dest(*l, *w)).collect())];
        let mut finals = Vec::new();
        for h in [&h1, &h2] {
            let mut k = run_history(h);
            let p = plan(&d, &k, &BTreeSet::new());
            k.apply_all(&p.ops);
            prop_assert!(plan(&d, &k, &BTreeSet::new()).ops.is_empty());
            finals.push(order(&k, "198.51.100.1"));
        }
        let expect: Vec<(u8, u32)> = want_set.into_iter().collect();
        prop_assert_eq!(&finals[0], &expect);
        prop_assert_eq!(&finals[1], &expect);
    }

    /// The plan never deletes and re-adds more than needed: destinations already forming a
    /// correctly ordered canonical suffix are never deleted.
    #[test]
    fn kept_suffix_is_never_deleted(h in history()) {
        let k = run_history(&h);
        let mut want_dests = k.list("198.51.100.1").clone();
        canonical_order(&mut want_dests);
        let d = [DesiredService { service: svc("198.51.100.1"), dests: want_dests.clone() }];
        let p = plan(&d, &k, &BTreeSet::new());
        let deleted: BTreeSet<(IpAddr, u16)> = p.ops.iter().filter_map(|op| match op {
            Op::DelDest(_, a, port) => Some((*a, *port)),
            _ => None,
        }).collect();
        // The kernel list's own longest canonical-order suffix.
        let list: Vec<(IpAddr, u16)> = k.list("198.51.100.1").iter().map(Dest::key).collect();
        let mut sorted = list.clone();
        sorted.sort();
        let mut suffix = 0;
        while suffix < list.len() && list[list.len() - 1 - suffix] == sorted[sorted.len() - 1 - suffix] {
            suffix += 1;
        }
        for kept in &sorted[sorted.len() - suffix..] {
            prop_assert!(!deleted.contains(kept), "{kept:?} deleted though in the kept suffix; ops {:?}", p.ops);
        }
    }
}

mod from_config {
    use vipd_ipvs::constants::{IP_VS_SVC_F_PERSISTENT, IP_VS_SVC_F_SCHED1, IP_VS_SVC_F_SCHED2};
    use vipd_ipvs::{Forward, TunnelType};

    use crate::{Health, desired, service};

    fn cfg(extra: &str) -> vipd_config::Service {
        let src = format!(
            "[[service]]\nname = \"w\"\nvip = \"2001:db8::1\"\nport = 443\n{extra}\n[service.announce]\nenabled = false\n\
             [[service.real_server]]\naddress = \"192.0.2.10\"\nweight = 4\n[[service.real_server]]\naddress = \"192.0.2.11\"\nweight = 8\n"
        );
        vipd_config::load_str(&src, "t.toml")
            .expect("config")
            .config
            .services
            .remove(0)
    }

    #[test]
    fn inhibit_sets_weight_zero_and_remove_drops_the_destination() {
        let down_11 = |a: std::net::IpAddr, _| {
            if a.to_string() == "192.0.2.11" {
                Health::Down
            } else {
                Health::Up(4)
            }
        };
        let d = desired(&cfg(""), down_11);
        assert_eq!(
            d.dests.iter().map(|x| x.weight).collect::<Vec<_>>(),
            [4, 0],
            "inhibit (default): weight 0"
        );
        let d = desired(&cfg("on_failure = \"remove\""), down_11);
        assert_eq!(d.dests.len(), 1, "remove: absent");
        assert_eq!(d.dests[0].addr.to_string(), "192.0.2.10");
    }

    /// keepalived's sorry server: in IPVS (weight 1) while no real server has weight, out
    /// as soon as one has.
    #[test]
    fn the_sorry_server_is_in_only_while_no_real_server_has_weight() {
        let c = cfg("sorry_server = { address = \"192.0.2.99\", port = 443 }");
        let sorry = |d: &crate::DesiredService| {
            d.dests
                .iter()
                .find(|x| x.addr.to_string() == "192.0.2.99")
                .map(|x| (x.port, x.weight, x.forward))
        };
        assert_eq!(
            sorry(&desired(&c, |_, _| Health::Down)),
            Some((443, 1, Forward::Tunnel))
        );
        assert_eq!(
            sorry(&desired(&c, |_, _| Health::Up(0))),
            Some((443, 1, Forward::Tunnel)),
            "all drained"
        );
        let one_up = |a: std::net::IpAddr, _| {
            if a.to_string() == "192.0.2.10" {
                Health::Up(4)
            } else {
                Health::Down
            }
        };
        assert_eq!(sorry(&desired(&c, one_up)), None);
        let removed = cfg("on_failure = \"remove\"\nsorry_server = { address = \"192.0.2.99\" }");
        let d = desired(&removed, |_, _| Health::Down);
        assert_eq!(d.dests.len(), 1);
        assert_eq!(sorry(&d), Some((443, 1, Forward::Tunnel)));
    }

    /// A firewall-mark service: keyed by its mark, destinations without a port (the packet
    /// keeps its own), as `ipvsadm -f 7 -r rs` programs it.
    #[test]
    fn a_firewall_mark_service_is_keyed_by_its_mark() {
        let src = "[[check]]\nname = \"c\"\nkind = \"tcp\"\nport = 8080\n[[service]]\nname = \"w\"\nvip = \"198.51.100.1\"\nfwmark = 7\nchecks = [\"c\"]\n[service.announce]\nenabled = false\n[[service.real_server]]\naddress = \"192.0.2.10\"\n";
        let s = vipd_config::load_str(src, "t.toml")
            .expect("config")
            .config
            .services
            .remove(0);
        let d = desired(&s, |_, port| {
            assert_eq!(port, 0, "health asks by the port IPVS holds");
            Health::Up(1)
        });
        assert_eq!(
            d.service.key,
            vipd_ipvs::ServiceKey::Fwmark { v6: false, mark: 7 }
        );
        assert_eq!((d.dests[0].port, d.dests[0].weight), (0, 1));
    }

    #[test]
    fn effective_weight_comes_from_health() {
        // Health decides the weight: agents report 50% of the configured 4 and 8.
        let d = desired(&cfg(""), |a, _| {
            Health::Up(if a.to_string() == "192.0.2.11" { 4 } else { 2 })
        });
        assert_eq!(d.dests.iter().map(|x| x.weight).collect::<Vec<_>>(), [2, 4]);
        assert!(
            d.dests
                .iter()
                .all(|x| x.forward == Forward::Tunnel && x.tun_type == TunnelType::Ipip)
        );
    }

    #[test]
    fn flags_persistence_and_tunnel_types_map_to_ipvs() {
        let s = service(&cfg("mh_fallback = true"));
        assert_eq!(s.flags, IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_SCHED2);
        assert_eq!((s.timeout, s.netmask), (0, 128));
        // mh_fallback defaults to on with mh.
        let s = service(&cfg("mh_port = false"));
        assert_eq!(s.flags, IP_VS_SVC_F_SCHED1);
        let s = service(&cfg(
            "mh_port = false\nmh_fallback = false\n[service.persistence]\ntimeout = \"5m\"\nnetmask = 64",
        ));
        assert_eq!(s.flags, IP_VS_SVC_F_PERSISTENT);
        assert_eq!((s.timeout, s.netmask), (300, 64));
        let d = desired(&cfg("tunnel_type = \"gue\"\ntunnel_port = 6080"), |_, _| {
            Health::Up(1)
        });
        assert!(
            d.dests
                .iter()
                .all(|x| x.tun_type == TunnelType::Gue && x.tun_port == 6080 && x.tun_flags == 0)
        );
        let d = desired(
            &cfg("tunnel_type = \"gue\"\ntunnel_port = 6080\ntunnel_checksum = \"remcsum\""),
            |_, _| Health::Up(1),
        );
        assert!(d.dests.iter().all(|x| x.tun_flags == 2));
        let d = desired(
            &cfg("tunnel_type = \"gue\"\ntunnel_port = 6080\ntunnel_checksum = \"csum\""),
            |_, _| Health::Up(1),
        );
        assert!(d.dests.iter().all(|x| x.tun_flags == 1));
        // GRE: without checksum (with one is refused at load: Linux's receiver drops it).
        let d = desired(&cfg("tunnel_type = \"gre\""), |_, _| Health::Up(1));
        assert!(
            d.dests
                .iter()
                .all(|x| x.tun_type == TunnelType::Gre && x.tun_flags == 0)
        );
    }
}

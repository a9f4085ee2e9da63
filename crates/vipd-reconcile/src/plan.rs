//! Desired state vs kernel dump -> the ordered IPVS writes that make them equal.
//!
//! # Rules
//!
//! * **Ownership.** A service is *managed* when the configuration wants it or when vipd
//!   created it before (the `owned` set the daemon persists). Managed services are made
//!   exactly as desired; a managed service no longer desired is deleted. Every other service
//!   is *foreign*: reported, never touched.
//! * **Never flush.** Nothing is deleted wholesale; a kernel already in the desired state
//!   yields no operation at all, which is what makes restarts hitless.
//! * **One change, one operation.** A weight change is one `SetDest`, in place.
//! * **Build `mh` tables once.** A new `mh` service is created with no scheduler, filled,
//!   then switched to `mh` (one table build instead of one per destination).
//! * **Cross-director consistency.** The `mh` scheduler builds its lookup table by walking
//!   the destination list in list order, and contested slots go to whichever destination
//!   comes first; the kernel inserts new destinations at the head of that list. Two
//!   directors with the same destinations and weights but different histories can therefore
//!   build different tables and send one flow to different backends. The plan makes the
//!   kernel list equal the [canonical order](canonical_order) (ascending address, then
//!   port), identical on every director whatever happened before.
//!
//! # Restoring the order with the least disruption
//!
//! Only two operations move a destination: delete, and add (which inserts at the head).
//! Destinations left untouched keep their relative order and end up *after* every added one,
//! so the untouched ones must be a suffix of the canonical order. The plan keeps the longest
//! suffix of the canonical order that already appears in that order in the kernel list, and
//! deletes and re-adds only the destinations before it, from the last to the first, each
//! delete immediately followed by its add.
//!
//! What a re-add does to traffic: between the delete and the add (one netlink round trip),
//! new connections that hash to that destination are scheduled elsewhere. Established
//! connections keep flowing: a deleted destination moves to the kernel's trash with its
//! connections still bound to it (they are not expired while `expire_nodest_conn = 0`, the
//! default vipd sets), and the re-add takes it back from the trash with its counters. Adding a
//! new real server whose address sorts first costs nothing beyond the add; one that sorts
//! last costs a re-add of every other destination. Weight changes, failures in `inhibit`
//! mode and drains never move anything.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use vipd_ipvs::{Dest, Op, Service, ServiceKey};

use crate::view::KernelView;

/// A service as the configuration and the health checks want it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredService {
    /// The service's settings.
    pub service: Service,
    /// Destinations that must exist, in any order.
    pub dests: Vec<Dest>,
}

/// What to do, and what was seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The writes, in execution order.
    pub ops: Vec<Op>,
    /// Services in the kernel that vipd does not manage.
    pub foreign: Vec<ServiceKey>,
    /// Human-readable differences found in managed services (drift, for the logs).
    pub drift: Vec<String>,
}

/// Sorts destinations into the canonical list order (ascending address, then port).
pub fn canonical_order(dests: &mut [Dest]) {
    dests.sort_by_key(|d| (d.addr, d.port));
}

/// Computes the whole plan: every service of the kernel and of `desired`. `owned` are the
/// services vipd created earlier (so that a service removed from the configuration is
/// deleted, while an operator's service is not).
pub fn plan(desired: &[DesiredService], actual: &KernelView, owned: &BTreeSet<ServiceKey>) -> Plan {
    let desired_keys: BTreeSet<ServiceKey> = desired.iter().map(|d| d.service.key).collect();
    let gone: Vec<ServiceKey> = actual
        .iter()
        .map(|(s, _)| s.key)
        .filter(|k| !desired_keys.contains(k))
        .collect();
    let desired: Vec<&DesiredService> = desired.iter().collect();
    plan_some(&desired, &gone, actual, owned)
}

/// Plans only the services named: `changed` to be made as given, `gone` to be deleted if
/// vipd owns them (reported as foreign otherwise). What a health change or a reload costs:
/// the services it touched, not the whole kernel.
pub fn plan_some(
    changed: &[&DesiredService],
    gone: &[ServiceKey],
    actual: &KernelView,
    owned: &BTreeSet<ServiceKey>,
) -> Plan {
    let mut p = Plan::default();
    // Services to delete first: their VIP may be reused by a new service below.
    for key in gone {
        if actual.get(key).is_none() {
            continue;
        }
        if owned.contains(key) {
            p.drift
                .push(format!("{key}: no longer configured, deleting"));
            p.ops.push(Op::DelService(*key));
        } else {
            p.foreign.push(*key);
        }
    }
    for d in changed {
        match actual.get(&d.service.key) {
            None => create(d, &mut p),
            Some((svc, dests)) => update(d, svc, dests, &mut p),
        }
    }
    p
}

/// Schedulers whose table the kernel rebuilds on every destination change.
const TABLE_SCHEDULERS: &[&str] = &["mh"];

fn create(d: &DesiredService, p: &mut Plan) {
    let key = d.service.key;
    let mut want = d.dests.clone();
    canonical_order(&mut want);
    // `mh` rebuilds its 4093-slot table on every destination added. A new service is
    // therefore created without a scheduler ("none": new connections are not scheduled
    // meanwhile), filled, then switched to its scheduler, which builds the table once from
    // the finished list: half the kernel time of a large programming (testbed/bench/ipvs).
    let staged = want.len() > 1 && TABLE_SCHEDULERS.contains(&d.service.scheduler.as_str());
    if staged {
        let mut empty = d.service.clone();
        empty.scheduler = "none".into();
        empty.flags = 0;
        p.ops.push(Op::NewService(empty));
    } else {
        p.ops.push(Op::NewService(d.service.clone()));
    }
    // Head insertion: add the last one first.
    p.ops
        .extend(want.into_iter().rev().map(|x| Op::NewDest(key, x)));
    if staged {
        p.ops.push(Op::SetService(d.service.clone()));
    }
}

fn update(d: &DesiredService, svc: &Service, actual: &[Dest], p: &mut Plan) {
    let key = d.service.key;
    let mask = Service::FLAG_MASK;
    let want = &d.service;
    if want.scheduler != svc.scheduler
        || want.flags & mask != svc.flags & mask
        || want.timeout != svc.timeout
        || want.netmask != svc.netmask
        || want.pe_name != svc.pe_name
    {
        p.drift.push(format!(
            "{key}: scheduler/flags/persistence {} {:#x} {} {} differ from {} {:#x} {} {}",
            svc.scheduler,
            svc.flags & mask,
            svc.timeout,
            svc.netmask,
            want.scheduler,
            want.flags & mask,
            want.timeout,
            want.netmask
        ));
        p.ops.push(Op::SetService(want.clone()));
    }

    let mut want_dests = d.dests.clone();
    canonical_order(&mut want_dests);
    let want_keys: BTreeSet<(IpAddr, u16)> = want_dests.iter().map(Dest::key).collect();
    let have: BTreeMap<(IpAddr, u16), (usize, &Dest)> = actual
        .iter()
        .enumerate()
        .map(|(i, x)| (x.key(), (i, x)))
        .collect();

    // Destinations that must go.
    for x in actual.iter().filter(|x| !want_keys.contains(&x.key())) {
        p.drift.push(format!(
            "{key}: unexpected destination {}:{}, deleting",
            x.addr, x.port
        ));
        p.ops.push(Op::DelDest(key, x.addr, x.port));
    }

    // The longest suffix of the canonical order already in that relative order in the kernel.
    let mut keep_from = want_dests.len();
    let mut next_pos = usize::MAX;
    for (i, x) in want_dests.iter().enumerate().rev() {
        match have.get(&x.key()) {
            Some((pos, _)) if *pos < next_pos => {
                next_pos = *pos;
                keep_from = i;
            }
            _ => break,
        }
    }

    // Untouched destinations: fix their settings in place.
    for x in &want_dests[keep_from..] {
        if let Some((_, cur)) = have.get(&x.key()) {
            if x.differs(cur) {
                p.drift.push(format!(
                    "{key}: destination {}:{} weight {} -> {}",
                    x.addr, x.port, cur.weight, x.weight
                ));
                p.ops.push(Op::SetDest(key, x.clone()));
            }
        }
    }

    // Destinations before the kept suffix: (re-)add, last first, so they end in order.
    let moved: Vec<String> = want_dests[..keep_from]
        .iter()
        .filter(|x| have.contains_key(&x.key()))
        .map(|x| format!("{}:{}", x.addr, x.port))
        .collect();
    if !moved.is_empty() {
        p.drift.push(format!(
            "{key}: destination list order differs from the canonical order; re-adding {}",
            moved.join(", ")
        ));
    }
    for x in want_dests[..keep_from].iter().rev() {
        if have.contains_key(&x.key()) {
            p.ops.push(Op::DelDest(key, x.addr, x.port));
        } else {
            p.drift.push(format!(
                "{key}: missing destination {}:{}, adding",
                x.addr, x.port
            ));
        }
        p.ops.push(Op::NewDest(key, x.clone()));
    }
}

//! Kernel test (UML): two directors with the same configuration but different histories
//! send every flow to the same backend once vipd has reconciled them, because vipd restores
//! the canonical destination order that `mh` walks. Real traffic: a client namespace opens
//! TCP connections from a fixed set of source ports to the VIP through one director, then
//! through the other, and each backend answers with its name over direct server return.
//!
//! ```text
//!   client 10.0.0.100 --+                       +-- backend b1 10.0.0.11 (VIP on tunl0)
//!                       |   LAN (bridge)        +-- backend b2 10.0.0.12
//!   director A 10.0.0.1 +-----------------------+-- backend b3 10.0.0.13
//!   director B 10.0.0.2 +
//! ```
//! The client's route to the VIP points at A or at B. Directors encapsulate (IPIP) to the
//! backends, which answer the client directly.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use vipd_ipvs::{Dest, Forward, IpvsClient, Op};
use vipd_reconcile::{DesiredService, plan};
use vipd_testkit::{Feature, Lan, Netns, require};

const VIP: &str = "198.51.100.1";
const PORTS: std::ops::Range<u16> = 40000..40064;

fn desired() -> Vec<DesiredService> {
    let svc = vipd_config::load_str(
        r#"
[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
scheduler = "mh"
mh_port = true
[service.announce]
enabled = false
[[service.real_server]]
address = "10.0.0.11"
weight = 1
[[service.real_server]]
address = "10.0.0.12"
weight = 2
[[service.real_server]]
address = "10.0.0.13"
weight = 3
"#,
        "t.toml",
    )
    .expect("config")
    .config;
    vipd_reconcile::all_up(&svc)
}

fn backend(lan: &Lan, name: &'static str, ip: &str) -> Netns {
    let ns = Netns::new(name);
    lan.attach(&ns, "eth0", &[&format!("{ip}/24")]);
    // tunl0 (created by the ipip module in every namespace) receives the directors' IPIP.
    ns.ip(&["link", "set", "tunl0", "up"]);
    ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "tunl0"]);
    for k in ["all", "default", "tunl0", "eth0"] {
        ns.sysctl(&format!("net.ipv4.conf.{k}.rp_filter"), "0");
    }
    ns.spawn(move || {
        let l = std::net::TcpListener::bind((VIP, 80)).expect("listen on the VIP");
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(name.as_bytes());
            let mut sink = [0u8; 16];
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = c.read(&mut sink);
        }
    });
    ns
}

fn director(lan: &Lan, tag: &str, ip: &str) -> Netns {
    let ns = Netns::new(tag);
    lan.attach(&ns, "eth0", &[&format!("{ip}/24")]);
    ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
    ns
}

/// Connects from each source port through the current route and records who answered.
fn flows(client: &Netns) -> BTreeMap<u16, String> {
    client.run(|| async {
        let mut out = BTreeMap::new();
        for port in PORTS {
            let s = tokio::net::TcpSocket::new_v4().expect("socket");
            s.set_reuseaddr(true).expect("reuseaddr");
            s.bind(SocketAddr::from(([10, 0, 0, 100], port)))
                .expect("bind");
            let mut c = tokio::time::timeout(
                Duration::from_secs(3),
                s.connect(SocketAddr::from(([198, 51, 100, 1], 80))),
            )
            .await
            .unwrap_or_else(|_| panic!("connect from port {port} timed out"))
            .unwrap_or_else(|e| panic!("connect from port {port}: {e}"));
            let mut buf = vec![0u8; 16];
            let n = tokio::time::timeout(
                Duration::from_secs(3),
                tokio::io::AsyncReadExt::read(&mut c, &mut buf),
            )
            .await
            .expect("reply in time")
            .expect("read");
            // RST on close: no TIME_WAIT, so the same 4-tuple can be used again at once.
            // (Deprecated because a non-zero linger blocks on drop; zero does not.)
            #[allow(deprecated)]
            c.set_linger(Some(Duration::ZERO)).expect("linger");
            out.insert(port, String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    })
}

fn program(ns: &Netns, ops: Vec<Op>) {
    ns.run(|| async move {
        let mut c = IpvsClient::connect().await.expect("IPVS");
        for r in c.apply_all(&ops, 64).await {
            r.expect("IPVS op");
        }
    });
}

fn reconcile(ns: &Netns) -> Vec<Op> {
    let want = desired();
    ns.run(|| async move {
        let mut c = IpvsClient::connect().await.expect("IPVS");
        let p = plan(
            &want,
            &vipd_reconcile::KernelView::from_dump(c.dump().await.expect("dump")),
            &BTreeSet::new(),
        );
        for r in c.apply_all(&p.ops, 64).await {
            r.expect("IPVS op");
        }
        p.ops
    })
}

fn list_order(ns: &Netns) -> Vec<String> {
    ns.exec(&["ipvsadm", "-Ln", "--nosort"])
        .lines()
        .filter(|l| l.contains("->") && l.contains("Tunnel"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
        .collect()
}

#[test]
fn kernel_two_directors_with_different_histories_send_flows_to_the_same_backends() {
    if !require(
        "kernel_two_directors_with_different_histories_send_flows_to_the_same_backends",
        &[Feature::Ipvs, Feature::Ipip],
    ) {
        return;
    }
    let lan = Lan::new("xd");
    let client = Netns::new("xd-client");
    lan.attach(&client, "eth0", &["10.0.0.100/24"]);
    let _b = [
        backend(&lan, "b1", "10.0.0.11"),
        backend(&lan, "b2", "10.0.0.12"),
        backend(&lan, "b3", "10.0.0.13"),
    ];
    let a = director(&lan, "xd-a", "10.0.0.1");
    let b = director(&lan, "xd-b", "10.0.0.2");

    // Director A: vipd from empty (canonical order). Director B: the same service, weights
    // and destinations, but a different history, as an operator or a restart in another
    // order would leave it: destinations added in ascending order.
    let ops_a = reconcile(&a);
    assert_eq!(ops_a.len(), 5, "staged creation: none, 3 destinations, mh");
    let key = vipd_reconcile::service_key(&vipd_config::load_str(
        "[[service]]\nname = \"w\"\nvip = \"198.51.100.1\"\nport = 80\n[service.announce]\nenabled = false\n[[service.real_server]]\naddress = \"10.0.0.11\"\n",
        "t.toml",
    ).expect("cfg").config.services[0]);
    let svc = desired()[0].service.clone();
    let d = |last: u8, w: u32| Dest::new(IpAddr::from([10, 0, 0, last]), 80, Forward::Tunnel, w);
    program(
        &b,
        vec![
            Op::NewService(svc),
            Op::NewDest(key, d(11, 1)),
            Op::NewDest(key, d(12, 2)),
            Op::NewDest(key, d(13, 3)),
        ],
    );
    assert_eq!(
        list_order(&a),
        ["10.0.0.11:80", "10.0.0.12:80", "10.0.0.13:80"]
    );
    assert_eq!(
        list_order(&b),
        ["10.0.0.13:80", "10.0.0.12:80", "10.0.0.11:80"],
        "B's history left another order"
    );

    client.ip(&["route", "add", &format!("{VIP}/32"), "via", "10.0.0.1"]);
    let via_a = flows(&client);
    client.ip(&["route", "replace", &format!("{VIP}/32"), "via", "10.0.0.2"]);
    let via_b_before = flows(&client);
    let backends: BTreeSet<&String> = via_a.values().collect();
    assert_eq!(
        backends.len(),
        3,
        "flows spread over the three backends: {via_a:?}"
    );

    // Negative control: same destinations and weights, different list order => different
    // mapping for some flows. Without this the test could not fail.
    let differ_before = PORTS.filter(|p| via_a[p] != via_b_before[p]).count();
    assert!(
        differ_before > 0,
        "the histories used must give different mappings without the ordering fix"
    );

    // vipd reconciles B: only the order differs, so only re-adds.
    let ops_b = reconcile(&b);
    assert!(
        ops_b
            .iter()
            .all(|o| matches!(o, Op::DelDest(..) | Op::NewDest(..))),
        "{ops_b:?}"
    );
    assert_eq!(list_order(&b), list_order(&a));
    let via_b_after = flows(&client);
    let differ_after: Vec<u16> = PORTS.filter(|p| via_a[p] != via_b_after[p]).collect();
    assert!(
        differ_after.is_empty(),
        "flows on different backends after the fix: {differ_after:?}"
    );
    println!(
        "{} flows: {differ_before} landed on another backend through B before the fix, 0 after ({} IPVS ops on B)",
        PORTS.len(),
        ops_b.len()
    );
}

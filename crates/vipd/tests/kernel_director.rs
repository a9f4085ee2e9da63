//! Kernel tests of the director's IPVS side (run in the UML guest by `make test-kernel`):
//! vipd's own dump and `ipvsadm -Ln --nosort` (an independent witness, in kernel list order)
//! must both show the desired state.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vipd_ipvs::{IpvsClient, Op};
use vipd_reconcile::plan;
mod common;

use common::Vipd;
use vipd_testkit::{Feature, Netns, require};

const CONFIG: &str = r#"
[global]
router_id = "192.0.2.1"
state_dir = "STATE"
resync_interval = "RESYNC"
listen = "127.0.0.1:0"

[global.ipvs_timeouts]
tcp = "10m"
tcp_fin = "1m"
udp = "4m"

[[service]]
name = "web4"
vip = "198.51.100.1"
port = 80
scheduler = "mh"
mh_port = true
mh_fallback = true
forwarding = "tunnel"
[service.announce]
enabled = false
[[service.real_server]]
address = "192.0.2.12"
weight = 3
[[service.real_server]]
address = "192.0.2.10"
weight = 1
[[service.real_server]]
address = "192.0.2.11"
weight = 2
# IPv6 real server behind the IPv4 VIP: allowed with tunnel forwarding.
[[service.real_server]]
address = "2001:db8::c000:213"
weight = 1

[[service]]
name = "web6"
vip = "2001:db8::c633:6401"
port = 80
mh_port = true
# Both flag states covered: the other service has the fallback (the default).
mh_fallback = false
[service.announce]
enabled = false
[[service.real_server]]
address = "2001:db8::c000:284"
weight = 1
[[service.real_server]]
address = "2001:db8::c000:285"
weight = 2
[[service.real_server]]
address = "2001:db8::c000:286"
weight = 3
"#;

fn config(dir: &Path, resync: &str) -> String {
    CONFIG
        .replace("STATE", &dir.join("state").display().to_string())
        .replace("RESYNC", resync)
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vipd-kt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp");
    d
}

/// A namespace where IPVS destinations are acceptable: lo up (else no local FIB table and
/// IPVS refuses every destination) and a route to the real servers (a dummy device).
fn director_ns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip(&["link", "add", "rs", "type", "dummy"]);
    ns.ip(&["link", "set", "rs", "up"]);
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "rs"]);
    ns.ip(&[
        "addr",
        "add",
        "2001:db8::c000:201/120",
        "dev",
        "rs",
        "nodad",
    ]);
    ns
}

/// `ipvsadm -Ln --nosort` reduced to "service" and "  dest forward weight" lines. Services
/// come out in hash-table order, which means nothing, so they are sorted; destinations keep
/// the kernel's list order, which is what `mh` walks.
fn witness(ns: &Netns) -> Vec<String> {
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for l in ns.exec(&["ipvsadm", "-Ln", "--nosort"]).lines().skip(3) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f[0] == "->" {
            blocks
                .last_mut()
                .expect("service line first")
                .push(format!("  {} {} {}", f[1], f[2], f[3]));
        } else {
            blocks.push(vec![f.join(" ")]);
        }
    }
    blocks.sort();
    blocks.concat()
}

#[test]
fn kernel_programs_services_then_one_op_per_change() {
    if !require(
        "kernel_programs_services_then_one_op_per_change",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let ns = director_ns("prog");
    let dir = tmpdir("prog");
    let cfg = vipd_config::load_str(&config(&dir, "30s"), "t.toml")
        .expect("config")
        .config;
    let mut want = vipd_reconcile::all_up(&cfg);
    let (first, dump) = ns.run(|| {
        let want = want.clone();
        async move {
            let mut c = IpvsClient::connect().await.expect("IPVS");
            let p = plan(
                &want,
                &vipd_reconcile::KernelView::from_dump(c.dump().await.expect("dump")),
                &BTreeSet::new(),
            );
            for r in c.apply_all(&p.ops, 64).await {
                r.expect("op");
            }
            (p.ops.len(), c.dump().await.expect("dump"))
        }
    });
    assert_eq!(
        first,
        2 + 4 + 3 + 2,
        "two staged services (none, fill, mh), seven destinations"
    );
    assert_eq!(
        witness(&ns),
        [
            "TCP 198.51.100.1:80 mh (mh-fallback,mh-port)",
            "  192.0.2.10:80 Tunnel 1",
            "  192.0.2.11:80 Tunnel 2",
            "  192.0.2.12:80 Tunnel 3",
            "  [2001:db8::c000:213]:80 Tunnel 1",
            "TCP [2001:db8::c633:6401]:80 mh (mh-port)",
            "  [2001:db8::c000:284]:80 Tunnel 1",
            "  [2001:db8::c000:285]:80 Tunnel 2",
            "  [2001:db8::c000:286]:80 Tunnel 3",
        ],
        "canonical order (ascending address) in the kernel list"
    );
    assert_eq!(dump.len(), 2);
    assert!(
        plan(
            &want,
            &vipd_reconcile::KernelView::from_dump(dump.clone()),
            &BTreeSet::new()
        )
        .ops
        .is_empty(),
        "converged"
    );

    // One weight change, one drain to 0, one removal: one operation each.
    let steps: [Step; 3] = [
        (
            "weight 2 -> 5",
            Box::new(|w| set_weight(w, 0, "192.0.2.11", 5)),
            "  192.0.2.11:80 Tunnel 5",
        ),
        (
            "drain",
            Box::new(|w| set_weight(w, 0, "192.0.2.12", 0)),
            "  192.0.2.12:80 Tunnel 0",
        ),
        (
            "removal",
            Box::new(|w| {
                w[1].dests
                    .retain(|d| d.addr.to_string() != "2001:db8::c000:285")
            }),
            "",
        ),
    ];
    for (what, change, expect_line) in steps {
        change(&mut want);
        let ops: Vec<Op> = ns.run(|| {
            let want = want.clone();
            async move {
                let mut c = IpvsClient::connect().await.expect("IPVS");
                let p = plan(
                    &want,
                    &vipd_reconcile::KernelView::from_dump(c.dump().await.expect("dump")),
                    &BTreeSet::new(),
                );
                for r in c.apply_all(&p.ops, 64).await {
                    r.expect("op");
                }
                p.ops
            }
        });
        assert_eq!(ops.len(), 1, "{what}: {ops:?}");
        let w = witness(&ns);
        if expect_line.is_empty() {
            assert!(!w.iter().any(|l| l.contains("c000:285")), "{what}: {w:?}");
        } else {
            assert!(w.iter().any(|l| l == expect_line), "{what}: {w:?}");
        }
    }
}

fn set_weight(w: &mut [vipd_reconcile::DesiredService], svc: usize, addr: &str, weight: u32) {
    let d = w[svc]
        .dests
        .iter_mut()
        .find(|d| d.addr.to_string() == addr)
        .expect("destination");
    d.weight = weight;
}

/// A change to the desired state, its name and the witness line it must produce.
type Step = (
    &'static str,
    Box<dyn Fn(&mut Vec<vipd_reconcile::DesiredService>)>,
    &'static str,
);

#[test]
fn kernel_restart_adopts_with_zero_writes_and_keeps_connections() {
    if !require(
        "kernel_restart_adopts_with_zero_writes_and_keeps_connections",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let ns = director_ns("restart");
    let dir = tmpdir("restart");
    let cfg = dir.join("vipd.toml");
    std::fs::write(&cfg, config(&dir, "30s")).expect("cfg");

    let v = Vipd::start(&ns, &cfg, &dir, 1);
    v.wait("reconcile: 12 writes", 1);
    let (log1, writes1) = v.stop(&cfg);
    assert_eq!(
        writes1,
        Some(12),
        "strace counts the writes vipd reports:\n{log1}"
    );
    assert!(
        log1.contains("sysctl set") && log1.contains("net.ipv4.vs.sloppy_tcp"),
        "{log1}"
    );
    assert!(
        ns.ip(&["addr", "show", "dev", "lo"])
            .contains("198.51.100.1/32"),
        "VIP on lo"
    );
    let before = witness(&ns);

    // A connection entry: a SYN to the VIP from this namespace (sent into the dummy device).
    ns.run(|| async {
        let _ = std::net::TcpStream::connect_timeout(
            &"198.51.100.1:80".parse().unwrap(),
            Duration::from_millis(300),
        );
    });
    let conns = ns.exec(&["ipvsadm", "-Lnc"]);
    assert!(conns.contains("198.51.100.1:80"), "{conns}");

    let v = Vipd::start(&ns, &cfg, &dir, 2);
    v.wait("reconcile: 0 writes", 1);
    let (log2, writes2) = v.stop(&cfg);
    assert_eq!(
        writes2,
        Some(0),
        "second start must not write to IPVS:\n{log2}"
    );
    assert_eq!(witness(&ns), before, "IPVS unchanged");
    let conns2 = ns.exec(&["ipvsadm", "-Lnc"]);
    let entry = |s: &str| {
        s.lines()
            .find(|l| l.contains("198.51.100.1:80"))
            .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
    };
    assert_eq!(
        entry(&conns2),
        entry(&conns),
        "connection entry survives:\n{conns}\n{conns2}"
    );
}

#[test]
fn kernel_drift_is_repaired_and_foreign_services_are_left_alone() {
    if !require(
        "kernel_drift_is_repaired_and_foreign_services_are_left_alone",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let ns = director_ns("drift");
    let dir = tmpdir("drift");
    let cfg = dir.join("vipd.toml");
    std::fs::write(&cfg, config(&dir, "1s")).expect("cfg");
    // An operator's service, created before vipd.
    ns.exec(&["ipvsadm", "-A", "-t", "203.0.113.9:443", "-s", "rr"]);
    ns.exec(&[
        "ipvsadm",
        "-a",
        "-t",
        "203.0.113.9:443",
        "-r",
        "192.0.2.99:443",
        "-g",
        "-w",
        "7",
    ]);

    let v = Vipd::start(&ns, &cfg, &dir, 1);
    v.wait("reconcile: 12 writes", 1);
    let good = witness(&ns);

    // Behind vipd's back: a weight, an extra destination, a scheduler flag.
    ns.exec(&[
        "ipvsadm",
        "-e",
        "-t",
        "198.51.100.1:80",
        "-r",
        "192.0.2.11:80",
        "-i",
        "-w",
        "9",
    ]);
    ns.exec(&[
        "ipvsadm",
        "-a",
        "-t",
        "198.51.100.1:80",
        "-r",
        "192.0.2.77:80",
        "-i",
        "-w",
        "1",
    ]);
    ns.exec(&[
        "ipvsadm",
        "-E",
        "-t",
        "[2001:db8::c633:6401]:80",
        "-s",
        "mh",
    ]);
    ns.exec(&["ipvsadm", "--set", "1", "1", "1"]);
    v.signal(&cfg, "USR1");
    let log = v.wait("IPVS differs from the desired state", 3);
    for needle in [
        "weight 9 -> 2",
        "unexpected destination 192.0.2.77:80",
        "scheduler/flags",
    ] {
        assert!(log.contains(needle), "{needle:?} not logged:\n{log}");
    }
    // The pass that logged the drift ends with its own "reconcile:" line.
    v.wait("reconcile:", 2);
    assert!(
        ns.exec(&["ipvsadm", "-L", "--timeout"])
            .contains("600 60 240"),
        "timeouts restored"
    );
    let w = witness(&ns);
    assert_eq!(
        w.iter()
            .filter(|l| l.starts_with("TCP 203.0.113.9"))
            .count(),
        1,
        "foreign service kept: {w:?}"
    );
    assert!(
        w.iter().any(|l| l == "  192.0.2.99:443 Route 7"),
        "foreign destination kept: {w:?}"
    );
    let ours: Vec<&String> = w
        .iter()
        .filter(|l| !l.contains("203.0.113.9") && !l.contains("192.0.2.99"))
        .collect();
    let good_ours: Vec<&String> = good
        .iter()
        .filter(|l| !l.contains("203.0.113.9") && !l.contains("192.0.2.99"))
        .collect();
    assert_eq!(ours, good_ours, "managed services restored");
    assert!(
        log.contains("foreign IPVS service (not managed by vipd), left untouched"),
        "{log}"
    );

    // The periodic resync (1 s) repairs too, without a signal.
    ns.exec(&[
        "ipvsadm",
        "-d",
        "-t",
        "198.51.100.1:80",
        "-r",
        "192.0.2.10:80",
    ]);
    v.wait("missing destination 192.0.2.10:80", 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !witness(&ns).iter().any(|l| l == "  192.0.2.10:80 Tunnel 1") {
        assert!(
            Instant::now() < deadline,
            "not repaired: {:?}",
            witness(&ns)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (log, _) = v.stop(&cfg);
    assert!(log.contains("periodic resync"), "{log}");
}

/// Batched writes: a failure in the middle of a batch is reported for that operation, with
/// the kernel's errno, and the others are applied.
#[test]
fn kernel_batched_writes_report_each_failure() {
    if !require(
        "kernel_batched_writes_report_each_failure",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let ns = director_ns("batch");
    let svc = |port| vipd_ipvs::Service {
        key: vipd_ipvs::ServiceKey::Addr {
            protocol: vipd_ipvs::Protocol::Tcp,
            addr: "198.51.100.1".parse().unwrap(),
            port,
        },
        scheduler: "mh".into(),
        flags: 0x10,
        timeout: 0,
        netmask: u32::MAX,
        pe_name: None,
        stats: None,
    };
    let dest = |last: u8, port| {
        vipd_ipvs::Dest::new(
            std::net::IpAddr::from([192, 0, 2, last]),
            port,
            vipd_ipvs::Forward::Tunnel,
            1,
        )
    };
    let missing = svc(81).key; // never created
    let mut ops = vec![Op::NewService(svc(80))];
    ops.extend((10..200u8).map(|i| Op::NewDest(svc(80).key, dest(i, 80))));
    ops.insert(100, Op::NewDest(missing, dest(9, 81))); // fails: no such service
    ops.insert(150, Op::NewDest(svc(80).key, dest(50, 80))); // fails: already there
    let results = ns.run(|| {
        let ops = ops.clone();
        async move {
            IpvsClient::connect()
                .await
                .expect("IPVS")
                .apply_batched(&ops)
                .await
        }
    });
    assert_eq!(results.len(), ops.len());
    let failed: Vec<(usize, String)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e.to_string())))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0].0, 100);
    assert!(
        failed[0]
            .1
            .contains("ipvsadm -a -t 198.51.100.1:81 -r 192.0.2.9:81"),
        "{failed:?}"
    );
    assert_eq!(failed[1].0, 150);
    assert!(
        failed[1].1.contains("192.0.2.50:80") && failed[1].1.contains("File exists"),
        "{failed:?}"
    );
    let listed = ns
        .exec(&["ipvsadm", "-Ln"])
        .lines()
        .filter(|l| l.contains("-> 192.0.2."))
        .count();
    assert_eq!(
        listed, 190,
        "every other destination was added (more than one batch of 128)"
    );
}

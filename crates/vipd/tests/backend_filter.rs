//! The backend's director filter (`allowed_directors`, an nftables table) on the host kernel,
//! which has nf_tables (Debian's UML kernel lacks its ip/inet families). Two senders on a
//! LAN send raw encapsulated packets to the backend (IPIP, and every other encapsulation a
//! Linux node may decapsulate: 6in4, GRE, and over IPv6 4in6, ip6ip6, GRE), and UDP to
//! the GUE port of the backend's tunnels over both families; the rules' counters tell which
//! were dropped.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use common::Vipd;
use vipd_testkit::{Lan, Netns, require_program};

fn send_ipip(ns: &Netns, count: usize) {
    send_raw(ns, 4, false, count);
}

/// `count` raw packets of IP protocol `proto` to the backend, over IPv6 if `v6`.
fn send_raw(ns: &Netns, proto: i32, v6: bool, count: usize) {
    ns.run(move || async move {
        let (domain, to): (_, std::net::SocketAddr) = if v6 {
            (
                socket2::Domain::IPV6,
                std::net::SocketAddrV6::new(BACKEND6.parse().expect("v6"), 0, 0, 0).into(),
            )
        } else {
            (
                socket2::Domain::IPV4,
                SocketAddrV4::new(Ipv4Addr::new(10, 5, 0, 10), 0).into(),
            )
        };
        let s = socket2::Socket::new(
            domain,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(proto)),
        )
        .expect("raw socket");
        for _ in 0..count {
            s.send_to(b"not a real inner packet", &to.into())
                .expect("send");
        }
    });
}

const BACKEND6: &str = "2001:db8:5::10";

/// `count` UDP datagrams to the backend's GUE port 6080, over IPv6 if `v6`.
fn send_gue(ns: &Netns, v6: bool, count: usize) {
    ns.run(move || async move {
        let (bind, to) = if v6 {
            ("[::]:0", format!("[{BACKEND6}]:6080"))
        } else {
            ("0.0.0.0:0", "10.5.0.10:6080".to_string())
        };
        let s = std::net::UdpSocket::bind(bind).expect("udp");
        for _ in 0..count {
            s.send_to(b"\0\x04\0\0 not a real inner packet", &to)
                .expect("send");
        }
    });
}

/// Packets counted by the GUE rule of the family whose director set is `set`.
fn dropped_gue(be: &Netns, set: &str) -> Option<u64> {
    counted(be, |l| l.contains("udp dport 6080") && l.contains(set))
}

/// Packets counted by vipd's drop rule, or None while the table is absent.
fn dropped(be: &Netns) -> Option<u64> {
    dropped_by(be, "@directors4")
}

/// Packets counted by the drop rule of the line naming `set` (the first: the IP-protocol
/// rule comes before the GUE one).
fn dropped_by(be: &Netns, set: &str) -> Option<u64> {
    counted(be, |l| l.contains(set))
}

/// The packet counter of the first rule of vipd's table that `pick` selects, or None while
/// the table is absent.
fn counted(be: &Netns, pick: impl Fn(&str) -> bool) -> Option<u64> {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            be.name(),
            "nft",
            "list",
            "table",
            "inet",
            "vipd_backend",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| pick(l))?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == "packets")?;
    words.next()?.parse().ok()
}

fn until<T>(what: &str, v: &Vipd, f: impl Fn() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(x) = f() {
            return x;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}:\n{}",
            v.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn only_the_directors_encapsulated_packets_get_through() {
    if !require_program("only_the_directors_encapsulated_packets_get_through", "nft") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-filter-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("bf");
    let be = Netns::new("bf-be");
    let director = Netns::new("bf-d");
    let other = Netns::new("bf-x");
    lan.attach(&be, "eth0", &["10.5.0.10/24", "2001:db8:5::10/64"]);
    lan.attach(&director, "eth0", &["10.5.0.1/24", "2001:db8:5::1/64"]);
    lan.attach(&other, "eth0", &["10.5.0.2/24", "2001:db8:5::2/64"]);
    let cfg = dir.join("vipd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[global]\nrole = \"backend\"\ncontrol_socket = \"{d}/vipd.sock\"\ndrain_file = \"{d}/disable\"\nresync_interval = \"1s\"\n[backend]\nloopback_vips = [\"198.51.100.1\"]\nallowed_directors = [\"10.5.0.1\", \"2001:db8:5::1\"]\n[[backend.tunnel]]\nname = \"tunl0\"\nmode = \"ipip\"\nvips = [\"198.51.100.2\"]\ngue_port = 6080\n[[backend.tunnel]]\nname = \"t6\"\nmode = \"ip6ip6\"\nlocal = \"2001:db8:5::10\"\nvips = [\"2001:db8:100::2\"]\ngue_port = 6080\n",
            d = dir.display()
        ),
    )
    .expect("cfg");
    let v = Vipd::spawn(&be, &cfg, &dir, 1, false);
    let base = until("the filter table", &v, || dropped(&be));
    assert_eq!(base, 0);
    send_ipip(&director, 5);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(dropped(&be), Some(0), "the director's packets pass");
    send_ipip(&other, 5);
    until("the other sender's packets dropped", &v, || {
        dropped(&be).filter(|n| *n == 5)
    });
    // Every other encapsulation a Linux node may decapsulate (sit0, ip6tnl0 in its default
    // `any` mode, gre0/ip6gre0 once loaded) is dropped too: 6in4 and GRE over IPv4, then
    // 4in6, ip6ip6 and GRE over IPv6. The director's own pass.
    send_raw(&director, 41, false, 1);
    send_raw(&director, 4, true, 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(dropped(&be), Some(5), "the director's packets pass");
    assert_eq!(dropped_by(&be, "@directors6"), Some(0));
    for proto in [41, 47] {
        send_raw(&other, proto, false, 1);
    }
    until("6in4 and GRE from a non-director dropped", &v, || {
        dropped(&be).filter(|n| *n == 7)
    });
    for proto in [4, 41, 47] {
        send_raw(&other, proto, true, 1);
    }
    until(
        "4in6, ip6ip6 and GRE over IPv6 from a non-director dropped",
        &v,
        || dropped_by(&be, "@directors6").filter(|n| *n == 3),
    );
    // GUE: UDP to the tunnels' GUE port (the host kernel has no FOU, which changes nothing
    // for the filter, in front of every socket). The director's pass, the other's are
    // dropped, per family.
    send_gue(&director, false, 2);
    send_gue(&director, true, 2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        dropped_gue(&be, "@directors4"),
        Some(0),
        "the director's GUE passes"
    );
    assert_eq!(
        dropped_gue(&be, "@directors6"),
        Some(0),
        "the director's GUE passes"
    );
    send_gue(&other, false, 3);
    send_gue(&other, true, 4);
    until("GUE from a non-director dropped", &v, || {
        (dropped_gue(&be, "@directors4") == Some(3) && dropped_gue(&be, "@directors6") == Some(4))
            .then_some(())
    });
    // Removed by hand: the resync puts it back.
    be.exec(&["nft", "delete", "table", "inet", "vipd_backend"]);
    until("the table restored", &v, || dropped(&be));
    // The list emptied by a reload: the table goes.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .expect("cfg")
            .replace("allowed_directors = [\"10.5.0.1\", \"2001:db8:5::1\"]", ""),
    )
    .expect("cfg");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_vipd"))
        .args(["reload", "--config"])
        .arg(&cfg)
        .output()
        .expect("vipd reload");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(dropped(&be), None, "table removed with the last director");
    let _ = std::fs::remove_dir_all(&dir);
}

//! Kernel test (UML guest, `make test-kernel`): `vipd run` in the backend role. The node
//! gets its tunnel device, VIP and rp_filter, and answers a director's tunnelled traffic;
//! the agent check answers from the local check, the state file and the drain file. (The
//! nftables director filter is tested on the host, `backend_filter.rs`: Debian's UML kernel
//! has nf_tables without its ip/ip6/inet families.)

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::Vipd;
use vipd_testkit::{Feature, Lan, Netns, require};

const VIP: &str = "198.51.100.1";

/// A "director": an IPIP device towards the backend and the VIP routed into it. Its own
/// address is the inner source, so the backend's reply comes straight back (DSR).
fn sender(lan: &Lan, tag: &str, ip: &str) -> Netns {
    let ns = Netns::new(tag);
    lan.attach(&ns, "eth0", &[&format!("{ip}/24")]);
    ns.ip(&[
        "tunnel",
        "add",
        "totun",
        "mode",
        "ipip",
        "remote",
        "10.6.0.10",
        "local",
        ip,
    ]);
    ns.ip(&["link", "set", "totun", "up"]);
    ns.ip(&[
        "route",
        "add",
        &format!("{VIP}/32"),
        "dev",
        "totun",
        "src",
        ip,
    ]);
    ns
}

/// Connects to the VIP through the tunnel and reads the greeting.
fn through_tunnel(ns: &Netns) -> Result<String, String> {
    ns.run(|| async {
        let addr: std::net::SocketAddr = format!("{VIP}:80").parse().expect("addr");
        let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(1500))
            .map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut s = String::new();
        c.read_to_string(&mut s).map_err(|e| e.to_string())?;
        Ok(s)
    })
}

fn agent(ns: &Netns) -> String {
    ns.run(|| async {
        let mut c = std::net::TcpStream::connect("127.0.0.1:5555").expect("agent");
        let mut s = String::new();
        c.read_to_string(&mut s).expect("agent reply");
        s
    })
}

fn agent_until(ns: &Netns, want: &str, log: &std::path::Path) -> String {
    let start = Instant::now();
    loop {
        let r = agent(ns);
        if r.starts_with(want) {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "agent says {r:?}, want {want:?}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn backend_role_tunnel_vip_and_agent() {
    if !require("backend_role_tunnel_vip_and_agent", &[Feature::Ipip]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-kt-backend-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("kb");
    let be = Netns::new("kb-be");
    lan.attach(&be, "eth0", &["10.6.0.10/24"]);
    let allowed = sender(&lan, "kb-d1", "10.6.0.1");
    // The L7 service on the VIP and a local health endpoint on :8080.
    be.spawn(|| {
        // Any address: the VIP arrives with vipd.
        let l = std::net::TcpListener::bind(("0.0.0.0", 80)).expect("listen");
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(b"backend");
        }
    });
    let health = be.spawn(|| {
        let l = std::net::TcpListener::bind(("127.0.0.1", 8080)).expect("listen");
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    drop(health); // detached: the thread serves until the test process ends
    let cfg = dir.join("vipd.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[global]
role = "backend"
control_socket = "{d}/vipd.sock"
drain_file = "{d}/disable"
resync_interval = "1s"
[[check]]
name = "local"
kind = "http"
port = 8080
interval = "300ms"
timeout = "250ms"
rise = 1
fall = 1
[[backend.tunnel]]
name = "tunl1"
mode = "ipip"
local = "10.6.0.10"
vips = ["{VIP}"]
[backend.agent]
listen = "127.0.0.1:5555"
state_file = "{d}/agent-check"
checks = ["local"]
"#,
            d = dir.display()
        ),
    )
    .expect("cfg");
    let v = Vipd::spawn(&be, &cfg, &dir, 1, false);
    v.wait("agent check listening", 1);
    let start = Instant::now();
    while !be.ip(&["addr", "show", "dev", "tunl1"]).contains(VIP) {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", v.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let link = be.ip(&["-d", "link", "show", "tunl1"]);
    assert!(
        link.contains("ipip") && link.contains("local 10.6.0.10"),
        "{link}"
    );
    assert_eq!(
        be.exec(&["sysctl", "-n", "net.ipv4.conf.tunl1.rp_filter"])
            .trim(),
        "0"
    );
    let link = be.ip(&["-d", "link", "show", "tunl1"]);
    assert!(
        link.contains("ipip") && link.contains("local 10.6.0.10"),
        "{link}"
    );
    assert_eq!(
        be.exec(&["sysctl", "-n", "net.ipv4.conf.tunl1.rp_filter"])
            .trim(),
        "0"
    );
    // Traffic through the tunnel is answered, straight back to the sender (DSR).
    assert_eq!(through_tunnel(&allowed).as_deref(), Ok("backend"));
    // Removed by hand: the resync puts the VIP back (resync_interval 1 s).
    be.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "tunl1"]);
    let start = Instant::now();
    while !be.ip(&["addr", "show", "dev", "tunl1"]).contains(VIP) {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", v.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(through_tunnel(&allowed).as_deref(), Ok("backend"));

    // The agent: up (local check passes), the state file's weight, drain. The reply follows
    // the files within a second (it is recomputed every second, off the runtime).
    agent_until(&be, "up", &v.log);
    std::fs::write(dir.join("agent-check"), "50%\n").expect("state");
    assert_eq!(agent_until(&be, "50%", &v.log), "50%\n");
    std::fs::write(dir.join("disable"), "").expect("drain");
    agent_until(&be, "drain", &v.log);
    std::fs::remove_file(dir.join("disable")).expect("undrain");
    assert_eq!(agent_until(&be, "50%", &v.log), "50%\n");
    let _ = std::fs::remove_dir_all(&dir);
}

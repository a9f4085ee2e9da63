//! The speaker against a real BIRD 2, between two network namespaces on the host.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vipd_bgp::fsm::Config;
use vipd_bgp::rib::RouteAttrs;
use vipd_bgp::speaker::{PeerConfig, Speaker};
use vipd_bgp::wire::{Afi, Prefix, Safi};
use vipd_testkit::{Lan, Netns, require_program};

struct Bird {
    child: Child,
    ns_name: String,
    sock: PathBuf,
}

impl Bird {
    fn start(ns: &Netns, dir: &std::path::Path, conf: &str) -> Bird {
        let cfg = dir.join("bird.conf");
        std::fs::write(&cfg, conf).expect("bird.conf");
        let sock = dir.join("bird.ctl");
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "bird", "-f", "-c"])
            .arg(&cfg)
            .arg("-s")
            .arg(&sock)
            .arg("-P")
            .arg(dir.join("bird.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("bird.log")).expect("log"))
            .spawn()
            .expect("bird");
        let b = Bird {
            child,
            ns_name: ns.name().to_string(),
            sock,
        };
        b.wait_for("show status", "Daemon is up", Duration::from_secs(10));
        b
    }

    fn birdc(&self, cmd: &str) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns_name, "birdc", "-s"])
            .arg(&self.sock)
            .args(cmd.split_whitespace())
            .output()
            .expect("birdc");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn wait_for(&self, cmd: &str, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let out = self.birdc(cmd);
            if out.contains(needle) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "`birdc {cmd}` never showed {needle:?}:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Bird {
    async fn birdc_async(&self, cmd: &str) -> String {
        let o = tokio::process::Command::new("ip")
            .args(["netns", "exec", &self.ns_name, "birdc", "-s"])
            .arg(&self.sock)
            .args(cmd.split_whitespace())
            .output()
            .await
            .expect("birdc");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Polls `birdc CMD` until `pred` holds on its output; returns the last output.
    async fn until(
        &self,
        cmd: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> (bool, String) {
        let deadline = Instant::now() + limit;
        loop {
            let out = self.birdc_async(cmd).await;
            if pred(&out) {
                return (true, out);
            }
            if Instant::now() > deadline {
                return (false, out);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peer(password: Option<&str>) -> PeerConfig {
    PeerConfig {
        addr: "10.0.0.254:179".parse().expect("addr"),
        local_addr: Some("10.0.0.1".parse().expect("addr")),
        password: password.map(str::to_string),
        ttl_security: false,
        ttl: None,
        next_hop_v4: None,
        next_hop_v6: Some("2001:db8::1".parse().expect("addr")),
        connect_timeout: Duration::from_secs(1),
        fsm: Config {
            local_as: 4_200_000_001,
            remote_as: 65010,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            hold_time: 9,
            keepalive: None,
            passive: false,
            connect_retry: Duration::from_secs(1),
            families: vec![(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)],
            graceful_restart: Some((120, false)),
        },
    }
}

/// Two namespaces on a LAN: BIRD at 10.0.0.254 (config `bird_extra` inside its protocol),
/// the speaker's side at 10.0.0.1.
fn topology(tag: &str, bird_extra: &str) -> (Lan, Netns, Netns, Bird, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("vipd-bird-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new(tag);
    let rtr = Netns::new(&format!("{tag}-rtr"));
    let dir_ns = Netns::new(&format!("{tag}-dir"));
    lan.attach(&rtr, "eth0", &["10.0.0.254/24", "2001:db8::fe/64"]);
    lan.attach(&dir_ns, "eth0", &["10.0.0.1/24", "2001:db8::1/64"]);
    let conf = format!(
        "router id 10.0.0.254;\nprotocol device {{}}\nprotocol bgp vipd {{\n  local 10.0.0.254 as 65010;\n  neighbor 10.0.0.1 as 4200000001;\n  hold time 9;\n  {bird_extra}\n  ipv4 {{ import all; export none; }};\n  ipv6 {{ import all; export none; }};\n}}\n"
    );
    let bird = Bird::start(&rtr, &dir, &conf);
    (lan, rtr, dir_ns, bird, dir)
}

#[test]
fn tcp_md5_right_password_establishes_wrong_one_does_not() {
    if !require_program(
        "tcp_md5_right_password_establishes_wrong_one_does_not",
        "bird",
    ) {
        return;
    }
    let (_lan, _rtr, dir_ns, bird, _dir) = topology("md5", "password \"s3cret\";");
    let (right, wrong, none) = dir_ns.run(|| async {
        let t = Duration::from_secs(15);
        let s = Speaker::start(vec![peer(Some("s3cret"))]);
        let (right, _) = bird
            .until("show protocols vipd", t, |o| o.contains("Established"))
            .await;
        s.shutdown("test").await;
        let mut outcomes = Vec::new();
        for pw in [Some("wrong"), None] {
            let s = Speaker::start(vec![peer(pw)]);
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let st = s.status()[0].1.clone();
            outcomes.push(st);
            s.shutdown("test").await;
        }
        (right, outcomes[0].clone(), outcomes[1].clone())
    });
    assert!(right, "right password: Established");
    for (what, st) in [("wrong password", wrong), ("no password", none)] {
        assert_ne!(
            st.state,
            vipd_bgp::fsm::State::Established,
            "{what}: {st:?}"
        );
        let err = st.last_error.clone().unwrap_or_default();
        assert!(
            err.contains("connect to 10.0.0.254:179") && err.contains("no answer"),
            "{what}: a clear reason, got {st:?}"
        );
        if what == "wrong password" {
            assert!(err.contains("TCP MD5"), "{st:?}");
        }
    }
}

fn host(s: &str) -> Prefix {
    Prefix::host(s.parse().expect("ip"))
}

#[test]
fn ebgp_4byte_asn_ipv4_and_ipv6_routes_with_attributes_reach_bird() {
    if !require_program(
        "ebgp_4byte_asn_ipv4_and_ipv6_routes_with_attributes_reach_bird",
        "bird",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-bird-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("bird");
    let rtr = Netns::new("bird-rtr");
    let dir_ns = Netns::new("bird-dir");
    lan.attach(&rtr, "eth0", &["10.0.0.254/24", "2001:db8::fe/64"]);
    lan.attach(&dir_ns, "eth0", &["10.0.0.1/24", "2001:db8::1/64"]);
    let bird = Bird::start(
        &rtr,
        &dir,
        r#"
router id 10.0.0.254;
protocol device {}
protocol bgp vipd {
  local 10.0.0.254 as 65010;
  neighbor 10.0.0.1 as 4200000001;
  hold time 9;
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}
"#,
    );

    let attrs = RouteAttrs {
        med: Some(10),
        local_pref: None,
        communities: vec![(65000 << 16) | 80],
        large_communities: vec![(4_200_000_001, 1, 443)],
    };
    let (log_v4, log_v6, withdrawn, down) = dir_ns.run(|| async {
        let speaker = Speaker::start(vec![peer(None)]);
        let mut routes = BTreeMap::new();
        routes.insert(host("198.51.100.1"), attrs.clone());
        routes.insert(host("2001:db8::c633:6401"), attrs.clone());
        speaker.set_routes(routes);
        speaker.initial_complete();
        let b = &bird;
        let t = Duration::from_secs(20);
        let (_, v4) = b
            .until("show route all 198.51.100.1/32", t, |o| {
                o.contains("BGP.large_community")
            })
            .await;
        let (_, v6) = b
            .until("show route all 2001:db8::c633:6401/128", t, |o| {
                o.contains("BGP.large_community")
            })
            .await;
        speaker.withdraw(host("198.51.100.1"));
        let (gone, _) = b
            .until("show route 198.51.100.1/32", t, |o| {
                !o.contains("198.51.100.1/32")
            })
            .await;
        speaker.shutdown("maintenance window").await;
        let (_, down) = b
            .until("show protocols all vipd", t, |o| {
                o.contains("maintenance window")
            })
            .await;
        (v4, v6, gone, down)
    });
    for needle in [
        "BGP.origin: IGP",
        "BGP.as_path: 4200000001",
        "BGP.next_hop: 10.0.0.1",
        "BGP.med: 10",
        "BGP.community: (65000,80)",
        "BGP.large_community: (4200000001, 1, 443)",
    ] {
        assert!(
            log_v4.contains(needle),
            "{needle:?} not in BIRD's IPv4 route:\n{log_v4}"
        );
    }
    assert!(log_v6.contains("BGP.next_hop: 2001:db8::1"), "{log_v6}");
    println!("BIRD's view of the IPv4 VIP:\n{log_v4}\nafter shutdown:\n{down}");
    assert!(withdrawn, "withdrawal reached BIRD");
    assert!(
        down.contains("maintenance window"),
        "shutdown communication shown by BIRD:\n{down}"
    );
}

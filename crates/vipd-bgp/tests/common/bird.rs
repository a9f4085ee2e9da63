//! BIRD 2 in a namespace, and the speaker's side of a LAN with it (shared by the BIRD tests).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use vipd_bgp::fsm::Config;
use vipd_bgp::speaker::PeerConfig;
use vipd_bgp::wire::Prefix;
use vipd_testkit::{Daemon, Lan, Netns};

/// BIRD's kernel protocol exporting IPv4 routes, ECMP merged.
pub const KERNEL_EXPORT: &str = "protocol kernel { ipv4 { export all; }; merge paths on; }\n";

/// A host prefix.
pub fn host(s: &str) -> Prefix {
    Prefix::host(s.parse().expect("ip"))
}

pub struct Bird {
    pub d: Daemon,
    ns_name: String,
    pub sock: PathBuf,
}

impl Bird {
    pub fn start(ns: &Netns, dir: &std::path::Path, conf: &str) -> Bird {
        let cfg = dir.join("bird.conf");
        std::fs::write(&cfg, conf).expect("bird.conf");
        let sock = dir.join("bird.ctl");
        let pid = dir.join("bird.pid");
        let d = Daemon::spawn(
            ns,
            "bird",
            &[
                "-f".as_ref(),
                "-c".as_ref(),
                cfg.as_os_str(),
                "-s".as_ref(),
                sock.as_os_str(),
                "-P".as_ref(),
                pid.as_os_str(),
            ],
            &dir.join("bird.log"),
        );
        let b = Bird {
            d,
            ns_name: ns.name().to_string(),
            sock,
        };
        b.wait_for("show status", "Daemon is up", Duration::from_secs(10));
        b
    }

    pub fn birdc(&self, cmd: &str) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns_name, "birdc", "-s"])
            .arg(&self.sock)
            .args(cmd.split_whitespace())
            .output()
            .expect("birdc");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn wait_for(&self, cmd: &str, needle: &str, limit: Duration) -> String {
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
    /// Adds a kernel protocol exporting IPv4 routes (ECMP merged) and reloads BIRD.
    pub fn reconfigure_with_kernel_export(&self) {
        let dir = self.sock.parent().expect("dir");
        let cfg = dir.join("bird.conf");
        let mut conf = std::fs::read_to_string(&cfg).expect("conf");
        conf.push_str(KERNEL_EXPORT);
        std::fs::write(&cfg, conf).expect("conf");
        let out = self.birdc("configure");
        assert!(
            out.contains("Reconfigured") || out.contains("Reconfiguration in progress"),
            "{out}"
        );
    }

    pub async fn birdc_async(&self, cmd: &str) -> String {
        let sock = self.sock.display().to_string();
        let mut args = vec!["birdc", "-s", &sock];
        args.extend(cmd.split_whitespace());
        self.d.exec(&args).await
    }

    /// Polls `birdc CMD` until `pred` holds on its output; returns the last output.
    pub async fn until(
        &self,
        cmd: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> (bool, String) {
        let sock = self.sock.display().to_string();
        let mut args = vec!["birdc", "-s", &sock];
        args.extend(cmd.split_whitespace());
        self.d.until(&args, limit, pred).await
    }
}

pub fn peer(password: Option<&str>) -> PeerConfig {
    let base = super::neighbor(
        "10.0.0.254:179",
        "10.0.0.1",
        4_200_000_001,
        65010,
        super::BOTH,
    );
    PeerConfig {
        password: password.map(Into::into),
        next_hop_v6: Some("2001:db8::1".parse().expect("addr")),
        connect_timeout: Duration::from_secs(1),
        fsm: Config {
            connect_retry: Duration::from_secs(1),
            graceful_restart: Some((120, false)),
            ..base.fsm.clone()
        },
        ..base
    }
}

/// Two namespaces on a LAN: BIRD at 10.0.0.254 (config `bird_extra` inside its protocol),
/// the speaker's side at 10.0.0.1.
pub fn topology(tag: &str, bird_extra: &str) -> (Lan, Netns, Netns, Bird, std::path::PathBuf) {
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

//! `vipd import` against the real thing (UML guest, `make test-kernel`): keepalived 2.2
//! programs IPVS from a keepalived.conf; vipd, from what `vipd import` made of the same file,
//! must program the same table, as `ipvsadm` shows it (services with scheduler, flags and
//! persistence; destinations in kernel order with forwarding and weight; the timeouts), one
//! after the other in one guest, against the same real servers.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::Vipd;
use vipd_testkit::{Daemon, Feature, Lan, Netns, require, require_program};

/// Tunnel + mh + HTTP_GET with two real servers (the design's service), and beside it the
/// other forwarding methods and UDP, so that each is compared with keepalived's own
/// programming. The IPv6 service has no `protocol` line: keepalived 2.2 makes it UDP, and so
/// must the import. The mh service lists its real servers in descending order: keepalived adds in
/// file order and the kernel puts each at the head, so the kernel's list is ascending, as
/// vipd keeps it (the import reports the difference otherwise).
const KEEPALIVED_CONF: &str = r#"
global_defs {
    lvs_timeouts tcp 900 tcpfin 60 udp 120
}
virtual_server 198.51.100.1 8080 {
    delay_loop 2
    lvs_sched mh
    lvs_method TUN
    mh-port
    mh-fallback
    protocol TCP
    real_server 192.0.2.11 8080 {
        weight 2
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 1
        }
    }
    real_server 192.0.2.10 8080 {
        weight 1
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 1
        }
    }
}
virtual_server 2001:db8:100::1 8080 {
    delay_loop 2
    lvs_sched mh
    lvs_method TUN
    real_server 2001:db8::10 8080 {
        weight 4
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
virtual_server 198.51.100.2 8080 {
    delay_loop 2
    lvs_sched wlc
    lvs_method NAT
    protocol TCP
    real_server 192.0.2.12 8080 {
        weight 3
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
virtual_server 198.51.100.3 8080 {
    delay_loop 2
    lvs_sched rr
    lvs_method DR
    protocol TCP
    persistence_timeout 300
    real_server 192.0.2.13 8080 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
virtual_server 198.51.100.4 53 {
    lvs_sched mh
    mh-port
    lvs_method TUN
    protocol UDP
    real_server 192.0.2.10 53 {
        weight 2
    }
}
"#;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vipd-kt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp");
    d
}

/// `ipvsadm -Ln --nosort` as sorted service blocks (their order in the hash table means
/// nothing), destinations in kernel order (which `mh` walks), plus the timeouts.
fn table(ns: &Netns) -> Vec<String> {
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for l in ns.exec(&["ipvsadm", "-Ln", "--nosort"]).lines().skip(3) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first() == Some(&"->") {
            if let Some(b) = blocks.last_mut() {
                b.push(format!("  {} {} {}", f[1], f[2], f[3]));
            }
        } else {
            blocks.push(vec![f.join(" ")]);
        }
    }
    blocks.sort();
    let mut t = blocks.concat();
    t.push(ns.exec(&["ipvsadm", "-L", "--timeout"]).trim().to_string());
    t
}

/// Polls until the table has `dests` destinations (every real server checked up).
fn settled(ns: &Netns, dests: usize, what: &str, log: &dyn Fn() -> String) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = table(ns);
        if t.iter().filter(|l| l.starts_with("  ")).count() == dests {
            // One more look a check interval later: the table must be stable, not passing by.
            std::thread::sleep(Duration::from_millis(2500));
            let again = table(ns);
            if again == t {
                return t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: table not settled:\n{}\n{}",
            t.join("\n"),
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_imported_config_programs_the_table_keepalived_programs() {
    let test = "the_imported_config_programs_the_table_keepalived_programs";
    if !require(test, &[Feature::Ipvs]) || !require_program(test, "keepalived") {
        return;
    }
    let dir = tmpdir("keepalived");
    let lan = Lan::new("ka");
    let lb = Netns::new("ka-lb");
    let rs = Netns::new("ka-rs");
    lan.attach(&lb, "eth0", &["192.0.2.1/24", "2001:db8::1/64"]);
    lan.attach(
        &rs,
        "eth0",
        &[
            "192.0.2.10/24",
            "192.0.2.11/24",
            "192.0.2.12/24",
            "192.0.2.13/24",
            "2001:db8::10/64",
        ],
    );
    // "::" serves IPv4 too (Python's dual-stack server).
    let _web = common::http_server(&rs, "::", &dir);

    // keepalived first, its checker only, pid files of its own.
    let conf = dir.join("keepalived.conf");
    std::fs::write(&conf, KEEPALIVED_CONF).expect("write");
    let ka_log = dir.join("keepalived.log");
    let mut ka_args: Vec<std::ffi::OsString> =
        vec!["-n".into(), "-l".into(), "-D".into(), "-C".into()];
    for (flag, file) in [
        ("-f", conf.clone()),
        ("-p", dir.join("ka.pid")),
        ("-c", dir.join("ka-check.pid")),
        ("-r", dir.join("ka-vrrp.pid")),
    ] {
        ka_args.push(flag.into());
        ka_args.push(file.into());
    }
    let args: Vec<&std::ffi::OsStr> = ka_args.iter().map(|a| a.as_os_str()).collect();
    let ka = Daemon::spawn(&lb, "keepalived", &args, &ka_log);
    let ka_read = || std::fs::read_to_string(&ka_log).unwrap_or_default();
    let kept = settled(&lb, 6, "keepalived", &ka_read);
    println!("keepalived's table:\n{}", kept.join("\n"));
    drop(ka);
    // Whatever keepalived left behind, and timeouts vipd must set again itself.
    lb.exec(&["ipvsadm", "-C"]);
    lb.exec(&["ipvsadm", "--set", "11", "12", "13"]);
    assert!(lb.exec(&["ipvsadm", "-Ln"]).lines().count() <= 3);

    // The import, then vipd with it (its own paths added to [global]).
    let imported = dir.join("imported.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_vipd"))
        .args(["import", "keepalived"])
        .arg(&conf)
        .arg("-o")
        .arg(&imported)
        .output()
        .expect("vipd import");
    let report = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "a complete translation:\n{report}"
    );
    let text = std::fs::read_to_string(&imported).expect("imported");
    let cfg = dir.join("vipd.toml");
    std::fs::write(
        &cfg,
        text.replacen(
            "[global]\n",
            &format!(
                "[global]\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\nlisten = \"off\"\n",
                dir.join("state").display(),
                dir.join("vipd.sock").display()
            ),
            1,
        ),
    )
    .expect("write");
    let vipd = Vipd::spawn(&lb, &cfg, &dir, 0, false);
    let ours = settled(&lb, 6, "vipd", &|| vipd.log());
    println!("vipd's table:\n{}", ours.join("\n"));
    assert_eq!(
        ours, kept,
        "vipd's table differs from keepalived's\nimported config:\n{text}"
    );
    vipd.stop(&cfg);
}

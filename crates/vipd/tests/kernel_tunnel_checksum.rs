//! Kernel test (UML guest, `make test-kernel`): `tunnel_checksum` reaches the kernel as
//! `ipvsadm --tun-csum` / `--tun-remcsum` would set it, for GUE (and GRE's explicit `none`)
//! destinations, and the dump reads it back. `ipvsadm -Ln --tun-info` is the witness.

use vipd_ipvs::{IpvsClient, Op};
use vipd_testkit::{Feature, Netns, require};

fn service(extra: &str) -> vipd_config::Service {
    let src = format!(
        "[[service]]\nname = \"s\"\nvip = \"198.51.100.1\"\nport = 80\nmh_port = false\nmh_fallback = false\n{extra}\n[[service.real_server]]\naddress = \"10.1.0.1\"\n"
    );
    vipd_config::load_str(&src, "t.toml")
        .expect("valid")
        .config
        .services
        .remove(0)
}

#[test]
fn kernel_gue_and_gre_checksums_as_ipvsadm_sets_them() {
    if !require(
        "kernel_gue_and_gre_checksums_as_ipvsadm_sets_them",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let ns = Netns::new("tun-csum");
    // A destination must be routable to be accepted.
    ns.ip(&["link", "add", "d0", "type", "dummy"]);
    ns.ip(&["link", "set", "d0", "up"]);
    ns.ip(&["addr", "add", "10.1.0.254/24", "dev", "d0"]);
    let cases = [
        (
            81,
            "tunnel_type = \"gue\"\ntunnel_port = 6080\ntunnel_checksum = \"csum\"",
            "gue:6080:+c",
        ),
        (
            82,
            "tunnel_type = \"gue\"\ntunnel_port = 6080\ntunnel_checksum = \"remcsum\"",
            "gue:6080:r+c",
        ),
        // GRE with a checksum is refused at load (the receiver drops it: kernel_encaps).
        (
            83,
            "tunnel_type = \"gre\"\ntunnel_checksum = \"none\"",
            "gre:-c",
        ),
        (84, "tunnel_type = \"gre\"", "gre:-c"),
    ];
    let desired: Vec<_> = cases
        .iter()
        .map(|(port, extra, _)| {
            let mut s = service(extra);
            s.port = *port;
            vipd_reconcile::desired(&s, |_, _| vipd_reconcile::Health::Up(1))
        })
        .collect();
    let dumped = ns.run(|| async {
        let mut c = IpvsClient::connect().await.expect("IPVS");
        for d in &desired {
            c.apply(&Op::NewService(d.service.clone()))
                .await
                .expect("new service");
            for dest in &d.dests {
                c.apply(&Op::NewDest(d.service.key, dest.clone()))
                    .await
                    .expect("new dest");
            }
        }
        c.dump().await.expect("dump")
    });
    for d in &desired {
        let (_, dests) = dumped
            .iter()
            .find(|(s, _)| s.key == d.service.key)
            .expect("service in the dump");
        assert_eq!(dests[0].tun_flags, d.dests[0].tun_flags, "read back");
    }
    let witness = ns.exec(&["ipvsadm", "-Ln", "--tun-info"]);
    for (port, _, info) in cases {
        let line = witness
            .lines()
            .skip_while(|l| !l.contains(&format!(":{port} ")))
            .nth(1)
            .unwrap_or_else(|| panic!("no destination for port {port}:\n{witness}"));
        assert!(line.contains(info), "port {port}: {line:?}\n{witness}");
    }
}

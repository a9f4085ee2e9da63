//! Kernel tests: the IPVS family of the running kernel, witnessed by `ipvsadm`.
//! Run in the UML guest by `make test-kernel`; see `vipd-testkit`.

use vipd_ipvs::{IpvsClient, Version};
use vipd_testkit::{Feature, Netns, require};

/// `IP Virtual Server version 1.2.1 (size=4096)` -> (version, size).
fn ipvsadm_header(out: &str) -> (String, u32) {
    let first = out.lines().next().expect("ipvsadm printed nothing");
    let version = first
        .split("version ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .expect("version");
    let size = first
        .split("size=")
        .nth(1)
        .and_then(|s| s.trim_end_matches(')').parse().ok())
        .expect("size");
    (version.to_string(), size)
}

#[test]
fn kernel_ipvs_family_resolves_and_reports_info() {
    if !require(
        "kernel_ipvs_family_resolves_and_reports_info",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let ns = Netns::new("ipvs-info");
    let info = ns.run(|| async {
        let mut c = IpvsClient::connect().await.expect("IPVS family");
        c.info().await.expect("GET_INFO")
    });
    assert!(
        info.version
            >= Version {
                major: 1,
                minor: 2,
                patch: 0
            },
        "{info:?}"
    );
    assert!(info.conn_tab_size.is_power_of_two(), "{info:?}");
    let (v, size) = ipvsadm_header(&ns.exec(&["ipvsadm", "-Ln"]));
    assert_eq!(
        v,
        info.version.to_string(),
        "ipvsadm disagrees on the version"
    );
    assert_eq!(
        size, info.conn_tab_size,
        "ipvsadm disagrees on the table size"
    );
    println!(
        "IPVS {} conn_tab_size={} (ipvsadm agrees)",
        info.version, info.conn_tab_size
    );
}

#[test]
fn kernel_ipvs_timeouts_match_ipvsadm() {
    if !require("kernel_ipvs_timeouts_match_ipvsadm", &[Feature::Ipvs]) {
        return;
    }
    let ns = Netns::new("ipvs-cfg");
    // A non-default value proves we read this namespace's settings, not defaults.
    ns.exec(&["ipvsadm", "--set", "901", "121", "301"]);
    let t = ns.run(|| async {
        IpvsClient::connect()
            .await
            .expect("IPVS")
            .timeouts()
            .await
            .expect("GET_CONFIG")
    });
    let witness = ns.exec(&["ipvsadm", "-L", "--timeout"]);
    assert!(witness.contains("901 121 301"), "{witness}");
    assert_eq!((t.tcp, t.tcp_fin, t.udp), (901, 121, 301));
}

//! Kernel tests: tunnel devices and VIP addresses over rtnetlink, witnessed by `ip`.
//! Run in the UML guest by `make test-kernel`; see `vipd-testkit`.

use std::net::IpAddr;

use vipd_config::TunnelMode;
use vipd_net::{Change, Net, TunnelSpec};
use vipd_testkit::{Feature, Netns, require};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

#[test]
fn kernel_ipip_and_ip6tnl_devices_with_vips() {
    if !require(
        "kernel_ipip_and_ip6tnl_devices_with_vips",
        &[Feature::Ipip, Feature::Ip6Tnl],
    ) {
        return;
    }
    let ns = Netns::new("tun");
    let v4 = TunnelSpec {
        name: "tunlv4".into(),
        mode: TunnelMode::Ipip,
        local: Some(ip("192.0.2.132")),
        any_inner: false,
    };
    let v6 = TunnelSpec {
        name: "tunlv6".into(),
        mode: TunnelMode::Ip6ip6,
        local: Some(ip("2001:db8::c000:284")),
        any_inner: false,
    };
    let (first, second) = ns.run(|| async {
        let net = Net::connect().expect("rtnetlink");
        let first = [
            net.ensure_tunnel(&v4).await.expect("ipip"),
            net.ensure_tunnel(&v6).await.expect("ip6tnl"),
            net.ensure_address("tunlv4", ip("198.51.100.1"), 32)
                .await
                .expect("v4 VIP"),
            net.ensure_address("tunlv6", ip("2001:db8::c633:6401"), 128)
                .await
                .expect("v6 VIP"),
        ];
        // Everything again: nothing changes, nothing fails.
        let second = [
            net.ensure_tunnel(&v4).await.expect("ipip again"),
            net.ensure_tunnel(&v6).await.expect("ip6tnl again"),
            net.ensure_address("tunlv4", ip("198.51.100.1"), 32)
                .await
                .expect("v4 VIP again"),
            net.ensure_address("tunlv6", ip("2001:db8::c633:6401"), 128)
                .await
                .expect("v6 VIP again"),
        ];
        (first, second)
    });
    assert_eq!(first, [Change::Changed; 4]);
    assert_eq!(second, [Change::Unchanged; 4]);

    let l4 = ns.ip(&["-d", "link", "show", "tunlv4"]);
    assert!(
        l4.contains("link/ipip 192.0.2.132") && l4.contains("remote any local 192.0.2.132"),
        "{l4}"
    );
    assert!(l4.contains(",UP"), "not up: {l4}");
    let l6 = ns.ip(&["-d", "link", "show", "tunlv6"]);
    assert!(
        l6.contains("ip6tnl ip6ip6 remote any local 2001:db8::c000:284"),
        "{l6}"
    );
    let a4 = ns.ip(&["-4", "addr", "show", "dev", "tunlv4"]);
    assert!(a4.contains("inet 198.51.100.1/32"), "{a4}");
    let a6 = ns.ip(&["-6", "addr", "show", "dev", "tunlv6"]);
    assert!(a6.contains("inet6 2001:db8::c633:6401/128"), "{a6}");
}

/// The catch-all devices the modules create in every namespace are adopted, not recreated:
/// a second endpoint-less device would collide with them (EEXIST).
#[test]
fn kernel_catch_all_devices_are_adopted() {
    if !require(
        "kernel_catch_all_devices_are_adopted",
        &[Feature::Ipip, Feature::Ip6Tnl],
    ) {
        return;
    }
    let ns = Netns::new("tun0");
    let changes = ns.run(|| async {
        let net = Net::connect().expect("rtnetlink");
        let t4 = TunnelSpec {
            name: "tunl0".into(),
            mode: TunnelMode::Ipip,
            local: None,
            any_inner: false,
        };
        let t6 = TunnelSpec {
            name: "ip6tnl0".into(),
            mode: TunnelMode::Ip6ip6,
            local: None,
            any_inner: false,
        };
        let clash = TunnelSpec {
            name: "other".into(),
            mode: TunnelMode::Ipip,
            local: None,
            any_inner: false,
        };
        let e = net
            .ensure_tunnel(&clash)
            .await
            .expect_err("collides with tunl0");
        assert_eq!(e.errno, Some(17), "{e}");
        [
            net.ensure_tunnel(&t4).await.expect("tunl0"),
            net.ensure_tunnel(&t6).await.expect("ip6tnl0"),
            net.ensure_address("tunl0", ip("198.51.100.20"), 32)
                .await
                .expect("VIP on tunl0"),
        ]
    });
    assert_eq!(
        changes,
        [Change::Unchanged, Change::Unchanged, Change::Changed]
    );
    assert!(ns.ip(&["link", "show", "tunl0"]).contains(",UP"));
    assert!(ns.ip(&["link", "show", "ip6tnl0"]).contains(",UP"));
    assert!(
        ns.ip(&["-4", "addr", "show", "dev", "tunl0"])
            .contains("inet 198.51.100.20/32")
    );
}

#[test]
fn kernel_existing_device_of_another_kind_is_an_error() {
    if !require(
        "kernel_existing_device_of_another_kind_is_an_error",
        &[Feature::Ipip],
    ) {
        return;
    }
    let ns = Netns::new("tunkind");
    ns.ip(&["link", "add", "tunlv4", "type", "dummy"]);
    let err = ns.run(|| async {
        let net = Net::connect().expect("rtnetlink");
        let t = TunnelSpec {
            name: "tunlv4".into(),
            mode: TunnelMode::Ipip,
            local: None,
            any_inner: false,
        };
        net.ensure_tunnel(&t)
            .await
            .expect_err("a dummy is not an ipip tunnel")
    });
    assert!(err.to_string().contains("exists with kind"), "{err}");
    // And it was left alone.
    assert!(ns.ip(&["-d", "link", "show", "tunlv4"]).contains("dummy"));
}

#[test]
fn kernel_address_on_a_missing_device_names_the_device() {
    let ns = Netns::new("noaddr");
    let err = ns.run(|| async {
        let net = Net::connect().expect("rtnetlink");
        net.ensure_address("nosuchdev", ip("198.51.100.1"), 32)
            .await
            .expect_err("no device")
    });
    assert_eq!(err.op, "ip addr add 198.51.100.1/32 dev nosuchdev");
    assert!(err.detail.contains("no device nosuchdev"), "{err}");
}

/// VIPs vipd adds carry its IFA_PROTO tag; only tagged addresses are ever removed.
#[test]
fn kernel_vips_on_lo_are_tagged_and_only_ours_are_removed() {
    let ns = Netns::new("vips");
    ns.ip(&["addr", "add", "198.51.100.9/32", "dev", "lo"]); // an operator's
    let (owned, untagged, removed) = ns.run(|| async {
        let net = Net::connect().expect("rtnetlink");
        assert_eq!(
            net.ensure_owned_address("lo", ip("198.51.100.1"), 32)
                .await
                .unwrap(),
            Change::Changed
        );
        assert_eq!(
            net.ensure_owned_address("lo", ip("2001:db8::c633:6401"), 128)
                .await
                .unwrap(),
            Change::Changed
        );
        assert_eq!(
            net.ensure_owned_address("lo", ip("198.51.100.1"), 32)
                .await
                .unwrap(),
            Change::Unchanged
        );
        let owned = net.owned_addresses("lo").await.unwrap();
        let untagged = net
            .remove_owned_address("lo", ip("198.51.100.9"))
            .await
            .unwrap();
        let removed = net
            .remove_owned_address("lo", ip("198.51.100.1"))
            .await
            .unwrap();
        (owned, untagged, removed)
    });
    assert_eq!(owned.len(), 2, "{owned:?}");
    assert!(
        owned.contains(&(ip("198.51.100.1"), 32))
            && owned.contains(&(ip("2001:db8::c633:6401"), 128))
    );
    assert_eq!((untagged, removed), (Change::Unchanged, Change::Changed));
    let shown = ns.ip(&["addr", "show", "dev", "lo"]);
    assert!(
        shown.contains("198.51.100.9/32"),
        "the operator's address stays: {shown}"
    );
    assert!(!shown.contains("198.51.100.1/32"), "{shown}");
    assert!(shown.contains("2001:db8::c633:6401/128"), "{shown}");
    // iproute2 >= 6.3 prints the tag as `proto 118`; Debian 12's 6.1 neither shows nor sets it.
}

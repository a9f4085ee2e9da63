//! `[[backend.tunnel]]` modes, mixed families and GUE: each accepted case loads with what it
//! says, each refusal is reported where it is written.

use super::tests::error_at;
use crate::load_str;
use crate::model::TunnelMode;

const HEAD: &str = "[global]\nrole = \"backend\"\n[backend]\nallowed_directors = [\"192.0.2.1\", \"2001:db8::1\"]\n";

fn tunnel(name: &str, mode: &str, local: Option<&str>, vips: &str, extra: &str) -> String {
    let local = local
        .map(|l| format!("local = \"{l}\"\n"))
        .unwrap_or_default();
    format!(
        "{HEAD}[[backend.tunnel]]\nname = \"{name}\"\nmode = \"{mode}\"\n{local}vips = [{vips}]\n{extra}"
    )
}

#[test]
fn gre_devices_take_both_families() {
    let l = load_str(
        &tunnel(
            "gre1",
            "gre",
            Some("192.0.2.10"),
            "\"198.51.100.1\", \"2001:db8:100::1\"",
            "",
        ),
        "t.toml",
    )
    .expect("gre with both families");
    assert_eq!(l.config.backend.unwrap().tunnels[0].mode, TunnelMode::Gre);
    load_str(
        &tunnel(
            "ip6gre0",
            "ip6gre",
            None,
            "\"198.51.100.1\", \"2001:db8:100::1\"",
            "",
        ),
        "t.toml",
    )
    .expect("the ip6gre catch-all with both families");
    let d = error_at(
        &tunnel("g6", "ip6gre", None, "\"2001:db8:100::1\"", ""),
        "has no local address",
        "name = \"g6\"",
    );
    assert!(d.hint.unwrap().contains("ip6gre0"));
    error_at(
        &tunnel("gre1", "gre", Some("2001:db8::10"), "\"198.51.100.1\"", ""),
        "does not fit mode \"gre\"",
        "local",
    );
}

#[test]
fn ipv4_inside_ipv6_needs_a_named_device() {
    load_str(
        &tunnel("t6", "ip6ip6", Some("2001:db8::10"), "\"198.51.100.1\"", ""),
        "t.toml",
    )
    .expect("IPv4 VIP on a named ip6ip6 device");
    let d = error_at(
        &tunnel("ip6tnl0", "ip6ip6", None, "\"198.51.100.1\"", ""),
        "cannot arrive over \"ip6ip6\" device \"ip6tnl0\"",
        "vips",
    );
    assert!(d.hint.unwrap().contains("mode any"));
    let d = error_at(
        &tunnel("tunl0", "ipip", None, "\"2001:db8:100::1\"", ""),
        "cannot arrive over \"ipip\" device \"tunl0\"",
        "vips",
    );
    assert!(d.hint.unwrap().contains("gre"));
}

#[test]
fn gue_port_on_ip_in_ip_devices_only() {
    let l = load_str(
        &tunnel(
            "tunl0",
            "ipip",
            None,
            "\"198.51.100.1\"",
            "gue_port = 6080\n",
        ),
        "t.toml",
    )
    .expect("gue_port on ipip");
    assert_eq!(l.config.backend.unwrap().tunnels[0].gue_port, Some(6080));
    load_str(
        &tunnel(
            "t6",
            "ip6ip6",
            Some("2001:db8::10"),
            "\"2001:db8:100::1\"",
            "gue_port = 6080\n",
        ),
        "t.toml",
    )
    .expect("gue_port on ip6ip6");
    error_at(
        &tunnel("tunl0", "ipip", None, "\"198.51.100.1\"", "gue_port = 0\n"),
        "GUE needs a fixed UDP port",
        "gue_port",
    );
    let d = error_at(
        &tunnel("gre0", "gre", None, "\"198.51.100.1\"", "gue_port = 6080\n"),
        "never GRE",
        "gue_port",
    );
    assert!(d.hint.unwrap().contains("ipip"));
    error_at(
        &tunnel("gre0", "sit", None, "\"198.51.100.1\"", ""),
        "unknown variant",
        "mode",
    );
}

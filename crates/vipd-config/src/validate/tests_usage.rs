//! One test per rule of `usage.rs` (keys that would be accepted and have no effect), and the
//! whole-file reporting when a structural error removes part of the file.

use super::tests::{BASE, error_at, refused, warnings, with};
use crate::{Severity, load_str};

const BACKEND: &str = r#"
[global]
role = "backend"

[backend]
allowed_directors = ["192.0.2.1"]

[[check]]
name = "local"
kind = "http"
path = "/healthcheck"
port = 8080

[[backend.tunnel]]
name = "tunl0"
mode = "ipip"
vips = ["198.51.100.1"]

[backend.agent]
checks = ["local"]
"#;

#[test]
fn the_backend_base_is_valid() {
    let l = load_str(BACKEND, "b.toml").expect("valid");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn a_backend_refuses_bgp() {
    let src = format!("{BACKEND}\n[bgp]\nlocal_as = 65000\n");
    error_at(&src, "a backend does not speak BGP", "[bgp]");
}

#[test]
fn a_backend_refuses_ipvs_settings() {
    let src = BACKEND.replacen(
        "role = \"backend\"",
        "role = \"backend\"\n[global.ipvs_timeouts]\ntcp = \"15m\"\ntcp_fin = \"2m\"\nudp = \"5m\"",
        1,
    );
    error_at(
        &src,
        "a backend does not program IPVS",
        "[global.ipvs_timeouts]",
    );
    // Even with the default values: written, it would be believed applied.
    let src = BACKEND.replacen(
        "role = \"backend\"",
        "role = \"backend\"\n[global.sysctl]\nsloppy_tcp = 1",
        1,
    );
    error_at(
        &src,
        "[global.sysctl] would not be applied",
        "[global.sysctl]",
    );
}

#[test]
fn a_check_used_nowhere_is_warned() {
    let src = format!("{BASE}\n[[check]]\nname = \"spare\"\nkind = \"tcp\"\n");
    let w = warnings(&src);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].message.contains("check \"spare\" is used nowhere"),
        "{w:?}"
    );
    assert_eq!(w[0].severity, Severity::Warning);
    let at = src.rfind("\"spare\"").expect("in source");
    let line = src[..at].lines().count();
    assert_eq!(w[0].location.as_ref().expect("located").line, line);
    // A check used by a real server only is used.
    let src = format!(
        "{}\nchecks = [\"spare\"]\n[[check]]\nname = \"spare\"\nkind = \"tcp\"\n",
        BASE.trim_end()
    );
    assert!(warnings(&src).is_empty());
}

#[test]
fn a_backend_local_check_needs_a_port() {
    let src = BACKEND.replacen("port = 8080\n", "", 1);
    error_at(&src, "needs a port", "[[check]]");
}

#[test]
fn mh_flags_need_the_mh_scheduler() {
    let src = with(
        "checks = [\"http\"]",
        "checks = [\"http\"]\nscheduler = \"sh\"\nmh_port = true",
    );
    error_at(&src, "mh_port needs scheduler = \"mh\"", "mh_port");
    let src = with(
        "checks = [\"http\"]",
        "checks = [\"http\"]\nscheduler = \"sh\"\nmh_fallback = false",
    );
    error_at(&src, "mh_fallback needs scheduler = \"mh\"", "mh_fallback");
    // Unset with sh: accepted, and the flags are off.
    let src = with(
        "checks = [\"http\"]",
        "checks = [\"http\"]\nscheduler = \"sh\"",
    );
    let l = load_str(&src, "t.toml").expect("valid");
    let s = &l.config.services[0];
    assert!(!s.mh_port() && !s.mh_fallback());
}

#[test]
fn drain_keys_need_graceful_shutdown() {
    for key in ["drained_med = 200", "drain_delay = \"10s\""] {
        let src = with(
            "checks = [\"http\"]",
            &format!("checks = [\"http\"]\n[service.announce]\ngraceful_shutdown = false\n{key}"),
        );
        let name = key.split(' ').next().expect("key");
        error_at(
            &src,
            &format!("{name} has no effect with graceful_shutdown = false"),
            name,
        );
    }
    let src = with(
        "checks = [\"http\"]",
        "checks = [\"http\"]\n[service.announce]\ndrained_med = 200\ndrain_delay = \"10s\"",
    );
    let l = load_str(&src, "t.toml").expect("valid with graceful_shutdown");
    assert_eq!(
        l.config.services[0].announce.drain_delay(),
        std::time::Duration::from_secs(10)
    );
}

#[test]
fn services_of_one_vip_announce_it_alike() {
    let second = "\n[[service]]\nname = \"web-tls\"\nvip = \"198.51.100.1\"\nport = 443\nchecks = [\"http\"]\n[service.announce]\nmed = 50\n[[service.real_server]]\naddress = \"192.0.2.10\"\n";
    let src = format!("{BASE}{second}");
    let d = error_at(
        &src,
        "service \"web-tls\" announces VIP 198.51.100.1 differently from service \"web\"",
        "[service.announce]",
    );
    assert!(d.hint.expect("hint").contains("same [service.announce]"));
    // The same announce on both: accepted.
    let both = BASE.replacen(
        "checks = [\"http\"]\n",
        "checks = [\"http\"]\n[service.announce]\nmed = 50\n",
        1,
    );
    load_str(&format!("{both}{second}"), "t.toml").expect("same announce: valid");
}

#[test]
fn listen_can_be_turned_off() {
    let l = load_str(&with("[global]", "[global]\nlisten = \"off\""), "t.toml").expect("valid");
    assert_eq!(l.config.global.listen, None);
    let l = load_str(
        &with("[global]", "[global]\nlisten = \"[::1]:9100\""),
        "t.toml",
    )
    .expect("valid");
    assert_eq!(l.config.global.listen, "[::1]:9100".parse().ok());
    let l = load_str(BASE, "t.toml").expect("valid");
    assert_eq!(l.config.global.listen, "127.0.0.1:9180".parse().ok());
    let src = with("[global]", "[global]\nlisten = \"nowhere\"");
    let d = error_at(&src, "invalid listen address", "\"nowhere\"");
    assert!(d.hint.expect("hint").contains("\"off\""));
}

/// An unknown check kind used to stop the loader before the services' rules ran: 1 error
/// reported where the file had 3.
#[test]
fn a_structural_error_does_not_hide_the_other_sections_errors() {
    let src = BASE
        .replacen("kind = \"http\"", "kind = \"htp\"", 1)
        .replacen("port = 80", "port = 0", 1)
        .replacen("address = \"192.0.2.11\"", "address = \"192.0.2.10\"", 1);
    let e = refused(&src);
    assert_eq!(e.error_count(), 3, "{e}");
    error_at(&src, "unknown variant `htp`", "\"htp\"");
    error_at(&src, "port 0 is not a service port", "port = 0");
    error_at(
        &src,
        "real server 192.0.2.10:0 is listed twice",
        "\"192.0.2.10\"",
    );
    // The service's reference to the removed check is not a finding of its own.
    assert!(!e.to_string().contains("unknown check"), "{e}");
}

/// A removed `[[service]]` does not shift the location of the next one's errors.
#[test]
fn errors_after_a_removed_service_point_at_the_right_service() {
    let src = format!(
        "{}\n[[service]]\nname = \"b\"\nvip = \"198.51.100.2\"\nport = 80\nchecks = [\"http\"]\nscheduler = \"sh\"\nmh_port = true\n[[service.real_server]]\naddress = \"192.0.2.10\"\n",
        BASE.replacen("vip = \"198.51.100.1\"", "vip = \"not-an-ip\"", 1)
    );
    let e = refused(&src);
    assert_eq!(e.error_count(), 2, "{e}");
    error_at(&src, "mh_port needs scheduler", "mh_port");
}

/// `BASE` with an eBGP neighbor and `extra` in the service's `[service.announce]`.
fn ebgp_announce(extra: &str) -> String {
    with("remote_as = 65000", "remote_as = 65100").replacen(
        "checks = [\"http\"]\n",
        &format!("checks = [\"http\"]\n[service.announce]\n{extra}\n"),
        1,
    )
}

#[test]
fn route_states_are_accepted_over_ebgp() {
    let src = ebgp_announce(
        "med = 10\nprepend = 1\nextended_communities = [\"rt:65000:7\", \"soo:192.0.2.1:1\"]\ndrain_file = \"/etc/lb/disable-web\"\n[service.announce.down]\nmed = 1000\nprepend = 3\ncommunities = [\"65000:666\"]\n[service.announce.drained]\nmed = 500",
    );
    let l = load_str(&src, "t.toml").expect("valid");
    let a = &l.config.services[0].announce;
    assert_eq!(a.prepend, 1);
    assert_eq!(a.down.as_ref().and_then(|d| d.med), Some(1000));
    assert_eq!(a.extended_communities[0].to_string(), "rt:65000:7");
}

#[test]
fn prepends_are_bounded_and_ebgp_only() {
    error_at(
        &ebgp_announce("prepend = 11"),
        "prepend 11 is above 10",
        "prepend",
    );
    error_at(
        &ebgp_announce("[service.announce.down]\nprepend = 12"),
        "prepend 12 is above 10",
        "prepend",
    );
    // BASE's neighbor is iBGP.
    let src = with(
        "checks = [\"http\"]\n",
        "checks = [\"http\"]\n[service.announce]\nprepend = 2\n",
    );
    error_at(&src, "AS-path prepend with an iBGP neighbor", "prepend");
}

#[test]
fn the_drained_med_is_given_once() {
    error_at(
        &ebgp_announce("drained_med = 100\n[service.announce.drained]\nmed = 500"),
        "the drained MED is given twice",
        "med = 500",
    );
    error_at(
        &ebgp_announce("graceful_shutdown = false\n[service.announce.drained]\nmed = 500"),
        "drained has no effect with graceful_shutdown = false",
        "[service.announce.drained]",
    );
}

#[test]
fn a_vip_drain_file_is_its_own_absolute_path() {
    error_at(
        &ebgp_announce("drain_file = \"disable-web\""),
        "is not an absolute path",
        "drain_file",
    );
    error_at(
        &ebgp_announce("drain_file = \"/etc/lb/disable\""),
        "this is the node's drain file",
        "drain_file",
    );
}

#[test]
fn states_of_a_route_not_announced_are_refused() {
    error_at(
        &ebgp_announce("enabled = false\n[service.announce.down]\nmed = 1000"),
        "announce.enabled = false, but the route's states are configured",
        "enabled",
    );
}

#[test]
fn a_bad_extended_community_is_located() {
    error_at(
        &ebgp_announce("extended_communities = [\"rt:192.0.2.1:70000\"]"),
        "invalid extended community",
        "\"rt:192.0.2.1:70000\"",
    );
}

#[test]
fn hooks_name_absolute_programs_and_a_sane_timeout() {
    let hooks = |body: &str| {
        with(
            "checks = [\"http\"]\n",
            &format!("checks = [\"http\"]\n[service.hooks]\n{body}\n"),
        )
    };
    load_str(
        &hooks("quorum_down = [\"/usr/local/bin/page\", \"lb down\"]\ntimeout = \"5s\""),
        "t.toml",
    )
    .expect("valid");
    error_at(&hooks("quorum_up = []"), "quorum_up is empty", "quorum_up");
    error_at(
        &hooks("real_server_down = [\"notify.sh\"]"),
        "\"notify.sh\" is not an absolute path",
        "real_server_down",
    );
    error_at(
        &hooks("quorum_up = [\"/bin/true\"]\ntimeout = \"2h\""),
        "hook timeout must be 100ms to 1h",
        "timeout",
    );
}

#[test]
fn a_sorry_server_follows_the_real_servers_rules() {
    let sorry = |v: &str| {
        with(
            "checks = [\"http\"]\n",
            &format!("checks = [\"http\"]\nsorry_server = {v}\n"),
        )
    };
    load_str(&sorry("{ address = \"192.0.2.99\" }"), "t.toml").expect("valid");
    error_at(
        &sorry("{ address = \"192.0.2.10\" }"),
        "sorry server 192.0.2.10:80 is a real server",
        "sorry_server",
    );
    error_at(
        &sorry("{ address = \"192.0.2.99\", port = 8080 }"),
        "sorry server port 8080 cannot be used",
        "sorry_server",
    );
    error_at(
        &sorry("{ address = \"0.0.0.0\" }"),
        "cannot be a sorry server",
        "sorry_server",
    );
}

#[test]
fn client_certificates_come_with_their_key_and_a_ca_means_verify() {
    let https = |extra: &str| {
        with(
            "kind = \"http\"\npath = \"/healthcheck\"",
            &format!("kind = \"https\"\npath = \"/healthcheck\"\n{extra}"),
        )
    };
    load_str(
        &https("tls_ca = \"/etc/vipd/ca.pem\"\ntls_cert = \"/etc/vipd/c.pem\"\ntls_key = \"/etc/vipd/c.key\""),
        "t.toml",
    )
    .expect("valid");
    error_at(
        &https("tls_cert = \"/etc/vipd/c.pem\""),
        "tls_cert without tls_key",
        "tls_cert",
    );
    error_at(
        &https("tls_ca = \"/etc/vipd/ca.pem\"\ntls_verify = false"),
        "tls_ca with tls_verify = false",
        "tls_ca",
    );
    error_at(
        &https("tls_ca = \"ca.pem\""),
        "is not an absolute path",
        "tls_ca",
    );
    error_at(
        &with(
            "path = \"/healthcheck\"",
            "path = \"/healthcheck\"\ntls_ca = \"/etc/vipd/ca.pem\"",
        ),
        "`tls_ca` does not apply to a http check",
        "tls_ca",
    );
}

#[test]
fn dns_checks_name_a_name_and_a_type_their_answer_fits() {
    let dns = |extra: &str| {
        with(
            "kind = \"http\"\npath = \"/healthcheck\"",
            &format!("kind = \"dns\"\n{extra}"),
        )
    };
    load_str(
        &dns("dns_name = \"www.example.com\"\ndns_type = \"aaaa\"\ndns_answer = \"2001:db8::1\""),
        "t.toml",
    )
    .expect("valid");
    error_at(&dns(""), "a dns check needs a dns_name", "kind = \"dns\"");
    error_at(&dns("dns_name = \"a..b\""), "invalid DNS name", "dns_name");
    error_at(
        &dns("dns_name = \"a.b\"\ndns_type = \"PTRX\""),
        "unknown DNS type \"PTRX\"",
        "dns_type",
    );
    error_at(
        &dns("dns_name = \"a.b\"\ndns_answer = \"2001:db8::1\""),
        "cannot come with dns_type A",
        "dns_answer",
    );
}

#[test]
fn firewall_mark_services() {
    let fw = |extra: &str| {
        BASE.replacen("port = 80\n", &format!("{extra}\n"), 1)
            .replacen(
                "kind = \"http\"\npath = \"/healthcheck\"",
                "kind = \"http\"\npath = \"/healthcheck\"\nport = 8080",
                1,
            )
    };
    let l = load_str(&fw("fwmark = 7"), "t.toml").expect("valid");
    assert_eq!(
        crate::Service::port_of(&l.config.services[0], &l.config.services[0].real_servers[0]),
        0,
        "real servers keep the packets' ports"
    );
    error_at(
        &fw("fwmark = 7\nport = 80"),
        "a firewall-mark service has no port",
        "port = 80",
    );
    error_at(&fw("fwmark = 0"), "fwmark 0 marks nothing", "fwmark");
    error_at(
        &fw("fwmark = 7\nprotocol = \"udp\""),
        "a firewall-mark service has no protocol",
        "protocol",
    );
    error_at(&fw(""), "port 0 is not a service port", "[[service]]");
    // The check must name its port.
    let no_port = BASE.replacen("port = 80\n", "fwmark = 7\n", 1);
    error_at(
        &no_port,
        "check \"http\" has no port to probe on 192.0.2.10",
        "[[service.real_server]]\naddress = \"192.0.2.10\"",
    );
    let twice = format!(
        "{}\n[[service]]\nname = \"b\"\nvip = \"198.51.100.2\"\nfwmark = 7\nchecks = [\"http\"]\n[[service.real_server]]\naddress = \"192.0.2.12\"\n",
        fw("fwmark = 7")
    );
    error_at(
        &twice,
        "fwmark 7 is already service \"web\"'s",
        "fwmark = 7\nchecks",
    );
}

//! The rules `tests.rs` left without a test: one test per rule, each asserting the rule's own
//! message (so that it fails when the rule is removed), where it points and its hint.

use super::tests::{error_at, finding_at, refused, warnings, with};
use crate::{Diagnostic, Severity, load_str};

/// The check's last key in `BASE`, after which check keys are added.
const P: &str = "path = \"/healthcheck\"";

/// `BASE` with `extra` added to the `[[check]]` table.
fn check_with(extra: &str) -> String {
    with(P, &format!("{P}\n{extra}"))
}

/// The backend of `tests.rs`'s `backend_rules`, valid.
const BACKEND: &str = "[global]\nrole = \"backend\"\n[backend]\nallowed_directors = [\"192.0.2.1\"]\n[[backend.tunnel]]\nname = \"tunlv6\"\nmode = \"ip6ip6\"\nlocal = \"2001:db8::2\"\nvips = [\"2001:db8::1\"]\n";

/// `BASE` without its `[bgp]` table and neighbor.
fn without_bgp() -> String {
    with(
        "[bgp]\nlocal_as = 65000\n\n[[bgp.neighbor]]\naddress = \"192.0.2.254\"\nremote_as = 65000\n",
        "",
    )
}

/// Asserts a warning (and no error) containing `needle`, with a hint, located at the line of
/// the last `at` in `src`.
fn warning_at(src: &str, needle: &str, at: &str) -> Diagnostic {
    finding_at(&warnings(src), Severity::Warning, src, needle, at)
}

// ---- [global] ----

/// `global.control_socket` must be an absolute path.
#[test]
fn control_socket_is_absolute() {
    let src = with(
        "router_id = \"192.0.2.1\"",
        "router_id = \"192.0.2.1\"\ncontrol_socket = \"vipd.sock\"",
    );
    let d = error_at(&src, "vipd.sock is not an absolute path", "control_socket");
    assert_eq!(d.path.to_string(), "global.control_socket");
}

/// `global.state_dir` must be an absolute path.
#[test]
fn state_dir_is_absolute() {
    let src = with(
        "router_id = \"192.0.2.1\"",
        "router_id = \"192.0.2.1\"\nstate_dir = \"state\"",
    );
    let d = error_at(&src, "state is not an absolute path", "state_dir");
    assert_eq!(d.path.to_string(), "global.state_dir");
}

// ---- [backend] ----

/// `backend.allowed_directors` holds unicast addresses only.
#[test]
fn allowed_director_is_unicast() {
    load_str(BACKEND, "b.toml").expect("valid backend");
    let src = BACKEND.replace("[\"192.0.2.1\"]", "[\"0.0.0.0\"]");
    error_at(
        &src,
        "0.0.0.0 is not a director address",
        "allowed_directors",
    );
}

/// The agent listens on a fixed port, which the directors' agent checks name.
#[test]
fn agent_listen_port_is_not_0() {
    let src = format!("{BACKEND}[backend.agent]\nlisten = \"[::]:0\"\n");
    error_at(&src, "the agent needs a fixed port", "listen");
    load_str(
        &format!("{BACKEND}[backend.agent]\nlisten = \"[::]:5555\"\n"),
        "b.toml",
    )
    .expect("a fixed port");
}

/// A backend VIP is a unicast address.
#[test]
fn backend_vip_is_unicast() {
    let src = BACKEND.replace("vips = [\"2001:db8::1\"]", "vips = [\"ff02::1\"]");
    error_at(&src, "ff02::1 cannot be a VIP", "vips");
}

// ---- [bgp] ----

/// `bgp.router_id` (over `global.router_id`) cannot be 0.0.0.0.
#[test]
fn bgp_router_id_is_not_0() {
    let src = with(
        "local_as = 65000",
        "local_as = 65000\nrouter_id = \"0.0.0.0\"",
    );
    let d = error_at(
        &src,
        "router_id 0.0.0.0 is not allowed (RFC 6286)",
        "router_id = \"0.0.0.0\"",
    );
    assert_eq!(d.path.to_string(), "bgp.router_id");
}

/// `bgp.connect_retry` is at least 1 second.
#[test]
fn connect_retry_is_at_least_1() {
    let src = with("local_as = 65000", "local_as = 65000\nconnect_retry = 0");
    error_at(
        &src,
        "connect_retry must be at least 1 second",
        "connect_retry",
    );
    load_str(
        &with("local_as = 65000", "local_as = 65000\nconnect_retry = 1"),
        "t.toml",
    )
    .expect("1 second");
}

/// `[bgp]` without a neighbor announces nothing: a warning.
#[test]
fn bgp_without_neighbor_is_warned() {
    let src = with(
        "[[bgp.neighbor]]\naddress = \"192.0.2.254\"\nremote_as = 65000\n",
        "",
    );
    let d = warning_at(
        &src,
        "[bgp] has no neighbor: nothing will be announced",
        "[bgp]",
    );
    assert_eq!(d.path.to_string(), "bgp");
}

/// A neighbor's TCP port is not 0.
#[test]
fn neighbor_port_is_not_0() {
    let src = with("remote_as = 65000", "remote_as = 65000\nport = 0");
    let d = error_at(&src, "port 0 is not a TCP port", "port = 0");
    assert_eq!(d.path.to_string(), "bgp.neighbor[0].port");
}

/// `ipv4_next_hop` on a session that does not carry IPv4: a warning.
#[test]
fn ipv4_next_hop_without_ipv4_is_warned() {
    let src = with(
        "address = \"192.0.2.254\"",
        "address = \"2001:db8::254\"\nipv4_next_hop = \"192.0.2.1\"",
    );
    warning_at(
        &src,
        "ipv4_next_hop is set but ipv4 is not negotiated",
        "ipv4_next_hop",
    );
    let both = src.replace(
        "ipv4_next_hop",
        "families = [\"ipv6\", \"ipv4\"]\nipv4_next_hop",
    );
    assert!(warnings(&both).is_empty(), "ipv4 negotiated");
}

/// `ipv6_next_hop` on a session that does not carry IPv6: a warning.
#[test]
fn ipv6_next_hop_without_ipv6_is_warned() {
    let src = with(
        "remote_as = 65000",
        "remote_as = 65000\nipv6_next_hop = \"2001:db8::1\"",
    );
    warning_at(
        &src,
        "ipv6_next_hop is set but ipv6 is not negotiated",
        "ipv6_next_hop",
    );
}

/// A neighbor's TCP MD5 key is not empty (nor above 80 bytes: `tests.rs`).
#[test]
fn empty_password_is_refused() {
    let src = with("remote_as = 65000", "remote_as = 65000\npassword = \"\"");
    error_at(&src, "password must be 1 to 80 bytes", "password");
}

/// `[bgp.bfd]` intervals are within 10ms..=60s (a neighbor's `bfd`: `tests/bfd.rs`).
#[test]
fn bgp_bfd_interval_range() {
    let src = with(
        "local_as = 65000",
        "local_as = 65000\nbfd = { min_rx = \"5ms\" }",
    );
    let d = error_at(&src, "min_rx 5ms is outside 10ms..=60s", "bfd");
    assert_eq!(d.path.to_string(), "bgp.bfd.min_rx");
    let src = with(
        "local_as = 65000",
        "local_as = 65000\nbfd = { min_tx = \"2m\" }",
    );
    error_at(&src, "min_tx 2m is outside 10ms..=60s", "bfd");
}

/// `[bgp.bfd]` multiplier is at least 1.
#[test]
fn bgp_bfd_multiplier_is_at_least_1() {
    let src = with(
        "local_as = 65000",
        "local_as = 65000\n[bgp.bfd]\nmultiplier = 0",
    );
    let d = error_at(&src, "multiplier must be at least 1", "multiplier");
    assert_eq!(d.path.to_string(), "bgp.bfd.multiplier");
}

// ---- checks ----

/// An exec check's user that cannot be looked up (a NUL byte in the name) is refused.
#[test]
fn exec_user_lookup_error() {
    let src = with(
        "kind = \"http\"\npath = \"/healthcheck\"",
        "kind = \"exec\"\ncommand = \"/bin/true\"\nuser = \"a\\u0000b\"",
    );
    let d = error_at(&src, "cannot look user \"a\\0b\" up", "user");
    assert!(d.hint.expect("hint").contains("getpwnam"));
}

/// A check does not probe port 0.
#[test]
fn check_port_is_not_0() {
    error_at(
        &check_with("port = 0"),
        "port 0 cannot be probed",
        "port = 0",
    );
}

/// `damping`'s window and penalty are above 0.
#[test]
fn damping_window_and_penalty_above_0() {
    for (window, penalty) in [("0s", "1m"), ("60s", "0s")] {
        let src = check_with(&format!(
            "damping = {{ window = \"{window}\", max_flaps = 4, penalty = \"{penalty}\" }}"
        ));
        error_at(
            &src,
            "damping window and penalty must be above 0",
            "damping",
        );
    }
    load_str(
        &check_with("damping = { window = \"60s\", max_flaps = 4, penalty = \"1m\" }"),
        "t.toml",
    )
    .expect("valid damping");
}

/// A check's timeout is above 0.
#[test]
fn check_timeout_above_0() {
    let d = error_at(
        &check_with("timeout = \"0s\""),
        "timeout must be above 0",
        "timeout",
    );
    assert_eq!(d.message, "timeout must be above 0");
}

/// A check's connect_timeout is above 0 (and at most timeout: `tests.rs`).
#[test]
fn connect_timeout_above_0() {
    error_at(
        &check_with("connect_timeout = \"0s\""),
        "connect_timeout 0s must be above 0",
        "connect_timeout",
    );
}

/// `expect_status` lists at least one status.
#[test]
fn expect_status_is_not_empty() {
    error_at(
        &check_with("expect_status = []"),
        "expect_status is empty",
        "expect_status",
    );
}

/// `host` and `sni` are host names.
#[test]
fn host_and_sni_are_host_names() {
    error_at(
        &check_with("host = \"a b\""),
        "invalid host \"a b\"",
        "host",
    );
    let https = with("kind = \"http\"", "kind = \"https\"");
    let src = https.replacen(P, &format!("{P}\nsni = \"a/b\""), 1);
    error_at(&src, "invalid sni \"a/b\"", "sni");
    load_str(
        &https.replacen(P, &format!("{P}\nsni = \"www.example.com\""), 1),
        "t.toml",
    )
    .expect("valid sni");
}

// ---- services ----

/// `[service.persistence]` timeout is above 0.
#[test]
fn persistence_timeout_above_0() {
    let src = with(
        "weight = 2",
        "weight = 2\n[service.persistence]\ntimeout = \"0s\"\n",
    );
    let d = error_at(&src, "persistence timeout must be above 0", "timeout");
    assert_eq!(d.path.to_string(), "service[0].persistence.timeout");
}

/// A service to be announced without `[bgp]`: a warning.
#[test]
fn announced_without_bgp_is_warned() {
    let src = without_bgp();
    warning_at(
        &src,
        "service \"web\" is to be announced but there is no [bgp]",
        "[[service]]",
    );
    let off = src.replacen(
        "checks = [\"http\"]\n",
        "checks = [\"http\"]\n[service.announce]\nenabled = false\n",
        1,
    );
    assert!(warnings(&off).is_empty(), "not announced");
}

/// `tunnel_port` needs tunnel forwarding.
#[test]
fn tunnel_port_needs_tunnel_forwarding() {
    let src = with(
        "port = 80\n",
        "port = 80\nforwarding = \"dr\"\ntunnel_port = 5555\n",
    );
    error_at(
        &src,
        "tunnel_port needs forwarding = \"tunnel\"",
        "tunnel_port",
    );
}

/// A GUE tunnel_port is not 0.
#[test]
fn gue_tunnel_port_is_not_0() {
    let src = with(
        "port = 80\n",
        "port = 80\ntunnel_type = \"gue\"\ntunnel_port = 0\n",
    );
    error_at(&src, "tunnel_port 0 is not a UDP port", "tunnel_port");
    load_str(
        &with(
            "port = 80\n",
            "port = 80\ntunnel_type = \"gue\"\ntunnel_port = 5555\n",
        ),
        "t.toml",
    )
    .expect("valid gue");
}

/// `quorum = 0` keeps the VIP announced with every real server down: a warning.
#[test]
fn quorum_0_is_warned() {
    let src = with("port = 80\n", "port = 80\nquorum = 0\n");
    warning_at(
        &src,
        "quorum 0: the VIP is announced even with no healthy real server",
        "quorum",
    );
}

/// An unknown scheduler far from every known one lists them all.
#[test]
fn unknown_scheduler_lists_the_known_ones() {
    let d = error_at(
        &with("port = 80\n", "port = 80\nscheduler = \"zzzz\"\n"),
        "unknown IPVS scheduler \"zzzz\"",
        "scheduler",
    );
    let hint = d.hint.expect("hint");
    assert!(hint.starts_with("one of mh, rr, wrr"), "{hint}");
}

/// A real server's port is not 0.
#[test]
fn real_server_port_is_not_0() {
    let src = with("weight = 1", "weight = 1\nport = 0");
    let d = error_at(&src, "port 0 is not a real server port", "port = 0");
    assert_eq!(d.path.to_string(), "service[0].real_server[0].port");
}

/// An inline check's optional name is a valid name.
#[test]
fn inline_check_name_is_valid() {
    let src = with(
        "weight = 2",
        "weight = 2\n[[service.real_server.check]]\nname = \"a b\"\nkind = \"tcp\"",
    );
    let d = error_at(&src, "invalid check name \"a b\"", "name = \"a b\"");
    assert_eq!(
        d.path.to_string(),
        "service[0].real_server[1].check[0].name"
    );
    load_str(
        &with(
            "weight = 2",
            "weight = 2\n[[service.real_server.check]]\nname = \"local-tcp\"\nkind = \"tcp\"",
        ),
        "t.toml",
    )
    .expect("valid inline name");
}

// ---- value types (types.rs) and serde ----

/// A duration longer than a day is refused.
#[test]
fn duration_longer_than_a_day() {
    let d = error_at(
        &check_with("interval = \"25h\""),
        "duration \"25h\" is longer than a day",
        "\"25h\"",
    );
    assert_eq!(d.hint.as_deref(), Some("write at most \"24h\""));
    load_str(
        &check_with("interval = \"24h\"\ntimeout = \"1s\""),
        "t.toml",
    )
    .expect("a day");
}

/// A percentage is an integer from 0% to 100%, written as a string.
#[test]
fn percentage_syntax_and_range() {
    for bad in ["abc%", "101%"] {
        error_at(
            &check_with(&format!("jitter = \"{bad}\"")),
            &format!("invalid percentage \"{bad}\""),
            "jitter",
        );
    }
    error_at(
        &check_with("jitter = 10"),
        "expected a percentage string such as \"10%\"",
        "jitter",
    );
}

/// Standard communities are `ASN:VALUE` with both parts 0..=65535, or a well-known name.
#[test]
fn community_syntax() {
    let announce = |body: &str| {
        with(
            "checks = [\"http\"]\n",
            &format!("checks = [\"http\"]\n[service.announce]\n{body}\n"),
        )
    };
    error_at(
        &announce("communities = [\"65536:1\"]"),
        "invalid community \"65536:1\"",
        "communities",
    );
    error_at(
        &announce("communities = [1]"),
        "expected a community such as \"65000:100\"",
        "communities",
    );
    error_at(
        &announce("large_communities = [\"1:2\"]"),
        "invalid large community \"1:2\"",
        "large_communities",
    );
    load_str(
        &announce("communities = [\"65000:100\", \"no-export\"]\nlarge_communities = [\"4200000001:1:2\"]"),
        "t.toml",
    )
    .expect("valid communities");
}

/// A missing required key is named at its table's header, with a hint to add it.
#[test]
fn missing_required_key() {
    let src = with("remote_as = 65000\n", "");
    assert_eq!(refused(&src).error_count(), 1);
    let d = error_at(&src, "missing field `remote_as`", "[[bgp.neighbor]]");
    assert_eq!(d.hint.as_deref(), Some("add this key to the table"));
}

// ---- tunnel_checksum ----

/// `tunnel_checksum` works with GUE and GRE, and is refused where it cannot apply.
#[test]
fn tunnel_checksum_applies_to_gue_and_gre_only() {
    let svc = "port = 80\nchecks = [\"http\"]";
    let ok = with(
        svc,
        &format!("{svc}\ntunnel_type = \"gue\"\ntunnel_port = 6080\ntunnel_checksum = \"remcsum\""),
    );
    let l = load_str(&ok, "t.toml").expect("GUE with remcsum");
    assert_eq!(
        l.config.services[0].tunnel_checksum,
        Some(crate::TunnelChecksum::Remcsum)
    );
    let ipip = with(svc, &format!("{svc}\ntunnel_checksum = \"csum\""));
    let d = error_at(
        &ipip,
        "IPIP encapsulation has no checksum",
        "tunnel_checksum",
    );
    assert_eq!(d.path.to_string(), "service[0].tunnel_checksum");
    let gre = with(
        svc,
        &format!("{svc}\ntunnel_type = \"gre\"\ntunnel_checksum = \"remcsum\""),
    );
    error_at(&gre, "remcsum) is GUE's only", "tunnel_checksum");
    let gre_csum = with(
        svc,
        &format!("{svc}\ntunnel_type = \"gre\"\ntunnel_checksum = \"csum\""),
    );
    let d = error_at(&gre_csum, "drops IPVS's checksummed GRE", "tunnel_checksum");
    assert!(d.hint.unwrap().contains("tunnel_type = \"gue\""));
    let gre_none = with(
        svc,
        &format!("{svc}\ntunnel_type = \"gre\"\ntunnel_checksum = \"none\""),
    );
    load_str(&gre_none, "t.toml").expect("GRE without checksum");
    let dr = with(
        svc,
        &format!("{svc}\nforwarding = \"dr\"\ntunnel_checksum = \"none\""),
    );
    error_at(
        &dr,
        "tunnel_checksum needs forwarding = \"tunnel\"",
        "tunnel_checksum",
    );
}

// ---- via = "tunnel" ----

/// Tunnel-path checks: marks handed out in order, one per real server that has one; the
/// rules where they cannot work.
#[test]
fn tunnel_path_checks_and_their_marks() {
    let ok = check_with("via = \"tunnel\"");
    let l = load_str(&ok, "t.toml").expect("http via tunnel");
    let probes = l.config.tunnel_probes();
    let servers: Vec<String> = probes.iter().map(|p| p.server.to_string()).collect();
    assert_eq!(servers, ["192.0.2.10:80", "192.0.2.11:80"]);
    assert!(probes.iter().all(|p| crate::PROBE_MARKS.contains(&p.mark)));
    assert_ne!(probes[0].mark, probes[1].mark);
    let dr = with(
        "port = 80\nchecks = [\"http\"]",
        "port = 80\nchecks = [\"http\"]\nforwarding = \"dr\"",
    )
    .replacen(P, &format!("{P}\nvia = \"tunnel\""), 1);
    let d = error_at(&dr, "needs forwarding = \"tunnel\"", "forwarding = \"dr\"");
    assert_eq!(d.path.to_string(), "service[0].forwarding");
    let agent = with(
        "kind = \"http\"\npath = \"/healthcheck\"",
        "kind = \"agent\"\nport = 5555\nvia = \"tunnel\"",
    );
    error_at(&agent, "`via` does not apply to a agent check", "via");
    let reserved = with(
        "port = 80\nchecks = [\"http\"]",
        "fwmark = 0x76690005\nchecks = [\"http\"]",
    );
    error_at(
        &reserved,
        "is in the range vipd's tunnel-path checks use",
        "fwmark",
    );
}

//! One test per validation rule. Each asserts the message, that the finding points at the
//! offending line (and column where the value is written) and that a hint is given.

use crate::{ConfigError, Diagnostic, Severity, load_str};

pub(super) const BASE: &str = r#"
[global]
router_id = "192.0.2.1"

[bgp]
local_as = 65000

[[bgp.neighbor]]
address = "192.0.2.254"
remote_as = 65000

[[check]]
name = "http"
kind = "http"
path = "/healthcheck"

[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
checks = ["http"]

[[service.real_server]]
address = "192.0.2.10"
weight = 1

[[service.real_server]]
address = "192.0.2.11"
weight = 2
"#;

pub(super) fn refused(src: &str) -> ConfigError {
    match load_str(src, "t.toml") {
        Ok(l) => panic!("config accepted, warnings: {:?}\n{src}", l.warnings),
        Err(e) => e,
    }
}

/// Asserts an error containing `needle` located at the line of the last `at` in `src`.
pub(super) fn error_at(src: &str, needle: &str, at: &str) -> Diagnostic {
    let e = refused(src);
    finding_at(&e.diagnostics, Severity::Error, src, needle, at)
}

/// The finding of `severity` containing `needle` among `found`: it has a hint and points at
/// the line of the last `at` in `src`.
pub(super) fn finding_at(
    found: &[Diagnostic],
    severity: Severity,
    src: &str,
    needle: &str,
    at: &str,
) -> Diagnostic {
    let d = found
        .iter()
        .find(|d| d.message.contains(needle))
        .unwrap_or_else(|| panic!("no diagnostic containing {needle:?} in {found:?}"))
        .clone();
    assert_eq!(d.severity, severity, "{d:?}");
    assert!(
        d.hint.as_deref().is_some_and(|h| !h.is_empty()),
        "no hint: {d:?}"
    );
    let off = src
        .rfind(at)
        .unwrap_or_else(|| panic!("{at:?} not in source"));
    let (line, _) = crate::diag::line_col(src, off);
    let loc = d.location.clone().expect("located");
    assert_eq!(loc.line, line, "wrong line for {needle:?}: {d:?}");
    d
}

pub(super) fn with(find: &str, replace: &str) -> String {
    assert!(BASE.contains(find), "{find:?} not in BASE");
    BASE.replacen(find, replace, 1)
}

pub(super) fn warnings(src: &str) -> Vec<Diagnostic> {
    match load_str(src, "t.toml") {
        Ok(l) => l.warnings,
        Err(e) => panic!("refused:\n{e}"),
    }
}

#[test]
fn base_is_valid_and_defaults_apply() {
    let l = load_str(BASE, "t.toml").expect("valid");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let s = &l.config.services[0];
    assert_eq!(s.scheduler, crate::Scheduler::Mh);
    assert!(s.mh_port() && s.mh_fallback() && s.alpha);
    assert_eq!(s.forwarding, crate::Forwarding::Tunnel);
    assert_eq!(s.quorum, 1);
    assert_eq!(
        l.config.global.drain_file,
        std::path::PathBuf::from("/etc/lb/disable")
    );
    assert_eq!(
        l.config.global.control_socket,
        std::path::PathBuf::from("/run/vipd/vipd.sock")
    );
    assert_eq!(l.config.global.sysctl.sloppy_tcp, 1);
    assert_eq!(l.config.global.sysctl.expire_nodest_conn, 0);
    let b = l.config.bgp.as_ref().expect("bgp");
    assert_eq!((b.hold_time, b.effective_keepalive()), (90, 30));
    assert!(b.graceful_restart.enabled);
}

#[test]
fn unknown_key_with_did_you_mean() {
    let src = with("local_as = 65000", "local_as = 65000\nhold_tme = 9");
    let d = error_at(&src, "unknown field `hold_tme`", "hold_tme");
    assert_eq!(d.hint.as_deref(), Some("did you mean `hold_time`?"));
    assert_eq!(d.location.expect("loc").col, 1);
}

#[test]
fn all_structural_errors_are_reported() {
    let src = with("local_as = 65000", "local_as = 65000\nhold_tme = 9")
        .replacen("weight = 2", "weight = 2\nwieght = 3", 1)
        .replacen("port = 80", "port = \"eighty\"", 1);
    let e = refused(&src);
    assert_eq!(e.error_count(), 3, "{e}");
    error_at(&src, "hold_tme", "hold_tme");
    error_at(&src, "wieght", "wieght");
    error_at(&src, "invalid type", "\"eighty\"");
}

#[test]
fn wrong_type_points_at_the_value() {
    let src = with("weight = 1", "weight = \"heavy\"");
    let d = error_at(&src, "invalid type", "\"heavy\"");
    assert_eq!(d.location.expect("loc").col, 10);
}

#[test]
fn bad_duration_and_percent() {
    error_at(
        &with(
            "path = \"/healthcheck\"",
            "path = \"/healthcheck\"\ninterval = 5",
        ),
        "invalid type",
        "interval = 5",
    );
    error_at(
        &with(
            "path = \"/healthcheck\"",
            "path = \"/healthcheck\"\ninterval = \"5 parsecs\"",
        ),
        "invalid duration",
        "interval",
    );
    error_at(
        &with(
            "path = \"/healthcheck\"",
            "path = \"/healthcheck\"\njitter = \"10\"",
        ),
        "invalid percentage",
        "jitter",
    );
}

#[test]
fn unknown_enum_variant_lists_choices() {
    let d = error_at(
        &with("port = 80", "port = 80\nforwarding = \"tun\""),
        "unknown variant",
        "\"tun\"",
    );
    assert!(d.hint.expect("hint").contains("tunnel"));
}

#[test]
fn syntax_error_is_located() {
    let src = with("port = 80", "port = = 80");
    let e = refused(&src);
    let d = &e.diagnostics[0];
    assert_eq!(
        d.location.as_ref().expect("loc").line,
        crate::diag::line_col(&src, src.find("port = =").expect("x")).0
    );
}

#[test]
fn duplicate_vip_port_proto() {
    let src = format!(
        "{BASE}\n[[service]]\nname = \"web2\"\nvip = \"198.51.100.1\"\nport = 80\nchecks = [\"http\"]\n[[service.real_server]]\naddress = \"192.0.2.12\"\n"
    );
    let d = error_at(
        &src,
        "is already the VIP of service \"web\"",
        "vip = \"198.51.100.1\"",
    );
    assert!(d.path.to_string().ends_with("service[1].vip"), "{}", d.path);
    // Another protocol on the same VIP and port is a different IPVS service.
    let ok = src.replace("port = 80\nchecks = [\"http\"]\n[[service.real_server]]\naddress = \"192.0.2.12\"", "port = 80\nprotocol = \"udp\"\nchecks = [\"http\"]\n[[service.real_server]]\naddress = \"192.0.2.12\"");
    load_str(&ok, "t.toml").expect("udp on the same VIP:port is fine");
}

#[test]
fn duplicate_service_name() {
    let src = format!(
        "{BASE}\n[[service]]\nname = \"web\"\nvip = \"198.51.100.2\"\nport = 80\nchecks = [\"http\"]\n[[service.real_server]]\naddress = \"192.0.2.12\"\n"
    );
    error_at(&src, "used twice", "name = \"web\"\nvip = \"198.51.100.2\"");
}

#[test]
fn mixed_family_needs_tunnel() {
    let v6 = with("address = \"192.0.2.10\"", "address = \"2001:db8::10\"");
    load_str(&v6, "t.toml").expect("IPv6 real server behind an IPv4 VIP in tunnel mode is fine");
    for fwd in ["dr", "nat"] {
        let src = v6.replacen(
            "port = 80\n",
            &format!("port = 80\nforwarding = \"{fwd}\"\n"),
            1,
        );
        let d = error_at(&src, "different families", "address = \"2001:db8::10\"");
        assert!(d.hint.expect("hint").contains("tunnel"));
    }
}

#[test]
fn quorum_above_total_weight() {
    let d = error_at(
        &with("port = 80\n", "port = 80\nquorum = 4\n"),
        "quorum 4 is above the total weight 3",
        "quorum = 4",
    );
    assert_eq!(d.location.expect("loc").col, 10);
    load_str(&with("port = 80\n", "port = 80\nquorum = 3\n"), "t.toml")
        .expect("quorum = total is fine");
}

#[test]
fn hysteresis_rules() {
    error_at(
        &with("port = 80\n", "port = 80\nquorum = 2\nhysteresis = 2\n"),
        "must be below quorum",
        "hysteresis",
    );
    error_at(
        &with("port = 80\n", "port = 80\nquorum = 2\nhysteresis = 1\n")
            .replace("weight = 2", "weight = 1"),
        "+ hysteresis 1 is above",
        "hysteresis",
    );
}

#[test]
fn unknown_check_name() {
    let d = error_at(
        &with("checks = [\"http\"]", "checks = [\"htp\"]"),
        "unknown check \"htp\"",
        "checks = [\"htp\"]",
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean \"http\"?"));
    error_at(
        &with(
            "address = \"192.0.2.11\"",
            "address = \"192.0.2.11\"\nchecks = [\"nope\"]",
        ),
        "unknown check \"nope\"",
        "checks = [\"nope\"]",
    );
}

#[test]
fn hold_time_one_or_two() {
    for h in [1, 2] {
        let src = with(
            "local_as = 65000",
            &format!("local_as = 65000\nhold_time = {h}"),
        );
        let d = error_at(&src, &format!("hold_time {h} is not allowed"), "hold_time");
        assert!(d.hint.expect("hint").contains("RFC 4271"));
    }
    for h in [0, 3, 6] {
        load_str(
            &with(
                "local_as = 65000",
                &format!("local_as = 65000\nhold_time = {h}"),
            ),
            "t.toml",
        )
        .expect("valid hold time");
    }
}

#[test]
fn keepalive_rules() {
    error_at(
        &with(
            "local_as = 65000",
            "local_as = 65000\nhold_time = 6\nkeepalive = 6",
        ),
        "keepalive 6 must be",
        "keepalive",
    );
    error_at(
        &with(
            "local_as = 65000",
            "local_as = 65000\nhold_time = 0\nkeepalive = 2",
        ),
        "hold_time is 0",
        "keepalive",
    );
}

#[test]
fn weight_out_of_range() {
    let d = error_at(
        &with("weight = 1", "weight = 70000"),
        "weight 70000 is out of range",
        "weight = 70000",
    );
    assert!(d.hint.expect("hint").contains("65535"));
    load_str(&with("weight = 1", "weight = 0"), "t.toml").expect("weight 0 is allowed");
}

#[test]
fn neighbor_family_needs_next_hop() {
    let src = with(
        "remote_as = 65000",
        "remote_as = 65000\nfamilies = [\"ipv4\", \"ipv6\"]",
    );
    let d = error_at(
        &src,
        "IPv6 routes on an IPv4 session need an IPv6 next hop",
        "families",
    );
    assert!(d.hint.expect("hint").contains("ipv6_next_hop"));
    load_str(
        &src.replace(
            "families = [",
            "ipv6_next_hop = \"2001:db8::1\"\nfamilies = [",
        ),
        "t.toml",
    )
    .expect("with next hop");
    let v6 = with(
        "address = \"192.0.2.254\"",
        "address = \"2001:db8::254\"\nfamilies = [\"ipv6\", \"ipv4\"]",
    );
    error_at(
        &v6,
        "IPv4 routes on an IPv6 session need an IPv4 next hop",
        "families",
    );
}

#[test]
fn empty_service_list_for_director() {
    let src = "[global]\nrole = \"director\"\n";
    let d = error_at(src, "a director needs at least one [[service]]", "[global]");
    assert!(d.hint.expect("hint").contains("backend"));
}

#[test]
fn backend_role_needs_backend_table_and_no_services() {
    error_at(
        &with("router_id", "role = \"backend\"\nrouter_id"),
        "a backend does not program IPVS services",
        "[[service]]",
    );
    error_at(
        &with("router_id", "role = \"backend\"\nrouter_id"),
        "needs a [backend] table",
        "role = \"backend\"",
    );
    error_at(
        &format!("{BASE}\n[backend]\nloopback_vips = [\"198.51.100.1\"]\n"),
        "[backend] is only used with role",
        "[backend]",
    );
}

#[test]
fn bgp_identity_rules() {
    error_at(
        &with("local_as = 65000", "local_as = 23456"),
        "AS 23456 is reserved",
        "local_as",
    );
    error_at(
        &with("remote_as = 65000", "remote_as = 0"),
        "AS 0 is reserved",
        "remote_as",
    );
    let no_rid = with("router_id = \"192.0.2.1\"\n", "");
    error_at(&no_rid, "no BGP router ID", "[bgp]");
    error_at(
        &with("router_id = \"192.0.2.1\"", "router_id = \"0.0.0.0\""),
        "not a usable identifier",
        "router_id",
    );
}

#[test]
fn neighbor_rules() {
    error_at(
        &format!("{BASE}\n[[bgp.neighbor]]\naddress = \"192.0.2.254\"\nremote_as = 65001\n"),
        "configured twice",
        "address = \"192.0.2.254\"\nremote_as = 65001",
    );
    error_at(
        &with(
            "remote_as = 65000",
            "remote_as = 65000\nlocal_address = \"2001:db8::1\"",
        ),
        "different families",
        "local_address",
    );
    error_at(
        &with(
            "remote_as = 65000",
            &format!("remote_as = 65000\npassword = \"{}\"", "x".repeat(81)),
        ),
        "password must be",
        "password",
    );
    error_at(
        &with(
            "remote_as = 65000",
            "remote_as = 65000\nttl_security = true\nmultihop = 2",
        ),
        "cannot both be set",
        "ttl_security",
    );
    error_at(
        &with("remote_as = 65000", "remote_as = 65000\nmultihop = 0"),
        "multihop must be at least 1",
        "multihop",
    );
    error_at(
        &with("remote_as = 65000", "remote_as = 65000\nfamilies = []"),
        "families is empty",
        "families",
    );
    error_at(
        &with(
            "remote_as = 65000",
            "remote_as = 65000\nfamilies = [\"ipv4\", \"ipv4\"]",
        ),
        "family listed twice",
        "families",
    );
    error_at(
        &with("address = \"192.0.2.254\"", "address = \"0.0.0.0\""),
        "not a unicast address",
        "address = \"0.0.0.0\"",
    );
    error_at(
        &with(
            "local_as = 65000",
            "local_as = 65000\n[bgp.graceful_restart]\nrestart_time = 5000",
        ),
        "12-bit",
        "restart_time",
    );
}

#[test]
fn check_kind_keys() {
    let d = error_at(
        &with(
            "path = \"/healthcheck\"",
            "path = \"/healthcheck\"\nsni = \"x\"",
        ),
        "`sni` does not apply to a http check",
        "sni",
    );
    assert!(d.hint.expect("hint").contains("https"));
    error_at(
        &with(
            "kind = \"http\"\npath = \"/healthcheck\"",
            "kind = \"tcp\"\npath = \"/healthcheck\"",
        ),
        "`path` does not apply to a tcp check",
        "path",
    );
    error_at(
        &with(
            "kind = \"http\"\npath = \"/healthcheck\"",
            "kind = \"agent\"",
        ),
        "an agent check needs a port",
        "kind = \"agent\"",
    );
    error_at(
        &with(
            "kind = \"http\"\npath = \"/healthcheck\"",
            "kind = \"exec\"",
        ),
        "needs a command",
        "kind = \"exec\"",
    );
    error_at(
        &with(
            "kind = \"http\"\npath = \"/healthcheck\"",
            "kind = \"exec\"\ncommand = \"check.sh\"",
        ),
        "not an absolute path",
        "command",
    );
    error_at(
        &with(
            "kind = \"http\"\npath = \"/healthcheck\"",
            "kind = \"file\"",
        ),
        "needs a file",
        "kind = \"file\"",
    );
    error_at(
        &with(
            "kind = \"http\"\npath = \"/healthcheck\"",
            "kind = \"file\"\nfile = \"agent-check\"",
        ),
        "not an absolute path",
        "file = ",
    );
}

#[test]
fn check_timing_rules() {
    let p = "path = \"/healthcheck\"";
    error_at(
        &with(p, &format!("{p}\ninterval = \"1s\"\ntimeout = \"2s\"")),
        "longer than interval",
        "timeout",
    );
    error_at(
        &with(p, &format!("{p}\nconnect_timeout = \"5s\"")),
        "connect_timeout 5s must be",
        "connect_timeout",
    );
    error_at(
        &with(p, &format!("{p}\nfast_interval = \"10s\"")),
        "fast_interval 10s must be",
        "fast_interval",
    );
    error_at(
        &with(p, &format!("{p}\njitter = \"80%\"")),
        "above 50%",
        "jitter",
    );
    error_at(
        &with(p, &format!("{p}\njitter = \"10\"")),
        "invalid percentage",
        "jitter",
    );
    error_at(
        &with(p, &format!("{p}\nrise = 0")),
        "rise must be at least 1",
        "rise",
    );
    error_at(
        &with(p, &format!("{p}\nfall = 0")),
        "fall must be at least 1",
        "fall",
    );
    error_at(
        &with(p, &format!("{p}\ninterval = \"1ms\"")),
        "too short",
        "interval",
    );
    error_at(
        &with(
            p,
            &format!("{p}\ndamping = {{ window = \"60s\", max_flaps = 0, penalty = \"1m\" }}"),
        ),
        "max_flaps",
        "damping",
    );
}

#[test]
fn check_http_rules() {
    let p = "path = \"/healthcheck\"";
    error_at(
        &with(p, "path = \"healthcheck\""),
        "invalid request path",
        "path = ",
    );
    error_at(
        &with(p, &format!("{p}\nexpect_status = [200, 700]")),
        "700 is not an HTTP status",
        "expect_status",
    );
    error_at(
        &with(p, &format!("{p}\nbody_regex = \"(\"")),
        "invalid regex",
        "body_regex",
    );
    error_at(
        &with(p, &format!("{p}\nmethod = \"HEAD\"\nbody_regex = \"ok\"")),
        "HEAD response has no body",
        "body_regex",
    );
    error_at(
        &with(p, &format!("{p}\nheaders = {{ \"X Bad\" = \"1\" }}")),
        "invalid header",
        "headers",
    );
    error_at(
        &with(
            p,
            &format!("{p}\nheaders = {{ connection = \"keep-alive\" }}"),
        ),
        "set by the probe itself",
        "headers",
    );
    error_at(
        &with(
            p,
            &format!("{p}\nhost = \"a.example\"\nheaders = {{ Host = \"b.example\" }}"),
        ),
        "Host header is given twice",
        "headers",
    );
}

#[test]
fn check_names_rules() {
    error_at(
        &format!("{BASE}\n[[check]]\nname = \"http\"\nkind = \"tcp\"\n"),
        "defined twice",
        "name = \"http\"\nkind = \"tcp\"",
    );
    error_at(
        &format!("{BASE}\n[[check]]\nkind = \"tcp\"\n"),
        "needs a name",
        "[[check]]\nkind = \"tcp\"",
    );
    error_at(
        &with("name = \"http\"", "name = \"ht tp\""),
        "invalid check name",
        "name = \"ht tp\"",
    );
}

#[test]
fn inline_checks_are_validated() {
    let src = with(
        "weight = 2",
        "weight = 2\n[[service.real_server.check]]\nkind = \"tcp\"\nrise = 0",
    );
    error_at(&src, "rise must be at least 1", "rise = 0");
    load_str(
        &with(
            "weight = 2",
            "weight = 2\n[[service.real_server.check]]\nkind = \"tcp\"",
        ),
        "t.toml",
    )
    .expect("inline tcp check");
}

#[test]
fn service_rules() {
    error_at(
        &with("port = 80", "port = 0"),
        "port 0 is not a service port",
        "port = 0",
    );
    error_at(
        &with("vip = \"198.51.100.1\"", "vip = \"0.0.0.0\""),
        "cannot be a VIP",
        "vip = ",
    );
    let d = error_at(
        &with("port = 80\n", "port = 80\nscheduler = \"mhh\"\n"),
        "unknown IPVS scheduler",
        "scheduler",
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean \"mh\"?"));
    error_at(
        &with(
            "port = 80\n",
            "port = 80\nscheduler = \"rr\"\nmh_fallback = true\n",
        ),
        "mh_fallback needs",
        "mh_fallback",
    );
    error_at(
        &with("port = 80\n", "port = 80\ntunnel_type = \"gue\"\n"),
        "needs a tunnel_port",
        "tunnel_type",
    );
    error_at(
        &with("port = 80\n", "port = 80\ntunnel_port = 5555\n"),
        "only applies to tunnel_type = \"gue\"",
        "tunnel_port",
    );
    error_at(
        &with(
            "port = 80\n",
            "port = 80\nforwarding = \"dr\"\ntunnel_type = \"gre\"\n",
        ),
        "tunnel_type needs forwarding",
        "tunnel_type",
    );
    error_at(
        &with(
            "weight = 2",
            "weight = 2\n[service.persistence]\ntimeout = \"5m\"\nnetmask = 33\n",
        ),
        "does not fit the VIP's family",
        "netmask",
    );
    error_at(
        &with("name = \"web\"", "name = \"w e b\""),
        "invalid service name",
        "name = \"w e b\"",
    );
}

#[test]
fn real_server_rules() {
    error_at(
        &format!("{BASE}[[service.real_server]]\naddress = \"192.0.2.11\"\n"),
        "listed twice",
        "address = \"192.0.2.11\"",
    );
    error_at(
        &with("weight = 1", "weight = 1\nport = 8080"),
        "differs from the service port",
        "port = 8080",
    );
    let nat = with("port = 80\n", "port = 80\nforwarding = \"nat\"\n").replacen(
        "weight = 1",
        "weight = 1\nport = 8080",
        1,
    );
    load_str(&nat, "t.toml").expect("nat may change the port");
    error_at(
        &with("address = \"192.0.2.10\"", "address = \"224.0.0.1\""),
        "cannot be a real server",
        "224.0.0.1",
    );
}

#[test]
fn global_rules() {
    error_at(
        &with(
            "router_id = \"192.0.2.1\"",
            "router_id = \"192.0.2.1\"\ndrain_file = \"disable\"",
        ),
        "not an absolute path",
        "drain_file",
    );
    error_at(
        &with(
            "router_id = \"192.0.2.1\"",
            "router_id = \"192.0.2.1\"\nresync_interval = \"100ms\"",
        ),
        "at least 1s",
        "resync_interval",
    );
    error_at(
        &with(
            "router_id = \"192.0.2.1\"\n",
            "router_id = \"192.0.2.1\"\n[global.sysctl]\nsloppy_tcp = 2\n",
        ),
        "sloppy_tcp = 2 is out of range",
        "sloppy_tcp",
    );
}

#[test]
fn ipvs_timeouts_are_whole_seconds() {
    let base = "router_id = \"192.0.2.1\"\n";
    let ok = with(
        base,
        &format!("{base}[global.ipvs_timeouts]\ntcp = \"15m\"\ntcp_fin = \"2m\"\nudp = \"5m\"\n"),
    );
    let t = load_str(&ok, "t.toml")
        .expect("valid")
        .config
        .global
        .ipvs_timeouts
        .expect("set");
    assert_eq!(t.tcp.get().as_secs(), 900);
    error_at(
        &ok.replace("\"2m\"", "\"1500ms\""),
        "tcp_fin timeout",
        "tcp_fin",
    );
}

#[test]
fn backend_rules() {
    let base = "[global]\nrole = \"backend\"\n[backend]\nallowed_directors = [\"192.0.2.1\"]\n";
    let ok = format!(
        "{base}[[backend.tunnel]]\nname = \"tunlv6\"\nmode = \"ip6ip6\"\nlocal = \"2001:db8::2\"\nvips = [\"2001:db8::1\"]\n"
    );
    load_str(&ok, "t.toml").expect("valid backend");
    error_at(
        &ok.replace("tunlv6", "a-very-long-tunnel-name"),
        "invalid device name",
        "name = ",
    );
    load_str(&ok.replace("\"2001:db8::1\"", "\"198.51.100.1\""), "t.toml")
        .expect("an IPv4 VIP on a named ip6ip6 device (mode any)");
    error_at(
        &ok.replace("2001:db8::2", "192.0.2.9"),
        "does not fit mode",
        "local",
    );
    error_at(
        &format!(
            "{ok}[[backend.tunnel]]\nname = \"tunlv6\"\nmode = \"ip6ip6\"\nlocal = \"2001:db8::3\"\nvips = []\n"
        ),
        "defined twice",
        "name = \"tunlv6\"",
    );
    error_at(
        &ok.replace(
            "[[backend.tunnel]]",
            "loopback_vips = [\"2001:db8::1\"]\n[[backend.tunnel]]",
        ),
        "already on tunlv6",
        "loopback_vips",
    );
    error_at(base, "receives no VIP", "[backend]");
    let no_local = ok.replace("local = \"2001:db8::2\"\n", "");
    let d = error_at(&no_local, "has no local address", "name = \"tunlv6\"");
    assert!(d.hint.expect("hint").contains("ip6tnl0"));
    load_str(&no_local.replace("tunlv6", "ip6tnl0"), "t.toml")
        .expect("the catch-all device needs no local");
    error_at(
        &format!("{ok}[backend.agent]\nstate_file = \"agent\"\n"),
        "not an absolute path",
        "state_file",
    );
    error_at(
        &format!("{ok}[backend.agent]\nchecks = [\"local\"]\n"),
        "unknown check",
        "checks",
    );
}

#[test]
fn warnings_do_not_refuse() {
    let w = warnings(&with("checks = [\"http\"]\n", ""));
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[0].message.contains("check \"http\" is used nowhere"),
        "{w:?}"
    );
    assert!(
        w[1..]
            .iter()
            .all(|d| d.message.contains("has no health check"))
    );
    let w = warnings(&with("port = 80\n", "port = 80\nscheduler = \"wrr\"\n"));
    assert!(
        w.iter()
            .any(|d| d.message.contains("keeps per-director state")),
        "{w:?}"
    );
    let w = warnings(&with("port = 80\n", "port = 80\nmh_fallback = false\n"));
    assert!(
        w.iter().any(|d| d
            .message
            .contains("mh without mh_fallback drops new connections")),
        "{w:?}"
    );
    let no_tunnel_filter = "[global]\nrole = \"backend\"\n[backend]\n[[backend.tunnel]]\nname = \"tunl0\"\nmode = \"ipip\"\nvips = [\"198.51.100.1\"]\n";
    assert!(
        warnings(no_tunnel_filter)
            .iter()
            .any(|d| d.message.contains("from any source"))
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let src = with("local_as = 65000", "local_as = 65000\nhold_time = 2")
        .replacen("weight = 1", "weight = 70000", 1)
        .replacen("checks = [\"http\"]", "checks = [\"nope\"]", 1);
    let e = refused(&src);
    assert_eq!(e.error_count(), 3, "{e}");
    let text = e.to_string();
    assert!(
        text.ends_with("t.toml: 3 errors found, configuration refused"),
        "{text}"
    );
    let lines: Vec<usize> = e
        .diagnostics
        .iter()
        .map(|d| d.location.as_ref().expect("loc").line)
        .collect();
    assert!(
        lines.windows(2).all(|w| w[0] <= w[1]),
        "file order: {lines:?}"
    );
}

#[test]
fn missing_file_is_an_error() {
    let e = crate::load_file(std::path::Path::new("/nonexistent/vipd.toml")).unwrap_err();
    assert!(
        e.to_string().contains("cannot read the configuration"),
        "{e}"
    );
}

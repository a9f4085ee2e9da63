//! keepalived features in the real kernel (UML guest), `ipvsadm -Ln` as the witness: the
//! sorry server (in IPVS while no real server has weight, out as soon as one returns) and
//! `dynamic_weight` (misc_dynamic: an exec check's exit code sets the weight).

use std::os::unix::fs::PermissionsExt as _;

use std::time::Duration;

mod common;

use common::{Vipd, route_to_real_servers, scratch, until_dests};
use vipd_testkit::{Feature, Netns, require};

const CONFIG: &str = r#"
[global]
router_id = "10.8.0.1"
state_dir = "DIR/state"
drain_file = "DIR/disable"
control_socket = "DIR/vipd.sock"
listen = "off"

[[check]]
name = "rs1"
kind = "file"
file = "DIR/rs1"
interval = "200ms"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0%"
[[check]]
name = "rs2"
kind = "file"
file = "DIR/rs2"
interval = "200ms"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0%"

[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
on_failure = "remove"
sorry_server = { address = "10.9.0.99" }
[service.announce]
enabled = false
[[service.real_server]]
address = "10.9.0.10"
checks = ["rs1"]
[[service.real_server]]
address = "10.9.0.11"
checks = ["rs2"]
"#;

#[test]
fn the_sorry_server_stands_in_while_no_real_server_is_up() {
    if !require(
        "the_sorry_server_stands_in_while_no_real_server_is_up",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let dir = scratch("sorry");
    let ns = Netns::new("ksorry");
    route_to_real_servers(&ns);
    std::fs::write(dir.join("rs1"), "UP\n").expect("rs1");
    std::fs::write(dir.join("rs2"), "UP\n").expect("rs2");
    let cfg = dir.join("vipd.toml");
    std::fs::write(&cfg, CONFIG.replace("DIR", &dir.display().to_string())).expect("cfg");
    let vipd = Vipd::spawn(&ns, &cfg, &dir, 1, false);
    let until = |what: &str, want: &[&str]| until_dests(&ns, &vipd, what, want);
    until("both up", &["10.9.0.10:80 1", "10.9.0.11:80 1"]);
    std::fs::write(dir.join("rs1"), "DOWN\n").expect("down");
    until("one down", &["10.9.0.11:80 1"]);
    std::fs::write(dir.join("rs2"), "DOWN\n").expect("down");
    until("all down: the sorry server", &["10.9.0.99:80 1"]);
    std::fs::write(dir.join("rs1"), "UP\n").expect("up");
    until("one back: the sorry server out", &["10.9.0.10:80 1"]);
    vipd.stop(&cfg);
    let _ = std::fs::remove_dir_all(&dir);
}

const DYNAMIC: &str = r#"
[global]
router_id = "10.8.0.1"
state_dir = "DIR/state"
drain_file = "DIR/disable"
control_socket = "DIR/vipd.sock"
listen = "off"

[[check]]
name = "dyn"
kind = "exec"
command = "DIR/check"
dynamic_weight = true
interval = "200ms"
timeout = "150ms"
rise = 1
fall = 1
jitter = "0%"

[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
checks = ["dyn"]
[service.announce]
enabled = false
[[service.real_server]]
address = "10.9.0.10"
weight = 3
"#;

#[test]
fn an_exec_checks_exit_code_sets_the_kernel_weight() {
    if !require(
        "an_exec_checks_exit_code_sets_the_kernel_weight",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let dir = scratch("dyn");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let code = dir.join("code");
    let check = dir.join("check");
    std::fs::write(
        &check,
        format!("#!/bin/sh\nexit $(cat {})\n", code.display()),
    )
    .expect("check");
    std::fs::set_permissions(&check, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(&code, "0").expect("code");
    let ns = Netns::new("kdyn");
    route_to_real_servers(&ns);
    let cfg = dir.join("vipd.toml");
    std::fs::write(&cfg, DYNAMIC.replace("DIR", &dir.display().to_string())).expect("cfg");
    let vipd = Vipd::spawn(&ns, &cfg, &dir, 1, false);
    let until = |what: &str, want: &[&str]| until_dests(&ns, &vipd, what, want);
    until("exit 0: the configured weight", &["10.9.0.10:80 3"]);
    std::fs::write(&code, "7").expect("code");
    until("exit 7: weight 5", &["10.9.0.10:80 5"]);
    std::fs::write(&code, "0").expect("code");
    std::thread::sleep(Duration::from_millis(800));
    until("exit 0 again: the weight stays", &["10.9.0.10:80 5"]);
    std::fs::write(&code, "12").expect("code");
    until("exit 12: weight 10", &["10.9.0.10:80 10"]);
    std::fs::write(&code, "1").expect("code");
    until("exit 1: down (inhibit: weight 0)", &["10.9.0.10:80 0"]);
    vipd.stop(&cfg);
    let _ = std::fs::remove_dir_all(&dir);
}

const DNS_SERVICE: &str = r#"
[global]
router_id = "10.8.0.1"
state_dir = "DIR/state"
drain_file = "DIR/disable"
control_socket = "DIR/vipd.sock"
listen = "off"

[[check]]
name = "dns"
kind = "dns"
dns_name = "www.example.com"
dns_answer = "192.0.2.53"
interval = "300ms"
timeout = "200ms"
rise = 1
fall = 1
jitter = "0%"

[[service]]
name = "dns"
vip = "198.51.100.53"
port = 53
protocol = "udp"
scheduler = "rr"
forwarding = "nat"
checks = ["dns"]
[service.announce]
enabled = false
[[service.real_server]]
address = "10.9.0.10"
"#;

/// A DNS server in Python's standard library: A 192.0.2.53 for any question.
const RESPONDER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    q, peer = s.recvfrom(512)
    r = bytearray(q)
    r[2] = 0x81; r[3] = 0x80; r[7] = 1
    r += bytes([0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 53])
    s.sendto(bytes(r), peer)
"#;

/// One DNS query from the client to the VIP: the A answer, or "timeout".
const CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
q = bytes([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3]) + b"www" + bytes([7]) + b"example" + bytes([3]) + b"com" + bytes([0, 0, 1, 0, 1])
s.sendto(q, ("198.51.100.53", 53))
try:
    r, peer = s.recvfrom(512)
    print("%s %s" % (peer[0], ".".join(str(b) for b in r[-4:])))
except socket.timeout:
    print("timeout")
"#;

/// A UDP service end to end: a DNS check against a real DNS server keeps it in, real queries
/// go through IPVS (NAT) and come back; the server stops, its weight goes to 0 and queries
/// go unanswered; it returns, and so does the weight.
#[test]
fn a_udp_service_with_a_dns_check_and_real_queries() {
    if !require(
        "a_udp_service_with_a_dns_check_and_real_queries",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let dir = scratch("udp");
    let front = vipd_testkit::Lan::new("kudpf");
    let back = vipd_testkit::Lan::new("kudpb");
    let client = Netns::new("kudp-cl");
    let director = Netns::new("kudp-lb");
    let server = Netns::new("kudp-be");
    front.attach(&client, "eth0", &["10.7.0.2/24"]);
    front.attach(&director, "eth0", &["10.7.0.1/24"]);
    back.attach(&director, "eth1", &["10.9.0.1/24"]);
    back.attach(&server, "eth0", &["10.9.0.10/24"]);
    client.ip(&["route", "add", "198.51.100.0/24", "via", "10.7.0.1"]);
    server.ip(&["route", "add", "default", "via", "10.9.0.1"]);
    director.sysctl("net.ipv4.ip_forward", "1");
    let start_responder = || {
        vipd_testkit::Daemon::spawn(
            &server,
            "python3",
            &["-c".as_ref(), RESPONDER.as_ref()],
            &dir.join("responder.log"),
        )
    };
    let mut responder = Some(start_responder());
    let cfg = dir.join("vipd.toml");
    std::fs::write(&cfg, DNS_SERVICE.replace("DIR", &dir.display().to_string())).expect("cfg");
    let vipd = Vipd::spawn(&director, &cfg, &dir, 1, false);
    let ask = || client.exec(&["python3", "-c", CLIENT]).trim().to_string();
    let until = |what: &str, want: &[&str]| until_dests(&director, &vipd, what, want);
    until("the DNS check passes", &["10.9.0.10:53 1"]);
    assert!(
        director
            .exec(&["ipvsadm", "-Ln"])
            .contains("UDP  198.51.100.53:53 rr"),
        "{}",
        director.exec(&["ipvsadm", "-Ln"])
    );
    assert_eq!(
        ask(),
        "198.51.100.53 192.0.2.53",
        "a real query through IPVS"
    );
    responder = responder.and(None);
    until("the DNS server stopped: weight 0", &["10.9.0.10:53 0"]);
    assert_eq!(ask(), "timeout");
    responder.get_or_insert_with(start_responder);
    until("the DNS server back: weight 1", &["10.9.0.10:53 1"]);
    assert_eq!(ask(), "198.51.100.53 192.0.2.53");
    drop(responder);
    vipd.stop(&cfg);
    let _ = std::fs::remove_dir_all(&dir);
}

const FWMARK: &str = r#"
[global]
router_id = "10.8.0.1"
state_dir = "DIR/state"
drain_file = "DIR/disable"
control_socket = "DIR/vipd.sock"
listen = "off"

[[check]]
name = "web"
kind = "tcp"
port = 8080
interval = "300ms"
timeout = "200ms"
rise = 1
fall = 1
jitter = "0%"

[[service]]
name = "ports"
vip = "198.51.100.1"
fwmark = 7
scheduler = "mh"
forwarding = "nat"
checks = ["web"]
[service.announce]
enabled = false
[[service.real_server]]
address = "10.9.0.10"
[[service.real_server]]
address = "10.9.0.11"
"#;

/// One HTTP request from the client: the status line, or the error.
fn get(client: &Netns, port: u16) -> String {
    let script = format!(
        "import urllib.request\ntry:\n    print(urllib.request.urlopen('http://198.51.100.1:{port}/', timeout=2).status)\nexcept Exception as e:\n    print(type(e).__name__)\n"
    );
    client.exec(&["python3", "-c", &script]).trim().to_string()
}

/// A firewall-mark service with mh: the packets a tc rule marks (ports 8080-8081 of the VIP)
/// reach the real servers through IPVS, on their own ports; an unmarked port (8082) does not.
#[test]
fn a_firewall_mark_service_carries_a_port_range() {
    if !require(
        "a_firewall_mark_service_carries_a_port_range",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let dir = scratch("fwm");
    let front = vipd_testkit::Lan::new("kfwf");
    let back = vipd_testkit::Lan::new("kfwb");
    let client = Netns::new("kfw-cl");
    let director = Netns::new("kfw-lb");
    let servers = Netns::new("kfw-be");
    front.attach(&client, "eth0", &["10.7.0.2/24"]);
    front.attach(&director, "eth0", &["10.7.0.1/24"]);
    back.attach(&director, "eth1", &["10.9.0.1/24"]);
    back.attach(&servers, "eth0", &["10.9.0.10/24", "10.9.0.11/24"]);
    client.ip(&["route", "add", "198.51.100.0/24", "via", "10.7.0.1"]);
    servers.ip(&["route", "add", "default", "via", "10.9.0.1"]);
    director.sysctl("net.ipv4.ip_forward", "1");
    // The operator's marking rule: ports 8080-8081 of the VIP carry mark 7.
    director.exec(&["tc", "qdisc", "add", "dev", "eth0", "ingress"]);
    director.exec(&[
        "tc",
        "filter",
        "add",
        "dev",
        "eth0",
        "ingress",
        "protocol",
        "ip",
        "flower",
        "ip_proto",
        "tcp",
        "dst_ip",
        "198.51.100.1",
        "dst_port",
        "8080-8081",
        "action",
        "skbedit",
        "mark",
        "7",
    ]);
    let web: Vec<vipd_testkit::Daemon> = [8080u16, 8081]
        .iter()
        .map(|port| {
            vipd_testkit::Daemon::spawn(
                &servers,
                "python3",
                &[
                    "-m".as_ref(),
                    "http.server".as_ref(),
                    "--directory".as_ref(),
                    dir.as_os_str(),
                    port.to_string().as_ref(),
                ],
                &dir.join(format!("http-{port}.log")),
            )
        })
        .collect();
    let cfg = dir.join("vipd.toml");
    std::fs::write(&cfg, FWMARK.replace("DIR", &dir.display().to_string())).expect("cfg");
    let vipd = Vipd::spawn(&director, &cfg, &dir, 1, false);
    until_dests(
        &director,
        &vipd,
        "both real servers in",
        &["10.9.0.10:0 1", "10.9.0.11:0 1"],
    );
    let table = director.exec(&["ipvsadm", "-Ln"]);
    assert!(table.contains("FWM  7 mh"), "{table}");
    assert_eq!(get(&client, 8080), "200", "port 8080 through the mark");
    assert_eq!(get(&client, 8081), "200", "port 8081 through the mark");
    assert_ne!(
        get(&client, 8082),
        "200",
        "an unmarked port is not the service's"
    );
    drop(web);
    vipd.stop(&cfg);
    let _ = std::fs::remove_dir_all(&dir);
}

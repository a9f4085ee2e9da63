//! Every probe against real local servers, files and programs; every reason asserted.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Http, Mode, agent, check, resetting_server};
use vipd_health::probe::Probe;
use vipd_health::{Outcome, Verdict};

/// Every case on both paths (`common::run_both_paths`).
async fn run(toml_body: &str, target: SocketAddr) -> Outcome {
    let p = Probe::new(&check(toml_body), target).expect("probe");
    common::run_both_paths(p, toml_body).await
}

fn assert_outcome(o: &Outcome, verdict: Verdict, reason: &str) {
    assert_eq!((o.verdict, o.reason.as_str()), (verdict, reason), "{o:?}");
}

#[tokio::test]
async fn http_status_hang_drip_reset_and_body() {
    let h = Http::start().await;
    let c = "kind = \"http\"\npath = \"/health\"\ntimeout = \"1s\"\nconnect_timeout = \"500ms\"";
    let o = run(c, h.addr).await;
    assert_outcome(&o, Verdict::Pass, "HTTP 200");
    assert!(o.latency > Duration::ZERO && o.latency < Duration::from_secs(1));
    let req = h.last_request.lock().expect("lock").clone();
    assert!(req.starts_with("GET /health HTTP/1.1\r\n"), "{req}");
    assert!(req.contains(&format!("Host: {}\r\n", h.addr)), "{req}");

    h.set(Mode::Unavailable);
    assert_outcome(
        &run(c, h.addr).await,
        Verdict::Fail,
        "HTTP 503 (expected 200-299)",
    );
    let many = format!("{c}\nexpect_status = [200, 503]");
    assert_outcome(&run(&many, h.addr).await, Verdict::Pass, "HTTP 503");

    // keepalived's default: any 2xx passes, a redirect fails unless listed.
    h.set(Mode::NoContent);
    assert_outcome(&run(c, h.addr).await, Verdict::Pass, "HTTP 204");
    h.set(Mode::Moved);
    assert_outcome(
        &run(c, h.addr).await,
        Verdict::Fail,
        "HTTP 301 (expected 200-299)",
    );
    let listed = format!("{c}\nexpect_status = [\"200-204\", 301]");
    assert_outcome(&run(&listed, h.addr).await, Verdict::Pass, "HTTP 301");
    let exact = format!("{c}\nexpect_status = [200]");
    h.set(Mode::NoContent);
    assert_outcome(
        &run(&exact, h.addr).await,
        Verdict::Fail,
        "HTTP 204 (expected 200)",
    );

    h.set(Mode::Hang);
    assert_outcome(
        &run(c, h.addr).await,
        Verdict::Fail,
        "timeout after 1s waiting for the response",
    );
    h.set(Mode::SlowDrip);
    assert_outcome(
        &run(c, h.addr).await,
        Verdict::Fail,
        "timeout after 1s waiting for the response",
    );

    h.set(Mode::Ok);
    let re = format!("{c}\nbody_regex = \"^heal\"");
    assert_outcome(
        &run(&re, h.addr).await,
        Verdict::Pass,
        "HTTP 200, body matches /^heal/",
    );
    // keepalived's regex_no_match: passes while the body does NOT match.
    let not = format!("{c}\nbody_regex = \"degraded\"\nbody_regex_no_match = true");
    assert_outcome(
        &run(&not, h.addr).await,
        Verdict::Pass,
        "HTTP 200, body does not match /degraded/",
    );
    h.set(Mode::Degraded);
    assert_outcome(
        &run(&not, h.addr).await,
        Verdict::Fail,
        "HTTP 200, body matches /degraded/ (must not)",
    );
    h.set(Mode::Ok);
    h.set(Mode::Degraded);
    assert_outcome(
        &run(&re, h.addr).await,
        Verdict::Fail,
        "HTTP 200, body does not match /^heal/",
    );
    h.set(Mode::Chunked);
    let re2 = format!("{c}\nbody_regex = \"systems healthy\"");
    assert_outcome(
        &run(&re2, h.addr).await,
        Verdict::Pass,
        "HTTP 200, body matches /systems healthy/",
    );

    let r = resetting_server().await;
    assert_outcome(
        &run(c, r).await,
        Verdict::Fail,
        "read: Connection reset by peer",
    );
}

#[tokio::test]
async fn http_host_header_headers_head_and_refused() {
    let h = Http::start().await;
    let c = "kind = \"http\"\nmethod = \"HEAD\"\nhost = \"www.example.com\"\nheaders = { X-Check = \"vipd\" }";
    assert_outcome(&run(c, h.addr).await, Verdict::Pass, "HTTP 200");
    let req = h.last_request.lock().expect("lock").clone();
    assert!(req.starts_with("HEAD / HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("Host: www.example.com\r\n"), "{req}");
    assert!(req.contains("X-Check: vipd\r\n"), "{req}");
    // Connects to the target, whatever the Host says: a closed port is refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    assert_outcome(
        &run(c, closed).await,
        Verdict::Fail,
        "connect: Connection refused",
    );
}

/// SSL_GET with a custom CA and a client certificate (keepalived's `SSL { ca certificate
/// key }`): verified against the given CA, and the server lets in only the client its CA
/// signed.
#[tokio::test]
async fn https_with_a_private_ca_and_a_client_certificate() {
    let dir = std::env::temp_dir().join(format!("vipd-health-mtls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let h = Http::start_mtls(&dir).await;
    let d = dir.display();
    let ok = format!(
        "kind = \"https\"\nsni = \"localhost\"\ntls_ca = \"{d}/ca.pem\"\ntls_cert = \"{d}/client.pem\"\ntls_key = \"{d}/client.key\""
    );
    assert_outcome(&run(&ok, h.addr).await, Verdict::Pass, "HTTP 200");
    // The system's CAs do not know the test CA.
    let system = format!(
        "kind = \"https\"\nsni = \"localhost\"\ntls_cert = \"{d}/client.pem\"\ntls_key = \"{d}/client.key\""
    );
    let o = run(&system, h.addr).await;
    assert_eq!(o.verdict, Verdict::Fail, "{o:?}");
    assert!(o.reason.contains("UnknownIssuer"), "{o:?}");
    // No client certificate, or one of another CA: the server refuses the handshake.
    for client in [
        "",
        &format!("\ntls_cert = \"{d}/other.pem\"\ntls_key = \"{d}/other.key\""),
    ] {
        let c = format!("kind = \"https\"\nsni = \"localhost\"\ntls_ca = \"{d}/ca.pem\"{client}");
        let o = run(&c, h.addr).await;
        assert_eq!(o.verdict, Verdict::Fail, "{client}: {o:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn https_self_signed_with_and_without_verification() {
    let h = Http::start_tls().await;
    let c = "kind = \"https\"\ntls_verify = false\nsni = \"localhost\"";
    assert_outcome(&run(c, h.addr).await, Verdict::Pass, "HTTP 200");
    h.set(Mode::Unavailable);
    assert_outcome(
        &run(c, h.addr).await,
        Verdict::Fail,
        "HTTP 503 (expected 200-299)",
    );
    let verify = "kind = \"https\"\nsni = \"localhost\"";
    assert_outcome(
        &run(verify, h.addr).await,
        Verdict::Fail,
        "TLS: invalid peer certificate: UnknownIssuer",
    );
    // Plain HTTP to a TLS port is not an HTTP response.
    let o = run("kind = \"http\"\ntimeout = \"1s\"", h.addr).await;
    assert_eq!(o.verdict, Verdict::Fail);
    // (A TLS alert: record type 21, version 3.x.)
    assert!(
        o.reason
            .starts_with(r#"not an HTTP response: "\u{15}\u{3}"#),
        "{o:?}"
    );
}

#[tokio::test]
async fn tcp_connect_refused_and_full_backlog() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let c = "kind = \"tcp\"\ntimeout = \"1s\"\nconnect_timeout = \"300ms\"";
    assert_outcome(
        &run(c, l.local_addr().expect("a")).await,
        Verdict::Pass,
        "TCP connect",
    );

    // A listener with a tiny backlog that never accepts: once its queue is full, SYNs are
    // dropped and the connect times out.
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("s");
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().expect("a").into())
        .expect("bind");
    s.listen(0).expect("listen");
    let addr = s.local_addr().expect("addr").as_socket().expect("inet");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(f)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(f);
        }
    }
    assert_outcome(
        &run(c, addr).await,
        Verdict::Fail,
        "connect timeout after 300ms",
    );
}

#[tokio::test]
async fn agent_each_keyword_and_weights() {
    let cases: &[(&str, Verdict, &str, Option<u32>)] = &[
        ("up\n", Verdict::Pass, "agent: up", None),
        ("ready\n", Verdict::Pass, "agent: ready", None),
        ("75%\n", Verdict::Pass, "agent: weight 75%", Some(75)),
        ("up 50%\n", Verdict::Pass, "agent: up, weight 50%", Some(50)),
        ("drain\n", Verdict::Drain, "agent: drain", None),
        ("down\n", Verdict::ForcedDown, "agent: down", None),
        ("maint\n", Verdict::ForcedDown, "agent: maint", None),
        ("stopped\n", Verdict::ForcedDown, "agent: stopped", None),
        (
            "fail # disk full\n",
            Verdict::ForcedDown,
            "agent: fail (disk full)",
            None,
        ),
        (
            "what?\n",
            Verdict::Fail,
            "agent: unparseable: \"what?\"",
            None,
        ),
        ("", Verdict::Fail, "agent: unparseable: empty reply", None),
    ];
    for (reply, verdict, reason, weight) in cases {
        let a = agent(reply).await;
        let c = format!("kind = \"agent\"\nport = {}", a.port());
        let target = SocketAddr::new(a.ip(), 80);
        let o = run(&c, target).await;
        assert_outcome(&o, *verdict, reason);
        assert_eq!(o.weight_pct, *weight, "{reply:?}");
    }
    // An agent that never answers.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("b");
    let c = format!(
        "kind = \"agent\"\nport = {}\ntimeout = \"300ms\"",
        l.local_addr().expect("a").port()
    );
    assert_outcome(
        &run(&c, SocketAddr::new(l.local_addr().expect("a").ip(), 80)).await,
        Verdict::Fail,
        "agent: timeout after 300ms waiting for a reply",
    );
}

fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p.display().to_string()
}

#[tokio::test]
async fn exec_exit_codes_environment_and_hang() {
    let dir = std::env::temp_dir().join(format!("vipd-health-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let target: SocketAddr = "192.0.2.7:8080".parse().expect("a");
    let ok = script(
        &dir,
        "ok.sh",
        "echo \"backend $VIPD_RS_ADDRESS:$VIPD_RS_PORT fine\"",
    );
    assert_outcome(
        &run(&format!("kind = \"exec\"\ncommand = \"{ok}\""), target).await,
        Verdict::Pass,
        "exit 0: backend 192.0.2.7:8080 fine",
    );
    let bad = script(&dir, "bad.sh", "echo 'db unreachable' >&2; exit 1");
    assert_outcome(
        &run(&format!("kind = \"exec\"\ncommand = \"{bad}\""), target).await,
        Verdict::Fail,
        "exit 1: db unreachable",
    );
    let args = script(
        &dir,
        "args.sh",
        "[ \"$1\" = \"--port\" ] && [ \"$2\" = 9 ] && exit 0; exit 3",
    );
    assert_outcome(
        &run(
            &format!("kind = \"exec\"\ncommand = \"{args}\"\nargs = [\"--port\", \"9\"]"),
            target,
        )
        .await,
        Verdict::Pass,
        "exit 0",
    );
    // A hanging script and the sleep it started are both killed at the timeout.
    let marker = dir.join("survivor");
    let hang = script(
        &dir,
        "hang.sh",
        &format!("sleep 5; touch {}", marker.display()),
    );
    let start = std::time::Instant::now();
    assert_outcome(
        &run(
            &format!("kind = \"exec\"\ncommand = \"{hang}\"\ntimeout = \"300ms\""),
            target,
        )
        .await,
        Verdict::Fail,
        "timeout after 300ms, killed",
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    let missing = dir.join("nope.sh").display().to_string();
    assert_outcome(
        &run(&format!("kind = \"exec\"\ncommand = \"{missing}\""), target).await,
        Verdict::Fail,
        &format!("exec {missing}: No such file or directory"),
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!marker.exists(), "the script's child survived the kill");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn file_keywords_weights_and_garbage() {
    let dir = std::env::temp_dir().join(format!("vipd-health-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let f = dir.join("agent-check");
    let c = format!("kind = \"file\"\nfile = \"{}\"", f.display());
    let target: SocketAddr = "192.0.2.7:80".parse().expect("a");
    let cases: &[(&str, Verdict, &str, Option<u32>)] = &[
        ("UP\n", Verdict::Pass, "file: up, weight 100%", Some(100)),
        (
            "READY\n",
            Verdict::Pass,
            "file: ready, weight 100%",
            Some(100),
        ),
        ("UP 25%\n", Verdict::Pass, "file: up, weight 25%", Some(25)),
        ("60%", Verdict::Pass, "file: weight 60%", Some(60)),
        ("DOWN\n", Verdict::ForcedDown, "file: down", Some(100)),
        ("MAINT\n", Verdict::ForcedDown, "file: maint", Some(100)),
        ("DRAIN\n", Verdict::Drain, "file: drain", Some(100)),
        (
            "\u{1}\u{2}garbage\n",
            Verdict::Fail,
            "file: unparseable: \"\\u{1}\\u{2}garbage\"",
            None,
        ),
        ("", Verdict::Fail, "file: unparseable: empty reply", None),
    ];
    for (content, verdict, reason, weight) in cases {
        std::fs::write(&f, content).expect("write");
        let o = run(&c, target).await;
        assert_outcome(&o, *verdict, reason);
        assert_eq!(o.weight_pct, *weight, "{content:?}");
    }
    std::fs::remove_file(&f).expect("rm");
    assert_outcome(
        &run(&c, target).await,
        Verdict::Fail,
        &format!(
            "file: cannot read {}: No such file or directory",
            f.display()
        ),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A UDP DNS responder: answers A queries with `ip` and rcode `rcode`, or stays silent.
async fn dns_server(rcode: u8, ip: Option<[u8; 4]>) -> SocketAddr {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = s.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let Some(ip) = ip else { continue };
            let mut r = buf[..n].to_vec();
            r[2] = 0x81;
            r[3] = 0x80 | rcode;
            r[7] = 1;
            r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            r.extend_from_slice(&ip);
            let _ = s.send_to(&r, from).await;
        }
    });
    addr
}

/// keepalived's DNS_CHECK: NOERROR passes (with the expected answer, if given); NXDOMAIN,
/// another address or silence fail.
#[tokio::test]
async fn dns_rcode_answer_and_silence() {
    let c = "kind = \"dns\"\ndns_name = \"www.example.com\"\ntimeout = \"300ms\"";
    let ok = dns_server(0, Some([192, 0, 2, 7])).await;
    assert_outcome(&run(c, ok).await, Verdict::Pass, "dns: NOERROR, 1 answers");
    let want = format!("{c}\ndns_answer = \"192.0.2.7\"");
    assert_outcome(
        &run(&want, ok).await,
        Verdict::Pass,
        "dns: NOERROR, 1 answers",
    );
    let other = format!("{c}\ndns_answer = \"192.0.2.8\"");
    assert_outcome(
        &run(&other, ok).await,
        Verdict::Fail,
        "dns: NOERROR without 192.0.2.8 (1 answers)",
    );
    let nx = dns_server(3, Some([0; 4])).await;
    assert_outcome(&run(c, nx).await, Verdict::Fail, "dns: NXDOMAIN");
    let silent = dns_server(0, None).await;
    assert_outcome(
        &run(c, silent).await,
        Verdict::Fail,
        "dns: no answer within 300ms",
    );
}

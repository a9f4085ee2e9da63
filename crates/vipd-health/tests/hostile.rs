//! A farm of hostile backends: a chunk size of `ffffffffffffffff`, a megabyte of headers, a
//! response dripped a byte a second, TLS garbage, 10 KB of binary as an agent reply, an
//! agent asking for 1000%. No panic, every reason recorded, no descriptor left behind.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::check;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vipd_health::probe::Probe;
use vipd_health::{Outcome, Verdict};

/// A server that answers every connection with `reply`, a byte every `drip` when given,
/// then closes. It stops writing as soon as the client is gone.
async fn hostile(reply: Vec<u8>, drip: Option<Duration>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
                match drip {
                    None => {
                        let _ = s.write_all(&reply).await;
                    }
                    Some(every) => {
                        for b in reply {
                            if s.write_all(&[b]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(every).await;
                        }
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Every case on both paths (`common::run_both_paths`).
async fn probe(body: &str, target: SocketAddr) -> Outcome {
    // An agent check names its own port.
    let body = body.replace("PORT", &target.port().to_string());
    let p = Probe::new(&check(&body), target).expect("probe");
    common::run_both_paths(p, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_backends_get_reasons_not_panics_and_leak_nothing() {
    let mut big_head = b"HTTP/1.1 200 OK\r\n".to_vec();
    while big_head.len() < 1 << 20 {
        big_head
            .extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let binary: Vec<u8> = (0..10_240u32).map(|i| (i % 256) as u8).collect();
    let farm = [
        (
            "chunk size ffffffffffffffff",
            hostile(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc\r\n0\r\n\r\n".to_vec(),
                None,
            )
            .await,
            "kind = \"http\"\nbody_regex = \"ok\"\ntimeout = \"2s\"",
            Verdict::Fail,
            "invalid chunked body",
        ),
        (
            "a megabyte of headers",
            hostile(big_head, None).await,
            "kind = \"http\"\nbody_regex = \"ok\"\ntimeout = \"2s\"",
            Verdict::Fail,
            "response head longer than 16384 bytes",
        ),
        (
            "a byte a second",
            hostile(b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), Some(Duration::from_secs(1))).await,
            "kind = \"http\"\ntimeout = \"1s\"",
            Verdict::Fail,
            "timeout after 1s",
        ),
        (
            "nothing, then a close",
            hostile(Vec::new(), None).await,
            "kind = \"http\"\ntimeout = \"2s\"",
            Verdict::Fail,
            "connection closed before a response",
        ),
        (
            "half a status line, then a close",
            hostile(b"HTTP/1.1 2".to_vec(), None).await,
            "kind = \"http\"\ntimeout = \"2s\"",
            Verdict::Fail,
            "connection closed in the response head (10 bytes)",
        ),
        (
            "an SSH banner",
            hostile(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec(), None).await,
            "kind = \"http\"\ntimeout = \"2s\"",
            Verdict::Fail,
            "",
        ),
        (
            "a megabyte of headers, status line first",
            hostile(
                b"HTTP/1.1 503 Busy\r\nX-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(16_000),
                None,
            )
            .await,
            "kind = \"http\"\ntimeout = \"2s\"",
            Verdict::Fail,
            "HTTP 503 (expected 200-299)",
        ),
        (
            "TLS garbage",
            hostile(binary.clone(), None).await,
            "kind = \"https\"\ntls_verify = false\ntimeout = \"2s\"",
            Verdict::Fail,
            "TLS",
        ),
        (
            "10 KB of binary from an agent",
            hostile(binary, None).await,
            "kind = \"agent\"\nport = PORT\ntimeout = \"2s\"",
            Verdict::Fail,
            "agent: unparseable",
        ),
        (
            "an agent asking for 1000%",
            hostile(b"up 1000%\n".to_vec(), None).await,
            "kind = \"agent\"\nport = PORT\ntimeout = \"2s\"",
            Verdict::Pass,
            "agent: up, weight 256%",
        ),
    ];
    let before = open_fds();
    for round in 0..3 {
        for (what, addr, body, verdict, reason) in &farm {
            let o = probe(body, *addr).await;
            assert_eq!(o.verdict, *verdict, "{what} (round {round}): {o:?}");
            assert!(
                o.reason.contains(reason),
                "{what} (round {round}): reason {:?}, want {reason:?}",
                o.reason
            );
        }
    }
    // The servers close their ends once the probes are gone (the drip one at its next byte).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = open_fds();
    assert!(
        after <= before,
        "descriptors: {before} before the probes, {after} after"
    );
}

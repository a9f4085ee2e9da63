//! Real local servers for the probe tests: an HTTP(S) server whose behaviour a test switches
//! at run time, an agent server, and helpers to build checks from TOML.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use vipd_config::CheckDef;

/// What the HTTP server does with the next requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// 200 with body "healthy".
    Ok = 0,
    /// 503.
    Unavailable = 1,
    /// Reads the request, never answers.
    Hang = 2,
    /// Sends the status line one byte every 300 ms.
    SlowDrip = 3,
    /// Closes with a RST right after reading the request.
    Reset = 4,
    /// 200 with body "degraded".
    Degraded = 5,
    /// 200, chunked body "all systems healthy".
    Chunked = 6,
    /// 204, no body.
    NoContent = 7,
    /// 301 to /elsewhere.
    Moved = 8,
}

/// A switchable HTTP server; counts requests.
#[derive(Debug, Clone)]
pub struct Http {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    pub requests: Arc<AtomicUsize>,
    pub last_request: Arc<std::sync::Mutex<String>>,
}

impl Http {
    pub fn set(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }
    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Plain HTTP on 127.0.0.1.
    pub async fn start() -> Http {
        Self::start_with(None).await
    }

    /// HTTPS with a self-signed certificate for `localhost`.
    pub async fn start_tls() -> Http {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("self-signed certificate");
        let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
        let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
            .expect("key");
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .expect("server config");
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))).await
    }

    /// An HTTPS server whose certificate a test CA signed, that requires a client
    /// certificate from that CA. Writes `ca.pem`, `client.pem`, `client.key` (and
    /// `other.pem`/`other.key`, a client certificate of another CA) into `dir`.
    pub async fn start_mtls(dir: &std::path::Path) -> Http {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name
                .push(rcgen::DnType::CommonName, name.to_string());
            let k = KeyPair::generate().expect("key");
            let c = p.self_signed(&k).expect("ca");
            (c, Issuer::new(p, k))
        };
        let (ca_cert, issuer) = ca("vipd test CA");
        let (_, other_issuer) = ca("another CA");
        let leaf = |name: &str, by: &Issuer<'_, KeyPair>| {
            let p = CertificateParams::new(vec![name.to_string()]).expect("params");
            let k = KeyPair::generate().expect("key");
            let c = p.signed_by(&k, by).expect("signed");
            (c, k)
        };
        let (server, server_key) = leaf("localhost", &issuer);
        let (client, client_key) = leaf("director", &issuer);
        let (other, other_key) = leaf("director", &other_issuer);
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("ca.pem");
        std::fs::write(dir.join("client.pem"), client.pem()).expect("client.pem");
        std::fs::write(dir.join("client.key"), client_key.serialize_pem()).expect("key");
        std::fs::write(dir.join("other.pem"), other.pem()).expect("other.pem");
        std::fs::write(dir.join("other.key"), other_key.serialize_pem()).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                ca_cert.der().to_vec(),
            ))
            .expect("root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .expect("client verifier");
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(
                    server.der().to_vec(),
                )],
                rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der())
                    .expect("key"),
            )
            .expect("server config");
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Http {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let h = Http {
            addr: l.local_addr().expect("addr"),
            mode: Arc::new(AtomicU8::new(0)),
            requests: Arc::new(AtomicUsize::new(0)),
            last_request: Arc::new(std::sync::Mutex::new(String::new())),
        };
        let h2 = h.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    return;
                };
                let h = h2.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => h.serve(s).await,
                        Some(a) => {
                            if let Ok(s) = a.accept(s).await {
                                h.serve(s).await;
                            }
                        }
                    }
                });
            }
        });
        h
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, mut s: S) {
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        *self.last_request.lock().expect("lock") = String::from_utf8_lossy(&req).into_owned();
        let mode = self.mode.load(Ordering::SeqCst);
        let reply: &[u8] = match mode {
            0 => b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nhealthy",
            1 => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
            2 => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            3 => {
                for b in b"HTTP/1.1 200 OK\r\n" {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if s.write_all(&[*b]).await.is_err() {
                        return;
                    }
                }
                return;
            }
            4 => return, // dropped with SO_LINGER 0 below
            5 => b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ndegraded",
            7 => b"HTTP/1.1 204 No Content\r\n\r\n",
            8 => b"HTTP/1.1 301 Moved Permanently\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
            _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nall \r\n7\r\nsystems\r\n8\r\n healthy\r\n0\r\n\r\n",
        };
        let _ = s.write_all(reply).await;
        let _ = s.shutdown().await;
    }
}

/// A plain HTTP server whose connections are reset: accepted, request read, RST.
pub async fn resetting_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.set_zero_linger();
            drop(s);
        }
    });
    addr
}

/// An agent that answers `reply` to every connection, then closes.
pub async fn agent(reply: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let _ = s.write_all(reply.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    addr
}

/// A check from TOML lines (`kind = "http"` ...), defaults applied as the daemon would.
pub fn check(toml_body: &str) -> CheckDef {
    let src = format!(
        "[global]\nrouter_id = \"192.0.2.1\"\n[[service]]\nname = \"s\"\nvip = \"198.51.100.1\"\nport = 80\nchecks = [\"c\"]\n[[service.real_server]]\naddress = \"10.0.0.1\"\n[[check]]\nname = \"c\"\n{toml_body}\n"
    );
    let loaded = vipd_config::load_str(&src, "test.toml")
        .unwrap_or_else(|e| panic!("check does not load: {e}\n{src}"));
    loaded.config.checks[0].clone()
}

/// Runs `p` on the tokio path and, when the scheduler would run it on its epoll driver (tcp,
/// plain HTTP without a body regex), there too: both must give the same verdict and reason.
pub async fn run_both_paths(p: vipd_health::probe::Probe, what: &str) -> vipd_health::Outcome {
    use vipd_health::probe::direct::{self, Direct};
    let p = std::sync::Arc::new(p);
    let o = p.run().await;
    if Direct::handles(&p) {
        let d = direct::run_once(p.clone()).await.expect("epoll");
        assert_eq!(
            (d.verdict, d.reason.as_str()),
            (o.verdict, o.reason.as_str()),
            "the direct path and the tokio path differ for {what}"
        );
    }
    o
}

//! The probes: one check of one target, run to an [`Outcome`] with a reason in words.
//!
//! A [`Probe`] is built once per (check, target) from the configuration, with everything
//! that can be prepared in advance (the HTTP request bytes, the compiled body regex, the TLS
//! configuration), so that running it allocates little: a director checks thousands of
//! targets every second.

mod agent;
mod conn;
mod exec;
mod file;
mod http;
mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use vipd_config::{CheckDef, CheckSpec, HttpMethod};

use crate::outcome::Outcome;

pub use http::HttpProbe;

/// What a probe does.
#[derive(Debug)]
#[non_exhaustive]
pub enum Kind {
    /// HTTP or HTTPS request.
    Http(Box<HttpProbe>),
    /// TCP connect.
    Tcp,
    /// HAProxy agent-check.
    Agent,
    /// A command.
    Exec {
        /// Program.
        command: std::path::PathBuf,
        /// Arguments.
        args: Vec<String>,
    },
    /// A status file.
    File {
        /// Its path.
        path: std::path::PathBuf,
    },
}

/// One check against one target, ready to run.
#[derive(Debug)]
pub struct Probe {
    /// What to do.
    pub kind: Kind,
    /// Where to connect: the real server's address and the check's port (or the server's).
    pub addr: SocketAddr,
    /// The real server itself (address and service port), given to exec checks.
    pub server: SocketAddr,
    /// Source address of the connection.
    pub source: Option<IpAddr>,
    /// Time allowed for the TCP connect.
    pub connect_timeout: Duration,
    /// Time allowed for the whole check.
    pub timeout: Duration,
}

impl Probe {
    /// Builds the probe of `check` against the real server `server`. Fails only on what
    /// validation cannot see (a body regex that does not compile, an SNI that is no name).
    pub fn new(check: &CheckDef, server: SocketAddr) -> Result<Probe, String> {
        let port = check.port.unwrap_or(server.port());
        let addr = SocketAddr::new(server.ip(), port);
        let kind = match check.spec() {
            CheckSpec::Http {
                tls,
                method,
                path,
                expect_status,
                host,
                body_regex,
                headers,
                tls_verify,
                sni,
            } => Kind::Http(Box::new(HttpProbe::new(http::HttpParams {
                addr,
                tls,
                head: method == HttpMethod::Head,
                path: &path,
                expect_status,
                host: host.as_deref(),
                body_regex: body_regex.as_deref(),
                headers: &headers,
                tls_verify,
                sni: sni.as_deref(),
            })?)),
            CheckSpec::Tcp => Kind::Tcp,
            CheckSpec::Agent => Kind::Agent,
            CheckSpec::Exec { command, args } => Kind::Exec { command, args },
            CheckSpec::File { file } => Kind::File { path: file },
            other => return Err(format!("check kind {other:?} has no probe")),
        };
        Ok(Probe {
            kind,
            addr,
            server,
            source: check.source_address,
            connect_timeout: check
                .effective_connect_timeout()
                .get()
                .min(check.timeout.get()),
            timeout: check.timeout.get(),
        })
    }

    /// Runs the check once. Never fails: every problem is a failed [`Outcome`] with a reason.
    pub async fn run(&self) -> Outcome {
        let start = Instant::now();
        let mut o = match &self.kind {
            Kind::Http(h) => h.run(self).await,
            Kind::Tcp => tcp(self).await,
            Kind::Agent => agent::run(self).await,
            Kind::Exec { command, args } => exec::run(self, command, args).await,
            Kind::File { path } => file::run(path).await,
        };
        o.latency = start.elapsed();
        o
    }
}

async fn tcp(p: &Probe) -> Outcome {
    match tokio::time::timeout(p.timeout, conn::connect(p)).await {
        Ok(Ok(s)) => {
            conn::reset_on_close(&s);
            Outcome::pass("TCP connect", Duration::ZERO)
        }
        Ok(Err(e)) => Outcome::fail(e, Duration::ZERO),
        Err(_) => Outcome::fail(
            format!("connect timeout after {:?}", p.timeout),
            Duration::ZERO,
        ),
    }
}

/// Shared, immutable probe (the scheduler hands one to each run).
pub type SharedProbe = Arc<Probe>;

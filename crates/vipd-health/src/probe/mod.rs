//! The probes: one check of one target, run to an [`Outcome`] with a reason in words.
//!
//! A [`Probe`] is built once per (check, target) from the configuration, with everything
//! that can be prepared in advance (the HTTP request bytes, the compiled body regex, the TLS
//! configuration), so that running it allocates little: a director checks thousands of
//! targets every second.

mod agent;
mod conn;
pub mod direct;
mod dns;
mod exec;
mod file;
mod http;
mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use vipd_config::{CheckDef, CheckSpec, HttpMethod};

use crate::outcome::Outcome;

pub use exec::script_security as exec_security;
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
        /// The uid and gid to run it as (`user`), looked up when the probe is built.
        ids: Option<(u32, u32)>,
        /// The exit code sets the weight.
        dynamic: bool,
    },
    /// A status file.
    File {
        /// Its path.
        path: std::path::PathBuf,
    },
    /// A DNS query.
    Dns {
        /// Name asked for.
        name: String,
        /// Record type.
        qtype: crate::dns::QType,
        /// An address the answer must hold.
        answer: Option<IpAddr>,
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
    /// The tunnel path: the socket's mark (the connection goes to the VIP, `addr`).
    pub mark: Option<u32>,
    /// Time allowed for the TCP connect.
    pub connect_timeout: Duration,
    /// Time allowed for the whole check.
    pub timeout: Duration,
}

impl Probe {
    /// Builds the probe of `check` against the real server `server`. Fails only on what
    /// validation cannot see (a body regex that does not compile, an SNI that is no name).
    pub fn new(check: &CheckDef, server: SocketAddr) -> Result<Probe, String> {
        Probe::new_via(check, server, None)
    }

    /// [`Probe::new`], through the real server's tunnel when `tunnel` is given: to the VIP
    /// on the check's port (else the server's), the socket marked so that IPVS encapsulates
    /// it to this server only; the reply comes back directly.
    pub fn new_via(
        check: &CheckDef,
        server: SocketAddr,
        tunnel: Option<crate::jobs::Tunnel>,
    ) -> Result<Probe, String> {
        let port = check.port.unwrap_or(server.port());
        let addr = SocketAddr::new(tunnel.map_or(server.ip(), |t| t.vip), port);
        let kind = match check.spec() {
            CheckSpec::Http {
                tls,
                method,
                path,
                expect_status,
                host,
                body_regex,
                body_regex_no_match,
                headers,
                tls_verify,
                tls_ca,
                tls_client,
                sni,
            } => Kind::Http(Box::new(HttpProbe::new(http::HttpParams {
                addr,
                tls,
                head: method == HttpMethod::Head,
                path: &path,
                expect_status,
                host: host.as_deref(),
                body_regex: body_regex.as_deref(),
                body_regex_no_match,
                headers: &headers,
                tls_verify,
                tls_ca: tls_ca.as_deref(),
                tls_client: tls_client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
                sni: sni.as_deref(),
            })?)),
            CheckSpec::Tcp => Kind::Tcp,
            CheckSpec::Agent => Kind::Agent,
            CheckSpec::Exec {
                command,
                args,
                user,
                dynamic_weight,
            } => {
                let ids = match user {
                    None => None,
                    Some(u) => match vipd_sys::process::user_ids(&u) {
                        Ok(Some(ids)) => Some(ids),
                        Ok(None) => return Err(format!("exec: no user {u:?}")),
                        Err(e) => return Err(format!("exec: cannot look user {u:?} up: {e}")),
                    },
                };
                Kind::Exec {
                    command,
                    args,
                    ids,
                    dynamic: dynamic_weight,
                }
            }
            CheckSpec::File { file } => Kind::File { path: file },
            CheckSpec::Dns {
                name,
                qtype,
                answer,
            } => Kind::Dns {
                name,
                qtype: crate::dns::QType::parse(&qtype)
                    .ok_or_else(|| format!("unknown DNS type {qtype:?}"))?,
                answer,
            },
            other => return Err(format!("check kind {other:?} has no probe")),
        };
        Ok(Probe {
            kind,
            addr,
            server,
            source: check.source_address,
            mark: tunnel.map(|t| t.mark),
            connect_timeout: check
                .effective_connect_timeout()
                .get()
                .min(check.timeout.get()),
            timeout: check.timeout.get(),
        })
    }

    /// Runs the check once within its timeouts. Never fails: every problem is a failed
    /// [`Outcome`] with a reason.
    pub async fn run(&self) -> Outcome {
        let start = Instant::now();
        let mut o = match &self.kind {
            Kind::Http(h) => h.run(self).await,
            Kind::Tcp => match tokio::time::timeout(self.timeout, tcp(self, true)).await {
                Ok(o) => o,
                Err(_) => self.timed_out(Stage::CONNECT, false),
            },
            Kind::Agent => agent::run(self).await,
            Kind::Exec {
                command,
                args,
                ids,
                dynamic,
            } => exec::run(self, command, args, *ids, *dynamic).await,
            Kind::File { path } => file::run(path).await,
            Kind::Dns {
                name,
                qtype,
                answer,
            } => dns::run(self, name, *qtype, *answer).await,
        };
        o.latency = start.elapsed();
        self.path_said(o)
    }

    /// A tunnel-path outcome says so: with a direct check beside it, the status tells which
    /// path failed.
    pub(crate) fn path_said(&self, mut o: Outcome) -> Outcome {
        if self.mark.is_some() {
            o.reason = format!("via tunnel: {}", o.reason);
        }
        o
    }

    /// The deadlines (connect, total) the caller must enforce around [`Probe::run_untimed`];
    /// `None` when the probe times itself (exec kills its process group, file reads are local).
    pub fn deadlines(&self) -> Option<(Duration, Duration)> {
        match self.kind {
            Kind::Http(_) | Kind::Tcp | Kind::Agent => Some((self.connect_timeout, self.timeout)),
            _ => None,
        }
    }

    /// Runs the check with no timer of its own when [`Probe::deadlines`] says so, recording
    /// its progress in `stage`. The scheduler uses this: a tokio timer per probe costs a
    /// driver wake-up (an eventfd write and an extra `epoll_wait`) each time one is armed,
    /// which was the largest avoidable cost per check; the scheduler's own timer covers
    /// every probe's deadline instead, and on expiry drops the probe and asks
    /// [`Probe::timed_out`] for the outcome.
    pub async fn run_untimed(&self, stage: &Stage) -> Outcome {
        let start = Instant::now();
        let mut o = match &self.kind {
            Kind::Http(h) => h.run_untimed(self, stage).await,
            Kind::Tcp => tcp(self, false).await,
            Kind::Agent => agent::run_untimed(self, stage, false).await,
            _ => return self.run().await,
        };
        o.latency = start.elapsed();
        self.path_said(o)
    }

    /// The outcome of a probe whose time ran out at `stage`; `connect_deadline` when it was
    /// the connect timeout that expired.
    pub fn timed_out(&self, stage: u8, connect_deadline: bool) -> Outcome {
        let reason =
            if stage == Stage::CONNECT && (connect_deadline || matches!(self.kind, Kind::Tcp)) {
                let t = if connect_deadline {
                    self.connect_timeout
                } else {
                    self.timeout
                };
                format!("connect timeout after {t:?}")
            } else {
                let t = self.timeout;
                match stage {
                    Stage::CONNECT => format!("timeout after {t:?} connecting"),
                    Stage::TLS => format!("timeout after {t:?} in the TLS handshake"),
                    Stage::BODY => format!("timeout after {t:?} reading the body"),
                    _ => format!("timeout after {t:?} waiting for the response"),
                }
            };
        let reason = if matches!(self.kind, Kind::Agent) {
            match stage {
                Stage::CONNECT => format!("agent: {reason}"),
                _ => format!(
                    "agent: timeout after {:?} waiting for a reply",
                    self.timeout
                ),
            }
        } else {
            reason
        };
        self.path_said(Outcome::fail(reason, self.timeout))
    }
}

/// How far a probe got, for the reason of a timeout. Shared between the probe and whoever
/// enforces its deadlines.
#[derive(Debug, Default)]
pub struct Stage(AtomicU8);

impl Stage {
    /// Connecting (the initial stage).
    pub const CONNECT: u8 = 0;
    /// TLS handshake.
    pub const TLS: u8 = 1;
    /// Request sent, waiting for the response (or the agent's reply).
    pub const RESPONSE: u8 = 2;
    /// Reading the body.
    pub const BODY: u8 = 3;

    /// The current stage.
    pub fn get(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }

    /// Moves on.
    pub fn set(&self, s: u8) {
        self.0.store(s, Ordering::Relaxed);
    }
}

async fn tcp(p: &Probe, timed: bool) -> Outcome {
    match conn::connect(p, timed).await {
        Ok(s) => {
            conn::reset_on_close(&s);
            Outcome::pass("TCP connect", Duration::ZERO)
        }
        Err(e) => e.outcome(""),
    }
}

/// Shared, immutable probe (the scheduler hands one to each run).
pub type SharedProbe = Arc<Probe>;

//! What the importer builds before writing TOML: vipd's concepts with only the values the
//! source files set (a `None` is written as nothing, so vipd's default applies and the output
//! stays short), plus the notes that go next to each table.

use std::net::{IpAddr, Ipv4Addr};

use crate::Origin;

/// Something of the source that the output does not carry, reported on stderr and marked in
/// the output where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Omission {
    /// Where it is in the source.
    pub origin: Origin,
    /// The construct, as written (keyword and arguments).
    pub what: String,
    /// Why it is not translated, or what to do instead.
    pub why: String,
}

impl std::fmt::Display for Omission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.what, self.why)
    }
}

/// The kind of a health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Http,
    Https,
    Tcp,
    Exec,
    Dns,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Https => "https",
            Kind::Tcp => "tcp",
            Kind::Exec => "exec",
            Kind::Dns => "dns",
        }
    }
}

/// One health check. Equal checks are written once as a named `[[check]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Check {
    pub kind: Kind,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub rise: u32,
    pub fall: u32,
    pub fast_interval_ms: Option<u64>,
    pub port: Option<u16>,
    pub source_address: Option<IpAddr>,
    pub path: Option<String>,
    /// Inclusive ranges; None: vipd's default, any 2xx (keepalived's too).
    pub expect_status: Option<Vec<(u16, u16)>>,
    pub body_regex: Option<String>,
    pub body_regex_no_match: bool,
    pub host: Option<String>,
    pub tls_verify: Option<bool>,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub user: Option<String>,
    /// dns: name and type.
    pub dns: Option<(String, String)>,
    /// keepalived's `misc_dynamic`.
    pub dynamic_weight: bool,
    /// https: client certificate and key.
    pub tls_client: Option<(String, String)>,
    /// Where the checker block is (for the comment above the `[[check]]`).
    pub origin: Option<Origin>,
}

/// `[[service.real_server]]`.
#[derive(Clone, Debug)]
pub(crate) struct RealServer {
    pub address: IpAddr,
    pub port: Option<u16>,
    pub weight: u32,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    /// keepalived's per-real-server `inhibit_on_failure`, when written.
    pub inhibit: Option<bool>,
    /// `notify_up` / `notify_down` as argv, with where they were.
    pub notify: [Option<(Vec<String>, Origin)>; 2],
}

/// `[service.hooks]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HooksOut {
    pub real_server_up: Option<Vec<String>>,
    pub real_server_down: Option<Vec<String>>,
    pub quorum_up: Option<Vec<String>>,
    pub quorum_down: Option<Vec<String>>,
}

/// `[service.announce]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Announce {
    /// `Some(false)`: written as `enabled = false`.
    pub enabled: Option<bool>,
    pub med: Option<u32>,
    pub drained_med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    pub extended_communities: Vec<String>,
    pub prepend: Option<u8>,
    /// `[service.announce.down]`: ExaBGP's down metric.
    pub down: Option<StateOut>,
    /// `[service.announce.drained]` (its MED goes to `drained_med`).
    pub drained: Option<StateOut>,
}

/// The attributes of one route state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StateOut {
    pub med: Option<u32>,
    pub communities: Option<Vec<String>>,
    pub prepend: Option<u8>,
}

/// `[[service]]`.
#[derive(Clone, Debug)]
pub(crate) struct Service {
    pub name: String,
    pub vip: IpAddr,
    pub port: u16,
    pub udp: bool,
    pub scheduler: String,
    pub mh_port: Option<bool>,
    pub mh_fallback: Option<bool>,
    pub forwarding: &'static str,
    /// `tunnel_type` and the GUE port, when not ipip.
    pub tunnel_type: Option<(&'static str, Option<u16>)>,
    pub persistence: Option<(u64, Option<u8>)>,
    pub quorum: Option<u32>,
    pub hysteresis: Option<u32>,
    pub alpha: bool,
    pub inhibit: bool,
    pub real_servers: Vec<RealServer>,
    pub announce: Announce,
    pub hooks: HooksOut,
    /// keepalived's `sorry_server`: address and port.
    pub sorry: Option<(IpAddr, u16)>,
    pub origin: Origin,
    pub notes: Vec<String>,
    /// The omissions found inside its block (indices into [`Out::omissions`]).
    pub omitted: std::ops::Range<usize>,
}

/// `[[bgp.neighbor]]`.
#[derive(Clone, Debug)]
pub(crate) struct Neighbor {
    pub address: IpAddr,
    pub remote_as: u32,
    pub local_address: Option<IpAddr>,
    pub password: Option<String>,
    pub passive: bool,
    pub description: Option<String>,
    pub families: Vec<&'static str>,
    pub multihop: Option<u8>,
    pub origin: Origin,
    pub notes: Vec<String>,
    /// The omissions found inside its block (indices into [`Out::omissions`]).
    pub omitted: std::ops::Range<usize>,
}

/// `[bgp]`.
#[derive(Clone, Debug)]
pub(crate) struct Bgp {
    pub local_as: u32,
    pub hold_time: Option<u16>,
    pub neighbors: Vec<Neighbor>,
}

/// Everything that is written.
#[derive(Clone, Debug, Default)]
pub(crate) struct Out {
    pub router_id: Option<Ipv4Addr>,
    pub drain_file: Option<String>,
    /// keepalived's `SSL { certificate; key }`: the client certificate of SSL_GET checks.
    pub ssl_client: Option<(String, String)>,
    /// `[global.ipvs_timeouts]` in seconds: tcp, tcp_fin, udp.
    pub ipvs_timeouts: Option<(u64, u64, u64)>,
    pub withdraw_on_stop: bool,
    pub bgp: Option<Bgp>,
    pub services: Vec<Service>,
    pub omissions: Vec<Omission>,
    /// Behaviour that differs although the keys are translated (written in the header).
    pub differences: Vec<String>,
    /// Source constructs that vipd replaces by its own design (not omissions: the header says
    /// what replaces them).
    pub replaced: Vec<String>,
}

impl Out {
    /// Records an omission once (a group's members share their virtual server's lines).
    pub(crate) fn omit(
        &mut self,
        origin: &Origin,
        what: impl Into<String>,
        why: impl Into<String>,
    ) {
        let o = Omission {
            origin: origin.clone(),
            what: what.into(),
            why: why.into(),
        };
        if !self.omissions.contains(&o) {
            self.omissions.push(o);
        }
    }
}

/// `keyword arg arg` as written, for reports.
pub(crate) fn written(s: &crate::Stmt) -> String {
    if s.args.is_empty() {
        s.keyword.clone()
    } else {
        format!("{} {}", s.keyword, s.args.join(" "))
    }
}

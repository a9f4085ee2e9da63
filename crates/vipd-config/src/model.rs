//! The configuration model, exactly as written in `vipd.toml`.
//!
//! Every struct denies unknown keys: a typo (`hold_tme`) is an error with a location, never a
//! silently ignored setting. Defaults follow the design vipd implements (keepalived + ExaBGP
//! on IPVS `mh` with tunnel forwarding), so a minimal service needs only a VIP, a port and
//! its real servers. Cross-field rules live in `validate.rs`; a value of these types that
//! came out of [`crate::load_str`] has passed them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::http_status::StatusRange;
use crate::types::{Community, Duration, ExtCommunity, LargeCommunity, Percent, Scheduler, Secret};

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Node-wide settings.
    #[serde(default)]
    pub global: Global,
    /// The BGP speaker (directors). Absent: no route is announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<Bgp>,
    /// Named, reusable health checks (`[[check]]`).
    #[serde(default, rename = "check", skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckDef>,
    /// Virtual services (`[[service]]`).
    #[serde(default, rename = "service", skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// The backend (L7 node) role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// The other directors of the tier, compared on the status page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<Fleet>,
}

/// What this node is in the topology.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An L4 director: IPVS + health checks + BGP. Needs at least one `[[service]]`.
    #[default]
    Director,
    /// An L7 node receiving tunnelled traffic. Needs `[backend]`.
    Backend,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[global]`: node-wide settings.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Global {
    /// Director or backend.
    pub role: Role,
    /// BGP identifier and node name in logs; must be IPv4 (RFC 6286 keeps it 4 octets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router_id: Option<Ipv4Addr>,
    /// Touch this file to drain the node; remove it to bring it back. Polled, not watched:
    /// inotify misses changes on some filesystems.
    pub drain_file: PathBuf,
    /// Control socket for `vipd status`, `vipd reload`, ... (mode 0600, root only).
    pub control_socket: PathBuf,
    /// Listen address of the status page (`/`), `/status`, `/events`, `/metrics` and
    /// `/healthcheck` (all read-only), or `"off"` for no HTTP listener. Another address than
    /// loopback shows them to whoever reaches it (the fleet view needs the directors to reach
    /// each other's): firewall it to the management network.
    #[serde(with = "listen_or_off")]
    pub listen: Option<SocketAddr>,
    /// Period of the full IPVS resync that repairs drift made behind vipd's back.
    pub resync_interval: Duration,
    /// Where vipd keeps what must survive restarts (the IPVS services it created, so that a
    /// service removed from the config is deleted while an operator's is left alone).
    pub state_dir: PathBuf,
    /// Log format.
    pub log_format: LogFormat,
    /// IPVS sysctls applied at start in vipd's network namespace (director; refused on a
    /// backend, which does not program IPVS).
    pub sysctl: Sysctl,
    /// IPVS connection timeouts (`ipvsadm --set`). Absent: the kernel's are left alone.
    /// Director only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipvs_timeouts: Option<IpvsTimeouts>,
}

/// `global.listen`: an address, or `"off"` (TOML has no null to say "none").
mod listen_or_off {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(
        v: &Option<SocketAddr>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(a) => s.collect_str(a),
            None => s.serialize_str("off"),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        if text == "off" {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            D::Error::custom(format!(
                "invalid listen address {text:?} (write e.g. \"127.0.0.1:9180\", \"[::1]:9180\" or \"off\")"
            ))
        })
    }
}

/// `[global.ipvs_timeouts]`: how long IPVS keeps idle connection entries.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IpvsTimeouts {
    /// Established TCP connections (kernel default 15m).
    pub tcp: Duration,
    /// TCP connections after a FIN (kernel default 2m).
    pub tcp_fin: Duration,
    /// UDP "connections" (kernel default 5m).
    pub udp: Duration,
}

impl Default for Global {
    fn default() -> Self {
        Self {
            role: Role::Director,
            router_id: None,
            drain_file: PathBuf::from("/etc/lb/disable"),
            control_socket: PathBuf::from("/run/vipd/vipd.sock"),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9180))),
            resync_interval: Duration::from_secs(30),
            state_dir: PathBuf::from("/var/lib/vipd"),
            log_format: LogFormat::Human,
            sysctl: Sysctl::default(),
            ipvs_timeouts: None,
        }
    }
}

/// `[global.sysctl]`: values written to `/proc/sys/net/ipv4/vs/<name>` (names as the kernel
/// spells them). The defaults are the design's: route non-SYN packets of flows another
/// director started, and never reroute a connection when its destination goes away.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sysctl {
    /// `net.ipv4.vs.sloppy_tcp` (0 or 1).
    pub sloppy_tcp: u32,
    /// `net.ipv4.vs.expire_nodest_conn` (0 or 1).
    pub expire_nodest_conn: u32,
    /// `net.ipv4.vs.expire_quiescent_template` (0 or 1).
    pub expire_quiescent_template: u32,
    /// `net.ipv4.vs.pmtu_disc` (0 or 1); 0 lets tunnelled packets fragment. Unset: untouched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pmtu_disc: Option<u32>,
    /// `net.ipv4.vs.conn_reuse_mode` (0 to 2). Unset: untouched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn_reuse_mode: Option<u32>,
    /// `net.ipv4.vs.schedule_icmp` (0 or 1). Unset: untouched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_icmp: Option<u32>,
    /// `net.ipv4.vs.ignore_tunneled` (0 or 1). Unset: untouched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_tunneled: Option<u32>,
}

impl Default for Sysctl {
    fn default() -> Self {
        Self {
            sloppy_tcp: 1,
            expire_nodest_conn: 0,
            expire_quiescent_template: 0,
            pmtu_disc: None,
            conn_reuse_mode: None,
            schedule_icmp: None,
            ignore_tunneled: None,
        }
    }
}

impl Sysctl {
    /// The settings to apply, as `(kernel name, value, largest allowed value)`.
    pub fn entries(&self) -> Vec<(&'static str, u32, u32)> {
        let mut v = vec![
            ("sloppy_tcp", self.sloppy_tcp, 1),
            ("expire_nodest_conn", self.expire_nodest_conn, 1),
            (
                "expire_quiescent_template",
                self.expire_quiescent_template,
                1,
            ),
        ];
        let opt = [
            ("pmtu_disc", self.pmtu_disc, 1),
            ("conn_reuse_mode", self.conn_reuse_mode, 2),
            ("schedule_icmp", self.schedule_icmp, 1),
            ("ignore_tunneled", self.ignore_tunneled, 1),
        ];
        v.extend(
            opt.into_iter()
                .filter_map(|(n, val, max)| val.map(|x| (n, x, max))),
        );
        v
    }
}

/// `[bgp]`: the built-in BGP speaker.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bgp {
    /// Local AS number (4-octet ASNs welcome).
    pub local_as: u32,
    /// BGP identifier; defaults to `global.router_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<Ipv4Addr>,
    /// Proposed hold time in seconds: 0 (no keepalives) or 3..=65535.
    #[serde(default = "default_hold_time")]
    pub hold_time: u16,
    /// Keepalive interval in seconds; defaults to hold_time / 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<u16>,
    /// First connect-retry delay in seconds (later ones back off exponentially, jittered).
    #[serde(default = "default_connect_retry")]
    pub connect_retry: u16,
    /// Where passive neighbors connect (used only when one is passive). Port 179 needs
    /// CAP_NET_BIND_SERVICE.
    #[serde(default = "default_bgp_listen")]
    pub listen: SocketAddr,
    /// Graceful restart (RFC 4724) as the restarting speaker.
    #[serde(default)]
    pub graceful_restart: GracefulRestart,
    /// On stop (SIGTERM), withdraw every route and close the sessions with a Cease, like
    /// keepalived's `omega`, instead of leaving the routes to graceful restart. For a node
    /// being retired; a restart or upgrade keeps flows better with the default `false`.
    #[serde(default)]
    pub withdraw_on_stop: bool,
    /// BFD with the routers, for every neighbor (a neighbor's own `bfd` overrides keys).
    #[serde(default)]
    pub bfd: Bfd,
    /// The routers to peer with (`[[bgp.neighbor]]`).
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<Neighbor>,
}

fn default_bgp_listen() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::UNSPECIFIED, 179))
}
fn default_hold_time() -> u16 {
    90
}
fn default_connect_retry() -> u16 {
    5
}

impl Bgp {
    /// The keepalive interval actually used.
    pub fn effective_keepalive(&self) -> u16 {
        self.keepalive.unwrap_or(self.hold_time / 3)
    }
}

/// `[bgp.graceful_restart]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GracefulRestart {
    /// Advertise the capability and keep forwarding across restarts.
    pub enabled: bool,
    /// Seconds the routers keep our routes while we restart (0..=4095, a 12-bit field).
    pub restart_time: u16,
}

impl Default for GracefulRestart {
    fn default() -> Self {
        Self {
            enabled: true,
            restart_time: 120,
        }
    }
}

/// `[bgp.bfd]`: BFD (RFC 5880) with the routers. With it, a dead director leaves the
/// routers' ECMP groups within the detection time (300 ms by default) instead of the BGP
/// hold time. Routes are announced to a neighbor only while its BFD session is Up, and BFD
/// going Down (not AdminDown) closes that BGP session. Single hop (RFC 5881, UDP 3784, TTL
/// 255) unless the neighbor's `multihop` is above 1 (RFC 5883, UDP 4784). The routers must
/// run BFD too (docs/OPERATIONS.md).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bfd {
    /// Run BFD with the routers.
    pub enabled: bool,
    /// Desired minimum interval between the packets vipd sends (10 ms to 60 s).
    pub min_tx: Duration,
    /// Required minimum interval between the packets vipd receives (10 ms to 60 s).
    pub min_rx: Duration,
    /// A router is declared down after this many intervals without a packet (1 to 255).
    pub multiplier: u8,
}

impl Default for Bfd {
    fn default() -> Self {
        Self {
            enabled: false,
            min_tx: Duration::from_millis(100),
            min_rx: Duration::from_millis(100),
            multiplier: 3,
        }
    }
}

/// `[bgp.neighbor.bfd]`: one router's BFD; unset keys come from `[bgp.bfd]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NeighborBfd {
    /// Run BFD with this router.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Desired minimum transmit interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tx: Option<Duration>,
    /// Required minimum receive interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_rx: Option<Duration>,
    /// Detection multiplier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<u8>,
}

/// An address family carried on a BGP session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 unicast.
    Ipv4,
    /// IPv6 unicast.
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(a: IpAddr) -> Family {
        if a.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }
}

/// `[[bgp.neighbor]]`: one router.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Neighbor {
    /// The router's address (IPv4 or IPv6).
    pub address: IpAddr,
    /// The router's AS; equal to `bgp.local_as` makes an iBGP session.
    pub remote_as: u32,
    /// TCP port of the router.
    #[serde(default = "default_bgp_port")]
    pub port: u16,
    /// Source address of the session (and default next hop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address: Option<IpAddr>,
    /// TCP MD5 signature key (RFC 2385), at most 80 bytes. Never logged or shown. A
    /// configuration holding it that every user can read gets a warning at load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// File holding the TCP MD5 key instead: its first line, read at load and at each
    /// reload (a warning when every user can read it). Not with `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// GTSM (RFC 5082): send with TTL 255 and accept only TTL 255 (directly connected).
    #[serde(default)]
    pub ttl_security: bool,
    /// eBGP multihop: TTL of outgoing packets (1..=255). Unset: 1 for eBGP, 64 for iBGP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multihop: Option<u8>,
    /// Wait for the router to connect instead of connecting.
    #[serde(default)]
    pub passive: bool,
    /// Families to negotiate; defaults to the family of `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub families: Option<Vec<Family>>,
    /// Next hop for IPv4 routes on this session (needed on an IPv6 session carrying IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_next_hop: Option<Ipv4Addr>,
    /// Next hop for IPv6 routes on this session (needed on an IPv4 session carrying IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_next_hop: Option<Ipv6Addr>,
    /// Free text shown in `vipd status` and in the neighbor's log lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// BFD with this router; unset keys come from `[bgp.bfd]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<NeighborBfd>,
}

fn default_bgp_port() -> u16 {
    179
}

impl Neighbor {
    /// This neighbor's BFD settings: its own keys over `[bgp.bfd]`'s.
    pub fn effective_bfd(&self, bgp: &Bfd) -> Bfd {
        let own = self.bfd.clone().unwrap_or_default();
        Bfd {
            enabled: own.enabled.unwrap_or(bgp.enabled),
            min_tx: own.min_tx.unwrap_or(bgp.min_tx),
            min_rx: own.min_rx.unwrap_or(bgp.min_rx),
            multiplier: own.multiplier.unwrap_or(bgp.multiplier),
        }
    }

    /// The hop limit of a multihop BFD session (RFC 5883) with this neighbor: its
    /// `multihop` when above 1; None for a single-hop session.
    pub fn bfd_multihop(&self) -> Option<u8> {
        self.multihop.filter(|h| *h > 1)
    }

    /// The families actually negotiated.
    pub fn effective_families(&self) -> Vec<Family> {
        self.families
            .clone()
            .unwrap_or_else(|| vec![Family::of(self.address)])
    }
}

/// Kind of a health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// HTTP GET/HEAD, expected status set.
    Http,
    /// HTTP over TLS.
    Https,
    /// TCP connect.
    Tcp,
    /// HAProxy agent-check protocol: one status line from a TCP port.
    Agent,
    /// A command: exit 0 is up.
    Exec,
    /// A local file holding UP/DOWN/MAINT/READY and/or a weight `N%`.
    File,
    /// A DNS query over UDP: up when the answer's rcode is NOERROR (and holds `dns_answer`).
    Dns,
}

impl CheckKind {
    /// The kind's name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Http => "http",
            CheckKind::Https => "https",
            CheckKind::Tcp => "tcp",
            CheckKind::Agent => "agent",
            CheckKind::Exec => "exec",
            CheckKind::File => "file",
            CheckKind::Dns => "dns",
        }
    }
}

/// HTTP method of an HTTP(S) check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET (default).
    #[default]
    Get,
    /// HEAD: no body is read, so `body_regex` is refused with it.
    Head,
}

/// A health check as written: common timing keys plus the keys of its kind.
///
/// Kind-specific keys are optional here and checked against `kind` by validation, which
/// reports a key that does not belong to the kind at its own line (`path` on a `tcp` check).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDef {
    /// Name, referenced from `checks = [...]`. Required in `[[check]]`, optional inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What to run.
    pub kind: CheckKind,
    /// Time between two checks of one target.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Interval used while a rise/fall transition is pending. Unset: `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_interval: Option<Duration>,
    /// Total time allowed for one check.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Time allowed for the TCP connect alone. Unset: `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Consecutive passes to go up.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures to go down.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Random spread of each interval, as a share of it (at most 50%).
    #[serde(default = "default_jitter")]
    pub jitter: Percent,
    /// Source address of probes. Unset: chosen by the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<IpAddr>,
    /// Port to probe. Unset: the real server's port (required for `agent`, and for the
    /// network checks a backend runs itself, on 127.0.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Flap damping: hold a flapping server down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damping: Option<Damping>,
    /// The path the probe takes (http, https, tcp on a director): `"direct"` to the real
    /// server's address, or `"tunnel"`: to the VIP and port, encapsulated by IPVS to this one
    /// real server exactly as its traffic is (a per-server firewall-mark service and
    /// `SO_MARK`), the reply coming back directly: the check fails when the real server
    /// cannot receive the VIP's traffic (tunnel device or VIP gone, strict rp_filter, a
    /// daemon bound to its own address only).
    #[serde(default, skip_serializing_if = "Via::is_direct")]
    pub via: Via,

    /// http/https: request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// http/https: GET or HEAD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// http/https: statuses counted as up: numbers and ranges, `[200, "300-302"]`. Unset:
    /// any 2xx (`["200-299"]`, keepalived's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<Vec<StatusRange>>,
    /// http/https: Host header. The probe still connects to the real server's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// http/https: regex the body must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_regex: Option<String>,
    /// http/https: the check passes when `body_regex` does NOT match (keepalived's
    /// `regex_no_match`: e.g. an error page's text).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub body_regex_no_match: bool,
    /// http/https: extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// https: verify the certificate chain and name. Unset: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    /// https: PEM file of the CAs to verify the server with, instead of the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// https: PEM file of a client certificate (chain) to present; with `tls_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// https: PEM file of the client certificate's private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// https: TLS server name. Unset: `host`, else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// exec: absolute path of the program; it and every directory above it must be owned by
    /// root and not writable by others, or the check fails ("refused"). It runs with no
    /// capability, PATH and `VIPD_RS_ADDRESS` / `VIPD_RS_PORT` / `VIPD_CHECK_PORT` as its
    /// whole environment, and its process group is killed when it exits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<PathBuf>,
    /// exec: its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// exec: the exit code sets the weight (keepalived's `misc_dynamic`): 0 up (the weight
    /// stays as last set), 1 down, 2 to 255 up with weight code - 2.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dynamic_weight: bool,
    /// exec: run the program as this user (its uid and primary group, no supplementary
    /// groups); the user must exist when the configuration is loaded. Unset: root, without
    /// capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// dns: the name to ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// dns: the record type (A, AAAA, NS, SOA, MX, TXT, CNAME). Unset: A.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_type: Option<String>,
    /// dns: an address the answer must hold (A/AAAA). Unset: NOERROR is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_answer: Option<IpAddr>,
    /// file: absolute path of the status file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

fn default_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}
fn default_jitter() -> Percent {
    Percent(10)
}

/// `damping = { window = "60s", max_flaps = 4, penalty = "120s" }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Damping {
    /// Window in which state changes are counted.
    pub window: Duration,
    /// More changes than this within `window` is flapping.
    pub max_flaps: u32,
    /// How long a flapping server is held down.
    pub penalty: Duration,
}

/// The check of a kind with its kind's keys and defaults applied: what a probe needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckSpec {
    /// HTTP or HTTPS.
    Http {
        /// TLS on.
        tls: bool,
        /// Method.
        method: HttpMethod,
        /// Path.
        path: String,
        /// Accepted statuses.
        expect_status: Vec<StatusRange>,
        /// Host header.
        host: Option<String>,
        /// Body regex.
        body_regex: Option<String>,
        /// Pass when the body regex does not match.
        body_regex_no_match: bool,
        /// Extra headers.
        headers: BTreeMap<String, String>,
        /// Verify certificates.
        tls_verify: bool,
        /// CAs to verify with instead of the system's.
        tls_ca: Option<PathBuf>,
        /// Client certificate and key.
        tls_client: Option<(PathBuf, PathBuf)>,
        /// SNI.
        sni: Option<String>,
    },
    /// TCP connect.
    Tcp,
    /// HAProxy agent-check.
    Agent,
    /// A command.
    Exec {
        /// Program.
        command: PathBuf,
        /// Arguments.
        args: Vec<String>,
        /// User to run it as.
        user: Option<String>,
        /// The exit code sets the weight.
        dynamic_weight: bool,
    },
    /// A status file.
    File {
        /// Path.
        file: PathBuf,
    },
    /// A DNS query.
    Dns {
        /// Name asked for.
        name: String,
        /// Record type, by name (validated).
        qtype: String,
        /// An address the answer must hold.
        answer: Option<IpAddr>,
    },
}

impl CheckDef {
    /// The kind-specific part with defaults applied. Meaningful on a validated config, where
    /// the keys required by the kind are present.
    pub fn spec(&self) -> CheckSpec {
        match self.kind {
            CheckKind::Http | CheckKind::Https => CheckSpec::Http {
                tls: self.kind == CheckKind::Https,
                method: self.method.unwrap_or_default(),
                path: self.path.clone().unwrap_or_else(|| "/".to_string()),
                expect_status: self
                    .expect_status
                    .clone()
                    .unwrap_or_else(|| vec![StatusRange::ANY_2XX]),
                host: self.host.clone(),
                body_regex: self.body_regex.clone(),
                body_regex_no_match: self.body_regex_no_match,
                headers: self.headers.clone().unwrap_or_default(),
                tls_verify: self.tls_verify.unwrap_or(true),
                tls_ca: self.tls_ca.clone(),
                tls_client: self.tls_cert.clone().zip(self.tls_key.clone()),
                sni: self.sni.clone().or_else(|| self.host.clone()),
            },
            CheckKind::Tcp => CheckSpec::Tcp,
            CheckKind::Agent => CheckSpec::Agent,
            CheckKind::Exec => CheckSpec::Exec {
                command: self.command.clone().unwrap_or_default(),
                args: self.args.clone().unwrap_or_default(),
                user: self.user.clone(),
                dynamic_weight: self.dynamic_weight,
            },
            CheckKind::Dns => CheckSpec::Dns {
                name: self.dns_name.clone().unwrap_or_default(),
                qtype: self.dns_type.clone().unwrap_or_else(|| "A".to_string()),
                answer: self.dns_answer,
            },
            CheckKind::File => CheckSpec::File {
                file: self.file.clone().unwrap_or_default(),
            },
        }
    }

    /// The connect timeout actually used.
    pub fn effective_connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(self.timeout)
    }
}

/// Transport protocol of a virtual service.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// IPVS forwarding method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    /// IP-in-IP (or GUE/GRE) encapsulation: direct server return across routed networks.
    #[default]
    Tunnel,
    /// Direct routing: MAC rewrite, real servers on the same L2 segment.
    Dr,
    /// Masquerading: replies come back through the director.
    Nat,
}

/// Encapsulation of `tunnel` forwarding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelType {
    /// IPIP / ip6ip6 (the kernel picks by the real server's family).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation; needs `tunnel_port`.
    Gue,
    /// GRE.
    Gre,
}

/// Checksums of GUE or GRE encapsulation (IPVS's tunnel flags; `ipvsadm --tun-nocsum`,
/// `--tun-csum`, `--tun-remcsum`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelChecksum {
    /// No checksum in the outer header.
    #[default]
    None,
    /// A checksum in the outer UDP header (GUE). Refused with GRE: the checksummed GRE
    /// IPVS sends is dropped by Linux's GRE receive path (measured on 6.1).
    Csum,
    /// GUE remote checksum offload (the inner checksum completed by the receiver), as
    /// `ipvsadm --tun-remcsum` sets it; GUE only.
    Remcsum,
}

/// The path of a check's probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// To the real server's own address.
    #[default]
    Direct,
    /// To the VIP, through IPVS's encapsulation to this one real server.
    Tunnel,
}

impl Via {
    /// The default (for `skip_serializing_if`).
    pub fn is_direct(&self) -> bool {
        *self == Via::Direct
    }
}

/// What happens to a real server that fails its checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Weight 0: no new flows, established ones continue (keepalived's `inhibit_on_failure`).
    #[default]
    Inhibit,
    /// Delete the destination from IPVS.
    Remove,
}

/// `[[service]]`: one IPVS virtual service and the VIP announced for it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Unique name used in logs, status and metrics.
    pub name: String,
    /// Virtual IP (IPv4 or IPv6).
    pub vip: IpAddr,
    /// Virtual port (1..=65535). Not with `fwmark`.
    #[serde(default)]
    pub port: u16,
    /// A firewall-mark service instead of one port (port ranges, several ports): IPVS takes
    /// the packets that carry this mark (set by a rule of the operator's, e.g. `tc ... flower
    /// dst_ip VIP dst_port 8000-8099 action skbedit mark 7` or nftables `meta mark set 7`).
    /// The VIP is still what is announced. Real servers keep the packets' ports (no `port`,
    /// except with NAT), and checks name theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// tcp or udp.
    #[serde(default)]
    pub protocol: Protocol,
    /// IPVS scheduler. `mh` (Maglev) is what keeps directors consistent.
    #[serde(default)]
    pub scheduler: Scheduler,
    /// mh: hash the source port too (the design's `sh-port`). Default: on with `mh`; refused
    /// with other schedulers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh_port: Option<bool>,
    /// mh: pick another destination (deterministically: the same on every director) when
    /// the chosen one has weight 0. Default: on with `mh`. Off, the kernel drops new
    /// connections hashed to a drained or inhibited server (its slots stay in the table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh_fallback: Option<bool>,
    /// tunnel, dr or nat.
    #[serde(default)]
    pub forwarding: Forwarding,
    /// Encapsulation of tunnel forwarding.
    #[serde(default)]
    pub tunnel_type: TunnelType,
    /// UDP port of GUE encapsulation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_port: Option<u16>,
    /// Outer checksum of GUE or GRE encapsulation: `"none"`, `"csum"` (GUE only: Linux's GRE
    /// receiver drops IPVS's checksummed GRE) or `"remcsum"` (GUE only). Refused with IPIP,
    /// which has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_checksum: Option<TunnelChecksum>,
    /// The VIP is announced when the sum of healthy real server weights reaches this.
    #[serde(default = "default_quorum")]
    pub quorum: u32,
    /// Quorum goes up at `quorum + hysteresis` and down below `quorum - hysteresis`.
    #[serde(default)]
    pub hysteresis: u32,
    /// Real servers start down until their first passing checks (keepalived's `alpha`).
    #[serde(default = "default_true")]
    pub alpha: bool,
    /// inhibit (weight 0) or remove.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// When more than this share of real servers is down, keep sending to all of them and
    /// raise a loud event (Envoy's panic mode). Unset: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic_threshold: Option<Percent>,
    /// IPVS persistence (`ipvsadm -p`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    /// Checks of every real server that does not list its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// How the VIP is announced.
    #[serde(default)]
    pub announce: Announce,
    /// Programs run on this service's transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    /// Put in IPVS (weight 1) while no real server has weight (all down or drained), taken
    /// out when one returns (keepalived's `sorry_server`). Useful where the VIP stays
    /// announced without quorum: `announce.enabled = false`, `[announce.down]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryServer>,
    /// Real servers (`[[service.real_server]]`).
    #[serde(default, rename = "real_server")]
    pub real_servers: Vec<RealServer>,
}

fn default_true() -> bool {
    true
}
fn default_quorum() -> u32 {
    1
}

impl Service {
    /// A real server's port: its own, else the service's.
    pub fn port_of(&self, r: &RealServer) -> u16 {
        r.port.unwrap_or(self.port)
    }

    /// Whether the mh port flag is on (explicit, or by default with `mh`).
    pub fn mh_port(&self) -> bool {
        self.mh_port.unwrap_or(self.scheduler == Scheduler::Mh)
    }

    /// Whether the mh fallback flag is on (explicit, or by default with `mh`).
    pub fn mh_fallback(&self) -> bool {
        self.mh_fallback.unwrap_or(self.scheduler == Scheduler::Mh)
    }

    /// Sum of configured weights.
    pub fn total_weight(&self) -> u64 {
        self.real_servers.iter().map(|r| u64::from(r.weight)).sum()
    }
}

/// `[service.hooks]`: programs run on the service's transitions (keepalived's `notify_up`,
/// `notify_down`, `quorum_up`, `quorum_down`). Each is `["/absolute/program", "arg", ...]`,
/// run without a shell, as root, with PATH and `VIPD_EVENT`, `VIPD_SERVICE`, `VIPD_VIP`,
/// `VIPD_PORT`, `VIPD_PROTOCOL`, `VIPD_REASON` and, per event, `VIPD_RS_ADDRESS`,
/// `VIPD_RS_PORT`, `VIPD_RS_WEIGHT` or `VIPD_HEALTHY_WEIGHT`, `VIPD_QUORUM` as its whole
/// environment. They never delay a decision: the routes and IPVS change first, hooks run
/// after, one at a time per service (quorum) or real server, in order; one still running
/// after `timeout` is killed with its process group. A program someone other than root can
/// change is refused when it runs, as for exec checks.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// A real server comes into service (not on a weight change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_server_up: Option<Vec<String>>,
    /// A real server goes out of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_server_down: Option<Vec<String>>,
    /// The service reaches its quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_up: Option<Vec<String>>,
    /// The service loses its quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_down: Option<Vec<String>>,
    /// How long a hook may run before it is killed.
    #[serde(default = "default_hook_timeout")]
    pub timeout: Duration,
}

fn default_hook_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `sorry_server = { address = "...", port = ... }`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SorryServer {
    /// Address (forwarded to as the real servers are).
    pub address: IpAddr,
    /// Port. Unset: the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `[service.persistence]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Persistence {
    /// How long a client stays on its real server after its last connection.
    pub timeout: Duration,
    /// Prefix length grouping clients (IPv4 up to 32, IPv6 up to 128). Unset: host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<u8>,
}

/// `[service.announce]`: attributes of the VIP's route.
///
/// Every director of a VIP must announce identical attributes or the routers will not build
/// an ECMP route: keep these equal across directors.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Announce {
    /// Announce this VIP at all.
    pub enabled: bool,
    /// Standard communities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    /// Large communities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub large_communities: Vec<LargeCommunity>,
    /// MED while serving. Unset: no MED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    /// MED while draining (with `graceful_shutdown`). Unset: as `med`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drained_med: Option<u32>,
    /// LOCAL_PREF (iBGP sessions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// On drain, first re-announce with GRACEFUL_SHUTDOWN (65535:0, RFC 8326).
    pub graceful_shutdown: bool,
    /// Time between the graceful-shutdown re-announce and the withdrawal. Unset: 30s. Needs
    /// `graceful_shutdown` (without it a drain withdraws at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_delay: Option<Duration>,
    /// Extended communities (route target / route origin), e.g. `"rt:65000:100"`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extended_communities: Vec<ExtCommunity>,
    /// Prepend the local AS this many extra times (0..=10) on eBGP sessions: routers prefer
    /// the directors with the shorter path. Refused with iBGP neighbors (they would drop a
    /// path holding their own AS).
    #[serde(skip_serializing_if = "is_zero")]
    pub prepend: u8,
    /// A drain file of this VIP alone, besides `global.drain_file`: while it exists the VIP
    /// drains (GRACEFUL_SHUTDOWN, then withdrawal) and the node's other VIPs stay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_file: Option<PathBuf>,
    /// Attributes while draining; unset keys are the serving ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drained: Option<StateAttrs>,
    /// Keep announcing when the quorum is lost, with these attributes (ExaBGP's down metric:
    /// a worse MED leaves the traffic to directors that serve). Unset: withdraw on quorum loss.
    /// Use it only where other directors announce the VIP with a better MED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down: Option<StateAttrs>,
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

/// `[service.announce.drained]`: the route's attributes while draining; `[service.announce.down]`
/// takes the same keys for the down state. Unset keys keep the serving value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateAttrs {
    /// MED in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    /// Standard communities in this state (replacing the serving ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<Vec<Community>>,
    /// Large communities in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_communities: Option<Vec<LargeCommunity>>,
    /// Extended communities in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_communities: Option<Vec<ExtCommunity>>,
    /// Extra prepends of the local AS in this state (eBGP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepend: Option<u8>,
}

impl Default for Announce {
    fn default() -> Self {
        Self {
            enabled: true,
            communities: Vec::new(),
            large_communities: Vec::new(),
            med: None,
            drained_med: None,
            local_pref: None,
            graceful_shutdown: true,
            drain_delay: None,
            extended_communities: Vec::new(),
            prepend: 0,
            drain_file: None,
            drained: None,
            down: None,
        }
    }
}

impl Announce {
    /// Time between the graceful-shutdown re-announce and the withdrawal.
    pub fn drain_delay(&self) -> std::time::Duration {
        self.drain_delay
            .map_or(std::time::Duration::from_secs(30), |d| d.get())
    }
}

/// `[[service.real_server]]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RealServer {
    /// Address (may differ in family from the VIP with tunnel forwarding).
    pub address: IpAddr,
    /// Port. Unset: the service's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// IPVS weight (0..=65535); 0 keeps it configured but sends it nothing.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Named checks. Unset: the service's `checks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<String>>,
    /// Inline checks (`[[service.real_server.check]]`), in addition to the named ones.
    #[serde(default, rename = "check", skip_serializing_if = "Vec::is_empty")]
    pub inline_checks: Vec<CheckDef>,
}

fn default_weight() -> u32 {
    1
}

/// Largest IPVS weight vipd accepts (as ipvsadm and keepalived do).
pub const MAX_WEIGHT: u32 = 65535;

/// Tunnel device mode on a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelMode {
    /// IPv4 in IPv4 (`ip link add NAME type ipip`): IPVS's `ipip` (and `gue` with
    /// `gue_port`) to an IPv4 real server.
    Ipip,
    /// IPv6 (or IPv4) in IPv6 (`ip link add NAME type ip6tnl mode ip6ip6`, or `mode any` when
    /// the device has an IPv4 VIP): IPVS's `ipip` (and `gue` with `gue_port`) to an IPv6 real
    /// server.
    Ip6ip6,
    /// GRE over IPv4 (`ip link add NAME type gre`), either inner family: IPVS's `gre` to an
    /// IPv4 real server.
    Gre,
    /// GRE over IPv6 (`ip link add NAME type ip6gre`), either inner family: IPVS's `gre` to
    /// an IPv6 real server.
    Ip6gre,
}

impl TunnelMode {
    /// Whether the outer header is IPv4.
    pub fn outer_v4(self) -> bool {
        matches!(self, Self::Ipip | Self::Gre)
    }

    /// The kernel's catch-all device of this mode (created with the module in every
    /// namespace, receiving from and on any address).
    pub fn catch_all(self) -> &'static str {
        match self {
            Self::Ipip => "tunl0",
            Self::Ip6ip6 => "ip6tnl0",
            Self::Gre => "gre0",
            Self::Ip6gre => "ip6gre0",
        }
    }

    /// The mode's name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipip => "ipip",
            Self::Ip6ip6 => "ip6ip6",
            Self::Gre => "gre",
            Self::Ip6gre => "ip6gre",
        }
    }
}

/// `[backend]`: the L7 node role.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// Tunnel devices to create and keep (`[[backend.tunnel]]`).
    #[serde(default, rename = "tunnel")]
    pub tunnels: Vec<BackendTunnel>,
    /// VIPs to put on `lo` for `dr` forwarding (sets arp_ignore=1 / arp_announce=2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loopback_vips: Vec<IpAddr>,
    /// Accept encapsulated packets (IPv4 or IPv6 inside IPv4 or IPv6, GRE, and GUE on the
    /// tunnels' `gue_port`s) only from these directors (nftables); other GRE or 6in4 tunnels
    /// to this node from elsewhere are dropped too. Empty: from any source, which is what the design's footnote calls
    /// unsafe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_directors: Vec<IpAddr>,
    /// HAProxy agent-check listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentListener>,
}

/// `[[backend.tunnel]]`: one tunnel device and the VIPs it receives.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendTunnel {
    /// Device name (at most 15 bytes).
    pub name: String,
    /// ipip, ip6ip6, gre or ip6gre.
    pub mode: TunnelMode,
    /// Local endpoint. Unset only on the kernel's catch-all devices `tunl0` (ipip),
    /// `ip6tnl0` (ip6ip6), `gre0` (gre) and `ip6gre0` (ip6gre), which receive on every
    /// address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<IpAddr>,
    /// VIPs put on the device (as /32 or /128).
    pub vips: Vec<IpAddr>,
    /// Also receive this device's encapsulation inside GUE on this UDP port (the directors'
    /// `tunnel_port`): vipd adds the kernel's FOU listener (`ip fou add port P gue`, `-6` on
    /// an ip6ip6 device), which hands the inner packet to this device. ipip and ip6ip6 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gue_port: Option<u16>,
}

/// `[backend.agent]`: answers directors' agent checks.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentListener {
    /// Listen address.
    #[serde(default = "default_agent_listen")]
    pub listen: SocketAddr,
    /// File holding the state to report (`UP`, `MAINT`, `75%`, ...).
    #[serde(default = "default_agent_state_file")]
    pub state_file: PathBuf,
    /// Local checks (names of `[[check]]`) that must pass for the agent to report up. They
    /// probe 127.0.0.1 on their `port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// Directors allowed to connect (their source addresses); others are closed without an
    /// answer. Empty: anyone (firewall the port then).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_directors: Vec<IpAddr>,
}

fn default_agent_listen() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::UNSPECIFIED, 5555))
}
fn default_agent_state_file() -> PathBuf {
    PathBuf::from("/etc/lb/agent-check")
}

/// Schedulers the kernel ships (`net/netfilter/ipvs/ip_vs_*.c`).
pub const KNOWN_SCHEDULERS: &[&str] = &[
    "mh", "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "twos",
];

/// `[fleet]`: the other directors of this tier. vipd fetches their status (`/status` on
/// their `global.listen`) every `interval` and its status page shows, per service, each
/// director's route state, healthy weight and table digest, flagging disagreement.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// The other directors' status URLs: `http://ADDRESS:PORT` of their `global.listen`
    /// (this director is always part of the view and is not listed).
    pub peers: Vec<String>,
    /// How often the peers are fetched.
    #[serde(default = "default_fleet_interval")]
    pub interval: Duration,
    /// Deadline of one fetch (connect, request and answer); a peer that misses it is shown
    /// as unreachable. Shorter than `interval`.
    #[serde(default = "default_fleet_timeout")]
    pub timeout: Duration,
}

fn default_fleet_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_fleet_timeout() -> Duration {
    Duration::from_secs(2)
}

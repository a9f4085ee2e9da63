//! Typed IPVS objects: what a service and a destination *are*, independent of the wire.
//!
//! [`Service`] and [`Dest`] convert to and from attribute lists. Decoding checks that what
//! identifies an object is present and well formed, and names what is missing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::DecodeError;

use crate::attr::{DestAttr, Flags, Nested, StatsAttr, SvcAttr};
use crate::constants::*;

/// IP protocol of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// Another IP protocol number.
    Other(u16),
}

impl Protocol {
    fn number(self) -> u16 {
        match self {
            Protocol::Tcp => IPPROTO_TCP,
            Protocol::Udp => IPPROTO_UDP,
            Protocol::Sctp => IPPROTO_SCTP,
            Protocol::Other(n) => n,
        }
    }
    fn from_number(n: u16) -> Self {
        match n {
            IPPROTO_TCP => Protocol::Tcp,
            IPPROTO_UDP => Protocol::Udp,
            IPPROTO_SCTP => Protocol::Sctp,
            n => Protocol::Other(n),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("TCP"),
            Protocol::Udp => f.write_str("UDP"),
            Protocol::Sctp => f.write_str("SCTP"),
            Protocol::Other(n) => write!(f, "proto {n}"),
        }
    }
}

/// What identifies a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    /// `-t/-u/--sctp-service ADDR:PORT`.
    Addr {
        /// Protocol.
        protocol: Protocol,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
    /// `-f MARK` (vipd never creates these; it reports them as foreign).
    Fwmark {
        /// IPv6 or not.
        v6: bool,
        /// The mark.
        mark: u32,
    },
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr {
                protocol,
                addr: IpAddr::V6(a),
                port,
            } => write!(f, "{protocol} [{a}]:{port}"),
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => write!(f, "{protocol} {addr}:{port}"),
            ServiceKey::Fwmark { v6, mark } => {
                write!(f, "FWM {mark}{}", if *v6 { " IPv6" } else { "" })
            }
        }
    }
}

impl std::str::FromStr for ServiceKey {
    type Err = String;
    /// Parses what `Display` prints: `TCP 198.51.100.1:80`, `UDP [2001:db8::1]:53`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid service {s:?} (expected e.g. \"TCP 198.51.100.1:80\")");
        let (proto, hostport) = s.trim().split_once(' ').ok_or_else(bad)?;
        let protocol = match proto {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            _ => return Err(bad()),
        };
        let sa: std::net::SocketAddr = hostport.parse().map_err(|_| bad())?;
        Ok(ServiceKey::Addr {
            protocol,
            addr: sa.ip(),
            port: sa.port(),
        })
    }
}

impl ServiceKey {
    /// The attributes that identify the service in a request.
    pub fn attrs(&self) -> Vec<SvcAttr> {
        match *self {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => vec![
                SvcAttr::Af(af(addr)),
                SvcAttr::Protocol(protocol.number()),
                SvcAttr::Addr(addr_bytes(addr)),
                SvcAttr::Port(port),
            ],
            ServiceKey::Fwmark { v6, mark } => {
                vec![
                    SvcAttr::Af(if v6 { AF_INET6 } else { AF_INET }),
                    SvcAttr::Fwmark(mark),
                ]
            }
        }
    }
}

fn af(a: IpAddr) -> u16 {
    if a.is_ipv4() { AF_INET } else { AF_INET6 }
}

/// The 16 bytes of `union nf_inet_addr` (IPv4 in the first 4).
fn addr_bytes(a: IpAddr) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    match a {
        IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => b.copy_from_slice(&v6.octets()),
    }
    b
}

fn addr_from(family: u16, b: &[u8], what: &str) -> Result<IpAddr, DecodeError> {
    match (family, b.len()) {
        (AF_INET, n) if n >= 4 => Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        (AF_INET6, 16) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Ok(IpAddr::V6(Ipv6Addr::from(o)))
        }
        (f, n) => Err(DecodeError::from(format!(
            "{what}: {n}-byte address for family {f}"
        ))),
    }
}

/// Counters of a service or destination (from `*_STATS64`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets in.
    pub inpkts: u64,
    /// Packets out.
    pub outpkts: u64,
    /// Bytes in.
    pub inbytes: u64,
    /// Bytes out.
    pub outbytes: u64,
}

impl Stats {
    fn from_attrs(n: &Nested<StatsAttr>) -> Self {
        let mut s = Stats::default();
        for a in &n.attrs {
            if let StatsAttr::Counter { kind, value, .. } = a {
                match *kind {
                    IPVS_STATS_ATTR_CONNS => s.conns = *value,
                    IPVS_STATS_ATTR_INPKTS => s.inpkts = *value,
                    IPVS_STATS_ATTR_OUTPKTS => s.outpkts = *value,
                    IPVS_STATS_ATTR_INBYTES => s.inbytes = *value,
                    IPVS_STATS_ATTR_OUTBYTES => s.outbytes = *value,
                    _ => {}
                }
            }
        }
        s
    }
}

/// A virtual service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Identity.
    pub key: ServiceKey,
    /// Scheduler name (`mh`, `wrr`, ...).
    pub scheduler: String,
    /// IP_VS_SVC_F_* flags (the kernel adds HASHED in dumps).
    pub flags: u32,
    /// Persistence timeout in seconds (0: none).
    pub timeout: u32,
    /// Persistence netmask: IPv4 mask bits in network order, or IPv6 prefix length.
    pub netmask: u32,
    /// Persistence engine.
    pub pe_name: Option<String>,
    /// Counters (dumps only).
    pub stats: Option<Stats>,
}

/// Netmask value meaning "host" for the service's family (`/32` or `/128`).
pub fn host_netmask(v6: bool) -> u32 {
    if v6 { 128 } else { u32::MAX }
}

/// Netmask value for a persistence prefix length of the given family.
pub fn netmask_for(v6: bool, prefix: u8) -> u32 {
    if v6 {
        u32::from(prefix)
    } else {
        let bits = if prefix >= 32 {
            u32::MAX
        } else {
            !(u32::MAX >> prefix)
        };
        u32::from_ne_bytes(bits.to_be_bytes())
    }
}

impl Service {
    /// Flags vipd compares and sets (HASHED is the kernel's own bookkeeping).
    pub const FLAG_MASK: u32 = !IP_VS_SVC_F_HASHED;

    /// A service without flags or persistence.
    pub fn new(key: ServiceKey, scheduler: &str) -> Self {
        let v6 = matches!(
            key,
            ServiceKey::Addr {
                addr: IpAddr::V6(_),
                ..
            } | ServiceKey::Fwmark { v6: true, .. }
        );
        Service {
            key,
            scheduler: scheduler.into(),
            flags: 0,
            timeout: 0,
            netmask: host_netmask(v6),
            pe_name: None,
            stats: None,
        }
    }

    /// Attributes of a NEW/SET_SERVICE request (all four the kernel requires for a full
    /// entry: scheduler, flags, timeout, netmask).
    pub fn attrs(&self) -> Vec<SvcAttr> {
        let mut v = self.key.attrs();
        v.push(SvcAttr::SchedName(
            self.scheduler.clone(),
            self.scheduler.len() + 1,
        ));
        v.push(SvcAttr::Flags(Flags {
            flags: self.flags & Self::FLAG_MASK,
            mask: u32::MAX,
        }));
        v.push(SvcAttr::Timeout(self.timeout));
        v.push(SvcAttr::Netmask(self.netmask));
        if let Some(pe) = &self.pe_name {
            v.push(SvcAttr::PeName(pe.clone(), pe.len() + 1));
        }
        v
    }

    /// Decodes a service from a dump or request.
    pub fn from_attrs(attrs: &[SvcAttr]) -> Result<Self, DecodeError> {
        let (mut family, mut proto, mut addr, mut port, mut mark) = (None, None, None, None, None);
        let mut s = Service {
            key: ServiceKey::Fwmark { v6: false, mark: 0 },
            scheduler: String::new(),
            flags: 0,
            timeout: 0,
            netmask: 0,
            pe_name: None,
            stats: None,
        };
        for a in attrs {
            match a {
                SvcAttr::Af(f) => family = Some(*f),
                SvcAttr::Protocol(p) => proto = Some(*p),
                SvcAttr::Addr(b) => addr = Some(b.clone()),
                SvcAttr::Port(p) => port = Some(*p),
                SvcAttr::Fwmark(m) => mark = Some(*m),
                SvcAttr::SchedName(n, _) => s.scheduler = n.clone(),
                SvcAttr::Flags(f) => s.flags = f.flags,
                SvcAttr::Timeout(t) => s.timeout = *t,
                SvcAttr::Netmask(m) => s.netmask = *m,
                SvcAttr::PeName(n, _) => s.pe_name = Some(n.clone()).filter(|n| !n.is_empty()),
                SvcAttr::Stats64(n) => s.stats = Some(Stats::from_attrs(n)),
                _ => {}
            }
        }
        let family =
            family.ok_or_else(|| DecodeError::from("IPVS service without IPVS_SVC_ATTR_AF"))?;
        s.key = match (mark, proto, addr, port) {
            (Some(mark), _, _, _) if mark != 0 => ServiceKey::Fwmark {
                v6: family == AF_INET6,
                mark,
            },
            (_, Some(p), Some(a), Some(port)) => ServiceKey::Addr {
                protocol: Protocol::from_number(p),
                addr: addr_from(family, &a, "IPVS_SVC_ATTR_ADDR")?,
                port,
            },
            _ => {
                return Err(DecodeError::from(
                    "IPVS service with neither fwmark nor protocol+address+port",
                ));
            }
        };
        Ok(s)
    }
}

/// Forwarding method of a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Forward {
    /// NAT (`-m`).
    Masq,
    /// Local node.
    Local,
    /// Tunnel (`-i`).
    Tunnel,
    /// Direct routing (`-g`).
    Route,
    /// Another value.
    Other(u32),
}

impl Forward {
    fn number(self) -> u32 {
        match self {
            Forward::Masq => IP_VS_CONN_F_MASQ,
            Forward::Local => IP_VS_CONN_F_LOCALNODE,
            Forward::Tunnel => IP_VS_CONN_F_TUNNEL,
            Forward::Route => IP_VS_CONN_F_DROUTE,
            Forward::Other(n) => n,
        }
    }
    fn from_number(n: u32) -> Self {
        match n & 0x7 {
            IP_VS_CONN_F_MASQ => Forward::Masq,
            IP_VS_CONN_F_LOCALNODE => Forward::Local,
            IP_VS_CONN_F_TUNNEL => Forward::Tunnel,
            IP_VS_CONN_F_DROUTE => Forward::Route,
            _ => Forward::Other(n),
        }
    }
}

/// Encapsulation of a tunnel destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelType {
    /// IPIP / ip6ip6.
    Ipip,
    /// GUE, to a UDP port.
    Gue,
    /// GRE.
    Gre,
    /// Another value.
    Other(u8),
}

impl TunnelType {
    fn number(self) -> u8 {
        match self {
            TunnelType::Ipip => IP_VS_CONN_F_TUNNEL_TYPE_IPIP,
            TunnelType::Gue => IP_VS_CONN_F_TUNNEL_TYPE_GUE,
            TunnelType::Gre => IP_VS_CONN_F_TUNNEL_TYPE_GRE,
            TunnelType::Other(n) => n,
        }
    }
    fn from_number(n: u8) -> Self {
        match n {
            IP_VS_CONN_F_TUNNEL_TYPE_IPIP => TunnelType::Ipip,
            IP_VS_CONN_F_TUNNEL_TYPE_GUE => TunnelType::Gue,
            IP_VS_CONN_F_TUNNEL_TYPE_GRE => TunnelType::Gre,
            n => TunnelType::Other(n),
        }
    }
}

/// A destination (real server) of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dest {
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Forwarding method.
    pub forward: Forward,
    /// Weight.
    pub weight: u32,
    /// Upper connection threshold (0: none).
    pub u_thresh: u32,
    /// Lower connection threshold.
    pub l_thresh: u32,
    /// Tunnel encapsulation (tunnel forwarding).
    pub tun_type: TunnelType,
    /// GUE port (0 otherwise).
    pub tun_port: u16,
    /// Tunnel flags.
    pub tun_flags: u16,
    /// Active connections (dumps only).
    pub active_conns: u32,
    /// Inactive connections (dumps only).
    pub inact_conns: u32,
    /// Persistent connections (dumps only).
    pub persist_conns: u32,
    /// Counters (dumps only).
    pub stats: Option<Stats>,
}

impl Dest {
    /// A destination with vipd's usual settings: no thresholds, IPIP if tunnelling.
    pub fn new(addr: IpAddr, port: u16, forward: Forward, weight: u32) -> Self {
        Dest {
            addr,
            port,
            forward,
            weight,
            u_thresh: 0,
            l_thresh: 0,
            tun_type: TunnelType::Ipip,
            tun_port: 0,
            tun_flags: 0,
            active_conns: 0,
            inact_conns: 0,
            persist_conns: 0,
            stats: None,
        }
    }

    /// Identity within a service.
    pub fn key(&self) -> (IpAddr, u16) {
        (self.addr, self.port)
    }

    /// True when the settings vipd manages differ (counters are ignored).
    pub fn differs(&self, other: &Dest) -> bool {
        let tun = |d: &Dest| {
            (d.forward == Forward::Tunnel).then_some((d.tun_type, d.tun_port, d.tun_flags))
        };
        self.forward != other.forward
            || self.weight != other.weight
            || self.u_thresh != other.u_thresh
            || self.l_thresh != other.l_thresh
            || tun(self) != tun(other)
    }

    /// Attributes of a NEW/SET_DEST request (the kernel requires the first six).
    pub fn attrs(&self) -> Vec<DestAttr> {
        let mut v = vec![
            DestAttr::Addr(addr_bytes(self.addr)),
            DestAttr::Port(self.port),
            DestAttr::FwdMethod(self.forward.number()),
            DestAttr::Weight(self.weight),
            DestAttr::UThresh(self.u_thresh),
            DestAttr::LThresh(self.l_thresh),
            DestAttr::AddrFamily(af(self.addr)),
        ];
        if self.forward == Forward::Tunnel {
            v.push(DestAttr::TunType(self.tun_type.number()));
            v.push(DestAttr::TunPort(self.tun_port));
            v.push(DestAttr::TunFlags(self.tun_flags));
        }
        v
    }

    /// Attributes naming the destination in a DEL_DEST request.
    pub fn key_attrs(addr: IpAddr, port: u16) -> Vec<DestAttr> {
        vec![
            DestAttr::Addr(addr_bytes(addr)),
            DestAttr::Port(port),
            DestAttr::AddrFamily(af(addr)),
        ]
    }

    /// Decodes a destination; `svc_family` is used when the kernel omits ADDR_FAMILY.
    pub fn from_attrs(attrs: &[DestAttr], svc_family: u16) -> Result<Self, DecodeError> {
        let mut d = Dest::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, Forward::Masq, 0);
        let (mut family, mut addr, mut port) = (svc_family, None, None);
        for a in attrs {
            match a {
                DestAttr::Addr(b) => addr = Some(b.clone()),
                DestAttr::Port(p) => port = Some(*p),
                DestAttr::FwdMethod(m) => d.forward = Forward::from_number(*m),
                DestAttr::Weight(w) => d.weight = *w,
                DestAttr::UThresh(t) => d.u_thresh = *t,
                DestAttr::LThresh(t) => d.l_thresh = *t,
                DestAttr::ActiveConns(n) => d.active_conns = *n,
                DestAttr::InactConns(n) => d.inact_conns = *n,
                DestAttr::PersistConns(n) => d.persist_conns = *n,
                DestAttr::AddrFamily(f) => family = *f,
                DestAttr::Stats64(n) => d.stats = Some(Stats::from_attrs(n)),
                DestAttr::TunType(t) => d.tun_type = TunnelType::from_number(*t),
                DestAttr::TunPort(p) => d.tun_port = *p,
                DestAttr::TunFlags(f) => d.tun_flags = *f,
                _ => {}
            }
        }
        let addr =
            addr.ok_or_else(|| DecodeError::from("IPVS destination without IPVS_DEST_ATTR_ADDR"))?;
        d.addr = addr_from(family, &addr, "IPVS_DEST_ATTR_ADDR")?;
        d.port =
            port.ok_or_else(|| DecodeError::from("IPVS destination without IPVS_DEST_ATTR_PORT"))?;
        Ok(d)
    }
}

/// Address family number of a service key (for decoding its destinations).
pub fn family_of(key: &ServiceKey) -> u16 {
    match key {
        ServiceKey::Addr { addr, .. } => af(*addr),
        ServiceKey::Fwmark { v6, .. } => {
            if *v6 {
                AF_INET6
            } else {
                AF_INET
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_keys_parse_what_they_print() {
        for s in ["TCP 198.51.100.1:80", "UDP [2001:db8::1]:53"] {
            assert_eq!(s.parse::<ServiceKey>().unwrap().to_string(), s);
        }
        assert!("FWM 3".parse::<ServiceKey>().is_err());
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_for(false, 32), u32::MAX);
        assert_eq!(netmask_for(false, 24).to_ne_bytes(), [255, 255, 255, 0]);
        assert_eq!(netmask_for(true, 64), 64);
        assert_eq!(host_netmask(true), 128);
    }

    #[test]
    fn service_round_trips_through_attrs() {
        let mut s = Service::new(
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                addr: "2001:db8::1".parse().unwrap(),
                port: 80,
            },
            "mh",
        );
        s.flags = IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_SCHED2;
        assert_eq!(Service::from_attrs(&s.attrs()).unwrap(), s);
    }

    #[test]
    fn dest_round_trips_and_differs() {
        let d = Dest::new("192.0.2.10".parse().unwrap(), 80, Forward::Tunnel, 3);
        let back = Dest::from_attrs(&d.attrs(), AF_INET6).unwrap();
        assert_eq!(back, d);
        let mut w = d.clone();
        w.weight = 0;
        assert!(w.differs(&d));
        let mut c = d.clone();
        c.active_conns = 9;
        assert!(!c.differs(&d), "counters are not settings");
    }

    #[test]
    fn missing_identity_is_a_clear_error() {
        let e = Service::from_attrs(&[SvcAttr::Protocol(6)]).unwrap_err();
        assert!(e.to_string().contains("IPVS_SVC_ATTR_AF"), "{e}");
        let e = Dest::from_attrs(&[DestAttr::Port(80)], AF_INET).unwrap_err();
        assert!(e.to_string().contains("IPVS_DEST_ATTR_ADDR"), "{e}");
    }
}

//! From the configuration and the health of each real server to [`DesiredService`]s.

use std::net::IpAddr;

use vipd_config::{
    Forwarding, OnFailure, Persistence, Service as SvcConfig, TunnelChecksum,
    TunnelType as CfgTunnel,
};
use vipd_ipvs::constants::{IP_VS_SVC_F_PERSISTENT, IP_VS_SVC_F_SCHED1, IP_VS_SVC_F_SCHED2};
use vipd_ipvs::constants::{
    IP_VS_TUNNEL_ENCAP_FLAG_CSUM, IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM, IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM,
};
use vipd_ipvs::model::{host_netmask, netmask_for};
use vipd_ipvs::{Dest, Forward, Protocol, Service, ServiceKey, TunnelType};

use crate::plan::DesiredService;

/// What the health checks say of one real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Up, with this effective weight (the configured one, or an agent's share of it).
    Up(u32),
    /// Down: weight 0 (`inhibit`) or absent (`remove`).
    Down,
}

/// The IPVS identity of a configured service.
pub fn service_key(s: &SvcConfig) -> ServiceKey {
    if let Some(mark) = s.fwmark {
        return ServiceKey::Fwmark {
            v6: s.vip.is_ipv6(),
            mark,
        };
    }
    let protocol = match s.protocol {
        vipd_config::Protocol::Tcp => Protocol::Tcp,
        vipd_config::Protocol::Udp => Protocol::Udp,
    };
    ServiceKey::Addr {
        protocol,
        addr: s.vip,
        port: s.port,
    }
}

/// The IPVS service settings of a configured service.
pub fn service(s: &SvcConfig) -> Service {
    let mut flags = 0;
    if s.mh_fallback() {
        flags |= IP_VS_SVC_F_SCHED1;
    }
    if s.mh_port() && s.scheduler == vipd_config::Scheduler::Mh {
        flags |= IP_VS_SVC_F_SCHED2;
    }
    let v6 = s.vip.is_ipv6();
    let (timeout, netmask) = match &s.persistence {
        Some(Persistence { timeout, netmask }) => {
            flags |= IP_VS_SVC_F_PERSISTENT;
            let secs = u32::try_from(timeout.get().as_secs())
                .unwrap_or(u32::MAX)
                .max(1);
            (
                secs,
                netmask.map_or(host_netmask(v6), |m| netmask_for(v6, m)),
            )
        }
        None => (0, host_netmask(v6)),
    };
    Service {
        key: service_key(s),
        scheduler: s.scheduler.as_str().to_string(),
        flags,
        timeout,
        netmask,
        pe_name: None,
        stats: None,
    }
}

/// The desired state of one service, given the health of its real servers
/// (`health(address, port)`).
pub fn desired(s: &SvcConfig, health: impl Fn(IpAddr, u16) -> Health) -> DesiredService {
    let forward = match s.forwarding {
        Forwarding::Tunnel => Forward::Tunnel,
        Forwarding::Dr => Forward::Route,
        Forwarding::Nat => Forward::Masq,
    };
    let (tun_type, tun_port) = match s.tunnel_type {
        CfgTunnel::Ipip => (TunnelType::Ipip, 0),
        CfgTunnel::Gue => (TunnelType::Gue, s.tunnel_port.unwrap_or(0)),
        CfgTunnel::Gre => (TunnelType::Gre, 0),
    };
    let tun_flags = match s.tunnel_checksum.unwrap_or_default() {
        TunnelChecksum::None => IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM,
        TunnelChecksum::Csum => IP_VS_TUNNEL_ENCAP_FLAG_CSUM,
        // Alone, as `ipvsadm --tun-remcsum` sets it (ipvsadm shows it as `r+c`).
        TunnelChecksum::Remcsum => IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM,
    };
    let dest = |addr, port, weight| {
        let mut d = Dest::new(addr, port, forward, weight);
        d.tun_type = tun_type;
        d.tun_port = tun_port;
        d.tun_flags = tun_flags;
        d
    };
    let mut dests: Vec<Dest> = s
        .real_servers
        .iter()
        .filter_map(|r| {
            let port = s.port_of(r);
            let weight = match (health(r.address, port), s.on_failure) {
                (Health::Up(w), _) => w,
                (Health::Down, OnFailure::Inhibit) => 0,
                (Health::Down, OnFailure::Remove) => return None,
            };
            Some(dest(r.address, port, weight))
        })
        .collect();
    // keepalived's sorry server: in while no real server takes traffic.
    if let Some(sorry) = &s.sorry_server {
        if dests.iter().all(|d| d.weight == 0) {
            dests.push(dest(sorry.address, sorry.port.unwrap_or(s.port), 1));
        }
    }
    DesiredService {
        service: service(s),
        dests,
    }
}

/// The desired state of every configured service with each real server up at its configured
/// weight: what a director programs before health checks report (and in tests).
pub fn all_up(cfg: &vipd_config::Config) -> Vec<DesiredService> {
    cfg.services
        .iter()
        .map(|s| {
            desired(s, |addr, port| {
                let w = s
                    .real_servers
                    .iter()
                    .find(|r| r.address == addr && s.port_of(r) == port)
                    .map_or(0, |r| r.weight);
                Health::Up(w)
            })
        })
        .collect()
}

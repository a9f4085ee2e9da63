//! Shared by the real-daemon tests: a neighbor with test timings (hold 9 s, fast retries).

pub mod bird;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use vipd_bgp::fsm::Config;
use vipd_bgp::speaker::PeerConfig;
use vipd_bgp::wire::{Afi, Safi};

/// IPv4 and IPv6 unicast.
#[allow(dead_code)]
pub const BOTH: &[(Afi, Safi)] = &[(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)];
/// IPv4 unicast only.
#[allow(dead_code)]
pub const V4: &[(Afi, Safi)] = &[(Afi::Ipv4, Safi::Unicast)];

/// A neighbor at `addr` (port 179 unless given) from `local`, router ID 10.0.0.1, hold time
/// 9 s, retries every 500 ms, 2 s connect timeout, no MD5/GTSM/GR: fields override the rest.
pub fn neighbor(
    addr: &str,
    local: &str,
    local_as: u32,
    remote_as: u32,
    families: &[(Afi, Safi)],
) -> PeerConfig {
    PeerConfig {
        description: None,
        addr: addr.parse().expect("neighbor address"),
        local_addr: Some(local.parse::<IpAddr>().expect("local address")),
        password: None,
        ttl_security: false,
        ttl: None,
        next_hop_v4: None,
        next_hop_v6: None,
        connect_timeout: Duration::from_secs(2),
        bfd: false,
        fsm: Config {
            local_as,
            remote_as,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            hold_time: 9,
            keepalive: None,
            passive: false,
            connect_retry: Duration::from_millis(500),
            families: families.to_vec(),
            graceful_restart: None,
        },
    }
}

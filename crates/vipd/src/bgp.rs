//! From the configuration to the BGP speaker's neighbors (routes: `announce`).

use std::net::SocketAddr;
use std::time::Duration;

use vipd_bgp::fsm::Config as FsmConfig;
use vipd_bgp::speaker::PeerConfig;
use vipd_bgp::wire::{Afi, Safi};
use vipd_config::{Config, Family};

/// One [`PeerConfig`] per `[[bgp.neighbor]]`. `restarting` sets the graceful-restart R bit
/// (vipd found its own state from a previous run).
pub fn peers(cfg: &Config, restarting: bool) -> Vec<PeerConfig> {
    let Some(b) = &cfg.bgp else { return vec![] };
    let router_id = b
        .router_id
        .or(cfg.global.router_id)
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    b.neighbors
        .iter()
        .map(|n| PeerConfig {
            description: n.description.clone(),
            addr: SocketAddr::new(n.address, n.port),
            local_addr: n.local_address,
            password: n.password.as_ref().map(|k| k.expose().into()),
            ttl_security: n.ttl_security,
            // Unset: 1 for eBGP (directly connected, as BIRD and FRR do), the kernel's
            // default for iBGP.
            ttl: n.multihop.or((b.local_as != n.remote_as).then_some(1)),
            next_hop_v4: n.ipv4_next_hop,
            next_hop_v6: n.ipv6_next_hop,
            connect_timeout: vipd_bgp::speaker::CONNECT_TIMEOUT,
            bfd: n.effective_bfd(&b.bfd).enabled,
            fsm: FsmConfig {
                local_as: b.local_as,
                remote_as: n.remote_as,
                router_id,
                hold_time: b.hold_time,
                keepalive: b.keepalive,
                passive: n.passive,
                connect_retry: Duration::from_secs(u64::from(b.connect_retry)),
                families: n
                    .effective_families()
                    .iter()
                    .map(|f| match f {
                        Family::Ipv4 => (Afi::Ipv4, Safi::Unicast),
                        Family::Ipv6 => (Afi::Ipv6, Safi::Unicast),
                    })
                    .collect(),
                graceful_restart: b
                    .graceful_restart
                    .enabled
                    .then_some((b.graceful_restart.restart_time, restarting)),
            },
        })
        .collect()
}

/// Graceful restart is on: stop by dropping connections, not by sending a Cease.
pub fn graceful(cfg: &Config) -> bool {
    cfg.bgp.as_ref().is_some_and(|b| b.graceful_restart.enabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_from_the_example() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/examples/director-ipv4.toml");
        let cfg = vipd_config::load_file(&path).expect("example").config;
        let p = peers(&cfg, true);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].fsm.local_as, 4_200_000_001);
        assert_eq!(p[0].password, Some("s3cret-md5".into()));
        assert!(p[0].ttl_security && p[1].fsm.passive);
        assert_eq!(
            p[0].fsm.families,
            vec![(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)]
        );
        assert_eq!(p[0].fsm.graceful_restart, Some((120, true)));
    }

    #[test]
    fn multihop_unset_is_ttl_1_for_ebgp_and_the_kernel_default_for_ibgp() {
        let cfg = vipd_config::load_str(
            "[global]\nrouter_id = \"192.0.2.1\"\n[bgp]\nlocal_as = 65001\n[[bgp.neighbor]]\naddress = \"192.0.2.254\"\nremote_as = 65010\n[[bgp.neighbor]]\naddress = \"192.0.2.253\"\nremote_as = 65001\n[[bgp.neighbor]]\naddress = \"192.0.2.252\"\nremote_as = 65010\nmultihop = 3\n[[service]]\nname = \"a\"\nvip = \"198.51.100.1\"\nport = 80\n[[service.real_server]]\naddress = \"10.0.0.1\"\n",
            "t.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
        let ttls: Vec<Option<u8>> = peers(&cfg, false).iter().map(|p| p.ttl).collect();
        assert_eq!(ttls, vec![Some(1), None, Some(3)]);
    }
}

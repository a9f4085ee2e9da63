//! Benchmark helper (testbed/bench/bgp): announces COUNT IPv4 /32 prefixes (100.64.0.0
//! upwards) to one eBGP peer with the vipd speaker. SIGUSR1 withdraws them all; SIGTERM stops.
//! Usage: `announce PEER_IP LOCAL_IP LOCAL_AS PEER_AS COUNT`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use vipd_bgp::fsm::Config;
use vipd_bgp::rib::RouteAttrs;
use vipd_bgp::speaker::{CONNECT_TIMEOUT, PeerConfig, Speaker};
use vipd_bgp::wire::{Afi, Prefix, Safi};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [peer, local, las, pas, count] = &a[..] else {
        eprintln!("usage: announce PEER_IP LOCAL_IP LOCAL_AS PEER_AS COUNT");
        std::process::exit(2);
    };
    let local: Ipv4Addr = local.parse().expect("local ip");
    let s = Speaker::start(vec![PeerConfig {
        description: None,
        addr: (peer.parse::<IpAddr>().expect("peer ip"), 179).into(),
        local_addr: Some(IpAddr::V4(local)),
        password: None,
        ttl_security: false,
        ttl: None,
        next_hop_v4: None,
        next_hop_v6: None,
        connect_timeout: CONNECT_TIMEOUT,
        bfd: false,
        fsm: Config {
            local_as: las.parse().expect("as"),
            remote_as: pas.parse().expect("as"),
            router_id: local,
            hold_time: 90,
            keepalive: None,
            passive: false,
            connect_retry: Duration::from_millis(200),
            families: vec![(Afi::Ipv4, Safi::Unicast)],
            graceful_restart: None,
        },
    }]);
    let n: u32 = count.parse().expect("count");
    let routes: BTreeMap<Prefix, RouteAttrs> = (0..n)
        .map(|i| {
            (
                Prefix::host(IpAddr::V4(Ipv4Addr::from(0x6440_0000 + i))),
                RouteAttrs::default(),
            )
        })
        .collect();
    s.set_routes(routes);
    s.initial_complete();
    let mut usr1 = signal(SignalKind::user_defined1()).expect("signal");
    let mut term = signal(SignalKind::terminate()).expect("signal");
    loop {
        tokio::select! {
            _ = usr1.recv() => s.set_routes(BTreeMap::new()),
            _ = term.recv() => break,
        }
    }
    s.shutdown("benchmark done").await;
}

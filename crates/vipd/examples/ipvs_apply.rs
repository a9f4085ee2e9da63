//! Benchmark helper (testbed/bench/ipvs): programs `SERVICES x DESTS` (`mh` + port hashing,
//! tunnel) into an empty IPVS in the current namespace through vipd's planner and client,
//! and prints the time taken. MODE: `w1` (one request, one acknowledgement at a time), `w64`
//! (64 requests in flight, each acknowledged), `batch` (what vipd uses: batches per sendmsg).
//! Usage: `ipvs_apply SERVICES DESTS MODE`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use vipd_ipvs::model::host_netmask;
use vipd_ipvs::{Dest, Forward, IpvsClient, Protocol, Service, ServiceKey};
use vipd_reconcile::{DesiredService, plan};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(services), Some(dests), Some(mode)) = (
        args.first().and_then(|a| a.parse::<u16>().ok()),
        args.get(1).and_then(|a| a.parse::<u16>().ok()),
        args.get(2),
    ) else {
        eprintln!("usage: ipvs_apply SERVICES DESTS w1|w64|batch");
        std::process::exit(2);
    };
    let desired: Vec<DesiredService> = (0..services)
        .map(|i| {
            let port = 1000 + i;
            let key = ServiceKey::Addr {
                protocol: Protocol::Tcp,
                addr: IpAddr::from([198, 51, 100, 1]),
                port,
            };
            let service = Service {
                key,
                scheduler: "mh".into(),
                flags: 0x10,
                timeout: 0,
                netmask: host_netmask(false),
                pe_name: None,
                stats: None,
            };
            let dests = (0..dests)
                .map(|j| {
                    Dest::new(
                        IpAddr::from([10, 1, (j / 250) as u8, (j % 250 + 1) as u8]),
                        port,
                        Forward::Tunnel,
                        1,
                    )
                })
                .collect();
            DesiredService { service, dests }
        })
        .collect();
    let mut c = IpvsClient::connect().await.expect("IPVS");
    let t0 = Instant::now();
    let p = plan(
        &desired,
        &vipd_reconcile::KernelView::from_dump(c.dump().await.expect("dump")),
        &BTreeSet::new(),
    );
    let results = match mode.as_str() {
        "w1" => c.apply_all(&p.ops, 1).await,
        "w64" => c.apply_all(&p.ops, 64).await,
        "batch" => c.apply_batched(&p.ops).await,
        m => panic!("unknown mode {m}"),
    };
    let secs = t0.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("first failure: {e}");
    }
    println!(
        "mode={mode} ops={} failed={failed} seconds={secs:.3}",
        p.ops.len()
    );
}

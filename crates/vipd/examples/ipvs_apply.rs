//! Benchmark helper (testbed/bench/ipvs): programs `SERVICES x DESTS` into an empty IPVS in
//! the current namespace through vipd's client, with a given pipelining window, and prints
//! the time taken. Usage: `ipvs_apply SERVICES DESTS WINDOW`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use vipd_ipvs::model::host_netmask;
use vipd_ipvs::{Dest, Forward, IpvsClient, Protocol, Service, ServiceKey};
use vipd_reconcile::{DesiredService, plan};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let (staged, args) = match std::env::var("STAGED") { Ok(_) => (true, args), Err(_) => (false, args) };
    let [services, dests, window] = args[..] else {
        eprintln!("usage: ipvs_apply SERVICES DESTS WINDOW");
        std::process::exit(2);
    };
    let desired: Vec<DesiredService> = (0..services)
        .map(|i| {
            let port = 1000 + i as u16;
            let key = ServiceKey::Addr { protocol: Protocol::Tcp, addr: "198.51.100.1".parse().unwrap(), port };
            DesiredService {
                service: Service { key, scheduler: "mh".into(), flags: 0x10, timeout: 0, netmask: host_netmask(false), pe_name: None, stats: None },
                dests: (0..dests)
                    .map(|j| Dest::new(IpAddr::from([10, 1, (j / 250) as u8, (j % 250 + 1) as u8]), port, Forward::Tunnel, 1))
                    .collect(),
            }
        })
        .collect();
    let mut c = IpvsClient::connect().await.expect("IPVS");
    let t0 = Instant::now();
    let mut p = plan(&desired, &c.dump().await.expect("dump"), &BTreeSet::new());
    if staged {
        let mut ops = Vec::new();
        let mut pending = None;
        for op in p.ops {
            match op {
                vipd_ipvs::Op::NewService(s) => {
                    if let Some(s) = pending.take() { ops.push(vipd_ipvs::Op::SetService(s)); }
                    let mut rr = s.clone(); rr.scheduler = "rr".into(); rr.flags = 0;
                    ops.push(vipd_ipvs::Op::NewService(rr));
                    pending = Some(s);
                }
                o => ops.push(o),
            }
        }
        if let Some(s) = pending.take() { ops.push(vipd_ipvs::Op::SetService(s)); }
        p.ops = ops;
    }
    let results = c.apply_all(&p.ops, window).await;
    let secs = t0.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("first failure: {e}");
    }
    println!("window={window} ops={} failed={failed} seconds={secs:.3}", p.ops.len());
}

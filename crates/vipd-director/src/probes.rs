//! The firewall-mark IPVS services of tunnel-path checks (`via = "tunnel"`): one per real
//! server probed through its tunnel, holding only that server, with the service's own
//! forwarding and encapsulation, always weight 1 (the probe must reach a server that is down
//! to see it come back). The probe's socket carries the mark; IPVS encapsulates it exactly as
//! it does the service's flows. They are part of the desired IPVS state like any service,
//! owned and removed like one, and take no part in route decisions.

use std::collections::BTreeMap;

use vipd_config::Config;
use vipd_ipvs::{Service, ServiceKey};
use vipd_reconcile::{DesiredService, Health};

/// The probe services of `cfg`, by key.
pub fn services(cfg: &Config) -> BTreeMap<ServiceKey, DesiredService> {
    let mut out = BTreeMap::new();
    for p in cfg.tunnel_probes() {
        let svc = &cfg.services[p.service_index];
        let all = vipd_reconcile::desired(svc, |_, _| Health::Up(1));
        let Some(mut dest) = all
            .dests
            .into_iter()
            .find(|d| d.addr == p.server.ip() && d.port == p.server.port())
        else {
            continue;
        };
        dest.weight = 1;
        let key = ServiceKey::Fwmark {
            v6: p.vip.is_ipv6(),
            mark: p.mark,
        };
        out.insert(
            key,
            DesiredService {
                service: Service::new(key, "mh"),
                dests: vec![dest],
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_single_server_service_per_probed_server() {
        let src = r#"
[[check]]
name = "through"
kind = "tcp"
via = "tunnel"
[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
tunnel_type = "gue"
tunnel_port = 6080
checks = ["through"]
[[service.real_server]]
address = "10.9.0.10"
weight = 5
[[service.real_server]]
address = "10.9.0.11"
checks = []
"#;
        let cfg = vipd_config::load_str(src, "t.toml").unwrap().config;
        let s = services(&cfg);
        assert_eq!(s.len(), 1, "only the server with a tunnel-path check");
        let (key, d) = s.iter().next().unwrap();
        assert!(
            matches!(key, ServiceKey::Fwmark { v6: false, mark } if vipd_config::PROBE_MARKS.contains(mark))
        );
        assert_eq!(d.dests.len(), 1);
        let dest = &d.dests[0];
        assert_eq!(
            (dest.addr.to_string(), dest.port, dest.weight),
            ("10.9.0.10".into(), 80, 1)
        );
        assert_eq!(
            (dest.tun_type, dest.tun_port),
            (vipd_ipvs::TunnelType::Gue, 6080),
            "the service's own encapsulation"
        );
    }
}

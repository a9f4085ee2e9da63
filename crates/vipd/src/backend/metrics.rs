//! `/metrics` on a backend: its set-up as last observed, the agent's answer, the local
//! checks (OpenMetrics text, like a director's).

use std::fmt::Write as _;

use crate::metrics::{esc, family_head};
use crate::status::{Health, Status};

/// Renders a backend's metrics from its status.
pub fn render(st: &Status) -> String {
    let mut o = String::new();
    family_head(
        &mut o,
        "uptime_seconds",
        "gauge",
        "Seconds since vipd started",
    );
    let _ = writeln!(o, "vipd_uptime_seconds {}", st.uptime_secs);
    family_head(&mut o, "drained", "gauge", "1 while the drain file exists");
    let _ = writeln!(o, "vipd_drained {}", u8::from(st.drained));
    family_head(
        &mut o,
        "serving",
        "gauge",
        "1 while the node takes traffic (not drained, no set-up problem): /healthcheck's verdict",
    );
    let _ = writeln!(o, "vipd_serving {}", u8::from(crate::status::serving(st).0));
    let Some(b) = &st.backend else {
        o.push_str("# EOF\n");
        return o;
    };
    family_head(
        &mut o,
        "backend_problems",
        "gauge",
        "Problems found in the set-up (vipd status names them)",
    );
    let _ = writeln!(o, "vipd_backend_problems {}", b.problems.len());
    family_head(
        &mut o,
        "backend_setup_errors",
        "gauge",
        "Errors of the last set-up (retried at each resync)",
    );
    let _ = writeln!(o, "vipd_backend_setup_errors {}", b.setup_errors.len());
    family_head(
        &mut o,
        "backend_tunnel_up",
        "gauge",
        "1 when the tunnel device exists and is up",
    );
    for t in &b.tunnels {
        let _ = writeln!(
            o,
            "vipd_backend_tunnel_up{{device=\"{}\",mode=\"{}\"}} {}",
            esc(&t.name),
            t.mode,
            u8::from(t.present && t.up)
        );
    }
    family_head(
        &mut o,
        "backend_gue_listening",
        "gauge",
        "1 when the kernel has the GUE listener a tunnel device is configured with",
    );
    for t in &b.tunnels {
        if let Some(g) = &t.gue {
            let _ = writeln!(
                o,
                "vipd_backend_gue_listening{{device=\"{}\",port=\"{}\"}} {}",
                esc(&t.name),
                g.port,
                u8::from(g.listening)
            );
        }
    }
    family_head(
        &mut o,
        "backend_vip_present",
        "gauge",
        "1 when the VIP is on its device",
    );
    let vips = b
        .tunnels
        .iter()
        .flat_map(|t| t.vips.iter().map(move |v| (t.name.as_str(), v)))
        .chain(b.loopback_vips.iter().map(|v| ("lo", v)));
    for (dev, v) in vips {
        let _ = writeln!(
            o,
            "vipd_backend_vip_present{{device=\"{}\",vip=\"{}\"}} {}",
            esc(dev),
            v.address,
            u8::from(v.present)
        );
    }
    family_head(
        &mut o,
        "backend_sysctl_ok",
        "gauge",
        "1 when the sysctl has the value the set-up needs",
    );
    for s in &b.sysctls {
        let _ = writeln!(
            o,
            "vipd_backend_sysctl_ok{{name=\"{}\"}} {}",
            esc(&s.name),
            u8::from(s.value.as_deref() == Some(s.want.as_str()))
        );
    }
    if let Some(f) = &b.filter {
        family_head(
            &mut o,
            "backend_filter_loaded",
            "gauge",
            "1 while the nftables director filter is loaded, 0 when not, -1 when nft did not answer",
        );
        let v = f.present.map_or(-1, i8::from);
        let _ = writeln!(o, "vipd_backend_filter_loaded {v}");
    }
    if let Some(a) = &b.agent {
        family_head(
            &mut o,
            "backend_agent_answer",
            "info",
            "The agent's current answer to the directors (its first word)",
        );
        let word = a.answer.split([' ', '#']).next().unwrap_or("");
        let _ = writeln!(
            o,
            "vipd_backend_agent_answer_info{{answer=\"{}\"}} 1",
            esc(word)
        );
    }
    family_head(
        &mut o,
        "backend_local_check_state",
        "gauge",
        "Local check state: 1 up, 0 down, -1 unknown",
    );
    for c in &b.local_checks {
        let v = match c.health {
            Health::Up => 1,
            Health::Down => 0,
            Health::Unknown => -1,
        };
        let _ = writeln!(
            o,
            "vipd_backend_local_check_state{{check=\"{}\"}} {v}",
            esc(&c.name)
        );
    }
    o.push_str("# EOF\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::backend::{AgentView, BackendStatus, LocalCheckView};

    #[test]
    fn a_backend_missing_its_vip_is_not_serving() {
        let mut b = BackendStatus {
            agent: Some(AgentView {
                listen: "0.0.0.0:5555".into(),
                answer: "drain #/etc/lb/disable present".into(),
            }),
            local_checks: vec![LocalCheckView {
                name: "local".into(),
                health: Health::Up,
                reason: "HTTP 200".into(),
            }],
            ..crate::status::backend::missing_vip_example()
        };
        b.find_problems();
        let st = Status {
            backend: Some(b),
            ..Status::default()
        };
        let text = render(&st);
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
        let value = |name: &str| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name)
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                })
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
        };
        assert_eq!(value("vipd_serving"), 0.0);
        assert_eq!(value("vipd_backend_problems"), 1.0);
        assert_eq!(value("vipd_backend_vip_present"), 0.0);
        assert_eq!(value("vipd_backend_tunnel_up"), 1.0);
        assert_eq!(value("vipd_backend_local_check_state"), 1.0);
        assert!(
            text.contains("vipd_backend_agent_answer_info{answer=\"drain\"} 1"),
            "{text}"
        );
        assert_eq!(
            crate::status::serving(&st),
            (false, "VIP 198.51.100.10 is missing on tunl0".into())
        );
    }
}

//! The backend's own state as the kernel holds it now (read-only): what `vipd status`,
//! `/status`, the page, `/metrics` and `/healthcheck` report on a backend.

use std::time::Duration;

use vipd_config::{Config, TunnelMode};
use vipd_health::fsm::State;

use super::agent::{AgentSources, LocalHealth, agent_reply};
use crate::status::backend::{
    AgentView, BackendStatus, FilterView, GueView, LocalCheckView, SysctlView, TunnelView, VipView,
};
use vipd_net::fou::GuePort;

/// Deadline of one observation (a few netlink dumps and one `nft list table`).
pub const OBSERVE_DEADLINE: Duration = Duration::from_secs(2);

/// Observes the node against `cfg`. A netlink query that fails fails the observation: the
/// caller keeps the last one (a query error says nothing about the device; counting it as
/// missing would make the agent answer down on a transient error).
pub async fn observe(
    net: &vipd_net::Net,
    fou: &vipd_net::fou::Fou,
    cfg: &Config,
    setup_errors: &[String],
    local: &LocalHealth,
    agent: &AgentSources,
) -> Result<BackendStatus, vipd_net::NetError> {
    let mut st = BackendStatus {
        setup_errors: setup_errors.to_vec(),
        ..BackendStatus::default()
    };
    let Some(b) = &cfg.backend else {
        return Ok(st);
    };
    let vips = |have: &[std::net::IpAddr], want: &[std::net::IpAddr]| -> Vec<VipView> {
        want.iter()
            .map(|v| VipView {
                address: v.to_string(),
                present: have.contains(v),
            })
            .collect()
    };
    let gue = if super::gue_ports(cfg).is_empty() {
        Vec::new()
    } else {
        fou.listeners().await?
    };
    for t in &b.tunnels {
        let link = net.tunnel_state(&t.name).await?;
        let up = link.map(|l| l.up);
        let have = match up {
            Some(_) => net.addresses(&t.name).await?,
            None => Vec::new(),
        };
        let takes_ipv4 = (t.mode == TunnelMode::Ip6ip6 && t.vips.iter().any(|v| v.is_ipv4()))
            .then_some(link)
            .flatten()
            .map(|l| l.takes_ipv4.unwrap_or(false));
        st.tunnels.push(TunnelView {
            name: t.name.clone(),
            mode: t.mode.as_str().to_string(),
            local: t.local.map(|l| l.to_string()),
            present: up.is_some(),
            up: up == Some(true),
            vips: vips(&have, &t.vips),
            takes_ipv4,
            gue: t.gue_port.map(|port| GueView {
                port,
                listening: gue.iter().any(|l| {
                    l.gue
                        && l.at
                            == GuePort {
                                port,
                                v6: !t.mode.outer_v4(),
                            }
                }),
            }),
        });
    }
    if !b.loopback_vips.is_empty() {
        let have = net.addresses("lo").await?;
        st.loopback_vips = vips(&have, &b.loopback_vips);
    }
    st.sysctls = super::required_sysctls(cfg)
        .into_iter()
        .map(|(name, want)| SysctlView {
            value: vipd_net::sysctl::get(&name).ok(),
            name,
            want: want.to_string(),
        })
        .collect();
    if !b.allowed_directors.is_empty() {
        st.filter = Some(FilterView {
            allowed_directors: b
                .allowed_directors
                .iter()
                .map(ToString::to_string)
                .collect(),
            present: super::nft::nft_table_loaded().await,
        });
    }
    if let Some(a) = &b.agent {
        st.agent = Some(AgentView {
            listen: a.listen.to_string(),
            answer: agent_reply(agent, local).trim_end().to_string(),
        });
    }
    let names = super::agent::local_jobs(cfg);
    st.local_checks = names
        .iter()
        .map(|j| {
            let (state, reason) = local
                .checks
                .get(&j.key)
                .cloned()
                .unwrap_or((State::Unknown, "no result yet".into()));
            LocalCheckView {
                name: j.name.to_string(),
                health: state.into(),
                reason,
            }
        })
        .collect();
    st.find_problems();
    Ok(st)
}

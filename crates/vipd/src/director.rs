//! Director set-up around the IPVS task: sysctls, VIPs on `lo`, and the desired state.

use std::collections::BTreeSet;
use std::net::IpAddr;

use tracing::{error, info};
use vipd_config::Config;
use vipd_net::{Change, Net};

/// Applies the IPVS sysctls of the config in this namespace, logging each change.
pub fn apply_sysctls(cfg: &Config) -> Result<(), vipd_net::sysctl::SysctlError> {
    let entries: Vec<(&str, u32)> = cfg
        .global
        .sysctl
        .entries()
        .into_iter()
        .map(|(n, v, _)| (n, v))
        .collect();
    for c in vipd_net::sysctl::apply_ipvs(&entries)? {
        info!(sysctl = %c.name, old = %c.old, new = %c.new, "sysctl set");
    }
    Ok(())
}

/// The IPVS connection timeouts the config asks for, if any.
pub fn timeouts(cfg: &Config) -> Option<vipd_ipvs::Timeouts> {
    let t = cfg.global.ipvs_timeouts.as_ref()?;
    let secs = |d: vipd_config::Duration| u32::try_from(d.get().as_secs()).unwrap_or(u32::MAX);
    Some(vipd_ipvs::Timeouts {
        tcp: secs(t.tcp),
        tcp_fin: secs(t.tcp_fin),
        udp: secs(t.udp),
    })
}

/// Puts every configured VIP on `lo` (tagged as vipd's), and removes vipd's own VIPs that
/// the config no longer has. A director must own the VIP locally for IPVS to see the
/// packets addressed to it.
pub async fn sync_vips(net: &Net, cfg: &Config) -> Result<(), vipd_net::NetError> {
    let want: BTreeSet<IpAddr> = cfg.services.iter().map(|s| s.vip).collect();
    for vip in &want {
        let prefix = if vip.is_ipv4() { 32 } else { 128 };
        if net.ensure_owned_address("lo", *vip, prefix).await? == Change::Changed {
            info!(vip = %vip, "VIP added to lo");
        }
    }
    for (addr, _) in net.owned_addresses("lo").await? {
        if !want.contains(&addr) {
            net.remove_owned_address("lo", addr).await?;
            info!(vip = %addr, "VIP removed from lo (no longer configured)");
        }
    }
    Ok(())
}

/// Logs a set-up failure with what to check.
pub fn log_setup_error(what: &str, e: &dyn std::fmt::Display) {
    error!(error = %e, "{what} failed");
}

//! The nftables filter of the backend role: encapsulated packets (IPv4 or IPv6 inside IPv4
//! or IPv6, GRE, and GUE on the configured listeners' ports) from anyone but the directors
//! are dropped (table `inet vipd_backend`, replaced atomically).

use std::collections::BTreeSet;
use std::net::IpAddr;

use vipd_net::fou::GuePort;

use tokio::io::AsyncWriteExt;

use super::NFT_TABLE;

/// The nftables ruleset that drops encapsulated packets (IPv4 or IPv6 inside IPv4 or IPv6,
/// GRE, GUE to `gue`'s ports) from anyone but the directors, or only the deletion of vipd's
/// table when no director is listed.
pub fn nft_ruleset(directors: &[IpAddr], gue: &BTreeSet<GuePort>) -> String {
    // "add" then "delete" then the table: one atomic transaction that replaces the table
    // whether it existed or not.
    let mut s = format!("add table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n");
    if directors.is_empty() {
        return s;
    }
    let list = |v6: bool| {
        directors
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let set = |name: &str, ty: &str, elems: String| {
        if elems.is_empty() {
            format!("  set {name} {{ type {ty}; }}\n")
        } else {
            format!("  set {name} {{ type {ty}; elements = {{ {elems} }}; }}\n")
        }
    };
    s.push_str(&format!("table inet {NFT_TABLE} {{\n"));
    s.push_str(&set("directors4", "ipv4_addr", list(false)));
    s.push_str(&set("directors6", "ipv6_addr", list(true)));
    // Every IP-protocol encapsulation a Linux node may decapsulate, whatever vipd configured:
    // the kernel's catch-all devices take more than their name says (sit0 takes 6in4;
    // gre0/ip6gre0 appear with their module and take either inner family), and a named
    // ip6tnl device in `mode any` takes IPv4 in IPv6. 4: IPv4
    // inside, 41: IPv6 inside, 47: GRE. `meta l4proto` looks past IPv6 extension headers.
    s.push_str(
        "  chain input {\n    type filter hook input priority -150; policy accept;\n    \
         meta nfproto ipv4 meta l4proto { 4, 41, 47 } ip saddr != @directors4 counter drop \
         comment \"IPIP, 6in4 or GRE from a non-director\"\n    \
         meta nfproto ipv6 meta l4proto { 4, 41, 47 } ip6 saddr != @directors6 counter drop \
         comment \"4in6, ip6ip6 or GRE from a non-director\"\n",
    );
    // GUE is UDP to the FOU listeners' ports (per family): anything may arrive there.
    let ports = |v6: bool| {
        gue.iter()
            .filter(|g| g.v6 == v6)
            .map(|g| g.port.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (v6, fam, saddr, set) in [
        (false, "ipv4", "ip", "@directors4"),
        (true, "ipv6", "ip6", "@directors6"),
    ] {
        let p = ports(v6);
        if !p.is_empty() {
            s.push_str(&format!(
                "    meta nfproto {fam} udp dport {{ {p} }} {saddr} saddr != {set} counter drop \
                 comment \"GUE from a non-director\"\n"
            ));
        }
    }
    s.push_str("  }\n}\n");
    s
}

pub(super) async fn nft_apply(directors: &[IpAddr], gue: &BTreeSet<GuePort>) -> Result<(), String> {
    if directors.is_empty() && nft_table_loaded().await != Some(true) {
        return Ok(()); // nothing to remove; do not require nft on nodes that do not use it
    }
    let rules = nft_ruleset(directors, gue);
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft -f - (allowed_directors): {e}; install the nftables package"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .await
            .map_err(|e| format!("nft -f -: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("nft -f -: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft -f - (allowed_directors) failed: {}\nruleset:\n{rules}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether vipd's table is loaded (`nft list table`); None when `nft` could not be run or
/// took over a second (then killed).
pub(super) async fn nft_table_loaded() -> Option<bool> {
    let status = tokio::process::Command::new("nft")
        .args(["list", "table", "inet", NFT_TABLE])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(std::time::Duration::from_secs(1), status).await {
        Ok(Ok(s)) => Some(s.success()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_for_both_families_and_for_none() {
        let none = BTreeSet::new();
        let r = nft_ruleset(
            &[
                "192.0.2.10".parse().unwrap(),
                "2001:db8::10".parse().unwrap(),
            ],
            &none,
        );
        assert!(r.starts_with("add table inet vipd_backend\ndelete table inet vipd_backend\n"));
        assert!(r.contains("set directors4 { type ipv4_addr; elements = { 192.0.2.10 }; }"));
        assert!(r.contains("set directors6 { type ipv6_addr; elements = { 2001:db8::10 }; }"));
        assert!(r.contains(
            "meta nfproto ipv4 meta l4proto { 4, 41, 47 } ip saddr != @directors4 counter drop"
        ));
        assert!(r.contains(
            "meta nfproto ipv6 meta l4proto { 4, 41, 47 } ip6 saddr != @directors6 counter drop"
        ));
        assert!(!r.contains("udp dport"), "{r}");
        let v4only = nft_ruleset(&["192.0.2.10".parse().unwrap()], &none);
        assert!(
            v4only.contains("set directors6 { type ipv6_addr; }"),
            "{v4only}"
        );
        assert_eq!(
            nft_ruleset(&[], &none),
            "add table inet vipd_backend\ndelete table inet vipd_backend\n"
        );
    }

    #[test]
    fn gue_ports_are_filtered_per_family() {
        let gue: BTreeSet<GuePort> = [
            GuePort {
                port: 6080,
                v6: false,
            },
            GuePort {
                port: 6081,
                v6: false,
            },
            GuePort {
                port: 6080,
                v6: true,
            },
        ]
        .into();
        let r = nft_ruleset(&["192.0.2.10".parse().unwrap()], &gue);
        assert!(r.contains(
            "meta nfproto ipv4 udp dport { 6080, 6081 } ip saddr != @directors4 counter drop"
        ));
        assert!(r.contains(
            "meta nfproto ipv6 udp dport { 6080 } ip6 saddr != @directors6 counter drop"
        ));
        assert!(r.ends_with("  }\n}\n"), "{r}");
    }
}

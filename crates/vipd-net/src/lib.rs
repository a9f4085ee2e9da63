//! vipd's kernel networking side: tunnel devices (ipip, ip6ip6, gre, ip6gre) and addresses
//! over rtnetlink, GUE listeners over generic netlink ([`fou`]), and sysctls over procfs.
//!
//! A [`Net`] owns one rtnetlink socket in the namespace of the thread that created it.
//! Operations are idempotent and say whether they changed anything ([`Change`]), so callers
//! can run them on every resync and log only real changes.

pub mod fou;
mod link;
pub mod sysctl;

pub use link::{Change, Net, NetError, TunnelSpec, TunnelState, VIPD_ADDR_PROTO};

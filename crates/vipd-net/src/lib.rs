//! vipd's kernel networking side: tunnel devices (ipip, ip6ip6) and addresses over
//! rtnetlink, and sysctls over procfs.
//!
//! A [`Net`] owns one rtnetlink socket in the namespace of the thread that created it.
//! Operations are idempotent and say whether they changed anything ([`Change`]), so callers
//! can run them on every resync and log only real changes.

mod link;
pub mod sysctl;

pub use link::{Change, Net, NetError, TunnelSpec, VIPD_ADDR_PROTO};

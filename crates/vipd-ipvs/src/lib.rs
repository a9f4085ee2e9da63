//! The Linux IPVS generic netlink family (`IPVS`, version 1): message codec, typed model and
//! (with the default `client` feature) an async client.
//!
//! No maintained crate speaks IPVS, so vipd carries its own on top of
//! `netlink-packet-generic`. The codec ([`message`], [`attr`]) and the model ([`model`])
//! are pure: the reconciler uses them with `default-features = false`, without tokio.

pub mod attr;
#[cfg(feature = "client")]
pub mod client;
pub mod constants;
pub mod message;
pub mod model;
pub mod op;

#[cfg(feature = "client")]
pub use client::{Info, IpvsClient, IpvsError, Timeouts, Version};
pub use message::{IpvsAttr, IpvsCmd, IpvsMessage};
pub use model::{Dest, Forward, Protocol, Service, ServiceKey, Stats, TunnelType};
pub use op::Op;

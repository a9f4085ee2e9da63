//! The Linux IPVS generic netlink family (`IPVS`, version 1): message codec and client.
//!
//! No maintained crate speaks IPVS, so vipd carries its own on top of
//! `netlink-packet-generic` and `genetlink`. The codec ([`message`]) is pure; the client
//! ([`client`]) owns one socket and needs a tokio runtime.

pub mod client;
pub mod constants;
pub mod message;

pub use client::{Info, IpvsClient, IpvsError, Timeouts, Version};
pub use message::{IpvsAttr, IpvsCmd, IpvsMessage};

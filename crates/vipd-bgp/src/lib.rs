//! vipd's BGP speaker, built in the project: the wire codec (pure, no I/O) now; the sans-IO
//! session state machine and the tokio speaker on top of it.
//!
//! Why in-project: the one Rust BGP crate of note (bgp-rs) is GPL-3.0, unreleased since 2020,
//! encodes AS_PATH wrongly and panics on large communities. vipd only announces routes, but it
//! must read whatever a router sends without ever panicking, and answer it as RFC 7606 says.

pub mod fsm;
#[cfg(test)]
mod fsm_tests;
pub mod rib;
#[cfg(feature = "speaker")]
pub mod speaker;
pub mod wire;

//! vipd's BFD: Bidirectional Forwarding Detection in asynchronous mode (RFC 5880), over
//! single-hop (RFC 5881) and multihop (RFC 5883) UDP, to take a dead director out of the
//! routers' ECMP groups in well under a second instead of a BGP hold time.
//!
//! This crate is pure, in the shape of `vipd-bgp`'s FSM: [`packet`] decodes and encodes
//! control packets (never panics, whatever the bytes), [`session`] is one session's state
//! machine, fed packets and the time, returning what to send and what changed. The I/O
//! (sockets, TTL checks, demultiplexing) is [`runtime`], a tokio task (feature `runtime`).
//!
//! Not implemented: Demand mode and the Echo function (routers use neither with BGP;
//! packets asking for Demand are discarded, and vipd advertises a zero Echo interval), and
//! authentication (single-hop sessions are protected by TTL 255; see docs/OPERATIONS.md).

pub mod packet;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod session;
#[cfg(test)]
mod session_tests;

//! Safe wrappers over the few Linux system calls vipd needs that no safe crate offers.
//!
//! This is the only crate of the workspace allowed to use `unsafe`; each block states why
//! it is sound. Everything here is synchronous and small on purpose (the one tokio call,
//! registering an epoll instance, needs `unsafe` too and is behind the `tokio` feature).

pub mod epoll;
pub mod netns;
pub mod process;
pub mod sockopt;
pub mod udp;

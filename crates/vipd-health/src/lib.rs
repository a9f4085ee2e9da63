//! vipd's health checks.
//!
//! The pure part (always built, no runtime): [`fsm`] (rise/fall, alpha, fast interval, flap
//! damping), [`agent`] (HAProxy agent-check replies and status files), [`service`] (combining a
//! server's checks, agent weights, panic mode). The `engine` feature adds the tokio probes
//! ([`probe`]) and the scheduler ([`engine`]): jittered intervals, bounded concurrency, one
//! probe per distinct (check, target) however many services share it, state kept across
//! reloads for unchanged checks.

pub mod agent;
pub mod dns;
pub mod fsm;
pub mod http_parse;
#[cfg(feature = "jobs")]
pub mod jobs;
pub mod outcome;
pub mod service;
pub mod update;

#[cfg(feature = "engine")]
pub mod engine;
#[cfg(feature = "engine")]
pub mod probe;

#[cfg(test)]
mod fsm_tests;
#[cfg(test)]
mod service_tests;

pub use outcome::{Outcome, Verdict};
pub use update::Update;

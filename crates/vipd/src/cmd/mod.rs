//! Subcommands.

pub mod check_config;
pub mod drain;
pub mod fleet;
pub mod import;
pub mod run;

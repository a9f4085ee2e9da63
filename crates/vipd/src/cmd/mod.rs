//! Subcommands.

pub mod check_config;
pub mod run;

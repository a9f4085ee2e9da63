//! `vipd`: the load-balancer control plane binary.
//!
//! One binary, subcommands per job. Each subcommand lives in `cmd/`; this file only parses
//! the command line, sets up logging and maps results to exit codes (0 ok, 1 failure, 2 usage,
//! which clap produces itself).

mod announce;
mod bgp;
mod cmd;
mod director;
mod health;
mod ipvs_task;
mod logging;
mod metrics;
mod notify;
mod owned;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  vipd check-config /etc/vipd/vipd.toml
  vipd check-config deploy/examples/*.toml
  vipd run --config /etc/vipd/vipd.toml
  vipd drain      (touch the drain file: graceful shutdown, then withdraw)
  vipd undrain
  RUST_LOG=vipd=debug vipd run --config vipd.toml";

/// L4 load-balancer control plane: health checks drive in-kernel IPVS (Maglev, tunnel
/// forwarding) and a built-in BGP speaker announces each VIP while its service has quorum.
#[derive(Debug, Parser)]
#[command(name = "vipd", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate configuration files; print every error with file:line:col and a hint.
    ///
    /// Exits 0 when every file is valid (warnings are printed but allowed), 1 otherwise.
    #[command(
        after_help = "Example:\n  vipd check-config /etc/vipd/vipd.toml deploy/examples/*.toml"
    )]
    CheckConfig {
        /// Files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print nothing for valid files.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run the daemon with a configuration file.
    ///
    /// Refuses to start with a missing or invalid file. On a director: programs IPVS (adopting
    /// what the kernel holds; never flushing), sets the IPVS sysctls, puts the VIPs on lo.
    /// SIGHUP re-reads the file: an invalid one is reported and the running configuration
    /// stays. SIGUSR1 resyncs IPVS now. SIGTERM or SIGINT stops, leaving IPVS as it is.
    #[command(after_help = "Example:\n  vipd run --config /etc/vipd/vipd.toml")]
    Run {
        /// Configuration file.
        #[arg(
            short,
            long,
            value_name = "FILE",
            default_value = "/etc/vipd/vipd.toml"
        )]
        config: PathBuf,
    },
    /// Drain this node: create the drain file (global.drain_file, /etc/lb/disable by default).
    ///
    /// The daemon re-announces each VIP with GRACEFUL_SHUTDOWN (65535:0) and the drained MED,
    /// then withdraws it after the drain delay; IPVS stays as it is so existing flows end.
    /// The file survives restarts.
    #[command(
        after_help = "Example:\n  vipd drain && sleep 60 && systemctl restart vipd && vipd undrain"
    )]
    Drain {
        /// Configuration file (to find global.drain_file).
        #[arg(
            short,
            long,
            value_name = "FILE",
            default_value = "/etc/vipd/vipd.toml"
        )]
        config: PathBuf,
        /// The drain file itself, instead of reading it from the configuration.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Show services (like `ipvsadm -Ln`, with health and route state), real servers and BGP
    /// neighbors (like `birdc show protocols`), drain state and the last reload's result.
    Status {
        /// Configuration file (to find global.control_socket).
        #[arg(
            short,
            long,
            value_name = "FILE",
            default_value = "/etc/vipd/vipd.toml"
        )]
        config: PathBuf,
        /// The control socket itself, instead of reading it from the configuration.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// End a drain: remove the drain file; the daemon announces again.
    Undrain {
        /// Configuration file (to find global.drain_file).
        #[arg(
            short,
            long,
            value_name = "FILE",
            default_value = "/etc/vipd/vipd.toml"
        )]
        config: PathBuf,
        /// The drain file itself, instead of reading it from the configuration.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { files, quiet } => cmd::check_config::run(&files, quiet),
        Command::Run { config } => cmd::run::run(&config),
        Command::Drain { config, file } => cmd::drain::drain(&config, file),
        Command::Status {
            config,
            socket,
            json,
        } => {
            let socket = match socket {
                Some(s) => s,
                None => match vipd_config::load_file(&config) {
                    Ok(l) => l.config.global.control_socket,
                    Err(e) => {
                        eprintln!("{e}\n(or name the control socket with --socket)");
                        return ExitCode::FAILURE;
                    }
                },
            };
            status::client(&socket, json)
        }
        Command::Undrain { config, file } => cmd::drain::undrain(&config, file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}

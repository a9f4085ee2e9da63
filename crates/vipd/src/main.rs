//! `vipd`: the load-balancer control plane binary.
//!
//! One binary, subcommands per job. Each subcommand lives in `cmd/`; this file only parses
//! the command line, sets up logging and maps results to exit codes (0 ok, 1 failure, 2 usage,
//! which clap produces itself).

mod accept;
mod backend;
mod bfd;
mod bgp;
mod cmd;
mod director;
mod error;
mod events;
mod fleet;
mod hooks;
mod http;
mod ipvs_task;
mod lifecycle;
mod logging;
mod metrics;
mod notify;
mod owned;
mod page;
mod status;
mod tasks;

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
        #[command(flatten)]
        config: ConfigArg,
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
        #[command(flatten)]
        config: ConfigArg,
        /// The drain file itself, instead of reading it from the configuration.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Show services (like `ipvsadm -Ln`, with health and route state), real servers and BGP
    /// neighbors (like `birdc show protocols`), drain state and the last reload's result.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// The control socket itself, instead of reading it from the configuration.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// The event history instead: the last transitions, oldest first.
        #[arg(long)]
        events: bool,
    },
    /// Ask the running daemon to re-read its configuration file (like SIGHUP) and print the
    /// outcome. An invalid file is refused with its errors (exit 1) and the running
    /// configuration stays; a valid one is applied as a diff.
    #[command(after_help = "Example:\n  vipd check-config /etc/vipd/vipd.toml && vipd reload")]
    Reload {
        #[command(flatten)]
        config: ConfigArg,
        /// The control socket itself, instead of reading it from the configuration.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Compare directors: per service, each one's route state, healthy weight / quorum and
    /// forwarding-table digest, with every disagreement named.
    ///
    /// Every director of a tier must compute the same table for each service, or a flow that
    /// ECMP moves to another director lands on another backend. Directors are fetched over
    /// HTTP (`GET /status` on their global.listen), concurrently, each within --timeout.
    /// Without --peer: this node (its control socket) and the configuration's [fleet] peers.
    /// Exit status: 0 all agree; 1 a table differs, a VIP is withdrawn on one director
    /// (not drained) while others announce it, a service is missing, or a director cannot
    /// be reached; 2 usage (including a configuration that cannot be read).
    #[command(
        after_help = "Examples:\n  vipd fleet --peer http://10.8.0.1:9180 --peer http://10.8.0.2:9180\n  vipd fleet --config /etc/vipd/vipd.toml"
    )]
    Fleet {
        /// Configuration file whose [fleet] peers to compare with this node (without --peer;
        /// default /etc/vipd/vipd.toml).
        #[arg(
            short = 'c',
            long = "config",
            value_name = "FILE",
            conflicts_with = "peers"
        )]
        config: Option<PathBuf>,
        /// A director's status URL, http://ADDRESS:PORT of its global.listen (repeat it).
        #[arg(long = "peer", value_name = "URL")]
        peers: Vec<String>,
        /// The control socket itself, instead of reading it from the configuration.
        #[arg(long, value_name = "PATH", conflicts_with = "peers")]
        socket: Option<PathBuf>,
        /// Deadline of each fetch.
        #[arg(long, value_name = "DURATION", default_value = "2s")]
        timeout: vipd_config::Duration,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Translate another tool's configuration into a commented vipd configuration.
    ///
    /// Everything with a vipd equivalent is translated; everything else is listed on stderr
    /// with its file:line and marked NOT TRANSLATED in the output. The output is checked like
    /// `vipd check-config` before it is written. Exit status: 0 all translated, 3 translated
    /// with omissions (read them), 1 failed (nothing written).
    #[command(subcommand)]
    Import(cmd::import::From),
    /// Write the man pages (vipd.1, vipd-SUBCOMMAND.1) and shell completions (bash, zsh,
    /// fish) into DIR; used by `make deb`.
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory (created).
        dir: PathBuf,
    },
    /// End a drain: remove the drain file; the daemon announces again.
    Undrain {
        #[command(flatten)]
        config: ConfigArg,
        /// The drain file itself, instead of reading it from the configuration.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
}

/// `--config FILE`, shared by the subcommands that read the configuration.
#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// Configuration file.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        default_value = "/etc/vipd/vipd.toml"
    )]
    path: PathBuf,
}

impl ConfigArg {
    /// A `[global]` setting, or the value given on the command line instead (`override_`);
    /// a bad file is reported with its errors and how to do without it.
    fn global_path(
        &self,
        override_: Option<PathBuf>,
        flag: &str,
        pick: impl FnOnce(vipd_config::Global) -> PathBuf,
    ) -> Result<PathBuf, String> {
        match override_ {
            Some(p) => Ok(p),
            None => vipd_config::load_file(&self.path)
                .map(|l| pick(l.config.global))
                .map_err(|e| format!("{e}\n(or name it with {flag})")),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let resolved = |r: Result<PathBuf, String>| {
        r.map_err(|e| {
            eprintln!("{e}");
            ExitCode::FAILURE
        })
    };
    let drain_file =
        |c: &ConfigArg, file| resolved(c.global_path(file, "--file", |g| g.drain_file));
    let result = match cli.command {
        Command::CheckConfig { files, quiet } => Ok(cmd::check_config::run(&files, quiet)),
        Command::Run { config } => Ok(cmd::run::run(&config.path)),
        Command::Drain { config, file } => drain_file(&config, file).map(|f| cmd::drain::drain(&f)),
        Command::Undrain { config, file } => {
            drain_file(&config, file).map(|f| cmd::drain::undrain(&f))
        }
        Command::Reload { config, socket } => Ok(status::client::reload_client(
            &socket.unwrap_or_else(|| vipd_config::control_socket_of(&config.path)),
        )),
        Command::GenerateAssets { dir } => Ok(generate_assets(&dir)),
        Command::Import(from) => Ok(cmd::import::run(from)),
        Command::Fleet {
            config,
            peers,
            socket,
            timeout,
            json,
        } => {
            let path = config.unwrap_or_else(|| PathBuf::from("/etc/vipd/vipd.toml"));
            let sources = if peers.is_empty() {
                cmd::fleet::Sources::Config {
                    config: &path,
                    socket: socket.as_deref(),
                }
            } else {
                cmd::fleet::Sources::Urls(peers)
            };
            Ok(cmd::fleet::run(sources, timeout.get(), json))
        }
        Command::Status {
            config,
            socket,
            json,
            events,
        } => resolved(config.global_path(socket, "--socket", |g| g.control_socket)).map(|s| {
            if events {
                status::client::events_client(&s, json)
            } else {
                status::client::client(&s, json)
            }
        }),
    };
    result.unwrap_or_else(|code| code)
}

/// Man pages and completions from the clap definition, so they cannot drift from it.
fn generate_assets(dir: &std::path::Path) -> ExitCode {
    use clap::CommandFactory;
    let run = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let cmd = Cli::command();
        clap_mangen::generate_to(cmd.clone(), dir)?;
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            clap_complete::generate_to(shell, &mut cmd.clone(), "vipd", dir)?;
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", dir.display());
            ExitCode::FAILURE
        }
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

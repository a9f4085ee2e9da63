//! The binary's errors, by what failed: serving the edges (control socket, HTTP), applying a
//! part of the configuration, and reloading.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The control socket or the HTTP endpoints could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A file-system operation on the socket's path failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another vipd answers on that socket: never steal it.
    #[error("{0} is in use by another running vipd")]
    InUse(PathBuf),
    /// Something that is not a socket is in the way.
    #[error("{0} exists and is not a socket: not replacing it")]
    NotASocket(PathBuf),
    /// A TCP listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A part of the configuration that could not be applied (the rest was).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// IPVS sysctls.
    #[error("sysctls: {0}")]
    Sysctls(#[from] vipd_net::sysctl::SysctlError),
    /// VIP addresses on `lo`.
    #[error("VIP addresses: {0}")]
    Vips(#[from] vipd_net::NetError),
    /// The listener for passive BGP neighbors.
    #[error("cannot listen for passive BGP neighbors on {addr}: {source}; [bgp] not applied")]
    BgpListen {
        /// `bgp.listen`.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The BFD task (its sockets).
    #[error("BFD: {0}; neighbors with bfd announce nothing until it starts")]
    Bfd(#[from] vipd_bfd::runtime::StartError),
    /// The backend role's set-up (each step names its command).
    #[error("{0}")]
    Backend(String),
}

/// A reload that was refused: the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is invalid.
    #[error("REFUSED ({n} errors; the previous configuration runs):\n{0}", n = .0.error_count())]
    Refused(Box<vipd_config::ConfigError>),
    /// `global.role` changed.
    #[error("REFUSED: changing global.role needs a restart")]
    RoleChange,
}

/// What an accepted reload did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The file is the running configuration, and nothing was left to retry.
    Unchanged,
    /// Every part applied (including parts of an earlier reload that had failed), except
    /// the keys that only a restart applies, listed.
    Applied {
        /// Changed keys that take effect at the next restart only.
        restart_needed: Vec<&'static str>,
    },
    /// Applied, except these parts: they are retried at the next reload (`vipd reload` with
    /// the same file retries them).
    AppliedExcept {
        /// What failed.
        errors: Vec<SetupError>,
        /// Changed keys that take effect at the next restart only.
        restart_needed: Vec<&'static str>,
    },
}

impl std::fmt::Display for ReloadOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let restart = |f: &mut std::fmt::Formatter<'_>, keys: &[&str]| {
            if keys.is_empty() {
                Ok(())
            } else {
                write!(f, "; not applied until a restart: {}", keys.join(", "))
            }
        };
        match self {
            ReloadOutcome::Unchanged => f.write_str("ok (unchanged)"),
            ReloadOutcome::Applied { restart_needed } => {
                f.write_str("ok (applied)")?;
                restart(f, restart_needed)
            }
            ReloadOutcome::AppliedExcept {
                errors,
                restart_needed,
            } => {
                let e: Vec<String> = errors.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "applied, except: {} (retried at the next reload)",
                    e.join("; ")
                )?;
                restart(f, restart_needed)
            }
        }
    }
}

impl ReloadOutcome {
    /// The outcome of an apply with these errors and restart-only changes.
    pub fn of(errors: Vec<SetupError>, restart_needed: Vec<&'static str>) -> Self {
        if errors.is_empty() {
            ReloadOutcome::Applied { restart_needed }
        } else {
            ReloadOutcome::AppliedExcept {
                errors,
                restart_needed,
            }
        }
    }
}

/// The outcome as the control socket carries it (`{"reload": {"Ok": ...}}` or `Err`).
pub fn reload_wire(r: &Result<ReloadOutcome, ReloadError>) -> Result<String, String> {
    match r {
        Ok(o) => Ok(o.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

//! `vipd run`: load the configuration (refusing a bad one), start the runtime, hand over to
//! the tasks (`crate::tasks`). SIGHUP and `vipd reload` re-read the file with
//! [`load_for_reload`]: a refused file leaves everything running as it was.

use std::path::Path;
use std::process::ExitCode;

use tracing::{error, info, warn};
use vipd_config::{Config, Loaded, Role};

use crate::error::ReloadError;

/// Entry point of `vipd run`.
pub fn run(path: &Path) -> ExitCode {
    let loaded = match vipd_config::load_file(path) {
        Ok(l) => l,
        Err(e) => {
            // Logging is not set up yet (its format comes from the config): plain stderr.
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    crate::logging::init(loaded.config.global.log_format);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    log_warnings(&loaded);
    info!(config = %path.display(), version = env!("CARGO_PKG_VERSION"), role = ?loaded.config.global.role, "vipd started");
    let result = match loaded.config.global.role {
        Role::Director => rt.block_on(crate::tasks::director(path, loaded)),
        Role::Backend => rt.block_on(crate::tasks::backend(path, loaded)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("vipd stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the file for a reload: `Ok(None)` when it is the running configuration, the new
/// one when it differs, `Err` (with every finding) when it is refused.
pub fn load_for_reload(path: &Path, running: &Config) -> Result<Option<Config>, ReloadError> {
    let new = match vipd_config::load_file(path) {
        Ok(new) => new,
        Err(e) => {
            error!(config = %path.display(), errors = e.error_count(),
                "reload refused, the running configuration stays:\n{e}");
            return Err(ReloadError::Refused(Box::new(e)));
        }
    };
    log_warnings(&new);
    if new.config == *running {
        info!(config = %path.display(), "reload: configuration unchanged");
        return Ok(None);
    }
    if new.config.global.role != running.global.role {
        error!("reload refused: changing global.role needs a restart");
        return Err(ReloadError::RoleChange);
    }
    info!(config = %path.display(), "reload: new configuration accepted");
    Ok(Some(new.config))
}

fn log_warnings(l: &Loaded) {
    if !l.warnings.is_empty() {
        warn!("configuration warnings:\n{}", l.render_warnings());
    }
}

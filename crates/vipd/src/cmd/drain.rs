//! `vipd drain` / `vipd undrain`: create or remove the drain file (its path is resolved by
//! the CLI: `--file`, else `global.drain_file`), so that the state
//! survives restarts (the daemon polls the file about every second; an operator can as well
//! `touch /etc/lb/disable` by hand).

use std::path::Path;
use std::process::ExitCode;

/// Creates the drain file.
pub fn drain(path: &Path) -> ExitCode {
    if let Some(dir) = path.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    let note = format!(
        "drained by `vipd drain` (pid {}); `vipd undrain` or removing this file ends it\n",
        std::process::id()
    );
    match std::fs::write(path, note) {
        Ok(()) => {
            println!(
                "{} created: routes get GRACEFUL_SHUTDOWN, then are withdrawn after the drain delay",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot create {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// Removes the drain file.
pub fn undrain(path: &Path) -> ExitCode {
    match std::fs::remove_file(path) {
        Ok(()) => {
            println!("{} removed: routes are announced again", path.display());
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("{} was not there: not drained", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot remove {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

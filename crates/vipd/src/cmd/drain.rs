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
    // O_NOFOLLOW: root writing through a symlink planted at the drain path would overwrite
    // whatever it points to.
    let written = {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .and_then(|mut f| f.write_all(note.as_bytes()))
    };
    match written {
        Ok(()) => {
            println!(
                "{} created: routes get GRACEFUL_SHUTDOWN, then are withdrawn after the drain delay",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            eprintln!(
                "{} is a symbolic link: refusing to write through it (remove it, then drain)",
                path.display()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot create {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// Removes the drain file (a symbolic link there is removed itself, never its target).
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

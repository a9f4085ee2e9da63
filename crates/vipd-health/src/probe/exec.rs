//! Exec checks: a program with arguments, exit 0 = up, its whole process group killed when
//! it exits or times out. It gets the real server in `VIPD_RS_ADDRESS` / `VIPD_RS_PORT`
//! (and the port the check targets in `VIPD_CHECK_PORT`) and a PATH, nothing else of vipd's
//! environment, and no capability; a program (or a directory above it) that a user other
//! than root can change is refused. The first line it prints is the reason.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::Probe;
use super::conn::words;
use crate::outcome::{Outcome, ProbeError};

/// Output kept for the reason.
const MAX_OUTPUT: usize = 512;

/// The whole environment of a check's program: a fixed PATH and the documented variables.
/// vipd's own environment (credentials, NOTIFY_SOCKET, ...) is not passed on.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Refuses a program that someone other than root could change: the file, or a directory
/// on its path, not owned by root or writable by group or others (keepalived's
/// `enable_script_security`). vipd runs checks as root; a check writable by another user
/// would run that user's code as root.
pub fn script_security(command: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut p = Some(command);
    while let Some(path) = p {
        let m = std::fs::metadata(path).map_err(|e| {
            if path == command {
                words(&e)
            } else {
                format!("{}: {}", path.display(), words(&e))
            }
        })?;
        // A sticky directory (/tmp) writable by all is fine: others can add entries there,
        // not rename or remove root's.
        if m.uid() != 0 || m.mode() & 0o022 != 0 && !(m.is_dir() && m.mode() & 0o1000 != 0) {
            return Err(format!(
                "refused: {} can be changed by a user other than root (owner uid {}, mode {:o})",
                path.display(),
                m.uid(),
                m.mode() & 0o7777
            ));
        }
        p = path.parent().filter(|q| !q.as_os_str().is_empty());
    }
    Ok(())
}

/// Runs the check. `dynamic` (keepalived's `misc_dynamic`): exit 1 is down, 2 to 255 up
/// with weight code - 2, 0 up with the weight as it was.
pub async fn run(
    p: &Probe,
    command: &Path,
    args: &[String],
    ids: Option<(u32, u32)>,
    dynamic: bool,
) -> Outcome {
    if let Err(why) = script_security(command) {
        return Outcome::fail(format!("exec {}: {why}", command.display()), Duration::ZERO);
    }
    let mut cmd = std::process::Command::new(command);
    cmd.args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("VIPD_RS_ADDRESS", p.server.ip().to_string())
        .env("VIPD_RS_PORT", p.server.port().to_string())
        .env("VIPD_CHECK_PORT", p.addr.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if let Some((uid, gid)) = ids {
        // std drops the supplementary groups too when it switches from root.
        std::os::unix::process::CommandExt::uid(&mut cmd, uid);
        std::os::unix::process::CommandExt::gid(&mut cmd, gid);
    }
    vipd_sys::process::drop_privileges_on_exec(&mut cmd);
    let mut child = match Command::from(cmd).kill_on_drop(true).spawn() {
        Ok(c) => c,
        Err(e) => {
            return ProbeError::local(&format!("exec {}", command.display()), &e).outcome("");
        }
    };
    let pgid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // Output is read while the program runs (bounded); once it exits, a descendant still
    // holding the pipe open gets 100 ms more, not the whole timeout.
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(s) = stdout {
            let _ = s.take(MAX_OUTPUT as u64).read_to_end(&mut out).await;
        }
        if let Some(s) = stderr {
            let _ = s.take(MAX_OUTPUT as u64).read_to_end(&mut err).await;
        }
        (out, err)
    });
    match tokio::time::timeout(p.timeout, child.wait()).await {
        Ok(Ok(status)) => {
            // What the program left running (a `sleep &`, a daemonised helper) dies with it:
            // checks must not pile up processes, one per interval.
            if let Some(g) = pgid {
                let _ = vipd_sys::process::kill_group(g);
            }
            let (out, err) = match tokio::time::timeout(Duration::from_millis(100), reader).await {
                Ok(Ok(o)) => o,
                _ => Default::default(),
            };
            let first = first_line(&out).or_else(|| first_line(&err));
            let said = first.map(|l| format!(": {l}")).unwrap_or_default();
            if status.success() {
                Outcome::pass(format!("exit 0{said}"), Duration::ZERO)
            } else if let Some(code @ 2..=255) = status.code().filter(|_| dynamic) {
                let weight = code.unsigned_abs() - 2;
                let mut o = Outcome::pass(
                    format!("exit {code}{said}, weight {weight}"),
                    Duration::ZERO,
                );
                o.weight_abs = Some(weight);
                o
            } else if let Some(code) = status.code() {
                Outcome::fail(format!("exit {code}{said}"), Duration::ZERO)
            } else {
                use std::os::unix::process::ExitStatusExt;
                Outcome::fail(
                    format!("killed by signal {}{said}", status.signal().unwrap_or(0)),
                    Duration::ZERO,
                )
            }
        }
        Ok(Err(e)) => Outcome::fail(format!("wait: {}", words(&e)), Duration::ZERO),
        Err(_) => {
            if let Some(g) = pgid {
                let _ = vipd_sys::process::kill_group(g);
            }
            reader.abort();
            Outcome::fail(
                format!("timeout after {:?}, killed", p.timeout),
                Duration::ZERO,
            )
        }
    }
}

fn first_line(b: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(b);
    let l = s.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(l.chars().take(200).collect())
}

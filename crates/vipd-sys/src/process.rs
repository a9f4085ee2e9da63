//! Process groups: a timed-out exec health check is killed with everything it started.

use std::io;

/// Sends SIGKILL to every process of group `pgid` (a check started with its own group, so
/// that a shell script's `sleep` dies with the shell and no pipe stays open behind it).
pub fn kill_group(pgid: u32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad process group"))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative pid
    // addresses the group, and pgid > 1 rules out "every process" (-1) and our own group (0).
    let r = unsafe { libc::kill(-pgid, libc::SIGKILL) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

//! Network namespaces: move the calling *thread* into another namespace.
//!
//! `setns(2)` with `CLONE_NEWNET` changes only the calling thread; sockets opened afterwards on
//! that thread (netlink included) and processes it spawns belong to the new namespace. Callers
//! therefore run namespace-bound work on a dedicated thread.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Moves the calling thread into the network namespace at `path` (e.g. `/run/netns/NAME`,
/// or `/proc/PID/ns/net`).
pub fn enter(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: `f` is an open file descriptor for the duration of the call; setns only reads
    // it and does not take ownership. CLONE_NEWNET restricts it to network namespaces.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Identity of the calling thread's current network namespace (device and inode of
/// `/proc/thread-self/ns/net`), to check which namespace a thread is in.
pub fn current_id() -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entering_a_missing_namespace_fails_cleanly() {
        let e = enter(Path::new("/run/netns/vipd-does-not-exist")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn entering_our_own_namespace_keeps_the_identity() {
        let before = current_id().unwrap();
        // Re-entering the namespace we are in needs CAP_SYS_ADMIN; skip the call without it
        // but still check identity reading works.
        match enter(Path::new("/proc/self/ns/net")) {
            Ok(()) => assert_eq!(current_id().unwrap(), before),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}"),
        }
    }
}

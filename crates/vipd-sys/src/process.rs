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

/// Raises the soft limit of open files to the hard limit; returns the soft limit now in
/// force. A director holds one descriptor per probe in flight: the usual soft limit of
/// 1024 is below the 4,096 probes the scheduler allows, and a probe refused with EMFILE
/// must not be what takes a healthy server down.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct, which `lim` is, and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit struct, which `want` is.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
    }
    Ok(lim.rlim_cur)
}

/// Sets the file mode creation mask, returning the previous one. Used around `bind(2)` of a
/// Unix socket, whose file takes its mode from the umask: creating it private is the only
/// way that has no window (a chmod by path afterwards could follow a symlink swapped in).
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask(2) cannot fail and touches no memory; it only swaps the process's mask.
    let old: libc::mode_t = unsafe { libc::umask(mask as libc::mode_t) };
    old
}

/// Makes `cmd`'s child start with no capability at all, even as root: before `exec`, every
/// capability leaves the bounding set (so an `exec` as root gains none) and `no_new_privs` is
/// set (a setuid program cannot gain any either). For programs vipd runs on its own
/// behalf (exec health checks): they must not hold the CAP_NET_ADMIN vipd runs with.
pub fn drop_privileges_on_exec(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs in the child between fork and exec; it only calls prctl(2),
    // which is async-signal-safe, allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(|| {
            for cap in 0..64 {
                if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        // Past the last capability of this kernel: done.
                        Some(libc::EINVAL) => break,
                        // Not allowed to drop (vipd is not root): it has none to pass on.
                        Some(libc::EPERM) => break,
                        _ => return Err(e),
                    }
                }
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The uid and primary gid of user `name` (getpwnam_r: NSS included), or None when there
/// is no such user.
pub fn user_ids(name: &str) -> io::Result<Option<(u32, u32)>> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a user name"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain old data; zeroed is a valid (empty) value for it.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `c` a NUL-terminated string, `pwd` and
    // `found` live locals, `buf` a buffer of the length passed; the strings getpwnam_r
    // writes point into `buf`, which outlives their only use (none: only ids are read).
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if found.is_null() {
        return if rc == 0 || rc == libc::ENOENT || rc == libc::ESRCH {
            Ok(None)
        } else {
            Err(io::Error::from_raw_os_error(rc))
        };
    }
    Ok(Some((pwd.pw_uid, pwd.pw_gid)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_reaches_the_hard_limit() {
        let soft = super::raise_nofile_limit().expect("rlimit");
        assert!(soft >= 1024, "{soft}");
        assert_eq!(super::raise_nofile_limit().expect("again"), soft);
    }
}

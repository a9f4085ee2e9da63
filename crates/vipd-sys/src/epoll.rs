//! An epoll instance of the caller's own, for many short-lived sockets driven by one task
//! (the health probes): sockets are added once and leave the set when they are closed, with
//! no `epoll_ctl(DEL)` per socket.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Readable.
pub const IN: u32 = libc::EPOLLIN as u32;
/// Writable (a non-blocking connect completed).
pub const OUT: u32 = libc::EPOLLOUT as u32;
/// An error is pending on the socket.
pub const ERR: u32 = libc::EPOLLERR as u32;
/// Hung up.
pub const HUP: u32 = libc::EPOLLHUP as u32;
/// The peer closed its side.
pub const RDHUP: u32 = libc::EPOLLRDHUP as u32;
/// Edge-triggered.
pub const ET: u32 = libc::EPOLLET as u32;

/// One ready socket: the token it was added with and its events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The token given to [`Epoll::add`].
    pub token: u64,
    /// `IN`, `OUT`, `ERR`, `HUP`, `RDHUP` bits.
    pub events: u32,
}

/// An epoll descriptor (`epoll_create1(EPOLL_CLOEXEC)`).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// A new, empty instance.
    pub fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointer; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Adds `fd` with `events` under `token`. The socket leaves the set when its last
    /// descriptor is closed.
    pub fn add(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: both descriptors are open (borrowed); `ev` outlives the call.
        let r = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &raw mut ev,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The ready sockets, without waiting: fills `out` from the start and returns how many.
    pub fn ready(&self, out: &mut [Event]) -> io::Result<usize> {
        const MAX: usize = 256;
        let mut raw = [libc::epoll_event { events: 0, u64: 0 }; MAX];
        let max = out.len().min(MAX);
        // SAFETY: `raw` holds at least `max` entries; timeout 0 never blocks.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), raw.as_mut_ptr(), max as i32, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (o, r) in out.iter_mut().zip(&raw[..n]) {
            *o = Event {
                token: r.u64,
                events: r.events,
            };
        }
        Ok(n)
    }

    /// Registers the instance with the current tokio runtime: it is readable when one of
    /// its sockets is ready.
    #[cfg(feature = "tokio")]
    pub fn register(self) -> io::Result<tokio::io::unix::AsyncFd<Epoll>> {
        // SAFETY: the AsyncFd takes the Epoll, and with it the only handle on the
        // descriptor: it stays open, and is the same descriptor, for as long as it is
        // registered (it is closed when the AsyncFd drops, after deregistration).
        unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(self, tokio::io::Interest::READABLE)
        }
        .map_err(io::Error::from)
    }
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn a_socket_is_reported_ready_and_leaves_the_set_when_closed() {
        let ep = Epoll::new().unwrap();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        ep.add(b.as_fd(), IN | ET, 7).unwrap();
        let mut out = [Event::default(); 4];
        assert_eq!(ep.ready(&mut out).unwrap(), 0);
        a.write_all(b"x").unwrap();
        assert_eq!(ep.ready(&mut out).unwrap(), 1);
        assert_eq!(out[0].token, 7);
        assert_ne!(out[0].events & IN, 0);
        drop(b);
        a.write_all(b"y").unwrap_or_default();
        assert_eq!(ep.ready(&mut out).unwrap(), 0, "closed: out of the set");
    }
}

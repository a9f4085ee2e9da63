//! Datagrams with their IP TTL (IPv4) or hop limit (IPv6): BFD accepts single-hop control
//! packets only with TTL 255 (RFC 5881 section 5), which no safe socket crate reports.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::sockopt::setsockopt;

/// Asks the kernel to attach the TTL (IPv4 socket) or hop limit (IPv6 socket) to every
/// datagram received, for [`recv_with_ttl`].
pub fn set_recv_ttl(sock: BorrowedFd<'_>, v6: bool) -> io::Result<()> {
    let on: libc::c_int = 1;
    if v6 {
        setsockopt(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &on)
    } else {
        setsockopt(sock, libc::IPPROTO_IP, libc::IP_RECVTTL, &on)
    }
}

/// One datagram received without blocking (`WouldBlock` when none is queued): its length
/// in `buf`, its source, and its TTL / hop limit when the kernel attached one (see
/// [`set_recv_ttl`]).
pub fn recv_with_ttl(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    // SAFETY: sockaddr_storage and msghdr are plain old data; all-zero bytes are valid.
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64 elements: aligned for cmsghdr. Room for a few control messages.
    let mut control = [0u64; 16];
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `msg` refers to a live buffer of the length given, borrowed
    // mutably for the duration of the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut ttl = None;
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/CMSG_NXTHDR walk the control
    // buffer within msg_controllen and return null at its end.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !c.is_null() {
        // SAFETY: `c` is a non-null header inside the control buffer (see above).
        let h = unsafe { &*c };
        let is_ttl = (h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_TTL)
            || (h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_HOPLIMIT);
        if is_ttl {
            // SAFETY: both messages carry one int (ip(7), ipv6(7)); the data may be
            // unaligned, hence read_unaligned.
            let v = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>()) };
            ttl = u8::try_from(v).ok();
        }
        // SAFETY: as above.
        c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
    }
    let addr = sockaddr(&from).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
    })?;
    Ok((n as usize, addr, ttl))
}

fn sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // enough and aligned for.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn reports_the_ttl_a_datagram_was_sent_with() {
        for (bind, v6) in [("127.0.0.1:0", false), ("[::1]:0", true)] {
            let Ok(rx) = std::net::UdpSocket::bind(bind) else {
                continue; // no IPv6 loopback here
            };
            set_recv_ttl(rx.as_fd(), v6).expect("option");
            let tx = std::net::UdpSocket::bind(bind).expect("tx");
            if v6 {
                let hops: libc::c_int = 255;
                setsockopt(
                    tx.as_fd(),
                    libc::IPPROTO_IPV6,
                    libc::IPV6_UNICAST_HOPS,
                    &hops,
                )
                .expect("hops");
            } else {
                tx.set_ttl(255).expect("ttl");
            }
            tx.send_to(b"hello", rx.local_addr().expect("addr"))
                .expect("send");
            let mut buf = [0u8; 64];
            let mut got = None;
            for _ in 0..100 {
                match recv_with_ttl(rx.as_fd(), &mut buf) {
                    Ok(r) => {
                        got = Some(r);
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            let (n, from, ttl) = got.expect("a datagram");
            assert_eq!(&buf[..n], b"hello");
            assert_eq!(from, tx.local_addr().expect("addr"));
            assert_eq!(ttl, Some(255), "{bind}");
            tx.set_ttl(1).ok();
        }
    }
}

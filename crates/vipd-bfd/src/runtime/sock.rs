//! The sockets of the BFD task: where control packets are received (one per port and
//! family, reporting each datagram's TTL) and each session's sending socket (TTL 255, a
//! source port of its own in 49152-65535, connected to the neighbor).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::{Peer, StartError};
use crate::packet::{PORT_MULTIHOP, PORT_SINGLE_HOP, SOURCE_PORTS};

/// The receiving sockets. IPv6 ones are optional (a host with IPv6 disabled still runs
/// IPv4 sessions); a missing one is reported when a session needs it.
#[derive(Debug)]
pub(super) struct Receivers {
    pub single_v4: UdpSocket,
    pub multi_v4: UdpSocket,
    pub single_v6: Option<UdpSocket>,
    pub multi_v6: Option<UdpSocket>,
}

impl Receivers {
    /// Binds the four sockets (must run inside the task's runtime).
    pub fn bind() -> Result<Receivers, StartError> {
        let v4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let v6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let must = |ip, port| {
            let addr = SocketAddr::new(ip, port);
            receiver(addr).map_err(|source| StartError::Bind { addr, source })
        };
        let may = |ip, port| match receiver(SocketAddr::new(ip, port)) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(port, error = %e, "no IPv6 BFD socket: IPv6 sessions cannot come up");
                None
            }
        };
        Ok(Receivers {
            single_v4: must(v4, PORT_SINGLE_HOP)?,
            multi_v4: must(v4, PORT_MULTIHOP)?,
            single_v6: may(v6, PORT_SINGLE_HOP),
            multi_v6: may(v6, PORT_MULTIHOP),
        })
    }
}

fn receiver(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // No SO_REUSEADDR: with it another BFD daemon setting it too would share the port and
    // each datagram would reach only one of us. A taken port must fail.
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    vipd_sys::udp::set_recv_ttl(s.as_fd(), addr.is_ipv6())?;
    UdpSocket::from_std(s.into())
}

/// A session's sending socket: TTL (hop limit) 255, bound to `port` when resuming a
/// session, else to a free port of 49152-65535, connected to the neighbor's BFD port.
pub(super) fn sender(peer: &Peer, port: Option<u16>) -> io::Result<(UdpSocket, u16)> {
    let dst = SocketAddr::new(
        peer.addr,
        if peer.multihop.is_some() {
            PORT_MULTIHOP
        } else {
            PORT_SINGLE_HOP
        },
    );
    let local = peer.local.unwrap_or(match peer.addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free source port");
    let tries: Vec<u16> = match port {
        Some(p) => vec![p],
        None => (0..64)
            .map(|_| fastrand::u16(*SOURCE_PORTS.start()..=*SOURCE_PORTS.end()))
            .collect(),
    };
    for p in tries {
        let s = Socket::new(Domain::for_address(dst), Type::DGRAM, Some(Protocol::UDP))?;
        if dst.is_ipv6() {
            s.set_unicast_hops_v6(255)?;
        } else {
            s.set_ttl_v4(255)?;
        }
        s.set_nonblocking(true)?;
        match s.bind(&SocketAddr::new(local, p).into()) {
            Ok(()) => {}
            Err(e) => {
                last = e;
                continue;
            }
        }
        s.connect(&dst.into())?;
        return Ok((UdpSocket::from_std(s.into())?, p));
    }
    Err(last)
}

//! TCP connections of probes: optional source address, connect timeout, reset on close.

use tokio::net::{TcpSocket, TcpStream};

use super::Probe;
use crate::outcome::ProbeError;

/// Connects to the probe's address from its source address, within its connect timeout when
/// `timed` (else the scheduler enforces it). Errors are reasons in words
/// ("connect: Connection refused", "connect timeout after 1s").
pub async fn connect(p: &Probe, timed: bool) -> Result<TcpStream, ProbeError> {
    let sock = if p.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| ProbeError::local("socket", &e))?;
    if let Some(mark) = p.mark {
        socket2::SockRef::from(&sock)
            .set_mark(mark)
            .map_err(|e| ProbeError::local("SO_MARK", &e))?;
    }
    if let Some(src) = source_for(p)? {
        sock.bind(std::net::SocketAddr::new(src, 0))
            .map_err(|e| format!("bind {src}: {}", words(&e)))?;
    }
    // No TCP_NODELAY: a check writes its request once and then only reads, so Nagle never
    // delays anything and the setsockopt would be one more syscall per check.
    let r = if timed {
        match tokio::time::timeout(p.connect_timeout, sock.connect(p.addr)).await {
            Ok(r) => r,
            Err(_) => {
                return Err(ProbeError::Failed(format!(
                    "connect timeout after {:?}",
                    p.connect_timeout
                )));
            }
        }
    } else {
        sock.connect(p.addr).await
    };
    r.map_err(|e| ProbeError::Failed(format!("connect: {}", words(&e))))
}

/// The address to bind a probe's socket to: the configured source, or for a tunnel-path
/// probe the address that reaches the real server. The VIP is local on a director: left to
/// itself the kernel would take it as the source too, and the real server's reply would
/// stay on the real server; the address that reaches the real server is the one its reply
/// comes back to.
pub fn source_for(p: &Probe) -> Result<Option<std::net::IpAddr>, ProbeError> {
    match (p.source, p.mark) {
        (Some(s), _) => Ok(Some(s)),
        (None, Some(_)) => source_toward(p.server.ip()).map(Some).map_err(|e| {
            ProbeError::Failed(format!("no route to {}: {}", p.server.ip(), words(&e)))
        }),
        (None, None) => Ok(None),
    }
}

/// The source address the kernel picks toward `to` (a route lookup: a UDP socket's
/// connect sends nothing).
fn source_toward(to: std::net::IpAddr) -> std::io::Result<std::net::IpAddr> {
    let any: std::net::SocketAddr = if to.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any)?;
    s.connect((to, 9))?;
    Ok(s.local_addr()?.ip())
}

/// Closes with a RST instead of a FIN: the check got what it needed, and thousands of checks
/// a second must not leave as many sockets in TIME_WAIT (HAProxy closes its checks the same way).
pub fn reset_on_close(s: &TcpStream) {
    let _ = s.set_zero_linger();
}

/// An I/O error in words, without the "(os error N)" suffix.
pub fn words(e: &std::io::Error) -> String {
    crate::outcome::os_words(e)
}

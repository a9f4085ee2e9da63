//! DNS checks: one query over UDP to the target, one response within the timeout. Up when
//! the rcode is NOERROR (and, with `dns_answer`, the answer holds that address).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::Probe;
use super::conn::words;
use crate::dns::{QType, Rcode};
use crate::outcome::{Outcome, ProbeError};

/// Largest response read (EDNS is not asked for: 512 bytes is the classic limit).
const MAX_RESPONSE: usize = 4096;

/// Runs the check.
pub async fn run(p: &Probe, name: &str, qtype: QType, answer: Option<IpAddr>) -> Outcome {
    let id = fastrand::u16(..);
    let q = match crate::dns::query(id, name, qtype) {
        Ok(q) => q,
        Err(e) => return Outcome::fail(format!("dns: {e}"), Duration::ZERO),
    };
    let bind: SocketAddr = match (p.source, p.addr) {
        (Some(ip), _) => SocketAddr::new(ip, 0),
        (None, SocketAddr::V4(_)) => "0.0.0.0:0".parse().expect("literal"),
        (None, SocketAddr::V6(_)) => "[::]:0".parse().expect("literal"),
    };
    let sock = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => return ProbeError::local("dns: socket", &e).outcome(""),
    };
    if let Err(e) = sock.connect(p.addr).await {
        return Outcome::fail(format!("dns: connect: {}", words(&e)), Duration::ZERO);
    }
    let exchange = async {
        sock.send(&q).await?;
        let mut buf = vec![0u8; MAX_RESPONSE];
        loop {
            let n = sock.recv(&mut buf).await?;
            // A stray or late datagram (another id) is not the answer: keep waiting.
            match crate::dns::parse(&buf[..n], id) {
                Err(crate::dns::DnsError::Id { .. }) => continue,
                r => return Ok::<_, std::io::Error>(r),
            }
        }
    };
    match tokio::time::timeout(p.timeout, exchange).await {
        Err(_) => Outcome::fail(
            format!("dns: no answer within {:?}", p.timeout),
            Duration::ZERO,
        ),
        Ok(Err(e)) => Outcome::fail(format!("dns: {}", words(&e)), Duration::ZERO),
        Ok(Ok(Err(e))) => Outcome::fail(format!("dns: {e}"), Duration::ZERO),
        Ok(Ok(Ok(r))) if r.rcode != 0 => {
            Outcome::fail(format!("dns: {}", Rcode(r.rcode)), Duration::ZERO)
        }
        Ok(Ok(Ok(r))) => match answer {
            Some(a) if !r.addresses.contains(&a) => Outcome::fail(
                format!("dns: NOERROR without {a} ({} answers)", r.answers),
                Duration::ZERO,
            ),
            _ => Outcome::pass(
                format!("dns: NOERROR, {} answers", r.answers),
                Duration::ZERO,
            ),
        },
    }
}

//! Kernel intent as data: one [`Op`] is one IPVS write. The reconciler produces them, the
//! client executes them, logs and errors print them as the equivalent `ipvsadm` command.

use std::fmt;
use std::net::IpAddr;

use crate::attr::Nested;
use crate::constants::*;
use crate::message::{IpvsAttr, IpvsCmd, IpvsMessage};
use crate::model::{Dest, Forward, Protocol, Service, ServiceKey, TunnelType};

/// One IPVS write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create a service.
    NewService(Service),
    /// Change a service's scheduler, flags or persistence.
    SetService(Service),
    /// Delete a service and its destinations.
    DelService(ServiceKey),
    /// Add a destination (the kernel puts it at the head of the service's list).
    NewDest(ServiceKey, Dest),
    /// Change a destination in place (its list position does not change).
    SetDest(ServiceKey, Dest),
    /// Delete a destination.
    DelDest(ServiceKey, IpAddr, u16),
}

impl Op {
    /// The service the operation is about.
    pub fn service(&self) -> &ServiceKey {
        match self {
            Op::NewService(s) | Op::SetService(s) => &s.key,
            Op::DelService(k) | Op::NewDest(k, _) | Op::SetDest(k, _) | Op::DelDest(k, ..) => k,
        }
    }

    /// The request message.
    pub fn message(&self) -> IpvsMessage {
        let svc = |attrs| IpvsAttr::Service(Nested::new(attrs));
        let dest = |attrs| IpvsAttr::Dest(Nested::new(attrs));
        let (cmd, attrs) = match self {
            Op::NewService(s) => (IpvsCmd::NewService, vec![svc(s.attrs())]),
            Op::SetService(s) => (IpvsCmd::SetService, vec![svc(s.attrs())]),
            Op::DelService(k) => (IpvsCmd::DelService, vec![svc(k.attrs())]),
            Op::NewDest(k, d) => (IpvsCmd::NewDest, vec![svc(k.attrs()), dest(d.attrs())]),
            Op::SetDest(k, d) => (IpvsCmd::SetDest, vec![svc(k.attrs()), dest(d.attrs())]),
            Op::DelDest(k, a, p) => (
                IpvsCmd::DelDest,
                vec![svc(k.attrs()), dest(Dest::key_attrs(*a, *p))],
            ),
        };
        IpvsMessage { cmd, attrs }
    }
}

struct Svc<'a>(&'a ServiceKey);

impl fmt::Display for Svc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => {
                let flag = match protocol {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                    Protocol::Sctp => "--sctp-service",
                    Protocol::Other(_) => "-t?",
                };
                write!(f, "{flag} {}", HostPort(*addr, *port))
            }
            ServiceKey::Fwmark { v6, mark } => {
                write!(f, "-f {mark}{}", if *v6 { " -6" } else { "" })
            }
        }
    }
}

struct HostPort(IpAddr, u16);

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
            a => write!(f, "{a}:{}", self.1),
        }
    }
}

fn svc_opts(s: &Service, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, " -s {}", s.scheduler)?;
    let mut b = Vec::new();
    let (one, two) = if s.scheduler == "mh" {
        ("mh-fallback", "mh-port")
    } else {
        ("sh-fallback", "sh-port")
    };
    if s.flags & IP_VS_SVC_F_SCHED1 != 0 {
        b.push(one);
    }
    if s.flags & IP_VS_SVC_F_SCHED2 != 0 {
        b.push(two);
    }
    if !b.is_empty() {
        write!(f, " -b {}", b.join(","))?;
    }
    if s.flags & IP_VS_SVC_F_PERSISTENT != 0 {
        write!(f, " -p {}", s.timeout)?;
    }
    Ok(())
}

fn dest_opts(d: &Dest, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let m = match d.forward {
        Forward::Tunnel => "-i",
        Forward::Route => "-g",
        Forward::Masq => "-m",
        Forward::Local | Forward::Other(_) => "-g?",
    };
    write!(f, " -r {} {m} -w {}", HostPort(d.addr, d.port), d.weight)?;
    if d.forward == Forward::Tunnel {
        match d.tun_type {
            TunnelType::Ipip => {}
            TunnelType::Gue => write!(f, " --tun-type gue --tun-port {}", d.tun_port)?,
            TunnelType::Gre => write!(f, " --tun-type gre")?,
            TunnelType::Other(n) => write!(f, " --tun-type {n}")?,
        }
    }
    Ok(())
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::NewService(s) => {
                write!(f, "ipvsadm -A {}", Svc(&s.key))?;
                svc_opts(s, f)
            }
            Op::SetService(s) => {
                write!(f, "ipvsadm -E {}", Svc(&s.key))?;
                svc_opts(s, f)
            }
            Op::DelService(k) => write!(f, "ipvsadm -D {}", Svc(k)),
            Op::NewDest(k, d) => {
                write!(f, "ipvsadm -a {}", Svc(k))?;
                dest_opts(d, f)
            }
            Op::SetDest(k, d) => {
                write!(f, "ipvsadm -e {}", Svc(k))?;
                dest_opts(d, f)
            }
            Op::DelDest(k, a, p) => write!(f, "ipvsadm -d {} -r {}", Svc(k), HostPort(*a, *p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_print_as_ipvsadm() {
        let k = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: "2001:db8::1".parse().unwrap(),
            port: 80,
        };
        let mut s = Service::new(k, "mh");
        s.flags = IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_SCHED2;
        assert_eq!(
            Op::NewService(s).to_string(),
            "ipvsadm -A -t [2001:db8::1]:80 -s mh -b mh-fallback,mh-port"
        );
        let d = Dest::new("192.0.2.10".parse().unwrap(), 80, Forward::Tunnel, 2);
        assert_eq!(
            Op::SetDest(k, d).to_string(),
            "ipvsadm -e -t [2001:db8::1]:80 -r 192.0.2.10:80 -i -w 2"
        );
        assert_eq!(
            Op::DelDest(k, "192.0.2.10".parse().unwrap(), 80).to_string(),
            "ipvsadm -d -t [2001:db8::1]:80 -r 192.0.2.10:80"
        );
    }
}

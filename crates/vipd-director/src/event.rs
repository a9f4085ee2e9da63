//! Transitions worth a log line (and, later, an event history): the director reports them as
//! data; the binary decides how to log them.

use std::fmt;

use vipd_bgp::wire::Prefix;
use vipd_ipvs::ServiceKey;

use crate::announce::VipState;

/// One transition.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A real server is in service (weight 0 when drained by its agent).
    ServerUp {
        /// The service and the server (`service/addr:port` when shown).
        server: vipd_health::jobs::ServerRef,
        /// Its weight before, when it was already up (a weight change).
        was: Option<u32>,
        /// Effective weight.
        weight: u32,
        /// The deciding check's reason.
        reason: String,
    },
    /// A real server is out of service.
    ServerDown {
        /// The service and the server.
        server: vipd_health::jobs::ServerRef,
        /// The deciding check's reason.
        reason: String,
    },
    /// Panic mode started or ended.
    Panic {
        /// Service.
        service: String,
        /// Started.
        on: bool,
        /// Servers counted down.
        down: usize,
        /// Servers in the service.
        total: usize,
    },
    /// A service's quorum changed.
    Quorum {
        /// Service.
        service: String,
        /// Gained (true) or lost.
        up: bool,
        /// Sum of healthy weights.
        healthy_weight: u64,
        /// Configured quorum.
        quorum: u32,
    },
    /// A VIP's route decision changed.
    Route {
        /// The VIP.
        vip: Prefix,
        /// Now.
        state: VipState,
    },
    /// The drain file appeared or went away.
    Drain {
        /// Present.
        on: bool,
    },
    /// A service's own drain file (`announce.drain_file`) appeared or went away.
    ServiceDrain {
        /// The service.
        service: String,
        /// Present.
        on: bool,
    },
    /// IPVS could not be made as desired for a service; its VIP is not announced.
    IpvsFailed {
        /// Service.
        service: ServiceKey,
        /// The failed write and the kernel's error.
        error: String,
    },
    /// A service that had failed is programmed as desired again.
    IpvsRepaired {
        /// Service.
        service: ServiceKey,
    },
    /// Every service had its first health pass: End-of-RIB goes out.
    FirstPassComplete,
    /// Kernel weights carried over a restart until the checks report.
    Carried {
        /// Real servers whose kernel weight stands.
        servers: usize,
    },
}

impl Event {
    /// Whether an operator should notice it (logged as a warning rather than info).
    pub fn is_warning(&self) -> bool {
        match self {
            Event::ServerDown { .. } | Event::IpvsFailed { .. } => true,
            Event::Panic { .. } => true,
            Event::Quorum { up, .. } => !up,
            Event::Drain { on } | Event::ServiceDrain { on, .. } => *on,
            Event::Route { state, .. } => !matches!(state, VipState::Announced),
            _ => false,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::ServerUp {
                server,
                was: None,
                weight,
                reason,
            } => write!(f, "real server up: {server} weight {weight} ({reason})"),
            Event::ServerUp {
                server,
                was: Some(was),
                weight,
                reason,
            } => write!(
                f,
                "real server weight {was} -> {weight}: {server} ({reason})"
            ),
            Event::ServerDown { server, reason } => {
                write!(f, "real server down: {server} ({reason})")
            }
            Event::Panic {
                service,
                on: true,
                down,
                total,
            } => write!(
                f,
                "PANIC MODE: {service}: {down} of {total} real servers down; sending to all of them again"
            ),
            Event::Panic {
                service,
                on: false,
                down,
                ..
            } => write!(f, "panic mode over: {service} ({down} down)"),
            Event::Quorum {
                service,
                up,
                healthy_weight,
                quorum,
            } => write!(
                f,
                "quorum {}: {service} (healthy weight {healthy_weight}, quorum {quorum})",
                if *up { "up" } else { "down" }
            ),
            Event::Route { vip, state } => write!(f, "route {vip}: {state}"),
            Event::Drain { on: true } => f.write_str(
                "drain file present: draining this node (GRACEFUL_SHUTDOWN, then withdraw)",
            ),
            Event::Drain { on: false } => f.write_str("drain file removed: announcing again"),
            Event::ServiceDrain { service, on: true } => write!(
                f,
                "drain file of {service} present: draining its VIP (GRACEFUL_SHUTDOWN, then withdraw)"
            ),
            Event::ServiceDrain { service, on: false } => {
                write!(
                    f,
                    "drain file of {service} removed: announcing its VIP again"
                )
            }
            Event::IpvsFailed { service, error } => {
                write!(
                    f,
                    "IPVS failed for {service}: {error}; its VIP is not announced"
                )
            }
            Event::IpvsRepaired { service } => {
                write!(f, "IPVS programmed as desired again: {service}")
            }
            Event::FirstPassComplete => f.write_str("first health pass complete: End-of-RIB sent"),
            Event::Carried { servers } => write!(
                f,
                "restart: {servers} real servers keep their kernel weight until their first check result"
            ),
        }
    }
}

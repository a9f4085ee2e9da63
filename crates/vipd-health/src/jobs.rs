//! From the configuration to the distinct (check, target) jobs to run.
//!
//! Deduplication: a job's key is the check's whole definition (its name aside) and the
//! target's address and port. Two services sharing a backend with the same check get one
//! job and one probe per interval (keepalived runs one per service: its issue #2111), and a
//! reload that leaves a definition untouched leaves its key, so the job keeps its state and
//! counters (keepalived #2318 lost them). Any change to the check makes a new key: it
//! restarts from `Unknown`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use vipd_config::{CheckDef, Config};

/// A real server of a service: who uses a job's results.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerRef {
    /// Service name.
    pub service: Arc<str>,
    /// Real server address.
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
}

impl std::fmt::Display for ServerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.service,
            SocketAddr::new(self.addr, self.port)
        )
    }
}

/// One distinct check against one target.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// Identity (see the module documentation).
    pub key: Arc<str>,
    /// A name for logs: the check's name, or its kind for an unnamed inline check.
    pub name: Arc<str>,
    /// The check (shared by every job of the same definition: a 64-server service holds
    /// one copy, not 64).
    pub check: Arc<CheckDef>,
    /// The real server checked (address and service port).
    pub server: SocketAddr,
    /// Who uses it (usually one real server: a `Vec`, not a tree, keeps 64,000 jobs small).
    pub users: Vec<ServerRef>,
    /// The tunnel path (`via = "tunnel"`): the VIP to connect to and the socket's mark.
    pub tunnel: Option<Tunnel>,
}

/// The path of a tunnel-path probe: to `vip` on the check's port (else the server's), its
/// socket marked with `mark` (the firewall-mark IPVS service that holds only this server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// The service's VIP.
    pub vip: std::net::IpAddr,
    /// The mark.
    pub mark: u32,
}

/// The jobs of a validated configuration, and for each real server the keys of its checks.
#[derive(Clone, Debug, Default)]
pub struct Jobs {
    /// By key.
    pub jobs: BTreeMap<Arc<str>, JobSpec>,
    /// Each real server's job keys, in the order its checks are configured.
    pub servers: BTreeMap<ServerRef, Vec<Arc<str>>>,
}

/// The key of `check` against `server`.
pub fn key(check: &CheckDef, server: SocketAddr) -> String {
    format!("{server} {}", definition(check))
}

/// A check's definition without its name, as the second half of a job key.
fn definition(check: &CheckDef) -> String {
    let mut c = check.clone();
    c.name = None;
    serde_json::to_string(&c).unwrap_or_else(|_| format!("{c:?}"))
}

/// Builds the jobs of every service. Check names resolve against `[[check]]`; a name that
/// does not resolve is skipped (validation already refused such a configuration).
pub fn jobs(cfg: &Config) -> Jobs {
    // Each named definition is serialized once (not once per real server using it) and
    // shared by its jobs.
    let named: BTreeMap<&str, (Arc<CheckDef>, String)> = cfg
        .checks
        .iter()
        .filter_map(|c| Some((c.name.as_deref()?, (Arc::new(c.clone()), definition(c)))))
        .collect();
    let tunnels: BTreeMap<(&str, SocketAddr), Tunnel> = cfg
        .tunnel_probes()
        .into_iter()
        .map(|p| {
            let name = cfg.services[p.service_index].name.as_str();
            (
                (name, p.server),
                Tunnel {
                    vip: p.vip,
                    mark: p.mark,
                },
            )
        })
        .collect();
    let mut out = Jobs::default();
    for s in &cfg.services {
        let service: Arc<str> = Arc::from(s.name.as_str());
        for r in &s.real_servers {
            let port = s.port_of(r);
            let server = SocketAddr::new(r.address, port);
            let user = ServerRef {
                service: service.clone(),
                addr: r.address,
                port,
            };
            let names = r.checks.as_ref().unwrap_or(&s.checks);
            let inline: Vec<(Arc<CheckDef>, String)> = r
                .inline_checks
                .iter()
                .map(|c| (Arc::new(c.clone()), definition(c)))
                .collect();
            let defs = names
                .iter()
                .filter_map(|n| named.get(n.as_str()))
                .chain(inline.iter());
            let mut keys = Vec::new();
            for (def, json) in defs {
                // A tunnel-path job is this service's own (its mark names the service's
                // firewall-mark service); a direct one is shared by every service of the
                // same real server.
                let tunnel = (def.via == vipd_config::Via::Tunnel)
                    .then(|| tunnels.get(&(s.name.as_str(), server)).copied())
                    .flatten();
                let k: Arc<str> = Arc::from(match tunnel {
                    Some(t) => format!("{server} via {} {:#x} {json}", t.vip, t.mark),
                    None => format!("{server} {json}"),
                });
                let job = out.jobs.entry(k.clone()).or_insert_with(|| JobSpec {
                    key: k.clone(),
                    name: Arc::from(def.name.as_deref().unwrap_or(def.kind.as_str())),
                    check: def.clone(),
                    server,
                    users: Vec::new(),
                    tunnel,
                });
                if !job.users.contains(&user) {
                    job.users.push(user.clone());
                }
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            out.servers.insert(user, keys);
        }
    }
    out
}

//! The IPVS owner's picture of the kernel: the last dump, updated with every write the
//! kernel acknowledged. Planning against it instead of a fresh dump makes a change cost what
//! it changes (one weight: one write, no 65,000-object dump first).
//!
//! [`KernelView::apply`] mirrors what the kernel does with each operation (new destinations
//! at the HEAD of the list, edits in place, errors on duplicates and missing objects), so the
//! view keeps the kernel's list order, which `mh` tables depend on. An operation the view
//! refuses means the view and the kernel disagree: the owner must dump again.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use vipd_ipvs::{Dest, Op, Service, ServiceKey};

/// Services with their destinations in kernel list order. Each service is shared (`Arc`):
/// a copy of the view for readers costs a pointer per service, and a write copies only the
/// service it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelView {
    services: BTreeMap<ServiceKey, Arc<(Service, Vec<Dest>)>>,
}

/// An operation that the kernel would have refused on the state the view holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewError {
    /// The service already exists.
    ServiceExists(ServiceKey),
    /// No such service.
    NoService(ServiceKey),
    /// The destination already exists.
    DestExists(ServiceKey, std::net::IpAddr, u16),
    /// No such destination.
    NoDest(ServiceKey, std::net::IpAddr, u16),
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sa = |a: &std::net::IpAddr, p: &u16| std::net::SocketAddr::new(*a, *p);
        match self {
            ViewError::ServiceExists(k) => write!(f, "{k} already exists"),
            ViewError::NoService(k) => write!(f, "{k} does not exist"),
            ViewError::DestExists(k, a, p) => write!(f, "{k} -> {} already exists", sa(a, p)),
            ViewError::NoDest(k, a, p) => write!(f, "{k} -> {} does not exist", sa(a, p)),
        }
    }
}

impl std::error::Error for ViewError {}

impl KernelView {
    /// The view of a kernel dump (destinations in the order the dump gives: list order).
    pub fn from_dump(dump: Vec<(Service, Vec<Dest>)>) -> Self {
        KernelView {
            services: dump
                .into_iter()
                .map(|(s, d)| (s.key, Arc::new((s, d))))
                .collect(),
        }
    }

    /// One service and its destinations.
    pub fn get(&self, key: &ServiceKey) -> Option<&(Service, Vec<Dest>)> {
        self.services.get(key).map(|e| &**e)
    }

    /// Every service, by key.
    pub fn iter(&self) -> impl Iterator<Item = &(Service, Vec<Dest>)> {
        self.services.values().map(|e| &**e)
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// No service at all.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The first service, to change behind the reconciler's back in tests.
    #[cfg(test)]
    pub(crate) fn first_mut(&mut self) -> &mut (Service, Vec<Dest>) {
        Arc::make_mut(self.services.values_mut().next().expect("a service"))
    }

    fn dests_mut(&mut self, k: &ServiceKey) -> Result<&mut Vec<Dest>, ViewError> {
        self.services
            .get_mut(k)
            .map(|e| &mut Arc::make_mut(e).1)
            .ok_or(ViewError::NoService(*k))
    }

    /// Records an operation the kernel acknowledged, as the kernel applied it.
    pub fn apply(&mut self, op: &Op) -> Result<(), ViewError> {
        match op {
            Op::NewService(s) => {
                if self.services.contains_key(&s.key) {
                    return Err(ViewError::ServiceExists(s.key));
                }
                self.services
                    .insert(s.key, Arc::new((s.clone(), Vec::new())));
            }
            Op::SetService(s) => {
                let e = Arc::make_mut(
                    self.services
                        .get_mut(&s.key)
                        .ok_or(ViewError::NoService(s.key))?,
                );
                e.0 = Service {
                    stats: e.0.stats,
                    ..s.clone()
                };
            }
            Op::DelService(k) => {
                self.services.remove(k).ok_or(ViewError::NoService(*k))?;
            }
            Op::NewDest(k, d) => {
                let list = self.dests_mut(k)?;
                if list.iter().any(|x| x.key() == d.key()) {
                    return Err(ViewError::DestExists(*k, d.addr, d.port));
                }
                list.insert(0, d.clone());
            }
            Op::SetDest(k, d) => {
                let list = self.dests_mut(k)?;
                let x = list
                    .iter_mut()
                    .find(|x| x.key() == d.key())
                    .ok_or(ViewError::NoDest(*k, d.addr, d.port))?;
                // Counters are the kernel's; the settings are the write's.
                *x = Dest {
                    active_conns: x.active_conns,
                    inact_conns: x.inact_conns,
                    persist_conns: x.persist_conns,
                    stats: x.stats,
                    ..d.clone()
                };
            }
            Op::DelDest(k, a, p) => {
                let list = self.dests_mut(k)?;
                let before = list.len();
                list.retain(|x| x.key() != (*a, *p));
                if list.len() == before {
                    return Err(ViewError::NoDest(*k, *a, *p));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipd_ipvs::{Forward, Protocol};

    #[test]
    fn mirrors_the_kernel_list_semantics() {
        let k = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: "198.51.100.1".parse().unwrap(),
            port: 80,
        };
        let d = |last: u8, w| Dest::new([192, 0, 2, last].into(), 80, Forward::Tunnel, w);
        let mut v = KernelView::default();
        v.apply(&Op::NewService(Service::new(k, "mh"))).unwrap();
        v.apply(&Op::NewDest(k, d(2, 1))).unwrap();
        v.apply(&Op::NewDest(k, d(1, 1))).unwrap();
        assert_eq!(
            v.apply(&Op::NewDest(k, d(1, 1))),
            Err(ViewError::DestExists(k, [192, 0, 2, 1].into(), 80))
        );
        v.apply(&Op::SetDest(k, d(2, 5))).unwrap();
        assert_eq!(v.get(&k).unwrap().1.len(), 2);
        assert_eq!(
            v.get(&k).unwrap().1[0].addr,
            std::net::IpAddr::from([192, 0, 2, 1]),
            "head insertion"
        );
        assert_eq!(v.get(&k).unwrap().1[1].weight, 5, "edit in place");
        v.apply(&Op::DelDest(k, [192, 0, 2, 1].into(), 80)).unwrap();
        assert!(v.apply(&Op::DelDest(k, [192, 0, 2, 1].into(), 80)).is_err());
        v.apply(&Op::DelService(k)).unwrap();
        assert!(v.is_empty());
    }
}

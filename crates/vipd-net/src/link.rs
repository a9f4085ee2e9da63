//! Tunnel devices and addresses.

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::IpProtocol;
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressProtocol};
use netlink_packet_route::link::{
    InfoData, InfoIpTunnel, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkGre, LinkGre6, LinkIp6Tnl, LinkIpIp, LinkUnspec};
use vipd_config::TunnelMode;

/// errno values the idempotent operations interpret.
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;

/// Whether an idempotent operation changed the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// It was created or modified.
    Changed,
    /// It was already as asked.
    Unchanged,
}

/// An rtnetlink failure, with the operation it interrupted.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {detail}")]
pub struct NetError {
    /// What vipd was doing, as the equivalent `ip` command.
    pub op: String,
    /// What the kernel or the socket said.
    pub detail: String,
    /// The errno, when the kernel returned one.
    pub errno: Option<i32>,
}

impl NetError {
    fn new(op: impl Into<String>, e: rtnetlink::Error) -> Self {
        let errno = match &e {
            rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
            _ => None,
        };
        let detail = match &e {
            rtnetlink::Error::NetlinkError(m) => m.to_io().to_string(),
            other => other.to_string(),
        };
        Self {
            op: op.into(),
            detail,
            errno,
        }
    }
}

/// A tunnel device to receive encapsulated traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelSpec {
    /// Device name.
    pub name: String,
    /// ipip, ip6ip6, gre or ip6gre.
    pub mode: TunnelMode,
    /// Local endpoint; `None` receives from any address.
    pub local: Option<IpAddr>,
    /// ip6ip6 only: take IPv4 inside IPv6 too (`mode any`), for an IPv4 VIP behind an IPv6
    /// real server.
    pub any_inner: bool,
}

impl TunnelSpec {
    /// The equivalent `ip` command, used in logs and errors.
    pub fn ip_command(&self) -> String {
        let local = self
            .local
            .map(|l| format!(" local {l}"))
            .unwrap_or_default();
        let n = &self.name;
        match self.mode {
            TunnelMode::Ipip => format!("ip link add {n} type ipip{local}"),
            TunnelMode::Ip6ip6 => format!(
                "ip link add {n} type ip6tnl mode {}{local}",
                self.ip6_mode()
            ),
            TunnelMode::Gre => format!("ip link add {n} type gre{local}"),
            TunnelMode::Ip6gre => format!("ip link add {n} type ip6gre{local}"),
        }
    }

    fn ip6_mode(&self) -> &'static str {
        if self.any_inner { "any" } else { "ip6ip6" }
    }

    /// The ip6tnl protocol the device must have: 0 (`any`) or IPv6.
    fn ip6_proto(&self) -> IpProtocol {
        if self.any_inner {
            IpProtocol::Hopopts // 0: any
        } else {
            IpProtocol::Ipv6
        }
    }

    fn kind(&self) -> InfoKind {
        match self.mode {
            TunnelMode::Ipip => InfoKind::IpIp,
            TunnelMode::Ip6ip6 => InfoKind::Ip6Tnl,
            TunnelMode::Gre => InfoKind::GreTun,
            TunnelMode::Ip6gre => InfoKind::GreTun6,
        }
    }

    fn message(&self) -> Result<LinkMessage, String> {
        let n = &self.name;
        match (self.mode, self.local) {
            (TunnelMode::Ipip, None) => Ok(LinkIpIp::new(n).up().build()),
            (TunnelMode::Ipip, Some(IpAddr::V4(l))) => Ok(LinkIpIp::new(n).local(l).up().build()),
            (TunnelMode::Ip6ip6, None) => {
                Ok(LinkIp6Tnl::new(n).mode(self.ip6_proto()).up().build())
            }
            (TunnelMode::Ip6ip6, Some(IpAddr::V6(l))) => Ok(LinkIp6Tnl::new(n)
                .mode(self.ip6_proto())
                .local(l)
                .up()
                .build()),
            (TunnelMode::Gre, None) => Ok(LinkGre::new(n).up().build()),
            (TunnelMode::Gre, Some(IpAddr::V4(l))) => Ok(LinkGre::new(n).local(l).up().build()),
            (TunnelMode::Ip6gre, None) => Ok(LinkGre6::new(n).up().build()),
            (TunnelMode::Ip6gre, Some(IpAddr::V6(l))) => Ok(LinkGre6::new(n).local(l).up().build()),
            (m, Some(l)) => Err(format!(
                "local address {l} does not fit tunnel mode {}",
                m.as_str()
            )),
        }
    }
}

/// What [`Net::tunnel_state`] reads of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelState {
    /// Administratively up.
    pub up: bool,
    /// ip6tnl devices: whether IPv4 inside IPv6 is taken (`mode any` or `ipip6`).
    pub takes_ipv4: Option<bool>,
}

/// One rtnetlink socket.
#[derive(Debug, Clone)]
pub struct Net {
    handle: Handle,
}

impl Net {
    /// Opens an rtnetlink socket in the calling thread's namespace and spawns its driver.
    pub fn connect() -> std::io::Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// The link named `name`, if it exists (`ip link show NAME`).
    pub async fn link(&self, name: &str) -> Result<Option<LinkMessage>, NetError> {
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match s.try_next().await {
            Ok(l) => Ok(l),
            Err(rtnetlink::Error::NetlinkError(m))
                if m.code.is_some_and(|c| -c.get() == ENODEV) =>
            {
                Ok(None)
            }
            Err(e) => Err(NetError::new(format!("ip link show {name}"), e)),
        }
    }

    /// Whether the link named `name` is administratively up (`ip link show NAME`: `UP`);
    /// None when there is no such device.
    pub async fn link_up(&self, name: &str) -> Result<Option<bool>, NetError> {
        Ok(self
            .link(name)
            .await?
            .map(|l| l.header.flags.contains(LinkFlags::Up)))
    }

    /// A tunnel device as the kernel has it (`ip -d link show NAME`); None when absent.
    pub async fn tunnel_state(&self, name: &str) -> Result<Option<TunnelState>, NetError> {
        Ok(self.link(name).await?.map(|l| TunnelState {
            up: l.header.flags.contains(LinkFlags::Up),
            takes_ipv4: matches!(link_kind(&l), Some(InfoKind::Ip6Tnl))
                .then(|| ip6_proto(&l).is_some_and(|p| matches!(i32::from(p), 0 | 4))),
        }))
    }

    /// Every address on `dev`, tagged or not (`ip addr show dev DEV`).
    pub async fn addresses(&self, dev: &str) -> Result<Vec<IpAddr>, NetError> {
        Ok(self
            .address_messages(dev)
            .await?
            .iter()
            .filter_map(address_of)
            .collect())
    }

    /// Creates the tunnel device, up, unless a device of that name and kind exists (then
    /// only brings it up). A device of that name but another kind is an error: vipd does not
    /// delete what it did not create.
    pub async fn ensure_tunnel(&self, t: &TunnelSpec) -> Result<Change, NetError> {
        let op = t.ip_command();
        if let Some(existing) = self.link(&t.name).await? {
            let kind = link_kind(&existing);
            if kind.as_ref() != Some(&t.kind()) {
                return Err(NetError {
                    op,
                    detail: format!(
                        "device {} exists with kind {kind:?}, not {:?}",
                        t.name,
                        t.kind()
                    ),
                    errno: Some(EEXIST),
                });
            }
            if t.mode == TunnelMode::Ip6ip6 && ip6_proto(&existing) != Some(t.ip6_proto()) {
                return self.change_ip6_mode(t, existing.header.index).await;
            }
            return self.set_up(&t.name, existing.header.index).await;
        }
        let msg = t.message().map_err(|detail| NetError {
            op: op.clone(),
            detail,
            errno: None,
        })?;
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| NetError::new(op, e))?;
        Ok(Change::Changed)
    }

    /// Sets an existing ip6tnl device to vipd's definition (`ip link set NAME type ip6tnl
    /// mode M local L`) and brings it up. The kernel takes a change as a whole: what the
    /// message leaves out (a remote set by hand, hop limit, encapsulation limit, flags)
    /// returns to its default, as for a device vipd creates.
    async fn change_ip6_mode(&self, t: &TunnelSpec, index: u32) -> Result<Change, NetError> {
        let op = format!("ip link set {} type ip6tnl mode {}", t.name, t.ip6_mode());
        let mut msg = t.message().map_err(|detail| NetError {
            op: op.clone(),
            detail,
            errno: None,
        })?;
        msg.header.index = index;
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(|e| NetError::new(op, e))?;
        Ok(Change::Changed)
    }

    async fn set_up(&self, name: &str, index: u32) -> Result<Change, NetError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| NetError::new(format!("ip link set {name} up"), e))?;
        Ok(Change::Unchanged)
    }

    /// Adds `addr/prefix` to device `dev` (`ip addr add ADDR/PREFIX dev DEV`); an address
    /// already there is [`Change::Unchanged`].
    pub async fn ensure_address(
        &self,
        dev: &str,
        addr: IpAddr,
        prefix: u8,
    ) -> Result<Change, NetError> {
        let op = format!("ip addr add {addr}/{prefix} dev {dev}");
        let link = self.link(dev).await?.ok_or_else(|| NetError {
            op: op.clone(),
            detail: format!("no device {dev}"),
            errno: Some(ENODEV),
        })?;
        match self
            .handle
            .address()
            .add(link.header.index, addr, prefix)
            .execute()
            .await
        {
            Ok(()) => Ok(Change::Changed),
            Err(rtnetlink::Error::NetlinkError(m))
                if m.code.is_some_and(|c| -c.get() == EEXIST) =>
            {
                Ok(Change::Unchanged)
            }
            Err(e) => Err(NetError::new(op, e)),
        }
    }
}

/// `IFA_PROTO` value marking the addresses vipd adds (Linux >= 5.18; iproute2 >= 6.3 shows
/// it as `proto 118`): vipd removes only addresses carrying it, never an operator's.
pub const VIPD_ADDR_PROTO: u8 = 118;

impl Net {
    /// Adds `addr/prefix` to `dev` tagged with [`VIPD_ADDR_PROTO`]
    /// (`ip addr add ADDR/PREFIX dev DEV proto 118`). An address already there, tagged or
    /// not, is [`Change::Unchanged`] and left as it is.
    pub async fn ensure_owned_address(
        &self,
        dev: &str,
        addr: IpAddr,
        prefix: u8,
    ) -> Result<Change, NetError> {
        let op = format!("ip addr add {addr}/{prefix} dev {dev} proto {VIPD_ADDR_PROTO}");
        let index = self.index(dev, &op).await?;
        let mut req = self.handle.address().add(index, addr, prefix);
        req.message_mut()
            .attributes
            .push(AddressAttribute::Protocol(AddressProtocol::Other(
                VIPD_ADDR_PROTO,
            )));
        match req.execute().await {
            Ok(()) => Ok(Change::Changed),
            Err(rtnetlink::Error::NetlinkError(m))
                if m.code.is_some_and(|c| -c.get() == EEXIST) =>
            {
                Ok(Change::Unchanged)
            }
            Err(e) => Err(NetError::new(op, e)),
        }
    }

    /// The addresses on `dev` that carry vipd's tag, as `(address, prefix)`.
    pub async fn owned_addresses(&self, dev: &str) -> Result<Vec<(IpAddr, u8)>, NetError> {
        Ok(self
            .tagged(dev)
            .await?
            .into_iter()
            .filter_map(|m| address_of(&m).map(|a| (a, m.header.prefix_len)))
            .collect())
    }

    /// Removes `addr` from `dev` if vipd's tag is on it; an untagged address is left alone
    /// and reported as [`Change::Unchanged`].
    pub async fn remove_owned_address(&self, dev: &str, addr: IpAddr) -> Result<Change, NetError> {
        for m in self.tagged(dev).await? {
            if address_of(&m) == Some(addr) {
                let op = format!("ip addr del {addr}/{} dev {dev}", m.header.prefix_len);
                self.handle
                    .address()
                    .del(m)
                    .execute()
                    .await
                    .map_err(|e| NetError::new(op, e))?;
                return Ok(Change::Changed);
            }
        }
        Ok(Change::Unchanged)
    }

    async fn address_messages(&self, dev: &str) -> Result<Vec<AddressMessage>, NetError> {
        let op = format!("ip addr show dev {dev}");
        let index = self.index(dev, &op).await?;
        self.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::new(op, e))
    }

    async fn tagged(&self, dev: &str) -> Result<Vec<AddressMessage>, NetError> {
        Ok(self
            .address_messages(dev)
            .await?
            .into_iter()
            .filter(|m| {
                m.attributes.iter().any(|a| matches!(a, AddressAttribute::Protocol(AddressProtocol::Other(p)) if *p == VIPD_ADDR_PROTO))
            })
            .collect())
    }

    async fn index(&self, dev: &str, op: &str) -> Result<u32, NetError> {
        Ok(self
            .link(dev)
            .await?
            .ok_or_else(|| NetError {
                op: op.to_string(),
                detail: format!("no device {dev}"),
                errno: Some(ENODEV),
            })?
            .header
            .index)
    }
}

fn address_of(m: &AddressMessage) -> Option<IpAddr> {
    // IFA_LOCAL is the address on point-to-point devices; IFA_ADDRESS otherwise.
    m.attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        })
        .or_else(|| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        })
}

/// The protocol of an ip6tnl link (`IFLA_IPTUN_PROTO`: 0 is `any`).
fn ip6_proto(l: &LinkMessage) -> Option<IpProtocol> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::IpTunnel(d)) => d.iter().find_map(|x| match x {
                InfoIpTunnel::Protocol(p) => Some(*p),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

/// The `IFLA_INFO_KIND` of a link.
fn link_kind(l: &LinkMessage) -> Option<InfoKind> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k.clone()),
            _ => None,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_command_names_the_equivalent() {
        let t = TunnelSpec {
            name: "tunlv6".into(),
            mode: TunnelMode::Ip6ip6,
            local: Some("2001:db8::1".parse().unwrap()),
            any_inner: false,
        };
        assert_eq!(
            t.ip_command(),
            "ip link add tunlv6 type ip6tnl mode ip6ip6 local 2001:db8::1"
        );
    }

    #[test]
    fn mismatched_local_is_refused_before_any_syscall() {
        let t = TunnelSpec {
            name: "t".into(),
            mode: TunnelMode::Ipip,
            local: Some("2001:db8::1".parse().unwrap()),
            any_inner: false,
        };
        assert!(t.message().unwrap_err().contains("does not fit"));
    }
}

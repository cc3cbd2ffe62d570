//! What the role machines ask the driver to send.
//!
//! The machines (JAP, RAP, IAP, proximity, RAP-less flooding) produce
//! [`Outgoing`] messages addressed by role, not by socket: a proxy by id or
//! by unicast address, or a target agent by the request's source. The
//! composition ([`crate::proxy::ProxyControl`]) resolves ids to addresses,
//! seals proxy messages with the proxy-group MAC and emits target replies
//! from the group's anycast address (PROTOCOL.md §1).

use core::net::{Ipv4Addr, SocketAddrV4};

use pias_dataplane::types::ProxyId;

use crate::wire::Message;

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    /// A proxy of the proxy group, by id: sealed with the proxy-group MAC
    /// and sent from this proxy's unicast address to the proxy's, on the
    /// control port.
    Proxy(ProxyId),
    /// A proxy by unicast address, when only the address is known (the
    /// IAP named by a dataplane event is the outer source of a tunnel).
    ProxyAddr(Ipv4Addr),
    /// A target agent: an unauthenticated reply sent from `from` (the
    /// group's anycast address and the control port: the address the
    /// request was sent to) to `to` (the request's source).
    Target {
        /// Source of the reply.
        from: SocketAddrV4,
        /// The request's source.
        to: SocketAddrV4,
    },
}

/// A message for the composition to address, seal and queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Where to.
    pub dest: Dest,
    /// What.
    pub msg: Message,
}

impl Outgoing {
    /// A message to a proxy by id.
    pub fn to_proxy(p: ProxyId, msg: Message) -> Self {
        Outgoing {
            dest: Dest::Proxy(p),
            msg,
        }
    }
}

//! Proxy membership messages (seed §3.2: every proxy knows every proxy and
//! its up/down state, by flooding): [`Hello`], [`Heartbeat`], [`Flood`] of
//! [`Lsa`] statements and [`FloodAck`]. The rules that use them are in
//! [`crate::membership`].

use core::net::Ipv4Addr;

use pias_dataplane::types::{ClusterId, ProxyId};

use super::cursor::{Reader, Writer};
use super::{EmitError, WireError, MAX_FLOOD_ACKS, MAX_FLOOD_ENTRIES};

/// A proxy's state in a membership statement. `Up < Down`: at equal
/// `(incarnation, version)` a `Down` statement wins, so a detector's
/// statement and the subject's own refresh can never leave the overlay
/// split (the subject refutes a wrong `Down` with a higher version).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProxyState {
    /// Alive (wire value 1).
    Up,
    /// Dead or withdrawn (wire value 2).
    Down,
}

impl ProxyState {
    fn parse(v: u8) -> Result<Self, WireError> {
        match v {
            1 => Ok(ProxyState::Up),
            2 => Ok(ProxyState::Down),
            _ => Err(WireError::BadField("proxy state")),
        }
    }

    const fn to_u8(self) -> u8 {
        match self {
            ProxyState::Up => 1,
            ProxyState::Down => 2,
        }
    }
}

/// One membership statement, link-state style: "`subject` (at `addr`, in
/// `cluster`) is `state`", issued by `origin`, ordered by
/// `(incarnation, version, state)`.
///
/// Only the subject issues `Up` about itself (`origin == subject`); any
/// proxy that detects the subject dead issues `Down` (`origin` = the
/// detector). Relays forward statements unchanged and never re-originate
/// them; receivers deduplicate by `(subject, incarnation, version, state)`.
///
/// Wire (24 bytes): subject (4), origin (4), addr (4), cluster (2),
/// state (1), reserved (1, zero), incarnation (4), version (4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lsa {
    /// The proxy the statement is about.
    pub subject: ProxyId,
    /// Who issued the statement.
    pub origin: ProxyId,
    /// The subject's unicast address.
    pub addr: Ipv4Addr,
    /// The subject's cluster.
    pub cluster: ClusterId,
    /// Up or down.
    pub state: ProxyState,
    /// The subject's incarnation (its boot count when it started).
    pub incarnation: u32,
    /// Statement version within the incarnation.
    pub version: u32,
}

impl Lsa {
    /// Wire length of one statement.
    pub const LEN: usize = 24;

    /// The identity of this statement, as acked and deduplicated.
    pub const fn key(&self) -> LsaKey {
        LsaKey {
            subject: self.subject,
            incarnation: self.incarnation,
            version: self.version,
            state: self.state,
        }
    }

    /// The order of statements about one subject: larger wins.
    pub const fn rank(&self) -> (u32, u32, ProxyState) {
        (self.incarnation, self.version, self.state)
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let subject = ProxyId(r.u32()?);
        let origin = ProxyId(r.u32()?);
        let addr = r.ipv4()?;
        let cluster = ClusterId(r.u16()?);
        let state = ProxyState::parse(r.u8()?)?;
        if r.u8()? != 0 {
            return Err(WireError::BadField("lsa reserved"));
        }
        let incarnation = r.u32()?;
        let version = r.u32()?;
        Ok(Lsa {
            subject,
            origin,
            addr,
            cluster,
            state,
            incarnation,
            version,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        w.u32(self.subject.0)?;
        w.u32(self.origin.0)?;
        w.ipv4(self.addr)?;
        w.u16(self.cluster.0)?;
        w.u8(self.state.to_u8())?;
        w.u8(0)?;
        w.u32(self.incarnation)?;
        w.u32(self.version)
    }
}

/// Identity of a statement: what a [`FloodAck`] acknowledges.
///
/// Wire (13 bytes): subject (4), incarnation (4), version (4), state (1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LsaKey {
    /// The statement's subject.
    pub subject: ProxyId,
    /// Its incarnation.
    pub incarnation: u32,
    /// Its version.
    pub version: u32,
    /// Its state.
    pub state: ProxyState,
}

impl LsaKey {
    /// Wire length of one key.
    pub const LEN: usize = 13;

    /// The order of statements about one subject: larger wins.
    pub const fn rank(&self) -> (u32, u32, ProxyState) {
        (self.incarnation, self.version, self.state)
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(LsaKey {
            subject: ProxyId(r.u32()?),
            incarnation: r.u32()?,
            version: r.u32()?,
            state: ProxyState::parse(r.u8()?)?,
        })
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        w.u32(self.subject.0)?;
        w.u32(self.incarnation)?;
        w.u32(self.version)?;
        w.u8(self.state.to_u8())
    }
}

/// "I want you as a neighbour": sent to a proxy the sender wants to
/// monitor (or to a seed address) until it hears back. Carries the sender's
/// own `Up` statement, so a seed learns a new proxy from its first message.
///
/// Body (24 bytes): the sender's [`Lsa`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hello {
    /// The sender's own statement (`subject == origin == sender`, `Up`).
    pub lsa: Lsa,
}

impl Hello {
    /// Body length.
    pub const LEN: usize = Lsa::LEN;

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Hello {
            lsa: Lsa::parse(r)?,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        self.lsa.emit(w)
    }
}

const HB_MONITORING: u8 = 1 << 0;

/// Periodic liveness between neighbours (failure detection: a neighbour
/// silent for `interval × dead multiplier` is declared down).
///
/// Body (5 bytes): incarnation (4), flags (1: bit 0 "I monitor you", others
/// zero). A receiver keeps heartbeating a peer that monitors it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Heartbeat {
    /// The sender's current incarnation: a change means it restarted.
    pub incarnation: u32,
    /// The sender monitors the receiver (wants its heartbeats).
    pub monitoring: bool,
}

impl Heartbeat {
    /// Body length.
    pub const LEN: usize = 5;

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let incarnation = r.u32()?;
        let flags = r.u8()?;
        if flags & !HB_MONITORING != 0 {
            return Err(WireError::BadField("heartbeat flags"));
        }
        Ok(Heartbeat {
            incarnation,
            monitoring: flags & HB_MONITORING != 0,
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        w.u32(self.incarnation)?;
        w.u8(if self.monitoring { HB_MONITORING } else { 0 })
    }
}

/// Membership statements to install and relay.
///
/// Body: count (1), then `count` × [`Lsa`] (24 bytes), `count` ≤
/// [`MAX_FLOOD_ENTRIES`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flood {
    /// The statements.
    pub entries: Vec<Lsa>,
}

impl Flood {
    pub(crate) fn body_len(&self) -> usize {
        1 + self.entries.len() * Lsa::LEN
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let n = r.count("flood entries", MAX_FLOOD_ENTRIES, Lsa::LEN)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(Lsa::parse(r)?);
        }
        Ok(Flood { entries })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        w.count("flood entries", self.entries.len(), MAX_FLOOD_ENTRIES)?;
        self.entries.iter().try_for_each(|e| e.emit(w))
    }
}

/// Acknowledges flooded statements, so the sender stops retransmitting.
///
/// Body: count (1), then `count` × [`LsaKey`] (13 bytes), `count` ≤
/// [`MAX_FLOOD_ACKS`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FloodAck {
    /// The statements acknowledged.
    pub acks: Vec<LsaKey>,
}

impl FloodAck {
    pub(crate) fn body_len(&self) -> usize {
        1 + self.acks.len() * LsaKey::LEN
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let n = r.count("flood acks", MAX_FLOOD_ACKS, LsaKey::LEN)?;
        let mut acks = Vec::with_capacity(n);
        for _ in 0..n {
            acks.push(LsaKey::parse(r)?);
        }
        Ok(FloodAck { acks })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        w.count("flood acks", self.acks.len(), MAX_FLOOD_ACKS)?;
        self.acks.iter().try_for_each(|a| a.emit(w))
    }
}

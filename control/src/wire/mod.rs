//! The PIAS control protocol on the wire: one UDP datagram per message,
//! big-endian, versioned. The byte layout of every message, the trailers and
//! the replay rules are specified in `control/PROTOCOL.md`; this module is
//! that specification in code.
//!
//! Shape (smoltcp `wire`, STYLE.md): a [`Frame`] is a checked view over a
//! received datagram (prefix, optional proxy header, body, trailer); each
//! message body has a `Repr` (a plain struct: [`Hello`], [`Flood`],
//! [`TargetRequest`], …) with `parse` and `emit`, gathered in [`Message`].
//!
//! # Contract
//! - No function in this module panics on any input. Once
//!   [`Frame::parse`] has returned `Ok`, every slice in the frame is in
//!   bounds and the declared length equals the received length.
//! - Parsing is strict: unknown version or type, a declared length that
//!   differs from the datagram's, a list longer than its cap, a count that
//!   disagrees with the remaining bytes, trailing bytes, a non-zero reserved
//!   bit or an out-of-range enum value are all errors ([`WireError`]).
//! - Parsing allocates at most one `Vec` per list, after the count has been
//!   checked against its cap and against the bytes actually present.
//! - `parse(emit(x)) == x` for every valid `x` (property-tested).
//! - This module authenticates nothing: [`crate::auth`] checks the MAC or
//!   the signature a [`Frame`] carries before anything acts on it.

mod cursor;
pub mod group;
pub mod header;
pub mod japlist;
pub mod join;
pub mod membership;
pub mod proximity;
pub mod report;

pub use group::{GroupRegister, GROUP_ADDR_LEN, GROUP_OPTIONS_LEN, TARGET_ADDR_LEN};
pub use header::{KeyId, ProxyHeader, PREFIX_LEN, PROXY_HEADER_LEN};
pub use japlist::{Invalidate, JapList, RapQuery};
pub use join::{
    JoinAck, JoinNack, KeyShare, NackReason, SessionGrant, SessionRefresh, TargetRequest,
    KEY_SHARE_LEN, SESSION_KEY_LEN,
};
pub use membership::{Flood, FloodAck, Heartbeat, Hello, Lsa, LsaKey, ProxyState};
pub use proximity::{RttAdvert, RttEntry, RttProbe, RttReply};
pub use report::{JapAnnounce, Report, ReportAck, ReportAckEntry, ReportEntry};

use cursor::{Reader, Writer};

/// Protocol version carried in the first byte of proxy-to-proxy and
/// operator messages.
pub const VERSION: u8 = 1;

/// Protocol version of the target messages (Join … JoinNack, 0x40–0x49):
/// 2 since joins and refreshes carry the target's X25519 key share and
/// acks the JAP's, instead of a session key in clear (PROTOCOL.md §2,
/// §5.6). Proxy messages keep version 1, so proxies of both versions still
/// form one overlay; a target must speak the version of its proxies.
pub const TARGET_VERSION: u8 = 2;

/// Default UDP port of the control protocol (configurable). Chosen not to
/// collide with protocols a proxy host is likely to run: VXLAN 4789, Geneve
/// 6081, GTP-U 2152, BFD 3784/4784, BGP 179, memberlist/Swarm 7946; it has
/// no entry in Debian's `/etc/services`. Operators should still check it
/// against their own port plan.
pub const DEFAULT_CONTROL_PORT: u16 = 7450;

/// Largest datagram the protocol sends or accepts. Fits a 1 500-byte MTU
/// with IPv4 + UDP + IP-in-IP headers to spare, so control messages never
/// need IP fragmentation.
pub const MAX_DATAGRAM: usize = 1400;

/// Length of the HMAC-SHA256 tag trailing every proxy-to-proxy message:
/// 128 bits (the left half, as RFC 4868 truncates HMAC-SHA-256-128).
pub const MAC_TAG_LEN: usize = 16;

/// Length of the Ed25519 signature trailing signed messages.
pub const SIGNATURE_LEN: usize = 64;

/// Cap on [`Lsa`] entries in one [`Flood`].
pub const MAX_FLOOD_ENTRIES: usize = 48;
/// Cap on keys in one [`FloodAck`].
pub const MAX_FLOOD_ACKS: usize = 96;
/// Cap on entries in one [`RttAdvert`].
pub const MAX_RTT_ENTRIES: usize = 160;
/// Cap on groups in one [`Report`].
pub const MAX_REPORT_ENTRIES: usize = 64;
/// Cap on groups in one [`ReportAck`].
pub const MAX_REPORT_ACK_ENTRIES: usize = 64;
/// Cap on JAPs in one [`JapList`].
pub const MAX_JAPS: usize = 16;

/// A received datagram that could not be parsed. Small and `Copy`: it names
/// the reason a counter is bumped, it never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The datagram or a field ends before the layout says it should.
    #[error("truncated")]
    Truncated,
    /// The datagram is longer than [`MAX_DATAGRAM`].
    #[error("datagram longer than {MAX_DATAGRAM} bytes")]
    Oversized,
    /// The version byte is not the message type's ([`VERSION`] or
    /// [`TARGET_VERSION`], see [`MessageType::version`]).
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The type byte names no message of this version.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// The length field differs from the received datagram's length.
    #[error("declared length {declared} but received {received} bytes")]
    LengthMismatch {
        /// The length field.
        declared: u16,
        /// The datagram's length.
        received: usize,
    },
    /// A list's element count exceeds its cap.
    #[error("{count} {what} exceed the cap of {cap}")]
    TooMany {
        /// What the list holds.
        what: &'static str,
        /// The count on the wire.
        count: usize,
        /// The cap for this list.
        cap: usize,
    },
    /// Bytes remain after the last field of the body.
    #[error("trailing bytes after the body")]
    TrailingBytes,
    /// A field holds a value this version does not define (an enum value,
    /// a reserved bit, a port on a whole-IP group, …).
    #[error("invalid value in field {0}")]
    BadField(&'static str),
}

/// A message that could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The caller's buffer is shorter than the message.
    #[error("buffer too small")]
    BufferTooSmall,
    /// The message would exceed [`MAX_DATAGRAM`].
    #[error("message longer than {MAX_DATAGRAM} bytes")]
    Oversized,
    /// A list is longer than its cap.
    #[error("{count} {what} exceed the cap of {cap}")]
    TooMany {
        /// What the list holds.
        what: &'static str,
        /// The list's length.
        count: usize,
        /// The cap for this list.
        cap: usize,
    },
    /// A field holds a value the wire cannot carry.
    #[error("invalid value in field {0}")]
    BadField(&'static str),
    /// A proxy-to-proxy message needs a [`ProxyHeader`] and got none, or
    /// another class got one.
    #[error("proxy header given to the wrong message class")]
    HeaderMismatch,
}

/// How a message is authenticated; decides the header and the trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthClass {
    /// Proxy to proxy: [`ProxyHeader`] and an HMAC-SHA256 tag over the
    /// proxy-group key ([`crate::auth::mac`]).
    ProxyMac,
    /// Target to proxy: an Ed25519 signature by the group owner's key.
    GroupSigned,
    /// Operator to proxies: an Ed25519 signature by the operator's key.
    OperatorSigned,
    /// Target to its JAP under a session the JAP granted: an HMAC-SHA256
    /// tag with the session's key ([`crate::auth::session`]).
    SessionMac,
    /// Proxy to target replies: no trailer; bound to the request by the
    /// echoed nonce (see PROTOCOL.md).
    Unauthenticated,
}

impl AuthClass {
    /// Bytes before the body.
    pub const fn header_len(self) -> usize {
        match self {
            AuthClass::ProxyMac => PROXY_HEADER_LEN,
            _ => PREFIX_LEN,
        }
    }

    /// Bytes after the body.
    pub const fn trailer_len(self) -> usize {
        match self {
            AuthClass::ProxyMac | AuthClass::SessionMac => MAC_TAG_LEN,
            AuthClass::GroupSigned | AuthClass::OperatorSigned => SIGNATURE_LEN,
            AuthClass::Unauthenticated => 0,
        }
    }
}

macro_rules! message_types {
    ($( $(#[$doc:meta])* $name:ident = $val:literal, $class:ident; )*) => {
        /// The type byte: which message a datagram holds.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum MessageType {
            $( $(#[$doc])* $name = $val, )*
        }

        impl MessageType {
            /// Every type of this version, in type-byte order.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$name,)*];

            /// The type for a type byte, if this version defines one.
            pub const fn from_u8(v: u8) -> Option<Self> {
                match v {
                    $( $val => Some(MessageType::$name), )*
                    _ => None,
                }
            }

            /// How messages of this type are authenticated.
            pub const fn auth_class(self) -> AuthClass {
                match self {
                    $( MessageType::$name => AuthClass::$class, )*
                }
            }

            /// The version byte of messages of this type: the target
            /// messages' classes ([`TARGET_VERSION`]) or everything else's
            /// ([`VERSION`]).
            pub const fn version(self) -> u8 {
                match self.auth_class() {
                    AuthClass::GroupSigned
                    | AuthClass::SessionMac
                    | AuthClass::Unauthenticated => TARGET_VERSION,
                    AuthClass::ProxyMac | AuthClass::OperatorSigned => VERSION,
                }
            }
        }
    };
}

message_types! {
    /// Proxy → neighbour: "I want you as a neighbour", with the sender's LSA.
    Hello = 0x01, ProxyMac;
    /// Proxy → neighbour: periodic liveness.
    Heartbeat = 0x02, ProxyMac;
    /// Proxy → neighbour: membership statements to install and relay.
    Flood = 0x03, ProxyMac;
    /// Proxy → neighbour: acknowledges flooded statements.
    FloodAck = 0x04, ProxyMac;
    /// Proxy → proxy of another cluster: RTT probe.
    RttProbe = 0x10, ProxyMac;
    /// Reply to an RTT probe, echoing its nonce.
    RttReply = 0x11, ProxyMac;
    /// A cluster's measured minimum RTTs to other clusters.
    RttAdvert = 0x12, ProxyMac;
    /// JAP → RAP: approximate target counts per group.
    Report = 0x20, ProxyMac;
    /// RAP → JAP: reports received, with the accuracy band to use next.
    ReportAck = 0x21, ProxyMac;
    /// RAP → IAP: the group's JAPs, best first.
    JapList = 0x22, ProxyMac;
    /// JAP → IAP: drop cache entries naming this JAP for the group.
    Invalidate = 0x23, ProxyMac;
    /// IAP → RAP: send me the group's JAP list.
    RapQuery = 0x24, ProxyMac;
    /// JAP → every proxy: target counts of RAP-less groups (flooded).
    JapAnnounce = 0x25, ProxyMac;
    /// Target → anycast address: join a group.
    Join = 0x40, GroupSigned;
    /// Target → its JAP: renew the soft state of a join.
    Refresh = 0x41, GroupSigned;
    /// Target → its JAP: leave a group.
    Leave = 0x42, GroupSigned;
    /// Target → its JAP: renew the soft state under a session (MAC'd).
    SessionRefresh = 0x43, SessionMac;
    /// JAP → target: join, refresh or leave accepted.
    JoinAck = 0x48, Unauthenticated;
    /// JAP → target: request refused, with the reason.
    JoinNack = 0x49, Unauthenticated;
    /// Operator → proxies: register, update or withdraw a group.
    GroupRegister = 0x60, OperatorSigned;
}

/// Every message body this version defines, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Heartbeat`].
    Heartbeat(Heartbeat),
    /// See [`Flood`].
    Flood(Flood),
    /// See [`FloodAck`].
    FloodAck(FloodAck),
    /// See [`RttProbe`].
    RttProbe(RttProbe),
    /// See [`RttReply`].
    RttReply(RttReply),
    /// See [`RttAdvert`].
    RttAdvert(RttAdvert),
    /// See [`Report`].
    Report(Report),
    /// See [`ReportAck`].
    ReportAck(ReportAck),
    /// See [`JapList`].
    JapList(JapList),
    /// See [`Invalidate`].
    Invalidate(Invalidate),
    /// See [`RapQuery`].
    RapQuery(RapQuery),
    /// See [`JapAnnounce`].
    JapAnnounce(JapAnnounce),
    /// A join: see [`TargetRequest`].
    Join(TargetRequest),
    /// A refresh: see [`TargetRequest`].
    Refresh(TargetRequest),
    /// A leave: see [`TargetRequest`].
    Leave(TargetRequest),
    /// See [`SessionRefresh`].
    SessionRefresh(SessionRefresh),
    /// See [`JoinAck`].
    JoinAck(JoinAck),
    /// See [`JoinNack`].
    JoinNack(JoinNack),
    /// See [`GroupRegister`].
    GroupRegister(GroupRegister),
}

impl Message {
    /// The type byte of this message.
    pub const fn msg_type(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::Hello,
            Message::Heartbeat(_) => MessageType::Heartbeat,
            Message::Flood(_) => MessageType::Flood,
            Message::FloodAck(_) => MessageType::FloodAck,
            Message::RttProbe(_) => MessageType::RttProbe,
            Message::RttReply(_) => MessageType::RttReply,
            Message::RttAdvert(_) => MessageType::RttAdvert,
            Message::Report(_) => MessageType::Report,
            Message::ReportAck(_) => MessageType::ReportAck,
            Message::JapList(_) => MessageType::JapList,
            Message::Invalidate(_) => MessageType::Invalidate,
            Message::RapQuery(_) => MessageType::RapQuery,
            Message::JapAnnounce(_) => MessageType::JapAnnounce,
            Message::Join(_) => MessageType::Join,
            Message::Refresh(_) => MessageType::Refresh,
            Message::Leave(_) => MessageType::Leave,
            Message::SessionRefresh(_) => MessageType::SessionRefresh,
            Message::JoinAck(_) => MessageType::JoinAck,
            Message::JoinNack(_) => MessageType::JoinNack,
            Message::GroupRegister(_) => MessageType::GroupRegister,
        }
    }

    /// Parse a body of the given type (the bytes between header and
    /// trailer). Exposed for the per-family fuzz targets; a receiver uses
    /// [`crate::auth::Gate::open`], which parses the frame, checks its
    /// authentication and only then calls this.
    pub fn parse_body(ty: MessageType, body: &[u8]) -> Result<Message, WireError> {
        let mut r = Reader::new(body);
        let msg = match ty {
            MessageType::Hello => Message::Hello(Hello::parse(&mut r)?),
            MessageType::Heartbeat => Message::Heartbeat(Heartbeat::parse(&mut r)?),
            MessageType::Flood => Message::Flood(Flood::parse(&mut r)?),
            MessageType::FloodAck => Message::FloodAck(FloodAck::parse(&mut r)?),
            MessageType::RttProbe => Message::RttProbe(RttProbe::parse(&mut r)?),
            MessageType::RttReply => Message::RttReply(RttReply::parse(&mut r)?),
            MessageType::RttAdvert => Message::RttAdvert(RttAdvert::parse(&mut r)?),
            MessageType::Report => Message::Report(Report::parse(&mut r)?),
            MessageType::ReportAck => Message::ReportAck(ReportAck::parse(&mut r)?),
            MessageType::JapList => Message::JapList(JapList::parse(&mut r)?),
            MessageType::Invalidate => Message::Invalidate(Invalidate::parse(&mut r)?),
            MessageType::RapQuery => Message::RapQuery(RapQuery::parse(&mut r)?),
            MessageType::JapAnnounce => Message::JapAnnounce(JapAnnounce::parse(&mut r)?),
            MessageType::Join => Message::Join(TargetRequest::parse(&mut r, ty)?),
            MessageType::Refresh => Message::Refresh(TargetRequest::parse(&mut r, ty)?),
            MessageType::Leave => Message::Leave(TargetRequest::parse(&mut r, ty)?),
            MessageType::SessionRefresh => Message::SessionRefresh(SessionRefresh::parse(&mut r)?),
            MessageType::JoinAck => Message::JoinAck(JoinAck::parse(&mut r)?),
            MessageType::JoinNack => Message::JoinNack(JoinNack::parse(&mut r)?),
            MessageType::GroupRegister => Message::GroupRegister(GroupRegister::parse(&mut r)?),
        };
        r.finish()?;
        Ok(msg)
    }

    /// Length of the body in bytes.
    pub fn body_len(&self) -> usize {
        match self {
            Message::Hello(_) => Hello::LEN,
            Message::Heartbeat(_) => Heartbeat::LEN,
            Message::Flood(m) => m.body_len(),
            Message::FloodAck(m) => m.body_len(),
            Message::RttProbe(_) => RttProbe::LEN,
            Message::RttReply(_) => RttReply::LEN,
            Message::RttAdvert(m) => m.body_len(),
            Message::Report(m) => m.body_len(),
            Message::ReportAck(m) => m.body_len(),
            Message::JapList(m) => m.body_len(),
            Message::Invalidate(_) => Invalidate::LEN,
            Message::RapQuery(_) => RapQuery::LEN,
            Message::JapAnnounce(m) => m.body_len(),
            Message::Join(m) | Message::Refresh(m) | Message::Leave(m) => m.body_len(),
            Message::SessionRefresh(_) => SessionRefresh::LEN,
            Message::JoinAck(_) => JoinAck::LEN,
            Message::JoinNack(_) => JoinNack::LEN,
            Message::GroupRegister(_) => GroupRegister::LEN,
        }
    }

    /// Length of the whole datagram: header, body and trailer.
    pub fn datagram_len(&self) -> usize {
        let class = self.msg_type().auth_class();
        class.header_len() + self.body_len() + class.trailer_len()
    }

    fn emit_body(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        match self {
            Message::Hello(m) => m.emit(w),
            Message::Heartbeat(m) => m.emit(w),
            Message::Flood(m) => m.emit(w),
            Message::FloodAck(m) => m.emit(w),
            Message::RttProbe(m) => m.emit(w),
            Message::RttReply(m) => m.emit(w),
            Message::RttAdvert(m) => m.emit(w),
            Message::Report(m) => m.emit(w),
            Message::ReportAck(m) => m.emit(w),
            Message::JapList(m) => m.emit(w),
            Message::Invalidate(m) => m.emit(w),
            Message::RapQuery(m) => m.emit(w),
            Message::JapAnnounce(m) => m.emit(w),
            Message::Join(m) => m.emit(w, MessageType::Join),
            Message::Refresh(m) => m.emit(w, MessageType::Refresh),
            Message::Leave(m) => m.emit(w, MessageType::Leave),
            Message::SessionRefresh(m) => m.emit(w),
            Message::JoinAck(m) => m.emit(w),
            Message::JoinNack(m) => m.emit(w),
            Message::GroupRegister(m) => m.emit(w),
        }
    }

    /// Write the datagram into `buf`: prefix, the proxy header (required
    /// for, and only for, [`AuthClass::ProxyMac`] messages), the body and a
    /// zero-filled trailer. Returns the datagram's length. The trailer is
    /// filled by [`crate::auth`] (`seal_proxy`, `sign_target_request`,
    /// `sign_group_register`).
    pub fn emit(&self, proxy: Option<&ProxyHeader>, buf: &mut [u8]) -> Result<usize, EmitError> {
        let ty = self.msg_type();
        let class = ty.auth_class();
        let len = self.datagram_len();
        if len > MAX_DATAGRAM {
            return Err(EmitError::Oversized);
        }
        let out = buf.get_mut(..len).ok_or(EmitError::BufferTooSmall)?;
        // `len <= MAX_DATAGRAM` fits in u16.
        let len16 = u16::try_from(len).map_err(|_| EmitError::Oversized)?;
        let mut w = Writer::new(out);
        header::emit_prefix(&mut w, ty, len16)?;
        match (class, proxy) {
            (AuthClass::ProxyMac, Some(h)) => h.emit(&mut w)?,
            (AuthClass::ProxyMac, None) | (_, Some(_)) => return Err(EmitError::HeaderMismatch),
            (_, None) => {}
        }
        self.emit_body(&mut w)?;
        if w.position() + class.trailer_len() != len {
            // A body_len that disagrees with emit would be a bug here, not
            // bad input; refuse rather than send a malformed datagram.
            return Err(EmitError::BadField("body length"));
        }
        w.bytes(&[0u8; SIGNATURE_LEN][..class.trailer_len()])?;
        Ok(len)
    }
}

/// A received datagram whose prefix, header and length have been checked.
/// Nothing in it is authenticated yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The message type.
    pub msg_type: MessageType,
    /// The proxy header, for [`AuthClass::ProxyMac`] messages.
    pub proxy: Option<ProxyHeader>,
    /// The body (between header and trailer), not parsed yet.
    pub body: &'a [u8],
    /// Every byte the MAC or signature covers: the datagram minus its
    /// trailer.
    pub covered: &'a [u8],
    /// The MAC tag or signature; empty for unauthenticated replies.
    pub trailer: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Check a datagram's prefix (version, type, length) and split it into
    /// header, body and trailer.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        if buf.len() > MAX_DATAGRAM {
            return Err(WireError::Oversized);
        }
        let mut r = Reader::new(buf);
        let (msg_type, declared) = header::parse_prefix(&mut r)?;
        if usize::from(declared) != buf.len() {
            return Err(WireError::LengthMismatch {
                declared,
                received: buf.len(),
            });
        }
        let class = msg_type.auth_class();
        let body_end = buf
            .len()
            .checked_sub(class.trailer_len())
            .ok_or(WireError::Truncated)?;
        if body_end < class.header_len() {
            return Err(WireError::Truncated);
        }
        let proxy = match class {
            AuthClass::ProxyMac => Some(ProxyHeader::parse(&mut r)?),
            _ => None,
        };
        let covered = buf.get(..body_end).ok_or(WireError::Truncated)?;
        let body = covered
            .get(class.header_len()..)
            .ok_or(WireError::Truncated)?;
        let trailer = buf.get(body_end..).ok_or(WireError::Truncated)?;
        Ok(Frame {
            msg_type,
            proxy,
            body,
            covered,
            trailer,
        })
    }

    /// Parse the body. Call only after the frame's authentication checked
    /// out (or in tests and fuzzing).
    pub fn message(&self) -> Result<Message, WireError> {
        Message::parse_body(self.msg_type, self.body)
    }
}

/// Parse a whole datagram without checking its authentication: for tests,
/// tools and fuzzing. Receivers use [`crate::auth::Gate::open`].
pub fn decode_unauthenticated(buf: &[u8]) -> Result<(Frame<'_>, Message), WireError> {
    let frame = Frame::parse(buf)?;
    let msg = frame.message()?;
    Ok((frame, msg))
}

#[cfg(test)]
pub(crate) mod tests;

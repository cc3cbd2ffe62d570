//! Wire tests: literal bytes, round trips of every message, truncation and
//! extension at every length, caps, and header errors.

use core::net::Ipv4Addr;

use pias_dataplane::types::{
    ClusterId, Criterion, GroupAddr, GroupOptions, GroupProto, ProxyId, TargetAddr,
};
use proptest::prelude::*;

use super::*;
use crate::time::UnixTime;

/// proptest strategies for every message (shared with the auth tests).
pub(crate) mod strategies {
    use super::*;

    pub fn group() -> impl Strategy<Value = GroupAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>(), any::<bool>()).prop_map(|(ip, port, tcp)| {
                GroupAddr::Port {
                    ip: Ipv4Addr::from(ip),
                    port,
                    proto: if tcp {
                        GroupProto::Tcp
                    } else {
                        GroupProto::Udp
                    },
                }
            }),
            any::<[u8; 4]>().prop_map(|ip| GroupAddr::WholeIp(Ipv4Addr::from(ip))),
        ]
    }

    pub fn target() -> impl Strategy<Value = TargetAddr> {
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| TargetAddr {
            ip: Ipv4Addr::from(ip),
            port,
        })
    }

    pub fn options() -> impl Strategy<Value = GroupOptions> {
        (0u8..4, any::<bool>(), any::<bool>()).prop_map(|(c, affinity, rapless)| GroupOptions {
            criterion: match c {
                0 => Criterion::Proximity,
                1 => Criterion::Load,
                2 => Criterion::Random,
                _ => Criterion::Weighted,
            },
            affinity,
            rapless,
        })
    }

    pub fn lsa() -> impl Strategy<Value = Lsa> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(s, o, a, c, up, inc, ver)| Lsa {
                subject: ProxyId(s),
                origin: ProxyId(o),
                addr: Ipv4Addr::from(a),
                cluster: ClusterId(c),
                state: if up { ProxyState::Up } else { ProxyState::Down },
                incarnation: inc,
                version: ver,
            })
    }

    pub fn target_request(leave: bool) -> impl Strategy<Value = TargetRequest> {
        (
            group(),
            target(),
            options(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<[u8; KEY_SHARE_LEN]>(),
        )
            .prop_map(move |(group, target, options, life, ts, nonce, share)| {
                TargetRequest {
                    group,
                    target,
                    options,
                    lifetime_s: if leave { 0 } else { life },
                    timestamp: UnixTime(ts),
                    nonce,
                    // Joins and refreshes carry a share, leaves none.
                    share: (!leave).then_some(KeyShare(share)),
                }
            })
    }

    /// Proxy-to-proxy messages.
    pub fn proxy_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            lsa().prop_map(|lsa| Message::Hello(Hello { lsa })),
            (any::<u32>(), any::<bool>()).prop_map(|(incarnation, monitoring)| {
                Message::Heartbeat(Heartbeat {
                    incarnation,
                    monitoring,
                })
            }),
            proptest::collection::vec(lsa(), 0..=MAX_FLOOD_ENTRIES)
                .prop_map(|entries| Message::Flood(Flood { entries })),
            proptest::collection::vec(lsa().prop_map(|l| l.key()), 0..=MAX_FLOOD_ACKS)
                .prop_map(|acks| Message::FloodAck(FloodAck { acks })),
            (any::<u16>(), any::<u64>()).prop_map(|(c, nonce)| Message::RttProbe(RttProbe {
                cluster: ClusterId(c),
                nonce
            })),
            (any::<u16>(), any::<u64>()).prop_map(|(c, nonce)| Message::RttReply(RttReply {
                cluster: ClusterId(c),
                nonce
            })),
            (
                any::<u16>(),
                any::<u32>(),
                proptest::collection::vec((any::<u16>(), any::<u32>()), 0..=MAX_RTT_ENTRIES)
            )
                .prop_map(|(o, version, es)| Message::RttAdvert(RttAdvert {
                    origin: ClusterId(o),
                    version,
                    entries: es
                        .into_iter()
                        .map(|(p, rtt_us)| RttEntry {
                            peer: ClusterId(p),
                            rtt_us
                        })
                        .collect(),
                })),
            (
                any::<u32>(),
                proptest::collection::vec(
                    (group(), any::<u32>(), any::<bool>(), any::<u32>()),
                    0..=MAX_REPORT_ENTRIES
                )
            )
                .prop_map(|(jap, es)| Message::Report(Report {
                    jap: ProxyId(jap),
                    entries: es
                        .into_iter()
                        .map(|(group, approx_targets, overloaded, seq)| ReportEntry {
                            group,
                            approx_targets,
                            overloaded,
                            seq
                        })
                        .collect(),
                })),
            proptest::collection::vec(
                (group(), any::<u32>(), 0u8..=ReportAckEntry::MAX_BAND_PCT),
                0..=MAX_REPORT_ACK_ENTRIES
            )
            .prop_map(|es| Message::ReportAck(ReportAck {
                entries: es
                    .into_iter()
                    .map(|(group, seq, band_pct)| ReportAckEntry {
                        group,
                        seq,
                        band_pct
                    })
                    .collect(),
            })),
            (
                group(),
                any::<u32>(),
                proptest::collection::vec(any::<u32>(), 0..=MAX_JAPS)
            )
                .prop_map(|(group, ttl_s, japs)| Message::JapList(JapList {
                    group,
                    ttl_s,
                    japs: japs.into_iter().map(ProxyId).collect(),
                })),
            (group(), any::<u32>()).prop_map(|(group, j)| Message::Invalidate(Invalidate {
                group,
                jap: ProxyId(j)
            })),
            group().prop_map(|group| Message::RapQuery(RapQuery { group })),
            (
                any::<u32>(),
                proptest::collection::vec(
                    (group(), any::<u32>(), any::<bool>(), any::<u32>()),
                    0..=MAX_REPORT_ENTRIES
                )
            )
                .prop_map(|(jap, es)| Message::JapAnnounce(JapAnnounce {
                    jap: ProxyId(jap),
                    entries: es
                        .into_iter()
                        .map(|(group, approx_targets, overloaded, seq)| ReportEntry {
                            group,
                            approx_targets,
                            overloaded,
                            seq
                        })
                        .collect(),
                })),
        ]
    }

    /// Messages of the other classes.
    pub fn other_message() -> impl Strategy<Value = Message> {
        let nack = prop_oneof![
            Just(NackReason::UnknownGroup),
            Just(NackReason::BadSignature),
            Just(NackReason::Stale),
            Just(NackReason::Replay),
            Just(NackReason::Full),
            Just(NackReason::Withdrawn),
            Just(NackReason::NotJoined),
            Just(NackReason::BadTarget),
            Just(NackReason::SessionUnknown),
            Just(NackReason::SessionExpired),
        ];
        prop_oneof![
            target_request(false).prop_map(Message::Join),
            target_request(false).prop_map(Message::Refresh),
            target_request(true).prop_map(Message::Leave),
            (
                group(),
                target(),
                any::<u64>(),
                any::<u32>(),
                any::<u32>(),
                proptest::option::of((1..=u64::MAX, any::<u64>(), any::<[u8; KEY_SHARE_LEN]>()))
            )
                .prop_map(|(group, target, nonce, j, lifetime_s, session)| {
                    Message::JoinAck(JoinAck {
                        group,
                        target,
                        nonce,
                        jap: ProxyId(j),
                        lifetime_s,
                        session: session.map(|(id, e, share)| SessionGrant {
                            id,
                            expires: UnixTime(e),
                            share: KeyShare(share),
                        }),
                    })
                }),
            (
                group(),
                target(),
                1..=u64::MAX,
                any::<u64>(),
                any::<u64>(),
                any::<u32>()
            )
                .prop_map(|(group, target, session, counter, nonce, lifetime_s)| {
                    Message::SessionRefresh(SessionRefresh {
                        group,
                        target,
                        session,
                        counter,
                        nonce,
                        lifetime_s,
                    })
                }),
            (group(), target(), any::<u64>(), nack).prop_map(|(group, target, nonce, reason)| {
                Message::JoinNack(JoinNack {
                    group,
                    target,
                    nonce,
                    reason,
                })
            }),
            (
                group(),
                options(),
                any::<bool>(),
                any::<u64>(),
                any::<[u8; 32]>()
            )
                .prop_map(|(group, options, withdrawn, serial, owner_key)| {
                    Message::GroupRegister(GroupRegister {
                        group,
                        options,
                        withdrawn,
                        serial,
                        owner_key,
                    })
                }),
        ]
    }

    pub fn header() -> impl Strategy<Value = ProxyHeader> {
        (any::<u32>(), any::<u8>(), any::<u32>(), any::<u64>()).prop_map(|(s, k, epoch, seq)| {
            ProxyHeader {
                sender: ProxyId(s),
                key_id: KeyId(k),
                epoch,
                seq,
            }
        })
    }

    /// Any message with the header its class needs.
    pub fn datagram() -> impl Strategy<Value = (Option<ProxyHeader>, Message)> {
        prop_oneof![
            (header(), proxy_message()).prop_map(|(h, m)| (Some(h), m)),
            other_message().prop_map(|m| (None, m)),
        ]
    }
}

fn emit_vec(h: Option<&ProxyHeader>, m: &Message) -> Vec<u8> {
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = m.emit(h, &mut buf).expect("emit");
    buf[..n].to_vec()
}

fn set_len(buf: &mut [u8], len: usize) {
    let l = (len as u16).to_be_bytes();
    buf[2] = l[0];
    buf[3] = l[1];
}

fn udp_group() -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 10),
        port: 53,
        proto: GroupProto::Udp,
    }
}

#[test]
fn heartbeat_literal() {
    let h = ProxyHeader {
        sender: ProxyId(7),
        key_id: KeyId(1),
        epoch: 2,
        seq: 3,
    };
    let m = Message::Heartbeat(Heartbeat {
        incarnation: 5,
        monitoring: true,
    });
    let mut want = vec![
        0x01, 0x02, 0x00, 0x2b, // version, type, length 43
        0x00, 0x00, 0x00, 0x07, // sender
        0x01, 0x00, // key id, flags
        0x00, 0x00, 0x00, 0x02, // epoch
        0, 0, 0, 0, 0, 0, 0, 0x03, // seq
        0x00, 0x00, 0x00, 0x05, 0x01, // incarnation, monitoring
    ];
    want.extend_from_slice(&[0u8; MAC_TAG_LEN]);
    assert_eq!(emit_vec(Some(&h), &m), want);
    let (frame, parsed) = decode_unauthenticated(&want).unwrap();
    assert_eq!(parsed, m);
    assert_eq!(frame.proxy, Some(h));
    assert_eq!(frame.covered.len(), 43 - MAC_TAG_LEN);
    assert_eq!(frame.trailer.len(), MAC_TAG_LEN);
    let v = header::HeaderView::new_unchecked(&want[..]);
    assert_eq!(v.sender(), Some(ProxyId(7)));
    assert_eq!(v.seq(), Some(3));
    assert_eq!(v.length(), Some(43));
    assert_eq!(header::HeaderView::new_unchecked(&want[..3]).length(), None);
}

#[test]
fn join_literal() {
    let m = Message::Join(TargetRequest {
        group: udp_group(),
        target: TargetAddr {
            ip: Ipv4Addr::new(203, 0, 113, 5),
            port: 53,
        },
        options: GroupOptions {
            criterion: Criterion::Proximity,
            affinity: true,
            rapless: false,
        },
        lifetime_s: 60,
        timestamp: UnixTime(1_700_000_000),
        nonce: 0x0102_0304_0506_0708,
        share: Some(KeyShare([0xa5; KEY_SHARE_LEN])),
    });
    let mut want = vec![
        0x02, 0x40, 0x00, 0x87, // version 2 (target messages), Join, length 135
        198, 51, 100, 10, 0x00, 0x35, 17, // group 198.51.100.10:53/udp
        203, 0, 113, 5, 0x00, 0x35, // target
        0x00, 0x01, // proximity, affinity
        0x00, 0x00, 0x00, 0x3c, // lifetime 60
        0x00, 0x00, 0x00, 0x00, 0x65, 0x53, 0xf1, 0x00, // timestamp
        1, 2, 3, 4, 5, 6, 7, 8, // nonce
    ];
    want.extend_from_slice(&[0xa5; KEY_SHARE_LEN]); // the target's X25519 share
    want.extend_from_slice(&[0u8; SIGNATURE_LEN]);
    assert_eq!(emit_vec(None, &m), want);
    assert_eq!(decode_unauthenticated(&want).unwrap().1, m);
    // The same body under version 1 (the layout without a share) is
    // refused, not misread.
    let mut v1 = want.clone();
    v1[0] = 1;
    assert_eq!(Frame::parse(&v1), Err(WireError::UnsupportedVersion(1)));
}

#[test]
fn join_ack_literal() {
    let m = Message::JoinAck(JoinAck {
        group: udp_group(),
        target: TargetAddr {
            ip: Ipv4Addr::new(203, 0, 113, 5),
            port: 53,
        },
        nonce: 0x0102_0304_0506_0708,
        jap: ProxyId(7),
        lifetime_s: 60,
        session: Some(SessionGrant {
            id: 1,
            expires: UnixTime(1_700_003_600),
            share: KeyShare([0x5a; KEY_SHARE_LEN]),
        }),
    });
    let mut want = vec![
        0x02, 0x48, 0x00, 0x51, // version 2, JoinAck, length 81
        198, 51, 100, 10, 0x00, 0x35, 17, // group
        203, 0, 113, 5, 0x00, 0x35, // target
        1, 2, 3, 4, 5, 6, 7, 8, // nonce
        0, 0, 0, 7, // JAP
        0x00, 0x00, 0x00, 0x3c, // lifetime 60
        0, 0, 0, 0, 0, 0, 0, 1, // session id
        0x00, 0x00, 0x00, 0x00, 0x65, 0x53, 0xff, 0x10, // expiry
    ];
    want.extend_from_slice(&[0x5a; KEY_SHARE_LEN]); // the JAP's X25519 share
    assert_eq!(emit_vec(None, &m), want);
    assert_eq!(decode_unauthenticated(&want).unwrap().1, m);
    // No session: id, expiry and share all zero; a share without an id is
    // malformed.
    let Message::JoinAck(a) = m else {
        unreachable!()
    };
    let none = emit_vec(None, &Message::JoinAck(JoinAck { session: None, ..a }));
    assert!(none[4 + 29..].iter().all(|&b| b == 0));
    let mut bad = none.clone();
    let last = bad.len() - 1;
    bad[last] = 1;
    assert_eq!(
        decode_unauthenticated(&bad).map(|x| x.1),
        Err(WireError::BadField("session of id 0"))
    );
    // A join or refresh must carry a share and a leave must not.
    let req = TargetRequest {
        group: udp_group(),
        target: a.target,
        options: GroupOptions::default(),
        lifetime_s: 0,
        timestamp: UnixTime(1),
        nonce: 1,
        share: None,
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    for m in [Message::Join(req), Message::Refresh(req)] {
        assert_eq!(
            m.emit(None, &mut buf),
            Err(EmitError::BadField("key share (joins and refreshes only)"))
        );
    }
    let with = TargetRequest {
        share: Some(KeyShare([1; KEY_SHARE_LEN])),
        ..req
    };
    assert_eq!(
        Message::Leave(with).emit(None, &mut buf),
        Err(EmitError::BadField("key share (joins and refreshes only)"))
    );
    // A join cut before its share ends is refused (the frame is whole,
    // the body short).
    let join = emit_vec(
        None,
        &Message::Join(TargetRequest {
            lifetime_s: 60,
            ..with
        }),
    );
    let body = &join[4..join.len() - SIGNATURE_LEN];
    assert_eq!(
        Message::parse_body(MessageType::Join, &body[..body.len() - 1]),
        Err(WireError::Truncated)
    );
    assert_eq!(
        Message::parse_body(MessageType::Leave, body),
        Err(WireError::BadField("lifetime of a leave"))
    );
}

#[test]
fn japlist_literal() {
    let h = ProxyHeader {
        sender: ProxyId(9),
        key_id: KeyId(0),
        epoch: 1,
        seq: 42,
    };
    let m = Message::JapList(JapList {
        group: GroupAddr::WholeIp(Ipv4Addr::new(198, 51, 100, 20)),
        ttl_s: 3600,
        japs: vec![ProxyId(1), ProxyId(2)],
    });
    let mut want = vec![
        0x01, 0x22, 0x00, 0x3a, // version, JapList, length 58
        0, 0, 0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42, // header
        198, 51, 100, 20, 0, 0, 0, // whole-IP group
        0x00, 0x00, 0x0e, 0x10, // ttl 3600
        2, 0, 0, 0, 1, 0, 0, 0, 2, // two JAPs
    ];
    want.extend_from_slice(&[0u8; MAC_TAG_LEN]);
    assert_eq!(emit_vec(Some(&h), &m), want);
    assert_eq!(decode_unauthenticated(&want).unwrap().1, m);
}

#[test]
fn jap_announce_literal() {
    let h = ProxyHeader {
        sender: ProxyId(2),
        key_id: KeyId(0),
        epoch: 1,
        seq: 7,
    };
    let m = Message::JapAnnounce(JapAnnounce {
        jap: ProxyId(2),
        entries: vec![ReportEntry {
            group: udp_group(),
            approx_targets: 3,
            overloaded: true,
            seq: 9,
        }],
    });
    let mut want = vec![
        0x01, 0x25, 0x00, 0x3b, // version, JapAnnounce, length 59
        0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, // header
        0, 0, 0, 2, 1, // JAP 2, one entry
        198, 51, 100, 10, 0, 53, 17, // 198.51.100.10:53/udp
        0, 0, 0, 3, 1, 0, 0, 0, 9, // 3 targets, overloaded, seq 9
    ];
    want.extend_from_slice(&[0u8; MAC_TAG_LEN]);
    assert_eq!(emit_vec(Some(&h), &m), want);
    assert_eq!(decode_unauthenticated(&want).unwrap().1, m);
    // Reserved flag bits are refused, as in a report.
    let mut bad = want.clone();
    bad[PROXY_HEADER_LEN + 5 + 11] = 2;
    assert!(matches!(
        decode_unauthenticated(&bad),
        Err(WireError::BadField("report flags"))
    ));
}

#[test]
fn nack_reasons_roundtrip() {
    for (v, r) in [
        (7u8, NackReason::NotJoined),
        (8, NackReason::BadTarget),
        (9, NackReason::SessionUnknown),
        (10, NackReason::SessionExpired),
    ] {
        let mut body = vec![198, 51, 100, 10, 0, 53, 17, 203, 0, 113, 5, 0, 53];
        body.extend_from_slice(&[0; 8]);
        body.push(v);
        match Message::parse_body(MessageType::JoinNack, &body) {
            Ok(Message::JoinNack(n)) => assert_eq!(n.reason, r),
            other => panic!("{other:?}"),
        }
    }
    let mut body = vec![198, 51, 100, 10, 0, 53, 17, 203, 0, 113, 5, 0, 53];
    body.extend_from_slice(&[0; 8]);
    body.push(11);
    assert!(Message::parse_body(MessageType::JoinNack, &body).is_err());
}

#[test]
fn flood_literal() {
    let lsa = Lsa {
        subject: ProxyId(0x0a0b0c0d),
        origin: ProxyId(1),
        addr: Ipv4Addr::new(192, 0, 2, 1),
        cluster: ClusterId(0x0102),
        state: ProxyState::Down,
        incarnation: 3,
        version: 4,
    };
    let body = Message::parse_body(
        MessageType::Flood,
        &[
            1, // count
            0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 1, 192, 0, 2, 1, 0x01, 0x02, 2, 0, 0, 0, 0, 3, 0, 0,
            0, 4,
        ],
    );
    assert_eq!(body, Ok(Message::Flood(Flood { entries: vec![lsa] })));
}

#[test]
fn header_errors() {
    let h = ProxyHeader {
        sender: ProxyId(1),
        key_id: KeyId(0),
        epoch: 0,
        seq: 0,
    };
    let good = emit_vec(
        Some(&h),
        &Message::Heartbeat(Heartbeat {
            incarnation: 1,
            monitoring: false,
        }),
    );
    assert!(decode_unauthenticated(&good).is_ok());

    let mut b = good.clone();
    b[0] = 2;
    assert_eq!(Frame::parse(&b), Err(WireError::UnsupportedVersion(2)));
    let mut b = good.clone();
    b[1] = 0x7f;
    assert_eq!(Frame::parse(&b), Err(WireError::UnknownType(0x7f)));
    let mut b = good.clone();
    b[3] += 1;
    assert_eq!(
        Frame::parse(&b),
        Err(WireError::LengthMismatch {
            declared: good.len() as u16 + 1,
            received: good.len()
        })
    );
    let mut b = good.clone();
    b[9] = 1; // flags
    assert_eq!(Frame::parse(&b), Err(WireError::BadField("flags")));
    assert_eq!(Frame::parse(&[]), Err(WireError::Truncated));
    assert_eq!(Frame::parse(&[1]), Err(WireError::Truncated));
    assert_eq!(
        Frame::parse(&[0u8; MAX_DATAGRAM + 1]),
        Err(WireError::Oversized)
    );
    // A proxy message too short for its header and tag, length consistent.
    let mut b = good[..PROXY_HEADER_LEN].to_vec();
    set_len(&mut b, PROXY_HEADER_LEN);
    assert_eq!(Frame::parse(&b), Err(WireError::Truncated));
}

#[test]
fn field_errors() {
    use MessageType as T;
    // Whole-IP group with a port.
    assert_eq!(
        Message::parse_body(T::RapQuery, &[198, 51, 100, 1, 0, 1, 0]),
        Err(WireError::BadField("group port of a whole-IP group"))
    );
    // Unknown protocol.
    assert_eq!(
        Message::parse_body(T::RapQuery, &[198, 51, 100, 1, 0, 1, 1]),
        Err(WireError::BadField("group protocol"))
    );
    // Heartbeat reserved flag bits.
    assert_eq!(
        Message::parse_body(T::Heartbeat, &[0, 0, 0, 1, 2]),
        Err(WireError::BadField("heartbeat flags"))
    );
    // Band above 100 %.
    assert_eq!(
        Message::parse_body(
            T::ReportAck,
            &[1, 198, 51, 100, 1, 0, 53, 17, 0, 0, 0, 1, 101]
        ),
        Err(WireError::BadField("band"))
    );
    // Leave with a lifetime.
    let leave = TargetRequest {
        group: udp_group(),
        target: TargetAddr {
            ip: Ipv4Addr::new(203, 0, 113, 5),
            port: 53,
        },
        options: GroupOptions::default(),
        lifetime_s: 0,
        timestamp: UnixTime(1),
        nonce: 1,
        share: None,
    };
    let mut b = emit_vec(None, &Message::Leave(leave));
    b[4 + 7 + 6 + 2 + 3] = 1;
    assert_eq!(
        decode_unauthenticated(&b).map(|x| x.1),
        Err(WireError::BadField("lifetime of a leave"))
    );
    let mut buf = [0u8; MAX_DATAGRAM];
    assert_eq!(
        Message::Leave(TargetRequest {
            lifetime_s: 5,
            ..leave
        })
        .emit(None, &mut buf),
        Err(EmitError::BadField("lifetime of a leave"))
    );
    // Unknown nack reason, unknown criterion, unknown option bit.
    let mut nack = vec![198, 51, 100, 1, 0, 53, 17, 203, 0, 113, 5, 0, 53];
    nack.extend_from_slice(&[0; 8]);
    nack.push(0);
    assert_eq!(
        Message::parse_body(T::JoinNack, &nack),
        Err(WireError::BadField("nack reason"))
    );
    let mut reg = vec![198, 51, 100, 1, 0, 53, 17, 4, 0, 0];
    reg.extend_from_slice(&[0; 8 + 32]);
    assert_eq!(
        Message::parse_body(T::GroupRegister, &reg),
        Err(WireError::BadField("criterion"))
    );
    reg[7] = 0;
    reg[8] = 4;
    assert_eq!(
        Message::parse_body(T::GroupRegister, &reg),
        Err(WireError::BadField("option flags"))
    );
    reg[8] = 0;
    reg[9] = 2;
    assert_eq!(
        Message::parse_body(T::GroupRegister, &reg),
        Err(WireError::BadField("registration flags"))
    );
    reg[9] = 1;
    assert!(Message::parse_body(T::GroupRegister, &reg).is_ok());
}

#[test]
fn caps() {
    // Counts above the cap are refused before anything is read.
    assert_eq!(
        Message::parse_body(MessageType::Flood, &[MAX_FLOOD_ENTRIES as u8 + 1]),
        Err(WireError::TooMany {
            what: "flood entries",
            count: MAX_FLOOD_ENTRIES + 1,
            cap: MAX_FLOOD_ENTRIES
        })
    );
    assert!(matches!(
        Message::parse_body(
            MessageType::JapList,
            &[1, 2, 3, 4, 0, 80, 6, 0, 0, 0, 1, 17]
        ),
        Err(WireError::TooMany { what: "japs", .. })
    ));
    // Count disagreeing with the bytes present.
    assert_eq!(
        Message::parse_body(MessageType::FloodAck, &[2; 1 + LsaKey::LEN]),
        Err(WireError::Truncated)
    );
    assert_eq!(
        Message::parse_body(MessageType::FloodAck, &[0, 0]),
        Err(WireError::TrailingBytes)
    );
    // Emit refuses lists above their cap.
    let mut buf = vec![0u8; 64 * 1024];
    let m = Message::JapList(JapList {
        group: udp_group(),
        ttl_s: 1,
        japs: vec![ProxyId(1); MAX_JAPS + 1],
    });
    let h = ProxyHeader {
        sender: ProxyId(1),
        key_id: KeyId(0),
        epoch: 0,
        seq: 0,
    };
    assert!(matches!(
        m.emit(Some(&h), &mut buf),
        Err(EmitError::TooMany { what: "japs", .. })
    ));
    // Every list at its cap fits one datagram; every cap fits the count byte.
    for cap in [
        MAX_FLOOD_ENTRIES,
        MAX_FLOOD_ACKS,
        MAX_RTT_ENTRIES,
        MAX_REPORT_ENTRIES,
        MAX_REPORT_ACK_ENTRIES,
        MAX_JAPS,
    ] {
        assert!(cap <= usize::from(u8::MAX));
    }
    let lsa = Lsa {
        subject: ProxyId(1),
        origin: ProxyId(1),
        addr: Ipv4Addr::LOCALHOST,
        cluster: ClusterId(1),
        state: ProxyState::Up,
        incarnation: 1,
        version: 1,
    };
    let big = [
        Message::Flood(Flood {
            entries: vec![lsa; MAX_FLOOD_ENTRIES],
        }),
        Message::FloodAck(FloodAck {
            acks: vec![lsa.key(); MAX_FLOOD_ACKS],
        }),
        Message::RttAdvert(RttAdvert {
            origin: ClusterId(1),
            version: 1,
            entries: vec![
                RttEntry {
                    peer: ClusterId(2),
                    rtt_us: 1
                };
                MAX_RTT_ENTRIES
            ],
        }),
        Message::Report(Report {
            jap: ProxyId(1),
            entries: vec![
                ReportEntry {
                    group: udp_group(),
                    approx_targets: 1,
                    overloaded: false,
                    seq: 1
                };
                MAX_REPORT_ENTRIES
            ],
        }),
        Message::ReportAck(ReportAck {
            entries: vec![
                ReportAckEntry {
                    group: udp_group(),
                    seq: 1,
                    band_pct: 25
                };
                MAX_REPORT_ACK_ENTRIES
            ],
        }),
        Message::JapAnnounce(JapAnnounce {
            jap: ProxyId(1),
            entries: vec![
                ReportEntry {
                    group: udp_group(),
                    approx_targets: 1,
                    overloaded: false,
                    seq: 1
                };
                MAX_REPORT_ENTRIES
            ],
        }),
    ];
    for m in big {
        assert!(m.datagram_len() <= MAX_DATAGRAM, "{:?}", m.msg_type());
        let b = emit_vec(Some(&h), &m);
        assert_eq!(decode_unauthenticated(&b).unwrap().1, m);
    }
    // A buffer too small.
    let mut small = [0u8; 10];
    assert_eq!(
        Message::RapQuery(RapQuery { group: udp_group() }).emit(Some(&h), &mut small),
        Err(EmitError::BufferTooSmall)
    );
    // Header given to the wrong class, or missing.
    assert_eq!(
        Message::RapQuery(RapQuery { group: udp_group() }).emit(None, &mut buf),
        Err(EmitError::HeaderMismatch)
    );
}

#[test]
fn message_types_are_consistent() {
    for (i, t) in MessageType::ALL.iter().enumerate() {
        assert_eq!(MessageType::from_u8(*t as u8), Some(*t));
        assert!(MessageType::ALL[..i].iter().all(|u| *u != *t));
    }
    let defined = (0..=255u8)
        .filter(|b| MessageType::from_u8(*b).is_some())
        .count();
    assert_eq!(defined, MessageType::ALL.len());
}

proptest! {
    #[test]
    fn roundtrip((h, m) in strategies::datagram()) {
        let b = emit_vec(h.as_ref(), &m);
        prop_assert_eq!(b.len(), m.datagram_len());
        let (frame, parsed) = decode_unauthenticated(&b).unwrap();
        prop_assert_eq!(&parsed, &m);
        prop_assert_eq!(frame.proxy, h);
        prop_assert_eq!(frame.msg_type, m.msg_type());
        // And emitting the parsed message gives the same bytes.
        prop_assert_eq!(emit_vec(frame.proxy.as_ref(), &parsed), b);
    }

    #[test]
    fn truncation_at_every_length_fails((h, m) in strategies::datagram()) {
        let b = emit_vec(h.as_ref(), &m);
        for n in 0..b.len() {
            let mut t = b[..n].to_vec();
            prop_assert!(decode_unauthenticated(&t).is_err(), "prefix {}", n);
            if n >= PREFIX_LEN {
                // Even with the length field agreeing.
                set_len(&mut t, n);
                prop_assert!(decode_unauthenticated(&t).is_err(), "consistent prefix {}", n);
            }
        }
    }

    #[test]
    fn extension_fails((h, m) in strategies::datagram(), extra in proptest::collection::vec(any::<u8>(), 1..8)) {
        let mut b = emit_vec(h.as_ref(), &m);
        b.extend_from_slice(&extra);
        prop_assert!(decode_unauthenticated(&b).is_err());
        let n = b.len();
        set_len(&mut b, n);
        prop_assert!(decode_unauthenticated(&b).is_err());
    }

    #[test]
    fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_unauthenticated(&b);
        for t in MessageType::ALL {
            let _ = Message::parse_body(*t, &b);
        }
    }
}

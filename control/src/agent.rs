//! The target agent: what a target host runs to join groups (seed Figure 2,
//! `join(AA:g, AT:r, options)`; PROTOCOL.md §4.5, §5.4), sans-IO like every
//! machine of this crate. `pias-target` drives it over a UDP socket; tests
//! drive it over real sockets or in memory.
//!
//! Per subscription (a group and the target that serves it):
//!
//! 1. **Join.** A request signed with the group owner's key
//!    ([`crate::auth::sign_target_request`]) goes to the group's anycast
//!    address on the control port, so native anycast delivers it to the
//!    nearest proxy, which becomes the target's JAP. Every try is a new
//!    request (fresh timestamp and nonce: the proxies refuse a nonce seen
//!    before, so a retransmitted copy would be dropped as a replay), after
//!    `retransmit × 2^(try−1)` capped at `max_backoff`, `tries` at most per
//!    round; a round that gets no answer counts a failure and the next one
//!    starts a refresh interval later.
//! 2. **Ack.** A [`JoinAck`] is accepted only if it names the group, the
//!    target and the nonce of a request of the current round, and comes
//!    from the address the request went to or from the group's anycast
//!    address on the control port (the JAP answers from there). It names
//!    the JAP and the granted lifetime.
//! 3. **Refresh** before the soft state expires: every `refresh`, but at
//!    least three times per granted lifetime, so two lost refreshes in a
//!    row do not drop the target. While the JAP's session (granted with the
//!    ack of a signed request, PROTOCOL.md §5.6) has more than two refresh
//!    intervals to run, a refresh is a [`crate::wire::SessionRefresh`] MAC'd with the
//!    session key (an HMAC for the JAP instead of an Ed25519
//!    verification); otherwise, and after a nack saying the session is
//!    unknown or expired (the JAP restarted, routing moved the target to
//!    another JAP), it is signed, at once. The key is never sent: every
//!    signed join or refresh carries a fresh ephemeral X25519 share (drawn
//!    from the agent's RNG), the ack the JAP's, and the agent derives the
//!    key from the two ([`crate::auth::exchange`]) and drops its private
//!    key. A session refresh the JAP does not answer [`SESSION_TRIES`]
//!    times in a row (it drops a bad MAC silently: an attacker swapped the
//!    JAP's share in the ack, or the session is otherwise broken) ends the
//!    session, and the round's next try is signed.
//! 4. **Leave** on [`Agent::leave`]: a signed leave per subscription,
//!    `leave_tries` tries `leave_retransmit` apart; acked (or answered
//!    "not joined") ends it, and [`Agent::is_done`] says when all ended.
//!
//! A [`JoinNack`] ends the round: the reason is kept in the status and the
//! next round starts a refresh interval later (the operator may fix the
//! registration meanwhile), except a nonce replay, which retries at once
//! with a new nonce.

use std::collections::VecDeque;

use core::net::SocketAddrV4;
use core::time::Duration;

use ed25519_dalek::SigningKey;
use pias_dataplane::types::{GroupAddr, GroupOptions, ProxyId, TargetAddr};
use rand::RngCore;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::auth::{sign_target_request, EphemeralSecret, TargetSession};
use crate::time::{Instant, UnixTime};
use crate::wire::{
    decode_unauthenticated, JoinAck, JoinNack, Message, NackReason, TargetRequest,
    DEFAULT_CONTROL_PORT,
};

/// Nonces of one round remembered for matching replies.
const OUTSTANDING: usize = 8;

/// Unanswered tries of a session refresh, within a round, after which the
/// session is dropped and the round's next try is signed.
pub const SESSION_TRIES: u32 = 2;

/// A group to join and the target that serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// The group `AA:g`.
    pub group: GroupAddr,
    /// The target `AT:r` (port 0 for a whole-IP group).
    pub target: TargetAddr,
    /// Options asked for (the registered ones win).
    pub options: GroupOptions,
}

/// Settings of the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// The proxies' control port.
    pub port: u16,
    /// Send requests here instead of the group's anycast address (tests, or
    /// a host that reaches the proxies without native anycast).
    pub to: Option<SocketAddrV4>,
    /// Refresh interval (the agent refreshes at least three times per
    /// granted lifetime whatever this says).
    pub refresh: Duration,
    /// Lifetime asked for, in seconds (the JAP clamps it, PROTOCOL.md §8).
    pub lifetime_s: u32,
    /// Wait before the first retransmission; doubles per try.
    pub retransmit: Duration,
    /// Longest wait between tries.
    pub max_backoff: Duration,
    /// Tries per round before the round counts as failed.
    pub tries: u32,
    /// Tries of a leave.
    pub leave_tries: u32,
    /// Wait between the tries of a leave.
    pub leave_retransmit: Duration,
}

impl Default for AgentConfig {
    /// Refresh every 20 s asking for 60 s; tries after 1, 2, 4, 8 s (5 in
    /// all); a leave tried 3 times 500 ms apart.
    fn default() -> Self {
        AgentConfig {
            port: DEFAULT_CONTROL_PORT,
            to: None,
            refresh: Duration::from_secs(20),
            lifetime_s: 60,
            retransmit: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            tries: 5,
            leave_tries: 3,
            leave_retransmit: Duration::from_millis(500),
        }
    }
}

/// Where a subscription stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Requests sent, no ack yet.
    Joining,
    /// Acked; refreshing.
    Joined,
    /// The last round was refused or unanswered; retrying later.
    Failed,
    /// Leave sent, not acked yet.
    Leaving,
    /// Left (acked, "not joined", or out of leave tries).
    Left,
}

impl State {
    /// Lower-case name for status output.
    pub const fn name(self) -> &'static str {
        match self {
            State::Joining => "joining",
            State::Joined => "joined",
            State::Failed => "failed",
            State::Leaving => "leaving",
            State::Left => "left",
        }
    }
}

/// What the agent reports about one subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The subscription.
    pub sub: Subscription,
    /// Where it stands.
    pub state: State,
    /// The JAP of the last ack.
    pub jap: Option<ProxyId>,
    /// The source of the last ack.
    pub ack_from: Option<SocketAddrV4>,
    /// Lifetime granted by the last ack, seconds.
    pub granted_s: u32,
    /// Wall-clock time of the last ack.
    pub last_ack: Option<UnixTime>,
    /// Acks received.
    pub acks: u64,
    /// Requests sent (every try).
    pub sent: u64,
    /// Rounds refused or unanswered.
    pub failures: u64,
    /// The reason of the last nack.
    pub last_nack: Option<NackReason>,
    /// Requests signed (joins, signed refreshes, leaves); the rest of
    /// `sent` were session refreshes.
    pub signed: u64,
    /// When the session in use ends.
    pub session_expires: Option<UnixTime>,
}

/// Something for the driver to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A join or refresh of subscription `index` was acked.
    Acked {
        /// Index in the subscriptions given to [`Agent::new`].
        index: usize,
        /// True if it was already joined (a refresh).
        refresh: bool,
    },
    /// A request was refused.
    Nacked {
        /// Index of the subscription.
        index: usize,
        /// Why.
        reason: NackReason,
    },
    /// A round got no answer after every try.
    GaveUp {
        /// Index of the subscription.
        index: usize,
    },
    /// The subscription left (`acked`: the JAP confirmed it).
    Left {
        /// Index of the subscription.
        index: usize,
        /// The JAP acknowledged (or said it did not hold the target).
        acked: bool,
    },
}

/// Replies the agent dropped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentCounters {
    /// Not a well-formed PIAS datagram.
    pub malformed: u64,
    /// Well-formed but not an ack or nack.
    pub not_a_reply: u64,
    /// An ack or nack for no subscription, from an unexpected source, or
    /// with a nonce not of the current round (late, or forged).
    pub unmatched: u64,
    /// A request could not be signed (a bug; counted, not sent).
    pub sign_failed: u64,
    /// Acks whose JAP key share has small order (all-zero shared secret):
    /// no session taken, refreshes stay signed.
    pub session_small_order: u64,
    /// Sessions dropped because [`SESSION_TRIES`] session refreshes in a
    /// row went unanswered (a JAP drops a bad MAC silently).
    pub session_unanswered: u64,
}

#[derive(Debug)]
struct Sub {
    status: Status,
    dest: SocketAddrV4,
    next_send: Option<Instant>,
    tries: u32,
    /// Session refreshes sent in this round.
    session_tries: u32,
    /// Nonces of the round's requests, with the ephemeral key whose share
    /// a signed join or refresh carried (dropped, zeroed, with the round).
    outstanding: VecDeque<(u64, Option<EphemeralSecret>)>,
    session: Option<TargetSession>,
}

impl Sub {
    fn remember(&mut self, nonce: u64, secret: Option<EphemeralSecret>) {
        if self.outstanding.len() >= OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back((nonce, secret));
    }

    /// A round ends (answered or not): forget its nonces and keys.
    fn end_round(&mut self) {
        self.tries = 0;
        self.session_tries = 0;
        self.outstanding.clear();
    }
}

/// The agent of one target host. Call order: [`Agent::poll_transmit`] until
/// `None`, wait until [`Agent::poll_timeout`] or a datagram arrives, feed it
/// to [`Agent::handle_datagram`], drain [`Agent::poll_event`].
#[derive(Debug)]
pub struct Agent {
    cfg: AgentConfig,
    key: SigningKey,
    rng: ChaCha20Rng,
    subs: Vec<Sub>,
    events: VecDeque<Event>,
    counters: AgentCounters,
}

impl Agent {
    /// An agent that starts joining every subscription at `now`. `seed`
    /// seeds the nonces (the driver draws it from the OS; tests fix it).
    pub fn new(
        cfg: AgentConfig,
        key: SigningKey,
        subs: &[Subscription],
        seed: [u8; 32],
        now: Instant,
    ) -> Self {
        let subs = subs
            .iter()
            .map(|s| Sub {
                status: Status {
                    sub: *s,
                    state: State::Joining,
                    jap: None,
                    ack_from: None,
                    granted_s: 0,
                    last_ack: None,
                    acks: 0,
                    sent: 0,
                    failures: 0,
                    last_nack: None,
                    signed: 0,
                    session_expires: None,
                },
                dest: cfg
                    .to
                    .unwrap_or_else(|| SocketAddrV4::new(s.group.ip(), cfg.port)),
                next_send: Some(now),
                tries: 0,
                session_tries: 0,
                outstanding: VecDeque::new(),
                session: None,
            })
            .collect();
        Agent {
            cfg,
            key,
            rng: ChaCha20Rng::from_seed(seed),
            subs,
            events: VecDeque::new(),
            counters: AgentCounters::default(),
        }
    }

    /// Every subscription's status, in the order given to [`Agent::new`].
    pub fn status(&self) -> impl Iterator<Item = &Status> + '_ {
        self.subs.iter().map(|s| &s.status)
    }

    /// Replies dropped.
    pub fn counters(&self) -> &AgentCounters {
        &self.counters
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Agent::poll_transmit`] has something to send next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.subs.iter().filter_map(|s| s.next_send).min()
    }

    /// True when every subscription has left.
    pub fn is_done(&self) -> bool {
        self.subs.iter().all(|s| s.status.state == State::Left)
    }

    /// True when no subscription is waiting for the answer of its first
    /// round (every one is joined, failed or leaving).
    pub fn settled(&self) -> bool {
        self.subs.iter().all(|s| s.status.state != State::Joining)
    }

    /// Leave every group: signed leaves from now on.
    pub fn leave(&mut self, now: Instant) {
        for s in &mut self.subs {
            if s.status.state == State::Left {
                continue;
            }
            s.status.state = State::Leaving;
            s.end_round();
            s.next_send = Some(now);
        }
    }

    fn backoff(cfg: &AgentConfig, tries: u32) -> Duration {
        let shift = tries.saturating_sub(1).min(16);
        cfg.retransmit
            .saturating_mul(1 << shift)
            .min(cfg.max_backoff)
    }

    /// The next request due at `now`, signed into `buf` (at least
    /// [`crate::wire::MAX_DATAGRAM`] bytes): `(destination, length)`.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        wall: UnixTime,
        buf: &mut [u8],
    ) -> Option<(SocketAddrV4, usize)> {
        for i in 0..self.subs.len() {
            let due = self.subs[i].next_send.is_some_and(|t| t <= now);
            if !due {
                continue;
            }
            let leaving = self.subs[i].status.state == State::Leaving;
            let max = if leaving {
                self.cfg.leave_tries
            } else {
                self.cfg.tries
            };
            if self.subs[i].tries >= max.max(1) {
                self.round_over(i, now);
                continue;
            }
            let nonce = self.rng.next_u64();
            let margin = self.cfg.refresh.saturating_mul(2).as_secs();
            let s = &mut self.subs[i];
            if s.status.state == State::Joined && s.session.is_some() {
                if s.session_tries >= SESSION_TRIES {
                    // The JAP drops a refresh with a bad MAC silently: a
                    // session whose refreshes go unanswered is given up
                    // and this try is signed.
                    s.session = None;
                    s.status.session_expires = None;
                    self.counters.session_unanswered += 1;
                } else if let Some(sess) = s.session.as_mut().filter(|x| x.usable(wall, margin)) {
                    let (group, target) = (s.status.sub.group, s.status.sub.target);
                    let sealed = sess.seal_next(group, target, nonce, self.cfg.lifetime_s, buf);
                    s.tries += 1;
                    s.session_tries += 1;
                    s.remember(nonce, None);
                    s.status.sent += 1;
                    s.next_send = Some(now + Self::backoff(&self.cfg, s.tries));
                    match sealed {
                        Ok(len) => return Some((s.dest, len)),
                        Err(_) => {
                            self.counters.sign_failed += 1;
                            continue;
                        }
                    }
                }
            }
            // A join or refresh carries a fresh ephemeral share for the
            // session its ack grants; a leave asks for none.
            let secret = (!leaving).then(|| EphemeralSecret::random(&mut self.rng));
            let req = TargetRequest {
                group: s.status.sub.group,
                target: s.status.sub.target,
                options: s.status.sub.options,
                lifetime_s: if leaving { 0 } else { self.cfg.lifetime_s },
                timestamp: wall,
                nonce,
                share: secret.as_ref().map(EphemeralSecret::share),
            };
            let msg = match s.status.state {
                State::Leaving => Message::Leave(req),
                State::Joined => Message::Refresh(req),
                _ => Message::Join(req),
            };
            s.tries += 1;
            s.remember(nonce, secret);
            s.status.sent += 1;
            s.status.signed += 1;
            let wait = if leaving {
                self.cfg.leave_retransmit
            } else {
                Self::backoff(&self.cfg, s.tries)
            };
            let dest = s.dest;
            s.next_send = Some(now + wait);
            match sign_target_request(&self.key, &msg, buf) {
                Ok(len) => return Some((dest, len)),
                Err(_) => self.counters.sign_failed += 1,
            }
        }
        None
    }

    /// Every try of the round went unanswered.
    fn round_over(&mut self, i: usize, now: Instant) {
        let refresh = self.cfg.refresh;
        let s = &mut self.subs[i];
        s.end_round();
        if s.status.state == State::Leaving {
            s.status.state = State::Left;
            s.next_send = None;
            self.events.push_back(Event::Left {
                index: i,
                acked: false,
            });
        } else {
            s.status.state = State::Failed;
            s.status.failures += 1;
            s.next_send = Some(now + refresh);
            self.events.push_back(Event::GaveUp { index: i });
        }
    }

    /// A datagram received from `src` on the agent's socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        wall: UnixTime,
        src: SocketAddrV4,
        bytes: &[u8],
    ) {
        let msg = match decode_unauthenticated(bytes) {
            Ok((_, m)) => m,
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        let (group, target, nonce) = match &msg {
            Message::JoinAck(JoinAck {
                group,
                target,
                nonce,
                ..
            })
            | Message::JoinNack(JoinNack {
                group,
                target,
                nonce,
                ..
            }) => (*group, *target, *nonce),
            _ => {
                self.counters.not_a_reply += 1;
                return;
            }
        };
        let port = self.cfg.port;
        let found = self.subs.iter().position(|s| {
            s.status.sub.group == group
                && s.status.sub.target == target
                && s.outstanding.iter().any(|(n, _)| *n == nonce)
                && (src == s.dest || src == SocketAddrV4::new(group.ip(), port))
        });
        let Some(i) = found else {
            self.counters.unmatched += 1;
            return;
        };
        match msg {
            Message::JoinAck(ack) => self.acked(i, now, wall, src, &ack),
            Message::JoinNack(nack) => self.nacked(i, now, nack.reason),
            _ => {}
        }
    }

    fn acked(&mut self, i: usize, now: Instant, wall: UnixTime, src: SocketAddrV4, ack: &JoinAck) {
        let refresh = self.cfg.refresh;
        let s = &mut self.subs[i];
        let secret = s
            .outstanding
            .iter_mut()
            .find(|(n, _)| *n == ack.nonce)
            .and_then(|(_, k)| k.take());
        s.end_round();
        s.status.acks += 1;
        s.status.last_ack = Some(wall);
        s.status.ack_from = Some(src);
        s.status.jap = Some(ack.jap);
        if s.status.state == State::Leaving {
            s.status.state = State::Left;
            s.status.granted_s = 0;
            s.next_send = None;
            self.events.push_back(Event::Left {
                index: i,
                acked: true,
            });
            return;
        }
        let was = s.status.state == State::Joined;
        s.status.state = State::Joined;
        s.status.granted_s = ack.lifetime_s;
        // The session key comes from the ephemeral key of the request this
        // ack answers; that key is consumed (and zeroed) here. An ack of a
        // session refresh had no key and changes nothing; the ack of a
        // signed request replaced the JAP's session, with none if it
        // carries none.
        let signed = secret.is_some();
        match secret.and_then(|k| TargetSession::accept(k, ack)) {
            Some(Ok(sess)) => {
                s.status.session_expires = Some(sess.expires);
                s.session = Some(sess);
            }
            Some(Err(_)) => {
                self.counters.session_small_order += 1;
                s.session = None;
                s.status.session_expires = None;
            }
            None if signed => {
                s.session = None;
                s.status.session_expires = None;
            }
            None => {}
        }
        let third = Duration::from_secs(u64::from(ack.lifetime_s) / 3);
        let wait = refresh.min(third).max(Duration::from_secs(1));
        s.next_send = Some(now + wait);
        self.events.push_back(Event::Acked {
            index: i,
            refresh: was,
        });
    }

    fn nacked(&mut self, i: usize, now: Instant, reason: NackReason) {
        let refresh = self.cfg.refresh;
        let s = &mut self.subs[i];
        s.status.last_nack = Some(reason);
        self.events.push_back(Event::Nacked { index: i, reason });
        if s.status.state == State::Leaving {
            if reason == NackReason::NotJoined {
                s.status.state = State::Left;
                s.next_send = None;
                s.end_round();
                self.events.push_back(Event::Left {
                    index: i,
                    acked: true,
                });
            }
            return;
        }
        s.end_round();
        if matches!(
            reason,
            NackReason::SessionUnknown | NackReason::SessionExpired
        ) {
            // Sign the next refresh, now; not a failure.
            s.session = None;
            s.status.session_expires = None;
            s.next_send = Some(now);
            return;
        }
        if reason == NackReason::Replay {
            s.next_send = Some(now);
            return;
        }
        s.status.state = State::Failed;
        s.status.failures += 1;
        s.next_send = Some(now + refresh);
    }
}

/// A group in the text form of the proxies' configuration:
/// `198.51.100.10:53/udp`, `198.51.100.10:80/tcp`, or `198.51.100.20/ip`
/// (a whole IP). `None` for anything else (port 0 included).
pub fn parse_group(s: &str) -> Option<GroupAddr> {
    s.parse().ok()
}

/// A target as `203.0.113.5:53`, or `203.0.113.5` (port 0: the client's
/// port is kept, for whole-IP groups).
pub fn parse_target(s: &str) -> Option<TargetAddr> {
    if let Ok(sa) = s.parse::<SocketAddrV4>() {
        return Some(TargetAddr {
            ip: *sa.ip(),
            port: sa.port(),
        });
    }
    let ip = s.parse().ok()?;
    Some(TargetAddr { ip, port: 0 })
}

#[cfg(test)]
mod tests;

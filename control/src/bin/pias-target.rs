//! `pias-target`: the agent a target host runs to join PIAS groups
//! (`pias_control::agent`; PROTOCOL.md §4.5, §5.4).
//!
//! ```text
//! pias-target join --group 198.51.100.10:53/udp --target 203.0.113.5:53 --key owner.key
//!                  [--group G ...] [--refresh SECS] [--lifetime SECS] [--port 7450]
//!                  [--to ADDR:PORT] [--bind ADDR:PORT] [--once] [--status-file PATH]
//! pias-target keygen --out FILE
//! pias-target pubkey --key FILE
//! ```
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `--group G` | a group: `IP:PORT/udp`, `IP:PORT/tcp` or `IP/ip`; repeatable | required |
//! | `--target T` | this host's service, `IP:PORT` (or `IP` for whole-IP groups) | required |
//! | `--key FILE` | the group owner's secret key (`pias_control::keyfile`: 64 hex digits) | required |
//! | `--refresh S` | refresh interval (at least 3 refreshes per granted lifetime anyway) | 20 |
//! | `--lifetime S` | soft-state lifetime asked for (the JAP clamps it to 10..300) | 3 × refresh |
//! | `--port P` | the proxies' control port | 7450 |
//! | `--to ADDR:PORT` | send to this address instead of the group's anycast address | — |
//! | `--bind ADDR:PORT` | local address of the socket | 0.0.0.0:0 |
//! | `--once` | exit after the first round: 0 if every group was acked, else 1 | — |
//! | `--status-file PATH` | JSON status, rewritten (atomically) at every change | — |
//!
//! Requests go to the group's anycast address on the control port, so
//! native anycast delivers them to the nearest proxy, which becomes the
//! JAP. Joins are signed with the key; refreshes go under the session the
//! JAP's ack grants (an HMAC under a key both ends derive from an X25519
//! exchange: the agent's share in the signed join, the JAP's in the ack;
//! PROTOCOL.md §5.6) and are signed again when the session nears its end,
//! when two session refreshes in a row go unanswered, or when the JAP no
//! longer knows it (stdout says
//! `session ended … (session-unknown): signing again`, then `refreshed …`). On SIGTERM or SIGINT
//! the agent sends signed leaves, waits for their
//! acks (at most 3 tries, 500 ms apart) and exits 0. One line per event on
//! stdout. Usage, key file and argument errors exit 2 with a message that
//! names the option; socket errors exit 1.
//!
//! `keygen` writes a new secret key file (mode 0600, never over an existing
//! file) and prints the public key, 64 hex digits: the form the proxies'
//! configuration holds for the group (`owner_key`). `pubkey` prints the
//! public key of an existing secret key file.

use std::fmt::Write as _;
use std::io::{ErrorKind, Write as _};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use pias_control::agent::{
    parse_group, parse_target, Agent, AgentConfig, Event, State, Status, Subscription,
};
use pias_control::keyfile;
use pias_control::wire::{NackReason, DEFAULT_CONTROL_PORT, MAX_DATAGRAM};
use pias_control::{Instant, UnixTime};
use pias_dataplane::types::{GroupAddr, GroupOptions};
use rand::RngCore;

const USAGE: &str = "usage:
  pias-target join --group IP:PORT/udp|IP:PORT/tcp|IP/ip [--group ...] --target IP[:PORT] --key FILE
                   [--refresh SECS] [--lifetime SECS] [--port PORT] [--to ADDR:PORT]
                   [--bind ADDR:PORT] [--once] [--status-file PATH]
  pias-target keygen --out FILE
  pias-target pubkey --key FILE";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Join(JoinArgs),
    Keygen { out: PathBuf },
    Pubkey { key: PathBuf },
}

#[derive(Debug, PartialEq)]
struct JoinArgs {
    groups: Vec<GroupAddr>,
    target: pias_dataplane::types::TargetAddr,
    key: PathBuf,
    cfg: AgentConfig,
    bind: SocketAddrV4,
    once: bool,
    status_file: Option<PathBuf>,
}

/// Parse the arguments after the program name. Errors name the option.
fn parse_args(args: &[String]) -> Result<Command, String> {
    let (cmd, rest) = args
        .split_first()
        .ok_or("missing command (join, keygen or pubkey)")?;
    let mut opts: Vec<(&str, Option<&str>)> = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let name = rest[i].as_str();
        if name == "--once" {
            opts.push((name, None));
            i += 1;
            continue;
        }
        if !name.starts_with("--") {
            return Err(format!("unexpected argument {name:?}"));
        }
        let value = rest
            .get(i + 1)
            .ok_or_else(|| format!("{name}: missing value"))?;
        opts.push((name, Some(value.as_str())));
        i += 2;
    }
    let allowed: &[&str] = match cmd.as_str() {
        "join" => &[
            "--group",
            "--target",
            "--key",
            "--refresh",
            "--lifetime",
            "--port",
            "--to",
            "--bind",
            "--once",
            "--status-file",
        ],
        "keygen" => &["--out"],
        "pubkey" => &["--key"],
        other => {
            return Err(format!(
                "unknown command {other:?} (join, keygen or pubkey)"
            ))
        }
    };
    for (name, _) in &opts {
        if !allowed.contains(name) {
            return Err(format!("{name}: not an option of {cmd}"));
        }
        if *name != "--group" && opts.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(format!("{name}: given twice"));
        }
    }
    let one = |name: &str| opts.iter().find(|(n, _)| *n == name).and_then(|(_, v)| *v);
    let required = |name: &str| one(name).ok_or_else(|| format!("{name}: required"));
    match cmd.as_str() {
        "keygen" => Ok(Command::Keygen {
            out: PathBuf::from(required("--out")?),
        }),
        "pubkey" => Ok(Command::Pubkey {
            key: PathBuf::from(required("--key")?),
        }),
        _ => {
            let mut groups = Vec::new();
            for (_, v) in opts.iter().filter(|(n, _)| *n == "--group") {
                let v = v.unwrap_or_default();
                let g = parse_group(v).ok_or_else(|| {
                    format!(
                        "--group {v:?}: expected IP:PORT/udp, IP:PORT/tcp or IP/ip \
                         (e.g. 198.51.100.10:53/udp), port not 0"
                    )
                })?;
                if groups.contains(&g) {
                    return Err(format!("--group {v:?}: given twice"));
                }
                groups.push(g);
            }
            if groups.is_empty() {
                return Err("--group: required (at least one)".into());
            }
            let t = required("--target")?;
            let target = parse_target(t).ok_or_else(|| {
                format!("--target {t:?}: expected IP:PORT (e.g. 203.0.113.5:53) or IP")
            })?;
            let secs = |name: &str, lo: u64, hi: u64| -> Result<Option<u64>, String> {
                one(name)
                    .map(|v| match v.parse::<u64>() {
                        Ok(s) if (lo..=hi).contains(&s) => Ok(s),
                        _ => Err(format!(
                            "{name} {v:?}: expected whole seconds in {lo}..={hi}"
                        )),
                    })
                    .transpose()
            };
            let refresh = secs("--refresh", 1, 3600)?.unwrap_or(20);
            let lifetime = secs("--lifetime", 1, 86_400)?.unwrap_or(refresh.saturating_mul(3));
            if lifetime < refresh {
                return Err(format!(
                    "--lifetime {lifetime}: must be at least the refresh interval ({refresh} s)"
                ));
            }
            let port = match one("--port") {
                None => DEFAULT_CONTROL_PORT,
                Some(v) => match v.parse::<u16>() {
                    Ok(p) if p != 0 => p,
                    _ => return Err(format!("--port {v:?}: expected a UDP port 1..=65535")),
                },
            };
            let addr = |name: &str| -> Result<Option<SocketAddrV4>, String> {
                one(name)
                    .map(|v| {
                        v.parse::<SocketAddrV4>()
                            .map_err(|_| format!("{name} {v:?}: expected IPv4ADDR:PORT"))
                    })
                    .transpose()
            };
            let to = addr("--to")?;
            let bind = addr("--bind")?.unwrap_or(SocketAddrV4::new([0, 0, 0, 0].into(), 0));
            let cfg = AgentConfig {
                port,
                to,
                refresh: Duration::from_secs(refresh),
                lifetime_s: u32::try_from(lifetime).unwrap_or(u32::MAX),
                ..AgentConfig::default()
            };
            Ok(Command::Join(JoinArgs {
                groups,
                target,
                key: PathBuf::from(required("--key")?),
                cfg,
                bind,
                once: opts.iter().any(|(n, _)| *n == "--once"),
                status_file: one("--status-file").map(PathBuf::from),
            }))
        }
    }
}

/// Read a secret key file; the error names the file and what is wrong.
fn read_key(path: &Path) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--key {}: cannot read: {e}", path.display()))?;
    let key = keyfile::parse_secret(&text).map_err(|e| format!("--key {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "pias-target: warning: {} is readable by other users (chmod 600 it)",
                    path.display()
                );
            }
        }
    }
    Ok(key)
}

fn keygen(out: &Path) -> Result<String, String> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(out)
        .map_err(|e| format!("--out {}: cannot create: {e}", out.display()))?;
    f.write_all(keyfile::secret_text(&key).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("--out {}: cannot write: {e}", out.display()))?;
    Ok(keyfile::public_text(&key.verifying_key()))
}

fn nack_name(r: NackReason) -> &'static str {
    match r {
        NackReason::UnknownGroup => "unknown-group",
        NackReason::BadSignature => "bad-signature",
        NackReason::Stale => "stale-timestamp",
        NackReason::Replay => "replay",
        NackReason::Full => "full",
        NackReason::Withdrawn => "withdrawn",
        NackReason::NotJoined => "not-joined",
        NackReason::BadTarget => "bad-target",
        NackReason::SessionUnknown => "session-unknown",
        NackReason::SessionExpired => "session-expired",
    }
}

fn target_text(t: &pias_dataplane::types::TargetAddr) -> String {
    SocketAddrV4::new(t.ip, t.port).to_string()
}

/// The status file: one object per group.
fn status_json(now: UnixTime, status: &[Status]) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "null".into());
    let mut s = format!("{{\"updated\":{},\"groups\":[", now.as_secs());
    for (i, st) in status.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"group\":\"{}\",\"target\":\"{}\",\"state\":\"{}\",\"jap\":{},\"ack_from\":{},\
             \"granted_lifetime_s\":{},\"last_ack\":{},\"acks\":{},\"sent\":{},\"failures\":{},\
             \"last_nack\":{},\"signed\":{},\"session_expires\":{}}}",
            st.sub.group,
            target_text(&st.sub.target),
            st.state.name(),
            opt(st.jap.map(|j| j.0.to_string())),
            opt(st.ack_from.map(|a| format!("\"{a}\""))),
            st.granted_s,
            opt(st.last_ack.map(|t| t.as_secs().to_string())),
            st.acks,
            st.sent,
            st.failures,
            opt(st.last_nack.map(|r| format!("\"{}\"", nack_name(r)))),
            st.signed,
            opt(st.session_expires.map(|t| t.as_secs().to_string())),
        );
    }
    s.push_str("]}\n");
    s
}

fn write_status(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn wall() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

fn event_line(agent: &Agent, ev: &Event) -> String {
    let st: Vec<&Status> = agent.status().collect();
    let idx = match ev {
        Event::Acked { index, .. }
        | Event::Nacked { index, .. }
        | Event::GaveUp { index }
        | Event::Left { index, .. } => *index,
    };
    let Some(s) = st.get(idx) else {
        return String::new();
    };
    let who = format!("{} target {}", s.sub.group, target_text(&s.sub.target));
    let jap = s.jap.map_or_else(|| "?".into(), |j| j.0.to_string());
    let from = s.ack_from.map_or_else(|| "?".into(), |a| a.to_string());
    match ev {
        Event::Acked { refresh: false, .. } => {
            format!(
                "joined {who} jap {jap} from {from} lifetime {}s",
                s.granted_s
            )
        }
        Event::Acked { refresh: true, .. } => {
            format!(
                "refreshed {who} jap {jap} from {from} lifetime {}s",
                s.granted_s
            )
        }
        Event::Nacked {
            reason: r @ (NackReason::SessionUnknown | NackReason::SessionExpired),
            ..
        } => format!("session ended {who} ({}): signing again", nack_name(*r)),
        Event::Nacked { reason, .. } => format!("refused {who}: {}", nack_name(*reason)),
        Event::GaveUp { .. } => format!("no answer {who} (failures {})", s.failures),
        Event::Left { acked: true, .. } => format!("left {who} jap {jap}"),
        Event::Left { acked: false, .. } => format!("left {who} (leave not acknowledged)"),
    }
}

fn run(a: JoinArgs) -> Result<ExitCode, (u8, String)> {
    let key = read_key(&a.key).map_err(|e| (2, e))?;
    let sock = UdpSocket::bind(a.bind).map_err(|e| (1, format!("--bind {}: {e}", a.bind)))?;
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&term))
            .map_err(|e| (1, format!("signal handler: {e}")))?;
    }
    let subs: Vec<Subscription> = a
        .groups
        .iter()
        .map(|g| Subscription {
            group: *g,
            target: a.target,
            options: GroupOptions::default(),
        })
        .collect();
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let start = std::time::Instant::now();
    let now = || Instant::from_nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
    let mut agent = Agent::new(a.cfg, key, &subs, seed, now());
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut rx = [0u8; 2048];
    let mut leaving = false;
    let mut last_status = String::new();
    let stdout = std::io::stdout();
    loop {
        if term.load(Ordering::Relaxed) && !leaving {
            leaving = true;
            agent.leave(now());
        }
        while let Some((dst, len)) = agent.poll_transmit(now(), wall(), &mut buf) {
            if let Err(e) = sock.send_to(&buf[..len], dst) {
                let _ = writeln!(stdout.lock(), "send to {dst} failed: {e}");
            }
        }
        let mut changed = false;
        while let Some(ev) = agent.poll_event() {
            changed = true;
            let _ = writeln!(stdout.lock(), "{}", event_line(&agent, &ev));
        }
        if changed {
            if let Some(path) = &a.status_file {
                let st: Vec<Status> = agent.status().copied().collect();
                let text = status_json(wall(), &st);
                if text != last_status {
                    if let Err(e) = write_status(path, &text) {
                        eprintln!("pias-target: --status-file {}: {e}", path.display());
                    }
                    last_status = text;
                }
            }
        }
        if leaving && agent.is_done() {
            return Ok(ExitCode::SUCCESS);
        }
        if a.once && !leaving && agent.settled() {
            let all = agent.status().all(|s| s.state == State::Joined);
            return Ok(if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        // Wake for the next send, and at least every 100 ms for signals.
        let wait = agent
            .poll_timeout()
            .map_or(Duration::from_millis(100), |t| t.saturating_since(now()))
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        sock.set_read_timeout(Some(wait))
            .map_err(|e| (1, format!("socket: {e}")))?;
        match sock.recv_from(&mut rx) {
            Ok((n, SocketAddr::V4(src))) => {
                if let Some(bytes) = rx.get(..n) {
                    agent.handle_datagram(now(), wall(), src, bytes);
                }
            }
            Ok((_, SocketAddr::V6(_))) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            // ICMP port unreachable from an earlier send, and the like:
            // the retransmissions handle it.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(e) => return Err((1, format!("receive: {e}"))),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pias-target: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let r = match cmd {
        Command::Keygen { out } => keygen(&out)
            .map(|pk| {
                println!("{pk}");
                ExitCode::SUCCESS
            })
            .map_err(|e| (2, e)),
        Command::Pubkey { key } => read_key(&key)
            .map(|k| {
                println!("{}", keyfile::public_text(&k.verifying_key()));
                ExitCode::SUCCESS
            })
            .map_err(|e| (2, e)),
        Command::Join(a) => run(a),
    };
    match r {
        Ok(c) => c,
        Err((code, e)) => {
            eprintln!("pias-target: {e}");
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pias_dataplane::types::{GroupProto, TargetAddr};

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn join_arguments() {
        let c = parse_args(&args(
            "join --group 198.51.100.10:53/udp --group 198.51.100.20/ip --target 203.0.113.5:53 \
             --key k --refresh 5 --port 7451 --to 127.0.0.1:9 --once --status-file s.json",
        ))
        .expect("valid");
        let Command::Join(j) = c else { panic!("join") };
        assert_eq!(
            j.groups,
            vec![
                GroupAddr::Port {
                    ip: [198, 51, 100, 10].into(),
                    port: 53,
                    proto: GroupProto::Udp
                },
                GroupAddr::WholeIp([198, 51, 100, 20].into()),
            ]
        );
        assert_eq!(
            j.target,
            TargetAddr {
                ip: [203, 0, 113, 5].into(),
                port: 53
            }
        );
        assert_eq!(j.cfg.refresh, Duration::from_secs(5));
        assert_eq!(j.cfg.lifetime_s, 15);
        assert_eq!(j.cfg.port, 7451);
        assert_eq!(j.cfg.to, Some("127.0.0.1:9".parse().expect("addr")));
        assert!(j.once);
        assert_eq!(j.status_file, Some(PathBuf::from("s.json")));
        let Command::Join(d) = parse_args(&args(
            "join --group 198.51.100.10:80/tcp --target 203.0.113.5 --key k",
        ))
        .expect("valid") else {
            panic!("join")
        };
        assert_eq!((d.cfg.port, d.cfg.lifetime_s, d.once), (7450, 60, false));
        assert_eq!(d.target.port, 0);
    }

    #[test]
    fn bad_arguments_name_the_option() {
        let cases = [
            ("", "missing command"),
            ("frob", "unknown command"),
            ("join --target 203.0.113.5:53 --key k", "--group: required"),
            ("join --group 198.51.100.10:53 --target 203.0.113.5:53 --key k", "--group \"198.51.100.10:53\""),
            ("join --group 198.51.100.10:0/udp --target 203.0.113.5:53 --key k", "port not 0"),
            ("join --group 198.51.100.10:53/sctp --target 203.0.113.5:53 --key k", "--group"),
            ("join --group 198.51.100.10:53/udp --group 198.51.100.10:53/udp --target 203.0.113.5:53 --key k", "given twice"),
            ("join --group 198.51.100.10:53/udp --target host:53 --key k", "--target \"host:53\""),
            ("join --group 198.51.100.10:53/udp --target 203.0.113.5:53", "--key: required"),
            ("join --group 198.51.100.10:53/udp --target 203.0.113.5:53 --key k --refresh 0", "--refresh \"0\""),
            ("join --group 198.51.100.10:53/udp --target 203.0.113.5:53 --key k --refresh 30 --lifetime 10", "--lifetime 10"),
            ("join --group 198.51.100.10:53/udp --target 203.0.113.5:53 --key k --port 0", "--port \"0\""),
            ("join --group 198.51.100.10:53/udp --target 203.0.113.5:53 --key k --to nowhere", "--to \"nowhere\""),
            ("join --group 198.51.100.10:53/udp --target 203.0.113.5:53 --key k --refresh", "--refresh: missing value"),
            ("join --group 198.51.100.10:53/udp --target 203.0.113.5:53 --key k --out x", "--out: not an option of join"),
            ("join --group 198.51.100.10:53/udp --target 203.0.113.5:53 --key k --key j", "--key: given twice"),
            ("keygen", "--out: required"),
            ("pubkey --key a extra", "unexpected argument"),
        ];
        for (line, want) in cases {
            let e = parse_args(&args(line)).expect_err(line);
            assert!(e.contains(want), "{line:?}: {e:?} lacks {want:?}");
        }
    }

    #[test]
    fn key_files() {
        let dir = std::env::temp_dir().join(format!("pias-target-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("owner.key");
        let _ = std::fs::remove_file(&path);
        let pk = keygen(&path).expect("keygen");
        let key = read_key(&path).expect("read back");
        assert_eq!(keyfile::public_text(&key.verifying_key()), pk);
        assert_eq!(
            keyfile::parse_public(&pk).expect("public"),
            key.verifying_key()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Never over an existing file.
        assert!(keygen(&path).expect_err("exists").contains("cannot create"));
        let bad = dir.join("bad.key");
        std::fs::write(&bad, "not a key\n").expect("write");
        let e = read_key(&bad).expect_err("bad");
        assert!(
            e.contains("bad.key") && e.contains("64 hexadecimal digits"),
            "{e}"
        );
        let e = read_key(&dir.join("missing.key")).expect_err("missing");
        assert!(e.contains("cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn status_file_is_json() {
        let s = Subscription {
            group: GroupAddr::WholeIp([198, 51, 100, 20].into()),
            target: TargetAddr {
                ip: [203, 0, 113, 5].into(),
                port: 0,
            },
            options: GroupOptions::default(),
        };
        let st = Status {
            sub: s,
            state: State::Joined,
            jap: Some(pias_dataplane::types::ProxyId(7)),
            ack_from: Some("198.51.100.20:7450".parse().expect("addr")),
            granted_s: 60,
            last_ack: Some(UnixTime(1_700_000_000)),
            acks: 2,
            sent: 3,
            failures: 1,
            last_nack: Some(NackReason::Stale),
            signed: 2,
            session_expires: Some(UnixTime(1_700_003_600)),
        };
        assert_eq!(
            status_json(UnixTime(1_700_000_001), &[st]),
            "{\"updated\":1700000001,\"groups\":[{\"group\":\"198.51.100.20/ip\",\
             \"target\":\"203.0.113.5:0\",\"state\":\"joined\",\"jap\":7,\
             \"ack_from\":\"198.51.100.20:7450\",\"granted_lifetime_s\":60,\
             \"last_ack\":1700000000,\"acks\":2,\"sent\":3,\"failures\":1,\
             \"last_nack\":\"stale-timestamp\",\"signed\":2,\"session_expires\":1700003600}]}\n"
        );
    }
}

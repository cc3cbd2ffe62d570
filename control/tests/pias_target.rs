//! The real `pias-target` binary against a real `ProxyControl` over UDP on
//! 127.0.0.1: signed join → ack → refreshes → SIGTERM → signed leave →
//! exit 0, every byte through the proxy's gate and JAP. And the exit code
//! and message of bad input.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use pias_control::auth::KeyRing;
use pias_control::keyfile;
use pias_control::membership;
use pias_control::proxy::{ProxyConfig, ProxyControl};
use pias_control::wire::{GroupRegister, KeyId, MAX_DATAGRAM};
use pias_control::{Instant, UnixTime};
use pias_dataplane::types::{ClusterId, GroupAddr, GroupOptions, GroupProto, ProxyId};

const BIN: &str = env!("CARGO_BIN_EXE_pias-target");

fn group() -> GroupAddr {
    GroupAddr::Port {
        ip: Ipv4Addr::new(198, 51, 100, 10),
        port: 53,
        proto: GroupProto::Udp,
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pias-target-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn wall() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
}

/// A proxy whose control port is a UDP socket on 127.0.0.1.
struct Proxy {
    cp: ProxyControl,
    sock: UdpSocket,
    start: std::time::Instant,
}

impl Proxy {
    fn new(owner: &SigningKey) -> Self {
        let m = membership::Config::new(ProxyId(4), Ipv4Addr::new(192, 0, 2, 1), ClusterId(0), 1);
        let cfg = ProxyConfig::new(m, vec!["198.51.100.0/24".parse().expect("prefix")]);
        let keys = KeyRing::new(KeyId(1), &[9; 32]).expect("key");
        let mut cp = ProxyControl::new(cfg, keys, Instant::ZERO).expect("valid");
        cp.apply_registration(
            Instant::ZERO,
            &GroupRegister {
                group: group(),
                options: GroupOptions::default(),
                withdrawn: false,
                serial: 1,
                owner_key: owner.verifying_key().to_bytes(),
            },
        );
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        Proxy {
            cp,
            sock,
            start: std::time::Instant::now(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("addr")
    }

    fn now(&self) -> Instant {
        Instant::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    /// Serve for at most `d`, or until `done` holds; returns whether it did.
    fn serve_until(&mut self, d: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let end = std::time::Instant::now() + d;
        let mut rx = [0u8; 2048];
        let mut tx = [0u8; MAX_DATAGRAM];
        while std::time::Instant::now() < end {
            if done(self) {
                return true;
            }
            if let Ok((n, SocketAddr::V4(src))) = self.sock.recv_from(&mut rx) {
                let now = self.now();
                self.cp.handle_datagram(now, wall(), src, &rx[..n]);
            }
            let now = self.now();
            if self.cp.poll_timeout().is_some_and(|t| t <= now) {
                self.cp.handle_timeout(now);
            }
            while let Some(t) = self.cp.poll_transmit(&mut tx) {
                // Replies to targets go back to the request's source; the
                // proxy's other messages (reports to itself as RAP are
                // internal; nothing else is addressed here) are dropped.
                if t.dst.ip().is_loopback() {
                    self.sock.send_to(&tx[..t.len], t.dst).expect("send");
                }
            }
        }
        done(self)
    }
}

fn key_file(dir: &std::path::Path, key: &SigningKey) -> PathBuf {
    let p = dir.join("owner.key");
    std::fs::write(&p, keyfile::secret_text(key)).expect("write key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    p
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pias-target")
}

#[test]
fn join_ack_refresh_and_leave_on_sigterm_over_udp() {
    let dir = scratch("cycle");
    let owner = SigningKey::from_bytes(&[11; 32]);
    let key = key_file(&dir, &owner);
    let status = dir.join("status.json");
    let mut proxy = Proxy::new(&owner);
    let to = proxy.addr().to_string();
    let mut child = spawn(&[
        "join",
        "--group",
        "198.51.100.10:53/udp",
        "--target",
        "203.0.113.5:53",
        "--key",
        key.to_str().expect("utf-8"),
        "--refresh",
        "1",
        "--to",
        &to,
        "--status-file",
        status.to_str().expect("utf-8"),
    ]);

    // A signed join, then two refreshes (every second: the granted 10 s / 3
    // > 1 s) under the session its ack granted: MACs, no signatures.
    let joined = proxy.serve_until(Duration::from_secs(15), |p| {
        let c = p.cp.jap().counters();
        c.joins == 1 && c.session_refreshes >= 2
    });
    if !joined {
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!(
            "no join and refreshes: {:?}, stdout {}, stderr {}",
            proxy.cp.jap().counters(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(proxy.cp.jap().target_count(), 1);
    // The status file says joined, at proxy 4, acked from where the
    // requests went.
    let st_ok = proxy.serve_until(Duration::from_secs(5), |_| {
        std::fs::read_to_string(&status).is_ok_and(|s| s.contains("\"state\":\"joined\""))
    });
    assert!(st_ok, "status file never said joined");
    let st = std::fs::read_to_string(&status).expect("status");
    assert!(st.contains("\"group\":\"198.51.100.10:53/udp\""), "{st}");
    assert!(st.contains("\"jap\":4"), "{st}");
    assert!(st.contains(&format!("\"ack_from\":\"{to}\"")), "{st}");
    assert!(st.contains("\"granted_lifetime_s\":10"), "{st}");
    assert!(st.contains("\"signed\":1,"), "{st}");
    assert_eq!(proxy.cp.jap().counters().refreshes, 0);

    // The JAP restarts: it knows no session, nacks the next session
    // refresh, and the agent signs a refresh at once, which the new JAP
    // takes as a join; then sessions again.
    proxy.cp = Proxy::new(&owner).cp;
    let rejoined = proxy.serve_until(Duration::from_secs(10), |p| {
        let c = p.cp.jap().counters();
        c.refresh_as_join == 1 && c.session_refreshes >= 1
    });
    assert!(rejoined, "{:?}", proxy.cp.jap().counters());
    assert_eq!(proxy.cp.jap().counters().nack_session, 1);

    // SIGTERM: a signed leave, acked, and exit 0.
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on the pid of a child this test spawned and has not
    // reaped yet, so the pid cannot have been reused.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let mut exit = None;
    let left = proxy.serve_until(Duration::from_secs(10), |_| {
        exit = child.try_wait().expect("wait");
        exit.is_some()
    });
    assert!(left, "pias-target did not exit after SIGTERM");
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(exit.is_some_and(|e| e.success()), "exit {exit:?}: {stdout}");
    assert_eq!(proxy.cp.jap().counters().leaves, 1, "{stdout}");
    assert_eq!(proxy.cp.jap().target_count(), 0);
    assert!(
        stdout.contains("joined 198.51.100.10:53/udp target 203.0.113.5:53 jap 4"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refreshed 198.51.100.10:53/udp"),
        "{stdout}"
    );
    assert!(
        stdout.contains("left 198.51.100.10:53/udp target 203.0.113.5:53 jap 4"),
        "{stdout}"
    );
    let st = std::fs::read_to_string(&status).expect("status");
    assert!(st.contains("\"state\":\"left\""), "{st}");
    assert!(
        stdout.contains("session ended 198.51.100.10:53/udp target 203.0.113.5:53 (session-unknown): signing again"),
        "{stdout}"
    );
    // Nothing forged, replayed or stale on the proxy's side: the only
    // refusal is the session the restarted JAP did not know.
    assert_eq!(proxy.cp.gate().counters().rejected_total(), 1);
    assert_eq!(
        proxy
            .cp
            .gate()
            .counters()
            .get(pias_control::auth::Reject::UnknownSession),
        1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `pias-target join --once` for `target`, served until it exits.
fn join_once(proxy: &mut Proxy, target: &str, key: &str, to: &str) -> std::process::Output {
    let mut child = spawn(&[
        "join",
        "--group",
        "198.51.100.10:53/udp",
        "--target",
        target,
        "--key",
        key,
        "--to",
        to,
        "--once",
    ]);
    let exited = proxy.serve_until(Duration::from_secs(10), |_| {
        child.try_wait().expect("wait").is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    child.wait_with_output().expect("output")
}

#[test]
fn once_exits_0_when_acked_and_1_when_refused() {
    let dir = scratch("once");
    let owner = SigningKey::from_bytes(&[12; 32]);
    let key = key_file(&dir, &owner);
    let mut proxy = Proxy::new(&owner);
    let to = proxy.addr().to_string();
    let k = key.to_str().expect("utf-8");
    let out = join_once(&mut proxy, "203.0.113.5:53", k, &to);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(proxy.cp.jap().counters().joins, 1);

    // A target inside the anycast prefix: nacked (bad target), exit 1.
    let out = join_once(&mut proxy, "198.51.100.99:53", k, &to);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("refused 198.51.100.10:53/udp target 198.51.100.99:53: bad-target"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    let dir = scratch("bad");
    let bad_key = dir.join("bad.key");
    std::fs::write(&bad_key, "zz\n").expect("write");
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "join",
                "--group",
                "198.51.100.10/udp",
                "--target",
                "203.0.113.5:53",
                "--key",
                "k",
            ],
            "--group \"198.51.100.10/udp\"",
        ),
        (
            &[
                "join",
                "--group",
                "198.51.100.10:53/udp",
                "--target",
                "203.0.113.5:53",
                "--key",
                bad_key.to_str().expect("utf-8"),
            ],
            "bad.key: expected 64 hexadecimal digits",
        ),
        (
            &[
                "join",
                "--group",
                "198.51.100.10:53/udp",
                "--target",
                "203.0.113.5:53",
                "--key",
                "/nonexistent/owner.key",
            ],
            "--key /nonexistent/owner.key: cannot read",
        ),
        (&["keygen"], "--out: required"),
    ];
    for (args, want) in cases {
        let out = Command::new(BIN).args(args).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // keygen then pubkey print the same public key, the config's form.
    let kf = dir.join("new.key");
    let out = Command::new(BIN)
        .args(["keygen", "--out", kf.to_str().expect("utf-8")])
        .output()
        .expect("keygen");
    assert!(out.status.success());
    let pk = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(keyfile::parse_public(&pk).is_ok(), "{pk}");
    let out = Command::new(BIN)
        .args(["pubkey", "--key", kf.to_str().expect("utf-8")])
        .output()
        .expect("pubkey");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pk);
    let _ = std::fs::remove_dir_all(&dir);
}

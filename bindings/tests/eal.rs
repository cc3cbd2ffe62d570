#![warn(clippy::undocumented_unsafe_blocks)]
//! Tests that need a running EAL. EAL initialises once per process, so every
//! scenario runs in a child process: the test function re-executes this test
//! binary filtered to itself, with an environment variable that makes the
//! child run the real body. The parent fails (with the child's output) unless
//! the child exits 0 *and* printed the scenario's completion marker, so a
//! filter that matches nothing, a crash or a hang cannot pass.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pias_dpdk::{
    lcore_id, tsc_hz, Burst, Burst32, DpdkError, Eal, EalError, Mbuf, MbufError, Mempool, Port, PortConf, Ring,
    LCORE_PANICKED, PKTMBUF_HEADROOM,
};

const CHILD_ENV: &str = "PIAS_DPDK_EAL_SCENARIO";
const DONE_MARK: &str = "PIAS-DPDK-SCENARIO-DONE:";
const PREFIX_ENV: &str = "PIAS_DPDK_EAL_FILE_PREFIX";
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// Where EAL puts the runtime files of `prefix` (see eal_get_runtime_dir).
fn runtime_dir(prefix: &str) -> std::path::PathBuf {
    // SAFETY: getuid has no preconditions.
    let base = if unsafe { libc::getuid() } == 0 {
        "/var/run".to_string()
    } else {
        std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into())
    };
    std::path::Path::new(&base).join("dpdk").join(prefix)
}

/// Runs `body` in a child process (see the module doc); the child's stderr
/// must contain each of `expect_stderr`.
fn scenario(name: &str, body: fn()) {
    scenario_expecting(name, body, &[]);
}

fn scenario_expecting(name: &str, body: fn(), expect_stderr: &[&str]) {
    if is_child(name) {
        body();
        println!("{DONE_MARK}{name}");
        return;
    }
    let (ok, report, stderr, _) = run_child(name);
    assert!(ok, "{report}");
    for want in expect_stderr {
        assert!(stderr.contains(want), "scenario {name}: stderr lacks {want:?}\n{report}");
    }
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(name)
}

/// Runs the child for `name`; returns (passed, report, stderr, status).
fn run_child(name: &str) -> (bool, String, String, Option<std::process::ExitStatus>) {
    let exe = std::env::current_exe().expect("current_exe");
    let prefix = format!("pias-test-{name}-{}", std::process::id());
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .env(PREFIX_ENV, &prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the scenario child");
    // Drain both pipes on threads so a chatty child cannot block on a full
    // pipe while we wait for it.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            break Some(st);
        }
        if start.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_dir_all(runtime_dir(&prefix));
    let stdout = out_t.join().unwrap();
    let stderr = err_t.join().unwrap();
    let ok = matches!(status, Some(s) if s.success()) && stdout.contains(&format!("{DONE_MARK}{name}"));
    let report = format!(
        "scenario {name} failed: status {status:?} (None = killed after {CHILD_TIMEOUT:?})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
    (ok, report, stderr, status)
}

/// The harness itself: a child that crashes (here: aborts after EAL init)
/// must make the scenario fail, and the report must carry its output.
#[test]
fn harness_fails_on_crashing_child() {
    const NAME: &str = "harness_fails_on_crashing_child";
    if is_child(NAME) {
        let _eal = init(1, &[]);
        eprintln!("about to abort on purpose");
        std::process::abort();
    }
    let (ok, report, _, status) = run_child(NAME);
    assert!(!ok, "a crashing child passed: {report}");
    assert!(report.contains("about to abort on purpose"), "{report}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.and_then(|s| s.signal()), Some(libc::SIGABRT), "{report}");
}

/// A CPU this process may run on (containers may not allow CPU 0).
fn first_allowed_cpu() -> usize {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            for cpu in 0..libc::CPU_SETSIZE as usize {
                if libc::CPU_ISSET(cpu, &set) {
                    return cpu;
                }
            }
        }
    }
    0
}

/// EAL arguments for a scenario: no hugepages, no PCI, a private runtime
/// directory, and `lcores` lcores all mapped onto one allowed CPU (the
/// machine may have as few as one).
fn eal_args(lcores: u32, extra: &[&str]) -> Vec<String> {
    let cpu = first_allowed_cpu();
    let map: Vec<String> = (0..lcores).map(|l| format!("{l}@{cpu}")).collect();
    let mut v = vec![
        "--no-huge".to_string(),
        "-m".into(),
        "256".into(),
        "--no-pci".into(),
        "--no-telemetry".into(),
        format!("--file-prefix={}", std::env::var(PREFIX_ENV).expect("run by the parent test")),
        format!("--lcores={}", map.join(",")),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn init(lcores: u32, extra: &[&str]) -> Eal {
    let args = eal_args(lcores, extra);
    Eal::init(&args).unwrap_or_else(|e| panic!("Eal::init({args:?}): {e}"))
}

/// A test packet: a recognisable 16-byte header (queue, round, seq) then a
/// pattern, `len` bytes in all.
fn packet(queue: u16, round: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&u32::from(queue).to_be_bytes());
    v.extend_from_slice(&round.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&(len as u32).to_be_bytes());
    while v.len() < len {
        v.push((v.len() as u32 ^ seq) as u8);
    }
    v.truncate(len);
    v
}

fn len_for(seq: u32) -> usize {
    60 + (seq as usize * 37) % 1400
}

fn assert_no_leak(pool: &Mempool) {
    assert_eq!(
        pool.avail_count(),
        pool.size(),
        "mempool {} leaked {} mbuf(s)",
        pool.name(),
        pool.in_use_count()
    );
    assert_eq!(pool.in_use_count(), 0);
}

// ---------------------------------------------------------------- (a) ports

fn ring_port_body() {
    let eal = init(2, &["--vdev=net_ring0"]);
    let pool = Mempool::pktmbuf("port_pool", 8191, 32, pias_dpdk::DEFAULT_BUF_SIZE, -1).unwrap();
    assert_eq!(Port::count(), 1);
    let port = Port::by_name("net_ring0").unwrap();
    assert_eq!(port.name(), "net_ring0");
    let info = port.info().unwrap();
    assert_eq!(info.driver, "net_ring");
    assert!(info.max_rx_queues >= 2 && info.max_tx_queues >= 2, "{info:?}");

    let conf = PortConf { rx_queues: 2, tx_queues: 2, rx_desc: 512, tx_desc: 512, rss: true, mtu: None };
    let zero = PortConf { rx_queues: 0, ..conf.clone() };
    assert!(matches!(port.configure(&zero, &pool), Err(DpdkError::InvalidArgument { .. })));
    let setup = port.configure(&conf, &pool).unwrap();
    assert_eq!((setup.rx_queues, setup.tx_queues), (2, 2));
    // net_ring reports no RSS hash functions, so RSS must stay off.
    assert_eq!(setup.rss, info.rss_offloads != 0);
    assert!(!setup.rss);
    port.start().unwrap();
    let link = port.link().unwrap();
    assert!(link.up, "{link:?}");
    let _mac = port.mac().unwrap();
    let _ = port.set_promiscuous(true); // ENOTSUP is fine: must not crash

    let mut rx0 = port.rx_queue(0).unwrap();
    let mut tx0 = port.tx_queue(0).unwrap();
    let rx1 = port.rx_queue(1).unwrap();
    let tx1 = port.tx_queue(1).unwrap();
    assert!(matches!(port.rx_queue(0), Err(DpdkError::QueueTaken { queue: 0, .. })));
    assert!(matches!(port.tx_queue(1), Err(DpdkError::QueueTaken { queue: 1, .. })));
    assert!(matches!(port.rx_queue(2), Err(DpdkError::InvalidArgument { .. })));
    let e = port.configure(&conf, &pool).unwrap_err();
    assert!(matches!(e, DpdkError::QueuesInUse { rx: 2, tx: 2, .. }), "{e}");

    const ROUNDS: u32 = 8;
    // Queue 1 runs on the worker lcore, queue 0 here, at the same time.
    let worker = eal.worker_lcores()[0];
    let wpool = pool.clone();
    let (mut rx1, mut tx1) = (rx1, tx1);
    eal.launch(worker, move || loop_queue(1, &mut rx1, &mut tx1, &wpool, ROUNDS) as i32).unwrap();
    let here = loop_queue(0, &mut rx0, &mut tx0, &pool, ROUNDS);
    let there = eal.wait(worker);
    assert_eq!(here, (ROUNDS * 32) as usize);
    assert_eq!(there, (ROUNDS * 32) as i32);

    // A full device ring: tx takes what fits, the rest stays at the front
    // of the burst, in order.
    let mut sent = 0u32;
    let mut next = 0u32;
    let mut b = Burst32::new();
    loop {
        while !b.is_full() {
            b.push(Mbuf::from_slice(&pool, &packet(0, 99, next, 64)).unwrap()).unwrap();
            next += 1;
        }
        let n = tx0.burst(&mut b) as u32;
        sent += n;
        if n < 32 {
            break;
        }
        assert!(sent < 100_000, "net_ring never filled up");
    }
    assert_eq!(b.len() as u32, next - sent);
    for (i, m) in b.iter().enumerate() {
        assert_eq!(m.data(), &packet(0, 99, sent + i as u32, 64)[..], "unsent mbufs kept in order");
    }
    assert_eq!(tx0.burst(&mut b), 0, "ring still full");
    let mut got = 0u32;
    let mut rb = Burst32::new();
    while got < sent {
        let n = rx0.burst(&mut rb);
        assert!(n > 0, "lost packets: {got} of {sent}");
        for m in rb.drain() {
            assert_eq!(m.data(), &packet(0, 99, got, 64)[..]);
            got += 1;
        }
    }
    assert_eq!(rx0.burst(&mut rb), 0);
    // Retry the leftovers now that there is room.
    let left = b.len();
    assert_eq!(tx0.burst(&mut b), left);
    assert!(b.is_empty());
    assert_eq!(rx0.burst(&mut rb), left);
    assert_eq!(rb.get(0).unwrap().data(), &packet(0, 99, sent, 64)[..]);
    rb.clear();

    let stats = port.stats().unwrap();
    let total = u64::from(ROUNDS * 32 * 2 + sent) + left as u64;
    assert_eq!(stats.opackets, total, "{stats:?}");
    assert_eq!(stats.ipackets, total, "{stats:?}");
    let xs = port.xstats().unwrap();
    assert!(xs.iter().any(|(n, v)| n == "rx_good_packets" && *v == total), "{xs:?}");

    // Close is refused while handles live, allowed after.
    port.stop().unwrap();
    assert!(matches!(port.close(), Err(DpdkError::QueuesInUse { .. })));
    drop((rx0, tx0));
    port.close().unwrap();
    assert_no_leak(&pool);
    assert!(Port::from_id(port.id()).is_err(), "closed vdev port is released");
    drop(pool);
    drop(eal);
}

/// Sends `rounds` bursts of 32 distinct packets on tx queue `q` and checks
/// that each comes back, intact and in order, on rx queue `q` (net_ring
/// loops every queue to itself). Returns the packets verified.
fn loop_queue(
    q: u16,
    rx: &mut pias_dpdk::RxQueue,
    tx: &mut pias_dpdk::TxQueue,
    pool: &Mempool,
    rounds: u32,
) -> usize {
    let mut verified = 0;
    for round in 0..rounds {
        let mut b = Burst32::new();
        for seq in 0..32 {
            b.push(Mbuf::from_slice(pool, &packet(q, round, seq, len_for(seq))).unwrap()).unwrap();
        }
        let mut tries = 0;
        while !b.is_empty() {
            tx.burst(&mut b);
            tries += 1;
            assert!(tries < 1_000_000, "queue {q} never took the burst");
        }
        let mut rb = Burst32::new();
        let mut seq = 0u32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while seq < 32 {
            rx.burst(&mut rb);
            for m in rb.drain() {
                assert_eq!(m.data(), &packet(q, round, seq, len_for(seq))[..], "queue {q} round {round} seq {seq}");
                assert_eq!(m.len(), len_for(seq));
                seq += 1;
                verified += 1;
            }
            assert!(Instant::now() < deadline, "queue {q}: only {seq} of 32 came back");
        }
        assert_eq!(rx.burst(&mut rb), 0, "queue {q} returned extra packets");
    }
    verified
}

#[test]
fn ring_port_two_queues_loop_back() {
    scenario("ring_port_two_queues_loop_back", ring_port_body);
}

// ------------------------------------------------------- (b) mbuf edge cases

fn mbuf_edges_body() {
    let eal = init(1, &[]);
    let pool = Mempool::pktmbuf("edge_pool", 255, 0, pias_dpdk::DEFAULT_BUF_SIZE, -1).unwrap();
    assert_eq!(pool.size(), 255);
    assert_no_leak(&pool);

    let mut m = pool.alloc().unwrap();
    assert_eq!(pool.in_use_count(), 1);
    assert_eq!(m.len(), 0);
    assert!(m.is_empty() && m.is_contiguous());
    assert_eq!(m.headroom(), PKTMBUF_HEADROOM);
    let room = m.tailroom();
    assert_eq!(room, usize::from(pias_dpdk::DEFAULT_BUF_SIZE) - PKTMBUF_HEADROOM);
    assert_eq!(m.rss_hash(), None);
    // SAFETY: sets the RSS flag and value on an mbuf we own, as a NIC would.
    unsafe {
        (*m.as_ptr()).ol_flags |= u64::from(pias_dpdk::sys::RTE_MBUF_F_RX_RSS_HASH);
        (*m.as_ptr()).__bindgen_anon_2.hash.rss = 0xdead_beef;
    }
    assert_eq!(m.rss_hash(), Some(0xdead_beef));
    // SAFETY: as above; clears the flag again.
    unsafe { (*m.as_ptr()).ol_flags = 0 };
    assert_eq!(m.rss_hash(), None);
    assert_eq!(m.pool_name(), "edge_pool");

    // n = 0 is a no-op everywhere.
    assert_eq!(m.prepend(0).unwrap().len(), 0);
    assert_eq!(m.append(0).unwrap().len(), 0);
    m.adj(0).unwrap();
    m.trim(0).unwrap();
    assert_eq!((m.len(), m.headroom(), m.tailroom()), (0, PKTMBUF_HEADROOM, room));

    // Nothing to remove from an empty mbuf.
    assert_eq!(m.adj(1), Err(MbufError::TooShort { op: "adj", requested: 1, len: 0 }));
    assert_eq!(m.trim(1), Err(MbufError::TooShort { op: "trim", requested: 1, len: 0 }));

    // Some payload.
    let payload: Vec<u8> = (0..10u8).collect();
    m.append(10).unwrap().copy_from_slice(&payload);
    assert_eq!(m.data(), &payload[..]);
    assert_eq!(m.pkt_len(), 10);

    // One past the headroom / tailroom / length fails and changes nothing.
    let snapshot = |m: &Mbuf| (m.data().to_vec(), m.headroom(), m.tailroom(), m.pkt_len());
    let before = snapshot(&m);
    assert_eq!(
        m.prepend(PKTMBUF_HEADROOM + 1).unwrap_err(),
        MbufError::NoHeadroom { requested: PKTMBUF_HEADROOM + 1, available: PKTMBUF_HEADROOM }
    );
    assert_eq!(
        m.append(room - 10 + 1).unwrap_err(),
        MbufError::NoTailroom { requested: room - 9, available: room - 10 }
    );
    assert!(m.adj(11).is_err());
    assert!(m.trim(11).is_err());
    // Absurd sizes: errors, not panics or wrap-around.
    assert!(m.prepend(usize::MAX).is_err());
    assert!(m.append(usize::MAX).is_err());
    assert!(m.append(65536 + 5).is_err());
    assert!(m.adj(usize::MAX).is_err());
    assert!(m.trim(usize::MAX).is_err());
    assert_eq!(snapshot(&m), before);

    // Exactly the headroom.
    let front = m.prepend(PKTMBUF_HEADROOM).unwrap();
    assert_eq!(front.len(), PKTMBUF_HEADROOM);
    front.fill(0xee);
    assert_eq!(m.headroom(), 0);
    assert_eq!(m.len(), PKTMBUF_HEADROOM + 10);
    assert!(m.prepend(1).is_err());
    assert_eq!(&m.data()[PKTMBUF_HEADROOM..], &payload[..], "payload kept behind the prepend");
    assert!(m.data()[..PKTMBUF_HEADROOM].iter().all(|b| *b == 0xee));

    // Exactly the tailroom.
    let tail = room - 10;
    let back = m.append(tail).unwrap();
    assert_eq!(back.len(), tail);
    back.fill(0x77);
    assert_eq!(m.tailroom(), 0);
    assert!(m.append(1).is_err());
    assert_eq!(m.len(), usize::from(pias_dpdk::DEFAULT_BUF_SIZE));
    assert_eq!(&m.data()[PKTMBUF_HEADROOM..PKTMBUF_HEADROOM + 10], &payload[..]);

    // Remove them again: adj the front, trim the back.
    m.adj(PKTMBUF_HEADROOM).unwrap();
    m.trim(tail).unwrap();
    assert_eq!(m.data(), &payload[..]);
    assert_eq!((m.headroom(), m.tailroom()), (PKTMBUF_HEADROOM, room - 10));

    // Partial adj/trim keep the middle.
    m.adj(2).unwrap();
    m.trim(3).unwrap();
    assert_eq!(m.data(), &payload[2..7]);
    m.data_mut()[0] = 0xaa;
    assert_eq!(m.data()[0], 0xaa);

    // Exactly the length.
    let n = m.len();
    assert!(m.trim(n + 1).is_err());
    m.trim(n).unwrap();
    assert!(m.is_empty());
    m.append(4).unwrap().copy_from_slice(b"abcd");
    assert!(m.adj(5).is_err());
    m.adj(4).unwrap();
    assert!(m.is_empty());

    m.set_port(7);
    assert_eq!(m.port(), 7);

    // Raw round trip keeps the buffer and does not free it.
    let raw = m.into_raw();
    assert_eq!(pool.in_use_count(), 1);
    // SAFETY: `raw` came from into_raw just above and nothing else owns it.
    let m = unsafe { Mbuf::from_raw(raw) };
    assert_eq!(m.port(), 7);
    drop(m);
    assert_no_leak(&pool);

    // from_slice: fits, exactly fits, too big (and the mbuf is not leaked).
    let full = vec![0x5a; room];
    assert_eq!(Mbuf::from_slice(&pool, &full).unwrap().data(), &full[..]);
    let e = Mbuf::from_slice(&pool, &vec![0; room + 1]).unwrap_err();
    assert_eq!(e, MbufError::NoTailroom { requested: room + 1, available: room });
    assert_no_leak(&pool);

    // Bursts with real mbufs.
    let mut b = Burst::<4>::new();
    for i in 0..4u8 {
        b.push(Mbuf::from_slice(&pool, &[i; 3]).unwrap()).unwrap();
    }
    assert!(b.is_full());
    let extra = Mbuf::from_slice(&pool, &[9]).unwrap();
    let extra = b.push(extra).unwrap_err();
    assert_eq!(extra.data(), &[9]);
    drop(extra);
    assert_eq!(b.get(2).unwrap().data(), &[2; 3]);
    for m in b.iter_mut() {
        m.data_mut()[0] += 10;
    }
    assert_eq!(b.pop().unwrap().data(), &[13, 3, 3]);
    b.retain_mut(|m| m.data()[0] != 11);
    assert_eq!(b.iter().map(|m| m.data()[0]).collect::<Vec<_>>(), vec![10, 12]);
    {
        let mut d = b.drain();
        assert_eq!(d.len(), 2);
        assert_eq!(d.next().unwrap().data()[0], 10);
        // dropped early: the other one is freed here
    }
    assert!(b.is_empty());
    assert_no_leak(&pool);

    // alloc_bulk is all or nothing; clear frees in bulk; Drop frees the rest.
    let mut big = Burst::<64>::new();
    assert!(!pool.alloc_bulk(&mut big, 65));
    assert!(pool.alloc_bulk(&mut big, 64));
    assert_eq!(big.len(), 64);
    assert_eq!(pool.in_use_count(), 64);
    big.clear();
    assert_no_leak(&pool);
    let mut held = Vec::new();
    while let Some(m) = pool.alloc() {
        held.push(m);
    }
    assert_eq!(held.len(), 255, "alloc stops at the pool size");
    assert!(Mbuf::from_slice(&pool, b"x").is_err());
    {
        let mut b = Burst32::new();
        for m in held.drain(..32) {
            b.push(m).unwrap();
        }
    }
    drop(held);
    assert_no_leak(&pool);
    drop(pool);
    drop(eal);
}

#[test]
fn mbuf_edge_cases() {
    scenario("mbuf_edge_cases", mbuf_edges_body);
}

// -------------------------------------------------------------- (c) rings

fn ring_body() {
    let eal = init(1, &[]);
    let pool = Mempool::pktmbuf("ring_pool", 1023, 16, pias_dpdk::DEFAULT_BUF_SIZE, -1).unwrap();

    let ring = Ring::new("test_ring", 100, false, false).unwrap();
    assert_eq!(ring.capacity(), 100);
    assert_eq!((ring.count(), ring.free_count()), (0, 100));
    let e = Ring::new("test_ring", 10, false, false).unwrap_err();
    assert!(e.to_string().contains("test_ring"), "{e}");
    assert_eq!(e.errno(), Some(libc::EEXIST));
    assert!(matches!(Ring::new("zero_ring", 0, false, false), Err(DpdkError::InvalidArgument { .. })));

    // Fill: 32 + 32 + 32 + 4 of the last burst; 28 stay, in order.
    let mut seq = 0u32;
    let mut b = Burst32::new();
    let mut enq = 0;
    for _ in 0..4 {
        while !b.is_full() {
            b.push(Mbuf::from_slice(&pool, &packet(0, 0, seq, 80)).unwrap()).unwrap();
            seq += 1;
        }
        enq += ring.enqueue_burst(&mut b);
    }
    assert_eq!(enq, 100);
    assert_eq!((ring.count(), ring.free_count()), (100, 0));
    assert_eq!(b.len(), 28);
    assert_eq!(b.get(0).unwrap().data(), &packet(0, 0, 100, 80)[..]);
    assert_eq!(ring.enqueue_burst(&mut b), 0, "full ring takes nothing");
    assert_eq!(b.len(), 28);

    // Drain in order through a smaller burst.
    let mut out = Burst::<7>::new();
    let mut next = 0u32;
    while ring.count() > 0 {
        let n = ring.dequeue_burst(&mut out);
        assert!(n > 0 && n <= 7);
        for m in out.drain() {
            assert_eq!(m.data(), &packet(0, 0, next, 80)[..]);
            next += 1;
        }
    }
    assert_eq!(next, 100);
    assert_eq!(ring.dequeue_burst(&mut out), 0);
    // A full burst receives nothing and loses nothing.
    assert_eq!(ring.enqueue_burst(&mut b), 28);
    let mut tiny = Burst::<1>::new();
    tiny.push(pool.alloc().unwrap()).unwrap();
    assert_eq!(ring.dequeue_burst(&mut tiny), 0);
    assert_eq!(ring.count(), 28);
    drop(tiny);

    // Dropping a non-empty ring frees what it holds.
    let clone = ring.clone();
    drop(ring);
    assert_eq!(clone.count(), 28, "a clone keeps the ring alive");
    drop(clone);
    assert_no_leak(&pool);

    // SP/SC ring across two threads: order and contents survive.
    let spsc = Ring::new("spsc", 64, true, true).unwrap();
    const TOTAL: u32 = 20_000;
    let (prod_ring, prod_pool) = (spsc.clone(), pool.clone());
    let producer = std::thread::spawn(move || {
        let mut b = Burst32::new();
        let mut seq = 0;
        while seq < TOTAL || !b.is_empty() {
            while seq < TOTAL && !b.is_full() {
                match Mbuf::from_slice(&prod_pool, &packet(1, 0, seq, 64)) {
                    Ok(m) => {
                        b.push(m).unwrap();
                        seq += 1;
                    }
                    Err(_) => break, // pool momentarily empty
                }
            }
            if prod_ring.enqueue_burst(&mut b) == 0 {
                std::thread::yield_now();
            }
        }
    });
    let mut got = 0u32;
    let mut rb = Burst32::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < TOTAL {
        if spsc.dequeue_burst(&mut rb) == 0 {
            std::thread::yield_now();
        }
        for m in rb.drain() {
            assert_eq!(m.data(), &packet(1, 0, got, 64)[..]);
            got += 1;
        }
        assert!(Instant::now() < deadline, "spsc stalled at {got}");
    }
    producer.join().unwrap();
    assert_eq!(spsc.count(), 0);
    drop(spsc);
    assert_no_leak(&pool);
    drop(pool);
    drop(eal);
}

#[test]
fn ring_round_trip_full_and_drop() {
    scenario("ring_round_trip_full_and_drop", ring_body);
}

// ----------------------------------------------------- (e) init failures

fn init_errors_body() {
    // A NUL byte is caught before DPDK is called, so it does not use up the
    // one init this process gets.
    let e = Eal::init(["--no-huge", "bad\0arg"]).unwrap_err();
    assert!(matches!(e, EalError::NulInArgument { index: 1, .. }), "{e}");

    let mut args = eal_args(1, &[]);
    args.push("--definitely-not-an-eal-option".into());
    let e = Eal::init(&args).unwrap_err();
    let msg = e.to_string();
    println!("init error: {msg}");
    match &e {
        EalError::InitFailed { args: a, errno, dpdk_error, culprit, .. } => {
            assert_eq!(a, &args);
            assert_eq!(*errno, libc::EINVAL);
            assert_eq!(dpdk_error, &pias_dpdk::strerror(libc::EINVAL));
            assert!(msg.contains(dpdk_error.as_str()), "{msg}");
            assert!(msg.contains("--definitely-not-an-eal-option"), "{msg}");
            assert_eq!(culprit.as_deref(), Some("--definitely-not-an-eal-option"), "{msg}");
        }
        other => panic!("expected InitFailed, got {other:?}"),
    }
    assert!(!pias_dpdk::is_running());

    // Any further init is refused without calling DPDK.
    let e = Eal::init(eal_args(1, &[])).unwrap_err();
    assert!(matches!(e, EalError::AlreadyInitialized { state: "failed" }), "{e}");
    assert!(Mempool::pktmbuf("p", 63, 0, 2176, -1).is_err());
}

#[test]
fn init_bad_argument_and_second_init() {
    scenario("init_bad_argument_and_second_init", init_errors_body);
}

// ------------------------------------------------------------ (f) launch

fn launch_body() {
    let eal = init(2, &[]);
    let e = Eal::init(eal_args(2, &[])).unwrap_err();
    assert!(matches!(e, EalError::AlreadyInitialized { state: "running" }), "{e}");

    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(lcore_id(), 0);
    assert_eq!(eal.worker_lcores(), vec![1]);
    assert!(tsc_hz() > 0);
    assert_eq!(pias_dpdk::lcore_count(), 2);

    // A value computed on the worker comes back through wait.
    let data: Vec<i32> = (1..=3).collect();
    eal.launch(1, move || lcore_id() as i32 * 1000 + data.iter().sum::<i32>()).unwrap();
    assert_eq!(eal.wait(1), 1006);
    assert_eq!(eal.wait(1), 1006, "waiting again returns the same result");

    // Not workers: refused, and the closure is dropped, not leaked.
    let token = Arc::new(());
    for bad in [0, 2, 127, 128, u32::MAX] {
        let t = token.clone();
        let e = eal.launch(bad, move || {
            drop(t);
            0
        });
        assert!(matches!(e, Err(EalError::NotAWorker { .. })), "lcore {bad}: {e:?}");
    }
    assert_eq!(Arc::strong_count(&token), 1);

    // Busy worker: the second launch fails with DPDK's error, closure dropped.
    let go = Arc::new(AtomicBool::new(false));
    let g = go.clone();
    eal.launch(1, move || {
        while !g.load(Ordering::Acquire) {
            pias_dpdk::pause();
        }
        7
    })
    .unwrap();
    let t = token.clone();
    let e = eal.launch(1, move || {
        drop(t);
        0
    });
    match e {
        Err(EalError::Launch { lcore: 1, errno, .. }) => assert_eq!(errno, libc::EBUSY),
        other => panic!("expected EBUSY, got {other:?}"),
    }
    assert_eq!(Arc::strong_count(&token), 1, "refused closure was dropped");
    go.store(true, Ordering::Release);
    assert_eq!(eal.wait(1), 7);

    // A panic on the worker is reported, and the worker stays usable.
    eal.launch(1, || panic!("deliberate panic on a worker")).unwrap();
    assert_eq!(eal.wait(1), LCORE_PANICKED);
    eal.launch(1, || 5).unwrap();
    eal.wait_all();
    assert_eq!(eal.wait(1), 5);
    assert_eq!(eal.wait(0), -libc::EINVAL);

    // Objects are usable from the worker too (its mempool cache path).
    let pool = Mempool::pktmbuf("launch_pool", 511, 32, 2176, -1).unwrap();
    let p = pool.clone();
    eal.launch(1, move || {
        let mut b = Burst32::new();
        for i in 0..32u8 {
            b.push(Mbuf::from_slice(&p, &[i; 100]).unwrap()).unwrap();
        }
        b.iter().map(|m| i32::from(m.data()[0])).sum()
    })
    .unwrap();
    assert_eq!(eal.wait(1), (0..32).sum::<i32>());
    assert_no_leak(&pool);
    drop(pool);
    drop(eal);
    assert!(!pias_dpdk::is_running());
    assert!(Ring::new("after", 8, false, false).is_err());
}

#[test]
fn launch_on_worker_lcore() {
    scenario("launch_on_worker_lcore", launch_body);
}

// ------------------------------------------------- object lifetimes vs EAL

fn lifetimes_body() {
    let eal = init(1, &["--vdev=net_null0"]);
    // A pool dropped while an mbuf is out is leaked, not freed under it.
    let pool = Mempool::pktmbuf("orphan_pool", 63, 0, 2176, -1).unwrap();
    let mut m = Mbuf::from_slice(&pool, b"still here").unwrap();
    drop(pool);
    m.append(1).unwrap()[0] = b'!';
    assert_eq!(m.data(), b"still here!");
    drop(m);

    // A configured port keeps its rx pool: net_null allocates from it on
    // every rx burst, so dropping our handle must not free it.
    let port = Port::by_name("net_null0").unwrap();
    let pool = Mempool::pktmbuf("null_pool", 511, 0, 2176, -1).unwrap();
    let weak_name = pool.name().to_owned();
    port.configure(&PortConf { rx_queues: 1, tx_queues: 1, rx_desc: 64, tx_desc: 64, ..PortConf::default() }, &pool)
        .unwrap();
    port.start().unwrap();
    let mut rx = port.rx_queue(0).unwrap();
    let mut tx = port.tx_queue(0).unwrap();
    drop(pool);
    let mut b = Burst32::new();
    assert_eq!(rx.burst(&mut b), 32);
    assert_eq!(b.get(0).unwrap().pool_name(), weak_name);
    assert_eq!(tx.burst(&mut b), 32, "net_null takes everything");
    assert!(b.is_empty());
    // Stopped port: bursts return 0, they do not crash.
    port.stop().unwrap();
    assert_eq!(rx.burst(&mut b), 0);
    drop((rx, tx));
    port.close().unwrap();
    // The orphan pool is still counted, so dropping the Eal must skip
    // rte_eal_cleanup (checked by the parent on stderr).
    drop(eal);
}

#[test]
fn pools_outlive_their_handles_safely() {
    scenario_expecting(
        "pools_outlive_their_handles_safely",
        lifetimes_body,
        &["mempool \"orphan_pool\" dropped with 1 mbuf(s) still out", "skipping rte_eal_cleanup"],
    );
}

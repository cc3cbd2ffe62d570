//! Ethernet ports (ethdev) and their rx/tx queue handles.
//!
//! A [`Port`] is a copyable id. Its control operations (configure, start,
//! stats…) are serialised through a per-port lock, because ethdev's control
//! path is not thread safe; they are never on the fast path. The fast path
//! is [`RxQueue::burst`]/[`TxQueue::burst`]: one handle per (port, queue),
//! handed out once, `Send` but not `Sync`, moved to the lcore that polls it;
//! DPDK queues are single-threaded, and uniqueness of the handle is what
//! makes the lock-free burst sound.
//!
//! The per-port state also keeps a handle on the mempool the rx queues
//! allocate from, until [`Port::close`], so the pool cannot be freed under a
//! running port; and it refuses to reconfigure or close a port while queue
//! handles are alive.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::{Mutex, MutexGuard};

use crate::burst::Burst;
use crate::eal::ensure_running;
use crate::error::{strerror, DpdkError};
use crate::mempool::Mempool;
use crate::sys;

const MAX_PORTS: usize = sys::RTE_MAX_ETHPORTS as usize;

/// What this crate remembers about each port id.
struct PortSlot {
    /// Pools the rx queues allocate from (kept alive until close).
    pools: Vec<Mempool>,
    /// `taken[q]` for each configured rx queue.
    rx_taken: Vec<bool>,
    /// `taken[q]` for each configured tx queue.
    tx_taken: Vec<bool>,
}

impl PortSlot {
    const fn new() -> Self {
        PortSlot {
            pools: Vec::new(),
            rx_taken: Vec::new(),
            tx_taken: Vec::new(),
        }
    }

    fn handles(&self) -> (usize, usize) {
        (
            self.rx_taken.iter().filter(|t| **t).count(),
            self.tx_taken.iter().filter(|t| **t).count(),
        )
    }
}

static PORTS: [Mutex<PortSlot>; MAX_PORTS] = [const { Mutex::new(PortSlot::new()) }; MAX_PORTS];

fn slot(port: u16) -> MutexGuard<'static, PortSlot> {
    // A panic while holding the lock cannot leave the slot inconsistent in a
    // way that matters more than refusing service, so poisoning is ignored.
    PORTS[usize::from(port)].lock().unwrap_or_else(|e| e.into_inner())
}

/// An ethdev port id. Port ids are below `RTE_MAX_ETHPORTS` by
/// construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port {
    id: u16,
}

/// What the device says about itself (`rte_eth_dev_info_get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    /// PMD name, e.g. `net_ring`.
    pub driver: String,
    /// Maximum rx queues.
    pub max_rx_queues: u16,
    /// Maximum tx queues.
    pub max_tx_queues: u16,
    /// Hash functions the device can spread rx over (0: no RSS).
    pub rss_offloads: u64,
    /// Rx offload capabilities (`RTE_ETH_RX_OFFLOAD_*`).
    pub rx_offload_capa: u64,
    /// Tx offload capabilities (`RTE_ETH_TX_OFFLOAD_*`).
    pub tx_offload_capa: u64,
    /// Smallest MTU.
    pub min_mtu: u16,
    /// Largest MTU.
    pub max_mtu: u16,
    /// Rx queues currently configured.
    pub nb_rx_queues: u16,
    /// Tx queues currently configured.
    pub nb_tx_queues: u16,
}

/// How to configure a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConf {
    /// Rx queues (one per worker, usually).
    pub rx_queues: u16,
    /// Tx queues.
    pub tx_queues: u16,
    /// Rx descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Tx descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Spread rx over the queues by RSS (IP/TCP/UDP), if the device can.
    pub rss: bool,
    /// MTU to set; `None` keeps the device default.
    pub mtu: Option<u16>,
}

impl Default for PortConf {
    fn default() -> Self {
        PortConf {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: false,
            mtu: None,
        }
    }
}

/// What `configure` actually did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSetup {
    /// Rx queues set up.
    pub rx_queues: u16,
    /// Tx queues set up.
    pub tx_queues: u16,
    /// Rx descriptors per queue after adjustment.
    pub rx_desc: u16,
    /// Tx descriptors per queue after adjustment.
    pub tx_desc: u16,
    /// True when RSS is on (asked for and supported).
    pub rss: bool,
    /// The RSS hash functions enabled (0 when RSS is off).
    pub rss_hf: u64,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbps (`u32::MAX`: unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
    /// Autonegotiated.
    pub autoneg: bool,
}

/// Basic port counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Rx packets dropped by the hardware (no descriptor free).
    pub imissed: u64,
    /// Rx errors.
    pub ierrors: u64,
    /// Tx errors.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

fn port_name(id: u16) -> Option<String> {
    let mut buf = [0 as std::ffi::c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: the buffer has RTE_ETH_NAME_MAX_LEN bytes, as the call needs.
    let r = unsafe { sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    if r != 0 {
        return None;
    }
    // SAFETY: on success DPDK wrote a NUL-terminated name into buf.
    Some(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

impl Port {
    /// Number of usable ports.
    pub fn count() -> u16 {
        if ensure_running("rte_eth_dev_count_avail").is_err() {
            return 0;
        }
        // SAFETY: EAL is running; reads the port table.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// The port of the device named `name` (e.g. `net_ring0`).
    pub fn by_name(name: &str) -> Result<Port, DpdkError> {
        const CALL: &str = "rte_eth_dev_get_port_by_name";
        ensure_running(CALL)?;
        let c = CString::new(name).map_err(|_| DpdkError::InvalidArgument {
            call: CALL,
            what: format!("device name {name:?} contains a NUL byte"),
        })?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        let r = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if r != 0 {
            return Err(DpdkError::call(CALL, name, r));
        }
        Port::from_id(id)
    }

    /// The port with id `id`, if it exists.
    pub fn from_id(id: u16) -> Result<Port, DpdkError> {
        const CALL: &str = "rte_eth_dev_is_valid_port";
        ensure_running(CALL)?;
        // SAFETY: EAL is running; the call range-checks the id.
        if usize::from(id) >= MAX_PORTS || unsafe { sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(DpdkError::Port {
                port: id,
                name: "?".into(),
                call: CALL,
                errno: libc::ENODEV,
                dpdk_error: strerror(libc::ENODEV),
            });
        }
        Ok(Port { id })
    }

    /// Every usable port, in id order.
    pub fn all() -> Vec<Port> {
        (0..MAX_PORTS as u16).filter_map(|id| Port::from_id(id).ok()).collect()
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The device name (`?` once the port is gone).
    pub fn name(&self) -> String {
        if !crate::eal::is_running() {
            return "?".into();
        }
        port_name(self.id).unwrap_or_else(|| "?".into())
    }

    fn err(&self, call: &'static str, ret: i32) -> DpdkError {
        let errno = ret.abs();
        DpdkError::Port {
            port: self.id,
            name: self.name(),
            call,
            errno,
            dpdk_error: strerror(errno),
        }
    }

    fn check(&self, call: &'static str, ret: i32) -> Result<(), DpdkError> {
        if ret < 0 {
            Err(self.err(call, ret))
        } else {
            Ok(())
        }
    }

    /// Locks the port's control path, after checking the EAL is up.
    fn control(&self, call: &'static str) -> Result<MutexGuard<'static, PortSlot>, DpdkError> {
        ensure_running(call)?;
        Ok(slot(self.id))
    }

    fn raw_info(&self) -> Result<sys::rte_eth_dev_info, DpdkError> {
        // SAFETY: rte_eth_dev_info is plain data; all-zero is a valid value.
        let mut info: sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        // SAFETY: valid out-pointer; the port id is range-checked by DPDK.
        let r = unsafe { sys::rte_eth_dev_info_get(self.id, &mut info) };
        self.check("rte_eth_dev_info_get", r)?;
        Ok(info)
    }

    /// Device capabilities and limits.
    pub fn info(&self) -> Result<DevInfo, DpdkError> {
        let _g = self.control("rte_eth_dev_info_get")?;
        let info = self.raw_info()?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: DPDK points driver_name at the PMD's static name.
            unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
        };
        Ok(DevInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            rx_offload_capa: info.rx_offload_capa,
            tx_offload_capa: info.tx_offload_capa,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            nb_rx_queues: info.nb_rx_queues,
            nb_tx_queues: info.nb_tx_queues,
        })
    }

    /// Configures the port and sets up every rx queue (allocating from
    /// `pool`) and every tx queue. The port must be stopped and have no live
    /// queue handles. RSS is enabled only when asked for and the device
    /// reports RSS hash functions; descriptor counts are adjusted to the
    /// device's limits. The port keeps a handle on `pool` until
    /// [`close`](Port::close).
    pub fn configure(&self, conf: &PortConf, pool: &Mempool) -> Result<PortSetup, DpdkError> {
        let mut slot = self.control("rte_eth_dev_configure")?;
        let (rx, tx) = slot.handles();
        if rx + tx != 0 {
            return Err(DpdkError::QueuesInUse {
                call: "rte_eth_dev_configure",
                port: self.id,
                name: self.name(),
                rx,
                tx,
            });
        }
        if conf.rx_queues == 0 || conf.tx_queues == 0 {
            return Err(DpdkError::InvalidArgument {
                call: "rte_eth_dev_configure",
                what: format!(
                    "port {} ({}) needs at least one rx and one tx queue (asked for {} rx, {} tx)",
                    self.id,
                    self.name(),
                    conf.rx_queues,
                    conf.tx_queues
                ),
            });
        }
        let info = self.raw_info()?;

        // SAFETY: rte_eth_conf is plain data; all-zero is DPDK's "defaults".
        let mut eth_conf: sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        let wanted = u64::from(sys::RTE_ETH_RSS_IP | sys::RTE_ETH_RSS_TCP | sys::RTE_ETH_RSS_UDP);
        let rss_hf = if conf.rss { wanted & info.flow_type_rss_offloads } else { 0 };
        if rss_hf != 0 {
            eth_conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            eth_conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            // rss_key NULL: the device's default key.
            let hash_flag = u64::from(sys::RTE_ETH_RX_OFFLOAD_RSS_HASH);
            if info.rx_offload_capa & hash_flag != 0 {
                eth_conf.rxmode.offloads |= hash_flag;
            }
        }
        if let Some(mtu) = conf.mtu {
            eth_conf.rxmode.mtu = u32::from(mtu);
        }

        // SAFETY: valid conf pointer; DPDK copies it.
        let r = unsafe { sys::rte_eth_dev_configure(self.id, conf.rx_queues, conf.tx_queues, &eth_conf) };
        self.check("rte_eth_dev_configure", r)?;

        let (mut rx_desc, mut tx_desc) = (conf.rx_desc, conf.tx_desc);
        // SAFETY: valid out-pointers.
        let r = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut rx_desc, &mut tx_desc) };
        self.check("rte_eth_dev_adjust_nb_rx_tx_desc", r)?;

        // SAFETY: plain getter; -1 (any socket) for virtual devices.
        let socket = unsafe { sys::rte_eth_dev_socket_id(self.id) };
        let socket = if socket < 0 { sys::SOCKET_ID_ANY } else { socket };

        // The queues keep pointers into the pool from here on.
        slot.pools = vec![pool.clone()];
        slot.rx_taken = vec![false; usize::from(conf.rx_queues)];
        slot.tx_taken = vec![false; usize::from(conf.tx_queues)];

        for q in 0..conf.rx_queues {
            // SAFETY: the port is configured with conf.rx_queues queues; NULL
            // rxconf means the device defaults; the pool outlives the queue
            // (kept in the slot until close).
            let r = unsafe {
                sys::rte_eth_rx_queue_setup(self.id, q, rx_desc, socket as u32, std::ptr::null(), pool.as_ptr())
            };
            self.check("rte_eth_rx_queue_setup", r)?;
        }
        for q in 0..conf.tx_queues {
            // SAFETY: as above; NULL txconf means the device defaults.
            let r = unsafe { sys::rte_eth_tx_queue_setup(self.id, q, tx_desc, socket as u32, std::ptr::null()) };
            self.check("rte_eth_tx_queue_setup", r)?;
        }
        Ok(PortSetup {
            rx_queues: conf.rx_queues,
            tx_queues: conf.tx_queues,
            rx_desc,
            tx_desc,
            rss: rss_hf != 0,
            rss_hf,
        })
    }

    /// Starts the port.
    pub fn start(&self) -> Result<(), DpdkError> {
        let _g = self.control("rte_eth_dev_start")?;
        // SAFETY: control path serialised by the slot lock.
        let r = unsafe { sys::rte_eth_dev_start(self.id) };
        self.check("rte_eth_dev_start", r)
    }

    /// Stops the port. Queue handles stay valid: bursts on a stopped port
    /// return 0.
    pub fn stop(&self) -> Result<(), DpdkError> {
        let _g = self.control("rte_eth_dev_stop")?;
        // SAFETY: control path serialised by the slot lock.
        let r = unsafe { sys::rte_eth_dev_stop(self.id) };
        self.check("rte_eth_dev_stop", r)
    }

    /// Closes the (stopped) port, releasing its queues and the mempool
    /// handle it kept. Refused while queue handles are alive.
    pub fn close(&self) -> Result<(), DpdkError> {
        let mut slot = self.control("rte_eth_dev_close")?;
        let (rx, tx) = slot.handles();
        if rx + tx != 0 {
            return Err(DpdkError::QueuesInUse {
                call: "rte_eth_dev_close",
                port: self.id,
                name: self.name(),
                rx,
                tx,
            });
        }
        let name = self.name();
        // SAFETY: no queue handle exists, so no lcore can burst on the
        // queues being released.
        let r = unsafe { sys::rte_eth_dev_close(self.id) };
        if r < 0 {
            let errno = r.abs();
            return Err(DpdkError::Port {
                port: self.id,
                name,
                call: "rte_eth_dev_close",
                errno,
                dpdk_error: strerror(errno),
            });
        }
        slot.rx_taken.clear();
        slot.tx_taken.clear();
        slot.pools.clear();
        Ok(())
    }

    /// Turns promiscuous mode on or off.
    pub fn set_promiscuous(&self, on: bool) -> Result<(), DpdkError> {
        let _g = self.control("rte_eth_promiscuous_enable")?;
        // SAFETY: control path serialised by the slot lock.
        let r = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(self.id)
            } else {
                sys::rte_eth_promiscuous_disable(self.id)
            }
        };
        self.check(
            if on { "rte_eth_promiscuous_enable" } else { "rte_eth_promiscuous_disable" },
            r,
        )
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6], DpdkError> {
        let _g = self.control("rte_eth_macaddr_get")?;
        let mut a = sys::rte_ether_addr { addr_bytes: [0; 6] };
        // SAFETY: valid out-pointer.
        let r = unsafe { sys::rte_eth_macaddr_get(self.id, &mut a) };
        self.check("rte_eth_macaddr_get", r)?;
        Ok(a.addr_bytes)
    }

    fn link_with(&self, wait: bool) -> Result<Link, DpdkError> {
        let call = if wait { "rte_eth_link_get" } else { "rte_eth_link_get_nowait" };
        let _g = self.control(call)?;
        // SAFETY: plain data; zero is a valid value.
        let mut l: sys::rte_eth_link = unsafe { std::mem::zeroed() };
        // SAFETY: valid out-pointer.
        let r = unsafe {
            if wait {
                sys::rte_eth_link_get(self.id, &mut l)
            } else {
                sys::rte_eth_link_get_nowait(self.id, &mut l)
            }
        };
        self.check(call, r)?;
        Ok(Link {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
            autoneg: l.link_autoneg() != 0,
        })
    }

    /// Link state now, without waiting for autonegotiation.
    pub fn link(&self) -> Result<Link, DpdkError> {
        self.link_with(false)
    }

    /// Link state, waiting (up to 9 s, DPDK's limit) for it to settle.
    pub fn link_wait(&self) -> Result<Link, DpdkError> {
        self.link_with(true)
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let _g = self.control("rte_eth_stats_get")?;
        // SAFETY: plain data; zero is a valid value.
        let mut s: sys::rte_eth_stats = unsafe { std::mem::zeroed() };
        // SAFETY: valid out-pointer.
        let r = unsafe { sys::rte_eth_stats_get(self.id, &mut s) };
        self.check("rte_eth_stats_get", r)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Resets the basic counters.
    pub fn reset_stats(&self) -> Result<(), DpdkError> {
        let _g = self.control("rte_eth_stats_reset")?;
        // SAFETY: control path serialised by the slot lock.
        let r = unsafe { sys::rte_eth_stats_reset(self.id) };
        self.check("rte_eth_stats_reset", r)
    }

    /// Every extended counter, by name.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, DpdkError> {
        let _g = self.control("rte_eth_xstats_get")?;
        // SAFETY: NULL/0 asks for the count only.
        let n = unsafe { sys::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        self.check("rte_eth_xstats_get_names", n)?;
        let n = n as usize;
        let mut names = vec![sys::rte_eth_xstat_name { name: [0; sys::RTE_ETH_XSTATS_NAME_SIZE as usize] }; n];
        let mut values = vec![sys::rte_eth_xstat { id: 0, value: 0 }; n];
        // SAFETY: both arrays hold n entries.
        let got_names = unsafe { sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n as u32) };
        self.check("rte_eth_xstats_get_names", got_names)?;
        // SAFETY: as above.
        let got = unsafe { sys::rte_eth_xstats_get(self.id, values.as_mut_ptr(), n as u32) };
        self.check("rte_eth_xstats_get", got)?;
        let (got_names, got) = (got_names as usize, got as usize);
        if got_names > n || got > n {
            // The set grew between the calls; the caller can ask again.
            return Err(self.err("rte_eth_xstats_get", -libc::EAGAIN));
        }
        let names = &names[..got_names];
        Ok(values[..got]
            .iter()
            .map(|v| {
                let name = names
                    .get(v.id as usize)
                    // SAFETY: DPDK NUL-terminates names within the 64 bytes;
                    // the last byte is forced to NUL by the zero init if not.
                    .map(|nm| unsafe { CStr::from_ptr(nm.name.as_ptr()) }.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("xstat#{}", v.id));
                (name, v.value)
            })
            .collect())
    }

    /// Takes the handle of rx queue `q`. At most one handle per queue exists
    /// at a time; it returns to the port when dropped.
    pub fn rx_queue(&self, q: u16) -> Result<RxQueue, DpdkError> {
        let mut slot = self.control("rx_queue")?;
        self.take(&mut slot.rx_taken, "rx", q)?;
        Ok(RxQueue {
            port: self.id,
            queue: q,
            _not_sync: PhantomData,
        })
    }

    /// Takes the handle of tx queue `q` (see [`rx_queue`](Port::rx_queue)).
    pub fn tx_queue(&self, q: u16) -> Result<TxQueue, DpdkError> {
        let mut slot = self.control("tx_queue")?;
        self.take(&mut slot.tx_taken, "tx", q)?;
        Ok(TxQueue {
            port: self.id,
            queue: q,
            _not_sync: PhantomData,
        })
    }

    fn take(&self, taken: &mut [bool], dir: &'static str, q: u16) -> Result<(), DpdkError> {
        match taken.get_mut(usize::from(q)) {
            None => Err(DpdkError::InvalidArgument {
                call: if dir == "rx" { "rx_queue" } else { "tx_queue" },
                what: format!(
                    "port {} ({}) has {} configured {dir} queues, no queue {q}",
                    self.id,
                    self.name(),
                    taken.len()
                ),
            }),
            Some(true) => Err(DpdkError::QueueTaken {
                port: self.id,
                name: self.name(),
                dir,
                queue: q,
            }),
            Some(t) => {
                *t = true;
                Ok(())
            }
        }
    }
}

fn release(port: u16, rx: bool, q: u16) {
    let mut slot = slot(port);
    let v = if rx { &mut slot.rx_taken } else { &mut slot.tx_taken };
    if let Some(t) = v.get_mut(usize::from(q)) {
        *t = false;
    }
}

/// The receive side of one (port, queue). `Send` (move it to the lcore that
/// polls it) but not `Sync`; unique while alive.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    /// Port id.
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// Queue index.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Receives into the burst's free space; returns how many arrived.
    #[inline]
    pub fn burst<const N: usize>(&mut self, b: &mut Burst<N>) -> usize {
        // SAFETY: this handle is the only one for (port, queue) and is not
        // Sync, so no other thread polls the queue; the queue exists while
        // the handle does (configure/close refuse otherwise; a stopped port
        // returns 0). DPDK writes at most `free` owned mbufs into the free
        // slots, then set_len counts them.
        unsafe {
            let (slots, free) = b.spare_raw();
            let free = free.min(usize::from(u16::MAX)) as u16;
            if free == 0 {
                return 0;
            }
            let n = sys::pias_eth_rx_burst(self.port, self.queue, slots, free);
            b.set_len(b.len() + usize::from(n));
            usize::from(n)
        }
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        release(self.port, true, self.queue);
    }
}

/// The transmit side of one (port, queue); see [`RxQueue`].
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    /// Port id.
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// Queue index.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Sends from the front of the burst; returns how many the device took.
    /// What it did not take stays in `b`, moved to the front, for the caller
    /// to retry or drop.
    #[inline]
    pub fn burst<const N: usize>(&mut self, b: &mut Burst<N>) -> usize {
        let n = b.len().min(usize::from(u16::MAX)) as u16;
        if n == 0 {
            return 0;
        }
        // SAFETY: as in RxQueue::burst for the queue; DPDK takes ownership of
        // the first `sent` mbufs, which consume_front then forgets.
        unsafe {
            let sent = sys::pias_eth_tx_burst(self.port, self.queue, b.as_mut_ptr(), n);
            b.consume_front(usize::from(sent));
            usize::from(sent)
        }
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        release(self.port, false, self.queue);
    }
}

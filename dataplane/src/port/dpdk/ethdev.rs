//! Ethdev ports: [`DpdkPort`] opens a device from devargs (probing a vdev
//! or an allowed PCI device), configures one rx queue per polling worker
//! (RSS when more than one) and one tx queue per worker, and hands each
//! worker a queue of its own, so no two threads share a DPDK queue.

use std::ffi::{CStr, CString};
use std::io;
use std::sync::{Arc, Mutex};

use dpdk_sys as sys;

use super::eal::ensure_lcore;
use super::mbuf::free_bulk;
use super::{strerror, DpdkError, Eal, Mbuf, MbufPool};
use crate::packet::PacketBuf;
use crate::port::{Port, PortQueue, PortState, PortStats, QueueCounters, RxQueue};

/// How to set up an ethdev.
#[derive(Clone, Debug)]
pub struct DpdkPortConfig {
    /// Rx queues: one per worker that polls the port (RSS spreads flows
    /// over them when more than one).
    pub rx_queues: u16,
    /// Tx queues: one per worker (every worker can transmit on every port)
    /// plus any other user of the port.
    pub tx_queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// Receive every destination MAC (a switch port does).
    pub promiscuous: bool,
    /// Close and detach the device when the port is closed, if this open
    /// hot-plugged it (a vdev probed from devargs): frees what the device
    /// holds (a vhost-user socket, a tap interface) and lets the same
    /// devargs be added again. Off: the device stays, stopped, and can be
    /// opened again as it is.
    pub detach_on_close: bool,
    /// The backend name `show` gives the port ("dpdk", "dpdkvhostuser").
    pub kind: &'static str,
    /// If the device has fewer tx queues than `tx_queues`, take what it has
    /// and let the workers share them, each tx burst under its queue's lock
    /// (as OVS does when a device or a vhost-user VM has fewer queues than
    /// there are PMD threads); with enough queues, nothing is shared or
    /// locked. Off: fewer queues than asked is an error.
    pub share_tx: bool,
    /// The device fills each rx queue from an input of its own (net_pcap's
    /// `rx_pcap=` per queue), not by RSS: several queues are then taken
    /// without RSS. Off for anything else: spreading one link's flows over
    /// queues needs RSS, which keeps a flow (and a connection's two
    /// directions, for conntrack) on one queue.
    pub queues_fed_apart: bool,
}

impl Default for DpdkPortConfig {
    fn default() -> Self {
        DpdkPortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            promiscuous: true,
            detach_on_close: false,
            kind: "dpdk",
            share_tx: false,
            queues_fed_apart: false,
        }
    }
}

/// Which queues of a port are held by an open [`PortQueue`].
#[derive(Debug)]
struct Claims {
    rx: Vec<bool>,
    /// Open queues transmitting on each tx queue.
    tx: Vec<u32>,
}

#[derive(Debug)]
struct PortInner {
    name: String,
    port_id: u16,
    eal: &'static Eal,
    pool: MbufPool,
    claims: Mutex<Claims>,
    state: Arc<PortState>,
    /// Detach the device on drop (see [`DpdkPortConfig::detach_on_close`]).
    detach: bool,
    /// With [`DpdkPortConfig::share_tx`]: the lock of each tx queue.
    tx_locks: Option<Vec<Mutex<()>>>,
    kind: &'static str,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // SAFETY: the port was started by DpdkPort::open and no queue uses
        // it any more (queues hold this struct alive).
        unsafe { sys::rte_eth_dev_stop(self.port_id) };
        if self.detach {
            let bus = c"vdev";
            let name = CString::new(self.name.as_str()).expect("checked at open");
            // SAFETY: a stopped port that nothing uses any more; closing
            // frees its queues, and the vdev bus then removes the device
            // (the port id may be reused by a later probe).
            unsafe {
                sys::rte_eth_dev_close(self.port_id);
                sys::rte_eal_hotplug_remove(bus.as_ptr(), name.as_ptr());
            }
        }
        self.eal
            .open_ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.port_id);
    }
}

/// A DPDK ethdev as a dataplane [`Port`]. Stopped when it and every queue
/// opened on it are dropped (it can then be opened again).
#[derive(Debug)]
pub struct DpdkPort {
    inner: Arc<PortInner>,
    rx_queues: u16,
}

/// Hardware (PMD) counters of a port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EthStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Dropped by the device: rx queues full.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

impl DpdkPort {
    /// Opens the ethdev named by `devargs` (probing it if it does not exist
    /// yet: `net_null0`, `net_ring0`, `net_pcap0,rx_pcap=in.pcap,...`, or a
    /// PCI address allowed at EAL init), configures and starts it.
    pub fn open(
        eal: &'static Eal,
        devargs: &str,
        config: &DpdkPortConfig,
    ) -> Result<Self, DpdkError> {
        let name = devargs.split(',').next().unwrap_or(devargs).to_string();
        let cfg_err = |what: String| DpdkError::Config {
            port: name.clone(),
            what,
        };
        let eth_err = |op: &'static str, ret: i32| DpdkError::Ethdev {
            port: name.clone(),
            op,
            reason: strerror(ret),
        };
        if config.rx_queues == 0 || config.tx_queues == 0 {
            return Err(cfg_err("needs at least one rx and one tx queue".into()));
        }
        let cname =
            CString::new(name.as_str()).map_err(|_| DpdkError::BadArgument(name.clone()))?;
        let mut probed = false;
        let port_id = match port_by_name(&cname) {
            Some(id) => id,
            None => {
                probed = true;
                let cargs =
                    CString::new(devargs).map_err(|_| DpdkError::BadArgument(devargs.into()))?;
                // SAFETY: a valid C string, copied by DPDK.
                let ret = unsafe { sys::rte_dev_probe(cargs.as_ptr()) };
                if ret < 0 {
                    return Err(DpdkError::Probe {
                        devargs: devargs.into(),
                        reason: strerror(ret),
                    });
                }
                port_by_name(&cname).ok_or_else(|| DpdkError::Probe {
                    devargs: devargs.into(),
                    reason: format!("the device probed but no ethdev is named {name:?}"),
                })?
            }
        };
        if !eal
            .open_ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port_id)
        {
            return Err(cfg_err("already open".into()));
        }
        // SAFETY: a valid port id.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
        let release = || {
            eal.open_ports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&port_id);
        };
        // SAFETY: rte_eth_dev_info is plain data, filled by DPDK.
        let mut info: sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        // SAFETY: a valid port id and a writable struct.
        let ret = unsafe { sys::rte_eth_dev_info_get(port_id, &mut info) };
        if ret != 0 {
            release();
            return Err(eth_err("rte_eth_dev_info_get", ret));
        }
        // With share_tx, fewer tx queues than asked are shared under locks.
        let tx_queues = if config.share_tx {
            config.tx_queues.min(info.max_tx_queues.max(1))
        } else {
            config.tx_queues
        };
        let pool = match eal.mbuf_pool(socket) {
            Ok(p) => p,
            Err(e) => {
                release();
                return Err(e);
            }
        };
        // From here on, an error drops `inner`, whose Drop stops the device
        // and releases the port id.
        let inner = Arc::new(PortInner {
            name: name.clone(),
            port_id,
            eal,
            pool: pool.clone(),
            claims: Mutex::new(Claims {
                rx: vec![false; config.rx_queues as usize],
                tx: vec![0; tx_queues as usize],
            }),
            state: Arc::new(PortState::default()),
            detach: probed && config.detach_on_close,
            tx_locks: (tx_queues < config.tx_queues)
                .then(|| (0..tx_queues).map(|_| Mutex::new(())).collect()),
            kind: config.kind,
        });
        if config.rx_queues > info.max_rx_queues || tx_queues > info.max_tx_queues {
            return Err(cfg_err(format!(
                "{} rx / {} tx queues asked, the device has at most {} / {}",
                config.rx_queues, tx_queues, info.max_rx_queues, info.max_tx_queues
            )));
        }
        // SAFETY: rte_eth_conf is plain data; all-zero is DPDK's default.
        let mut conf: sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        if config.rx_queues > 1 && !config.queues_fed_apart {
            // SAFETY: a pure function of the shim.
            let hf = unsafe { sys::sy_rss_hf_ip_tcp_udp() } & info.flow_type_rss_offloads;
            if hf == 0 {
                return Err(cfg_err(format!(
                    "{} rx queues need RSS, which the device does not offer for IP/TCP/UDP",
                    config.rx_queues
                )));
            }
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
        }
        // SAFETY: a valid port id, stopped (fresh or stopped by a previous
        // DpdkPort's drop), and a valid configuration.
        let ret =
            unsafe { sys::rte_eth_dev_configure(port_id, config.rx_queues, tx_queues, &conf) };
        if ret != 0 {
            return Err(eth_err("rte_eth_dev_configure", ret));
        }
        let (mut nb_rx, mut nb_tx) = (config.rx_descriptors, config.tx_descriptors);
        // SAFETY: a valid, configured port and writable counts.
        let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut nb_rx, &mut nb_tx) };
        if ret != 0 {
            return Err(eth_err("rte_eth_dev_adjust_nb_rx_tx_desc", ret));
        }
        let sock = socket.max(0) as u32;
        for q in 0..config.rx_queues {
            // SAFETY: a configured port, a queue index below the configured
            // count, default rxconf (NULL), and a live mbuf pool.
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    port_id,
                    q,
                    nb_rx,
                    sock,
                    std::ptr::null(),
                    pool.mp.0.as_ptr(),
                )
            };
            if ret != 0 {
                return Err(eth_err("rte_eth_rx_queue_setup", ret));
            }
        }
        for q in 0..tx_queues {
            // SAFETY: as above, default txconf.
            let ret =
                unsafe { sys::rte_eth_tx_queue_setup(port_id, q, nb_tx, sock, std::ptr::null()) };
            if ret != 0 {
                return Err(eth_err("rte_eth_tx_queue_setup", ret));
            }
        }
        if config.promiscuous {
            // SAFETY: a valid port. Not every PMD supports it (net_null,
            // net_ring accept everything anyway): failure is not an error.
            unsafe { sys::rte_eth_promiscuous_enable(port_id) };
        }
        // SAFETY: a configured port with every queue set up.
        let ret = unsafe { sys::rte_eth_dev_start(port_id) };
        if ret != 0 {
            return Err(eth_err("rte_eth_dev_start", ret));
        }
        Ok(DpdkPort {
            inner,
            rx_queues: config.rx_queues,
        })
    }

    /// The ethdev port id.
    pub fn port_id(&self) -> u16 {
        self.inner.port_id
    }

    /// The pool the port's rx queues fill (the one of its socket): what a
    /// worker polling it should allocate from.
    pub fn pool(&self) -> MbufPool {
        self.inner.pool.clone()
    }

    /// The device's MAC address.
    pub fn mac(&self) -> Result<[u8; 6], DpdkError> {
        // SAFETY: plain data, filled by DPDK.
        let mut a: sys::rte_ether_addr = unsafe { std::mem::zeroed() };
        // SAFETY: a valid port and a writable address.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.inner.port_id, &mut a) };
        if ret != 0 {
            return Err(DpdkError::Ethdev {
                port: self.inner.name.clone(),
                op: "rte_eth_macaddr_get",
                reason: strerror(ret),
            });
        }
        Ok(a.addr_bytes)
    }

    /// The device's MTU (the largest IP packet, without the Ethernet header).
    pub fn mtu(&self) -> Result<u16, DpdkError> {
        let mut mtu = 0u16;
        // SAFETY: a valid port and a writable integer.
        let ret = unsafe { sys::rte_eth_dev_get_mtu(self.inner.port_id, &mut mtu) };
        if ret != 0 {
            return Err(DpdkError::Ethdev {
                port: self.inner.name.clone(),
                op: "rte_eth_dev_get_mtu",
                reason: strerror(ret),
            });
        }
        Ok(mtu)
    }

    /// The device's own counters.
    pub fn eth_stats(&self) -> Result<EthStats, DpdkError> {
        // SAFETY: plain data, filled by DPDK.
        let mut s: sys::rte_eth_stats = unsafe { std::mem::zeroed() };
        // SAFETY: a valid port and a writable struct.
        let ret = unsafe { sys::rte_eth_stats_get(self.inner.port_id, &mut s) };
        if ret != 0 {
            return Err(DpdkError::Ethdev {
                port: self.inner.name.clone(),
                op: "rte_eth_stats_get",
                reason: strerror(ret),
            });
        }
        Ok(EthStats {
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
}

fn port_by_name(name: &CStr) -> Option<u16> {
    let mut id = 0u16;
    // SAFETY: a valid C string and a writable id.
    (unsafe { sys::rte_eth_dev_get_port_by_name(name.as_ptr(), &mut id) } == 0).then_some(id)
}

impl Port<MbufPool> for DpdkPort {
    fn name(&self) -> &str {
        &self.inner.name
    }
    fn kind(&self) -> &'static str {
        self.inner.kind
    }
    fn rx_queues(&self) -> usize {
        self.rx_queues as usize
    }
    /// Takes rx queue `rxq` (if given; each rx queue has one poller) and
    /// the lowest free tx queue (with `share_tx`, the least shared one).
    fn open_queue(&self, rxq: Option<usize>) -> io::Result<Box<dyn PortQueue<MbufPool>>> {
        let mut claims = self.inner.claims.lock().unwrap_or_else(|e| e.into_inner());
        let err = |what: String| -> io::Error {
            DpdkError::Config {
                port: self.inner.name.clone(),
                what,
            }
            .into()
        };
        if let Some(q) = rxq {
            match claims.rx.get(q) {
                None => return Err(err(format!("no rx queue {q}"))),
                Some(true) => return Err(err(format!("rx queue {q} is already polled"))),
                Some(false) => {}
            }
        }
        let txq = (0..claims.tx.len())
            .min_by_key(|&q| claims.tx[q])
            .expect("at least one tx queue (checked at open)");
        if claims.tx[txq] > 0 && self.inner.tx_locks.is_none() {
            return Err(err(format!(
                "all {} tx queues are taken (configure one per worker)",
                claims.tx.len()
            )));
        }
        claims.tx[txq] += 1;
        if let Some(q) = rxq {
            claims.rx[q] = true;
        }
        Ok(Box::new(DpdkQueue {
            port: self.inner.clone(),
            port_id: self.inner.port_id,
            rxq: rxq.map(|q| q as u16),
            txq: txq as u16,
            counters: self.inner.state.new_queue(),
        }))
    }
    /// Software counters of every queue; `rx_dropped` adds what the device
    /// itself dropped (rx ring full, no mbuf).
    fn stats(&self) -> PortStats {
        let mut s = self.inner.state.stats();
        if let Ok(hw) = self.eth_stats() {
            s.rx_dropped += hw.imissed + hw.rx_nombuf;
        }
        s
    }
    fn link_up(&self) -> bool {
        // SAFETY: plain data, filled by DPDK.
        let mut link: sys::rte_eth_link = unsafe { std::mem::zeroed() };
        // SAFETY: a valid port and a writable struct; does not wait.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.inner.port_id, &mut link) };
        ret == 0 && u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP
    }
}

/// One worker's handle on a [`DpdkPort`]: an rx queue (maybe) and a tx
/// queue of its own (or shared under its lock, with `share_tx`).
struct DpdkQueue {
    port: Arc<PortInner>,
    port_id: u16,
    rxq: Option<u16>,
    txq: u16,
    counters: Arc<QueueCounters>,
}

impl Drop for DpdkQueue {
    fn drop(&mut self) {
        let mut c = self.port.claims.lock().unwrap_or_else(|e| e.into_inner());
        c.tx[self.txq as usize] -= 1;
        if let Some(q) = self.rxq {
            c.rx[q as usize] = false;
        }
    }
}

impl PortQueue<MbufPool> for DpdkQueue {
    /// Receives straight into `out`'s spare capacity (the PMD writes the
    /// mbuf pointers; no per-packet copy). The PMD fills the queue from the
    /// port's pool, not from `pool`. Multi-segment frames (larger than an
    /// mbuf) are dropped as oversized.
    #[inline]
    fn rx_burst(&mut self, _pool: &mut MbufPool, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let Some(q) = self.rxq else { return 0 };
        ensure_lcore();
        out.reserve(max);
        let start = out.len();
        let want = max.min(u16::MAX as usize) as u16;
        // SAFETY: `out` has room for `want` more pointers after `start`;
        // Mbuf is repr(transparent) over the mbuf pointer, and the PMD
        // writes exactly the returned count of owned mbufs there, which
        // set_len then adopts. This worker alone polls queue q (claimed in
        // open_queue).
        let n = unsafe {
            let dst = out.as_mut_ptr().add(start) as *mut *mut sys::rte_mbuf;
            let n = sys::sy_rx_burst(self.port_id, q, dst, want) as usize;
            out.set_len(start + n);
            n
        };
        if n == 0 {
            return 0;
        }
        let (mut bytes, mut multi) = (0u64, false);
        for b in &out[start..] {
            bytes += b.len() as u64;
            multi |= b.segments() != 1;
        }
        let mut kept = n;
        if multi {
            let mut i = start;
            while i < out.len() {
                if out[i].segments() != 1 {
                    bytes -= out[i].len() as u64;
                    drop(out.remove(i));
                } else {
                    i += 1;
                }
            }
            kept = out.len() - start;
            self.counters.rx_oversized((n - kept) as u64);
        }
        self.counters.rx(kept as u64, bytes);
        kept
    }

    /// Hands the burst to the PMD (retrying while it makes progress); what
    /// it does not take is freed and counted as `tx_dropped`.
    #[inline]
    fn tx_burst(&mut self, _pool: &mut MbufPool, pkts: &mut Vec<Mbuf>) {
        let len = pkts.len();
        if len == 0 {
            return;
        }
        ensure_lcore();
        let bytes: u64 = pkts.iter().map(|b| b.len() as u64).sum();
        let base = pkts.as_mut_ptr() as *mut *mut sys::rte_mbuf;
        let mut sent = 0;
        // A shared tx queue is used under its lock, for the whole burst.
        let guard = self.port.tx_locks.as_ref().map(|l| {
            l[self.txq as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        });
        while sent < len {
            let chunk = (len - sent).min(u16::MAX as usize) as u16;
            // SAFETY: base[sent..len] are owned mbufs (repr(transparent));
            // the PMD takes ownership of the first `n` it returns, and this
            // worker alone uses tx queue `txq` (claimed in open_queue), or
            // holds its lock if the queue is shared.
            let n = unsafe { sys::sy_tx_burst(self.port_id, self.txq, base.add(sent), chunk) };
            if n == 0 {
                break;
            }
            sent += n as usize;
        }
        drop(guard);
        let unsent_bytes: u64 = pkts[sent..].iter().map(|b| b.len() as u64).sum();
        free_bulk(pkts, sent);
        // SAFETY: the first `sent` mbufs now belong to the PMD: forget them
        // without dropping.
        unsafe { pkts.set_len(0) };
        self.counters.tx(sent as u64, bytes - unsent_bytes);
        self.counters.tx_dropped((len - sent) as u64);
    }

    /// The rx queue leaves claimed: no other handle can open it while it
    /// is on its way.
    fn take_rx(&mut self) -> Option<RxQueue> {
        let q = self.rxq.take()?;
        Some(RxQueue::new(RxInTransit {
            port: self.port.clone(),
            q: Some(q),
        }))
    }
    fn give_rx(&mut self, rx: RxQueue) -> Result<(), RxQueue> {
        if self.rxq.is_some() {
            return Err(rx);
        }
        let mut t = rx.downcast::<RxInTransit>()?;
        if !Arc::ptr_eq(&t.port, &self.port) {
            return Err(RxQueue::new(t));
        }
        self.rxq = t.q.take();
        Ok(())
    }
}

/// A claimed rx queue between two [`DpdkQueue`]s; if it never arrives (its
/// port went away meanwhile), dropping it releases the claim.
struct RxInTransit {
    port: Arc<PortInner>,
    q: Option<u16>,
}

impl Drop for RxInTransit {
    fn drop(&mut self) {
        if let Some(q) = self.q {
            let mut c = self.port.claims.lock().unwrap_or_else(|e| e.into_inner());
            c.rx[q as usize] = false;
        }
    }
}

//! DPDK poll-mode ports (feature `dpdk`): the EAL, mbuf pools, and ethdev
//! ports that the same [`Worker`](crate::engine::Worker) and pipeline run
//! on, with no copy.
//!
//! This module owns everything the dataplane does with DPDK:
//! - [`Eal`]: `rte_eal_init`, once per process, from a typed [`EalConfig`]
//!   (memory mode, file prefix, PCI allow list or `--no-pci`, vdevs, driver
//!   directories).
//! - [`MbufPool`] / [`Mbuf`]: the [`BufPool`] / [`PacketBuf`] of the DPDK
//!   backend. An [`Mbuf`] is a pointer to an `rte_mbuf`; the pipeline reads
//!   and rewrites the frame in place, and encapsulation uses the mbuf's own
//!   headroom (`rte_pktmbuf_prepend`/`adj`). One `rte_mempool` per NUMA
//!   socket, created on first use.
//! - [`DpdkPort`]: an ethdev from devargs (a PCI address, or a vdev such as
//!   `net_null0`, `net_ring0`, `net_pcap0,rx_pcap=...`, `net_tap0,iface=...`)
//!   with one rx queue per polling worker (RSS over IP/TCP/UDP when there is
//!   more than one) and one tx queue per worker, counted per queue through
//!   [`PortState`] like every other backend.
//!
//! Workers are not EAL lcores: they are the engine's own pinned threads. The
//! first burst a thread runs registers it with the EAL
//! (`rte_thread_register`), which gives it an lcore id and so a mempool
//! cache; it is unregistered when the thread exits.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{c_char, CStr, CString};
use std::io;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use dpdk_sys as sys;

use super::{Port, PortQueue, PortState, PortStats, QueueCounters};
use crate::packet::{BufPool, PacketBuf, HEADROOM};

// Frames start at the same offset in an mbuf as in a heap buffer, so the
// pipeline's headroom assumptions (encapsulation in place) hold for both.
const _: () = assert!(sys::RTE_PKTMBUF_HEADROOM as usize == HEADROOM);

/// What went wrong in the DPDK backend, with the DPDK error text.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    #[error("EAL argument {0:?} contains a NUL byte")]
    BadArgument(String),
    #[error("rte_eal_init failed with arguments {args:?}: {reason}")]
    EalInit { args: Vec<String>, reason: String },
    #[error("the EAL is already initialised (rte_eal_init runs once per process)")]
    AlreadyInitialised,
    #[error("the EAL failed to initialise earlier in this process: {0}")]
    EalFailedEarlier(String),
    #[error("creating mbuf pool {name} on socket {socket}: {reason}")]
    Mempool {
        name: String,
        socket: i32,
        reason: String,
    },
    #[error("probing device {devargs:?}: {reason}")]
    Probe { devargs: String, reason: String },
    #[error("port {port}: {op} failed: {reason}")]
    Ethdev {
        port: String,
        op: &'static str,
        reason: String,
    },
    #[error("port {port}: {what}")]
    Config { port: String, what: String },
}

impl From<DpdkError> for io::Error {
    fn from(e: DpdkError) -> io::Error {
        io::Error::other(e)
    }
}

/// DPDK's text for a (positive) errno value.
fn strerror(errnum: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local,
    // NUL-terminated string, valid until the next call on this thread; it
    // is copied out at once.
    unsafe { CStr::from_ptr(sys::rte_strerror(errnum.abs())) }
        .to_string_lossy()
        .into_owned()
}

/// The calling thread's `rte_errno`, as text.
fn last_error() -> String {
    // SAFETY: reads a thread-local integer.
    strerror(unsafe { sys::sy_errno() })
}

/// Where the EAL gets its memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EalMemory {
    /// Anonymous memory, no hugepages (`--no-huge -m N --no-shconf`, with a
    /// file prefix): works anywhere, for tests and functional runs. Not usable
    /// by vhost-user, which needs shared hugepage memory.
    NoHuge { megabytes: usize },
    /// Hugepages, without runtime files (`--in-memory`); `-m N` if given.
    /// Needs hugepages reserved (`/proc/sys/vm/nr_hugepages`) and hugetlbfs.
    Hugepages { megabytes: Option<usize> },
}

/// How to initialise the EAL.
#[derive(Clone, Debug)]
pub struct EalConfig {
    /// CPUs the EAL's main thread (the caller of [`Eal::init`]) may run on;
    /// empty: every CPU the process may use now. `rte_eal_init` pins its
    /// caller to these. Worker cores are the engine's business
    /// (`EngineConfig::cores`), not the EAL's.
    pub main_cpus: Vec<usize>,
    pub memory: EalMemory,
    /// Runtime file prefix with [`EalMemory::NoHuge`] (default
    /// `switchyard-<pid>`, unique per process).
    pub file_prefix: Option<String>,
    /// PCI devices to allow (`-a`); empty: `--no-pci`.
    pub pci: Vec<String>,
    /// Virtual devices created at init (`--vdev`); ports can also be
    /// hot-plugged later by [`DpdkPort::open`].
    pub vdevs: Vec<String>,
    /// Extra driver files or directories to load (`-d`). Debian's EAL
    /// already loads every PMD of `/usr/lib/<triplet>/dpdk/pmds-<abi>`.
    pub driver_paths: Vec<PathBuf>,
    /// `--log-level` (e.g. `"notice"`, `"*:debug"`).
    pub log_level: Option<String>,
    /// Mbufs per socket pool (a power of two minus one is best).
    pub mbufs_per_socket: u32,
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig {
            main_cpus: Vec::new(),
            memory: EalMemory::NoHuge { megabytes: 512 },
            file_prefix: None,
            pci: Vec::new(),
            vdevs: Vec::new(),
            driver_paths: Vec::new(),
            log_level: Some("notice".into()),
            mbufs_per_socket: 16383,
        }
    }
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most
    // size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

impl EalConfig {
    /// The `rte_eal_init` arguments (without the program name).
    pub fn args(&self) -> Vec<String> {
        let cpus = if self.main_cpus.is_empty() {
            allowed_cpus()
        } else {
            self.main_cpus.clone()
        };
        let cpus: Vec<String> = cpus.iter().map(usize::to_string).collect();
        // lcore 0 (the main thread) may float over every listed CPU.
        let mut a = vec![format!("--lcores=0@({})", cpus.join(","))];
        match self.memory {
            EalMemory::NoHuge { megabytes } => {
                a.push("--no-huge".into());
                a.push(format!("-m{megabytes}"));
                let prefix = self
                    .file_prefix
                    .clone()
                    .unwrap_or_else(|| format!("switchyard-{}", std::process::id()));
                a.push(format!("--file-prefix={prefix}"));
                // No shared runtime files: nothing is left in
                // /var/run/dpdk/<prefix> after the process exits.
                a.push("--no-shconf".into());
            }
            EalMemory::Hugepages { megabytes } => {
                a.push("--in-memory".into());
                if let Some(m) = megabytes {
                    a.push(format!("-m{m}"));
                }
            }
        }
        if self.pci.is_empty() {
            a.push("--no-pci".into());
        }
        for p in &self.pci {
            a.push(format!("-a{p}"));
        }
        for v in &self.vdevs {
            a.push(format!("--vdev={v}"));
        }
        for d in &self.driver_paths {
            a.push(format!("-d{}", d.display()));
        }
        if let Some(l) = &self.log_level {
            a.push(format!("--log-level={l}"));
        }
        a
    }
}

/// A handle on an `rte_mempool` of mbufs, shared by every thread.
#[derive(Clone, Copy, Debug)]
struct Mempool(NonNull<sys::rte_mempool>);

// SAFETY: an rte_mempool is a thread-safe (multi-producer, multi-consumer)
// structure meant to be used from every lcore and registered thread.
unsafe impl Send for Mempool {}
// SAFETY: as above.
unsafe impl Sync for Mempool {}

/// The initialised EAL of this process.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
    mbufs_per_socket: u32,
    /// One mbuf pool per socket, created on first use and kept for the
    /// life of the process (the EAL is never torn down: DPDK cannot
    /// re-initialise it).
    pools: Mutex<Vec<(i32, Mempool)>>,
    /// Ethdev ports currently opened as a [`DpdkPort`].
    open_ports: Mutex<HashSet<u16>>,
}

enum EalState {
    Uninit,
    Running(&'static Eal),
    Failed(String),
}

static EAL: Mutex<EalState> = Mutex::new(EalState::Uninit);

impl Eal {
    /// Initialises the EAL. DPDK allows this once per process: a second
    /// call fails with [`DpdkError::AlreadyInitialised`] (use [`Eal::get`]).
    pub fn init(config: &EalConfig) -> Result<&'static Eal, DpdkError> {
        let mut state = EAL.lock().unwrap_or_else(|e| e.into_inner());
        match &*state {
            EalState::Running(_) => return Err(DpdkError::AlreadyInitialised),
            EalState::Failed(why) => return Err(DpdkError::EalFailedEarlier(why.clone())),
            EalState::Uninit => {}
        }
        let args = config.args();
        let mut argv: Vec<*mut c_char> = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once("switchyard").chain(args.iter().map(String::as_str)) {
            let c = CString::new(a).map_err(|_| DpdkError::BadArgument(a.to_string()))?;
            // The EAL may keep pointers into argv: the strings live as long
            // as the process.
            argv.push(c.into_raw());
        }
        // SAFETY: argv holds argc valid NUL-terminated strings that are
        // never freed; the EAL runs once (guarded by the EAL mutex).
        let ret = unsafe { sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
        // The vector itself may have been permuted by getopt; the strings
        // stay leaked on purpose (see above).
        drop(argv);
        if ret < 0 {
            let reason = last_error();
            *state = EalState::Failed(reason.clone());
            return Err(DpdkError::EalInit { args, reason });
        }
        let eal: &'static Eal = Box::leak(Box::new(Eal {
            args,
            mbufs_per_socket: config.mbufs_per_socket,
            pools: Mutex::new(Vec::new()),
            open_ports: Mutex::new(HashSet::new()),
        }));
        *state = EalState::Running(eal);
        Ok(eal)
    }

    /// The EAL, if [`Eal::init`] succeeded.
    pub fn get() -> Option<&'static Eal> {
        match &*EAL.lock().unwrap_or_else(|e| e.into_inner()) {
            EalState::Running(e) => Some(e),
            _ => None,
        }
    }

    /// The arguments the EAL was initialised with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The mbuf pool of `socket` (negative: socket 0), created on first use.
    pub fn mbuf_pool(&self, socket: i32) -> Result<MbufPool, DpdkError> {
        let socket = socket.max(0);
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, mp)) = pools.iter().find(|(s, _)| *s == socket) {
            return Ok(MbufPool { mp: *mp });
        }
        let name = format!("sy_mbufs_{socket}");
        let cname = CString::new(name.clone()).expect("no NUL in pool name");
        // SAFETY: the name is a valid C string (copied by DPDK); sizes are
        // DPDK's defaults: 256-mbuf per-lcore caches, 2048 bytes of data
        // room after RTE_PKTMBUF_HEADROOM.
        let mp = unsafe {
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                self.mbufs_per_socket,
                256,
                0,
                sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                socket,
            )
        };
        let mp = NonNull::new(mp).ok_or_else(|| DpdkError::Mempool {
            name,
            socket,
            reason: last_error(),
        })?;
        pools.push((socket, Mempool(mp)));
        Ok(MbufPool { mp: Mempool(mp) })
    }
}

/// Registers the calling thread with the EAL on its first burst, so that it
/// gets an lcore id and with it a per-lcore mempool cache; unregisters it
/// when the thread exits.
struct LcoreGuard {
    /// 0: not checked yet; 1: checked, nothing to undo (an EAL thread, or
    /// no lcore id left: it runs uncached, which is still correct); 2:
    /// registered here.
    state: Cell<u8>,
}

impl LcoreGuard {
    #[inline]
    fn ensure(&self) {
        if self.state.get() != 0 {
            return;
        }
        // SAFETY: plain EAL calls on the current thread, after rte_eal_init
        // (a queue exists only once the EAL runs).
        let registered =
            unsafe { sys::sy_lcore_id() == sys::LCORE_ID_ANY && sys::rte_thread_register() == 0 };
        self.state.set(if registered { 2 } else { 1 });
    }
}

impl Drop for LcoreGuard {
    fn drop(&mut self) {
        if self.state.get() == 2 {
            // SAFETY: this thread registered itself in `ensure`.
            unsafe { sys::rte_thread_unregister() };
        }
    }
}

thread_local! {
    static LCORE: LcoreGuard = const { LcoreGuard { state: Cell::new(0) } };
}

#[inline]
fn ensure_lcore() {
    LCORE.with(LcoreGuard::ensure);
}

/// The calling thread's EAL lcore id: set on the EAL's main thread, and on
/// a worker thread once it has run a burst on a DPDK port.
pub fn lcore_id() -> Option<u32> {
    // SAFETY: reads a thread-local integer.
    let id = unsafe { sys::sy_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(id)
}

/// A packet in an `rte_mbuf`, single segment, owned (freed on drop).
///
/// `repr(transparent)` over the mbuf pointer, so a `Vec<Mbuf>` is the
/// `struct rte_mbuf **` array the burst functions take.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf owns its rte_mbuf exclusively (refcount 1, not shared),
// and mbufs may be freed from any thread.
unsafe impl Send for Mbuf {}

impl Mbuf {
    #[inline(always)]
    fn m(&self) -> &sys::rte_mbuf {
        // SAFETY: the pointer is a live mbuf owned by self.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn m_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: as above, and `&mut self` is exclusive.
        unsafe { self.0.as_mut() }
    }

    /// Segments in the mbuf chain.
    pub fn segments(&self) -> u16 {
        self.m().nb_segs
    }

    #[inline(always)]
    fn frame_ptr(&self) -> *mut u8 {
        let m = self.m();
        // SAFETY: data_off <= buf_len, inside the mbuf's buffer.
        unsafe { (m.buf_addr as *mut u8).add(m.data_off as usize) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: the mbuf is owned by self and freed exactly once.
        unsafe { sys::sy_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl PacketBuf for Mbuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        // SAFETY: data_off + data_len <= buf_len (DPDK's invariant, kept by
        // every setter below), so the slice is inside this mbuf's own data
        // room. Its bytes are initialised: the pool's memory came zeroed
        // from the kernel and DPDK and the PMDs only ever write bytes there.
        unsafe { std::slice::from_raw_parts(self.frame_ptr(), self.m().data_len as usize) }
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        let len = self.m().data_len as usize;
        // SAFETY: as above, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.frame_ptr(), len) }
    }
    #[inline(always)]
    fn len(&self) -> usize {
        self.m().data_len as usize
    }
    #[inline(always)]
    fn headroom(&self) -> usize {
        self.m().data_off as usize
    }
    #[inline(always)]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        // rte_pktmbuf_prepend, in Rust so it inlines into encapsulation:
        // the head mbuf's offset and lengths move by n, if the headroom
        // has n bytes.
        let n = u16::try_from(n).ok()?;
        let m = self.m_mut();
        if n > m.data_off {
            return None;
        }
        m.data_off -= n;
        m.data_len += n;
        m.pkt_len += u32::from(n);
        Some(self.data_mut())
    }
    #[inline(always)]
    fn trim_front(&mut self, n: usize) -> bool {
        // rte_pktmbuf_adj on the head mbuf, likewise.
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        let m = self.m_mut();
        if n > m.data_len {
            return false;
        }
        m.data_off += n;
        m.data_len -= n;
        m.pkt_len -= u32::from(n);
        true
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        let cur = self.len();
        let Ok(delta) = u16::try_from(len.abs_diff(cur)) else {
            return false;
        };
        // SAFETY: a live, owned mbuf; trim/append fail without change when
        // the new length does not fit.
        unsafe {
            if len <= cur {
                sys::sy_pktmbuf_trim(self.0.as_ptr(), delta) == 0
            } else {
                !sys::sy_pktmbuf_append(self.0.as_ptr(), delta).is_null()
            }
        }
    }
    #[inline]
    fn load(&mut self, frame: &[u8]) -> bool {
        // SAFETY: a live, owned mbuf.
        unsafe { sys::sy_pktmbuf_reset_headroom(self.0.as_ptr()) };
        let m = self.m_mut();
        if m.nb_segs != 1 || m.data_off as usize + frame.len() > m.buf_len as usize {
            return false;
        }
        m.data_len = frame.len() as u16;
        m.pkt_len = frame.len() as u32;
        // SAFETY: checked to fit in the buffer above; the frame is not in
        // this mbuf (we hold `&mut self`), so no overlap.
        unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), self.frame_ptr(), frame.len()) };
        true
    }
}

/// The DPDK [`BufPool`]: a handle on one socket's mbuf mempool (cheap to
/// clone; one per worker). Frees go back to each mbuf's own pool.
#[derive(Clone, Debug)]
pub struct MbufPool {
    mp: Mempool,
}

impl MbufPool {
    /// Mbufs currently free in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: a live mempool (pools are never freed).
        unsafe { sys::rte_mempool_avail_count(self.mp.0.as_ptr()) }
    }
}

impl BufPool for MbufPool {
    type Buf = Mbuf;
    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        // SAFETY: a live mempool of pktmbufs; the result is NULL or a fresh
        // mbuf now owned by the caller.
        NonNull::new(unsafe { sys::sy_pktmbuf_alloc(self.mp.0.as_ptr()) }).map(Mbuf)
    }
    #[inline]
    fn free(&mut self, buf: Mbuf) {
        drop(buf)
    }
    #[inline]
    fn free_all(&mut self, bufs: &mut Vec<Mbuf>) {
        free_bulk(bufs, 0);
    }
}

/// Frees `bufs[from..]` in one call and truncates `bufs` to `from`.
#[inline]
fn free_bulk(bufs: &mut Vec<Mbuf>, from: usize) {
    let n = bufs.len() - from;
    if n == 0 {
        return;
    }
    // SAFETY: Mbuf is repr(transparent) over an mbuf pointer, so the tail
    // is an array of `n` owned mbufs; after the bulk free the length is cut
    // so they are neither dropped nor used again.
    unsafe {
        sys::rte_pktmbuf_free_bulk(
            bufs.as_mut_ptr().add(from) as *mut *mut sys::rte_mbuf,
            n as u32,
        );
        bufs.set_len(from);
    }
}

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
}

impl Default for DpdkPortConfig {
    fn default() -> Self {
        DpdkPortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            promiscuous: true,
        }
    }
}

/// Which queues of a port are held by an open [`PortQueue`].
#[derive(Debug)]
struct Claims {
    rx: Vec<bool>,
    tx: Vec<bool>,
}

#[derive(Debug)]
struct PortInner {
    name: String,
    port_id: u16,
    eal: &'static Eal,
    pool: MbufPool,
    claims: Mutex<Claims>,
    state: Arc<PortState>,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // SAFETY: the port was started by DpdkPort::open and no queue uses
        // it any more (queues hold this struct alive).
        unsafe { sys::rte_eth_dev_stop(self.port_id) };
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
        let port_id = match port_by_name(&cname) {
            Some(id) => id,
            None => {
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
        let pool = match eal.mbuf_pool(socket) {
            Ok(p) => p,
            Err(e) => {
                eal.open_ports
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&port_id);
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
                tx: vec![false; config.tx_queues as usize],
            }),
            state: Arc::new(PortState::default()),
        });

        // SAFETY: rte_eth_dev_info is plain data, filled by DPDK.
        let mut info: sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        // SAFETY: a valid port id and a writable struct.
        let ret = unsafe { sys::rte_eth_dev_info_get(port_id, &mut info) };
        if ret != 0 {
            return Err(eth_err("rte_eth_dev_info_get", ret));
        }
        if config.rx_queues > info.max_rx_queues || config.tx_queues > info.max_tx_queues {
            return Err(cfg_err(format!(
                "{} rx / {} tx queues asked, the device has at most {} / {}",
                config.rx_queues, config.tx_queues, info.max_rx_queues, info.max_tx_queues
            )));
        }
        // SAFETY: rte_eth_conf is plain data; all-zero is DPDK's default.
        let mut conf: sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        if config.rx_queues > 1 {
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
        let ret = unsafe {
            sys::rte_eth_dev_configure(port_id, config.rx_queues, config.tx_queues, &conf)
        };
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
        for q in 0..config.tx_queues {
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
        "dpdk"
    }
    fn rx_queues(&self) -> usize {
        self.rx_queues as usize
    }
    /// Takes rx queue `rxq` (if given; each rx queue has one poller) and
    /// the lowest free tx queue.
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
        let Some(txq) = claims.tx.iter().position(|t| !t) else {
            return Err(err(format!(
                "all {} tx queues are taken (configure one per worker)",
                claims.tx.len()
            )));
        };
        claims.tx[txq] = true;
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
/// queue of its own.
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
        c.tx[self.txq as usize] = false;
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
        while sent < len {
            let chunk = (len - sent).min(u16::MAX as usize) as u16;
            // SAFETY: base[sent..len] are owned mbufs (repr(transparent));
            // the PMD takes ownership of the first `n` it returns, and this
            // worker alone uses tx queue `txq` (claimed in open_queue).
            let n = unsafe { sys::sy_tx_burst(self.port_id, self.txq, base.add(sent), chunk) };
            if n == 0 {
                break;
            }
            sent += n as usize;
        }
        let unsent_bytes: u64 = pkts[sent..].iter().map(|b| b.len() as u64).sum();
        free_bulk(pkts, sent);
        // SAFETY: the first `sent` mbufs now belong to the PMD: forget them
        // without dropping.
        unsafe { pkts.set_len(0) };
        self.counters.tx(sent as u64, bytes - unsent_bytes);
        self.counters.tx_dropped((len - sent) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_args_no_huge_and_hugepages() {
        let c = EalConfig {
            main_cpus: vec![0, 1],
            file_prefix: Some("t1".into()),
            vdevs: vec!["net_null0".into()],
            log_level: None,
            ..EalConfig::default()
        };
        assert_eq!(
            c.args(),
            [
                "--lcores=0@(0,1)",
                "--no-huge",
                "-m512",
                "--file-prefix=t1",
                "--no-shconf",
                "--no-pci",
                "--vdev=net_null0"
            ]
        );
        let c = EalConfig {
            main_cpus: vec![1],
            memory: EalMemory::Hugepages { megabytes: None },
            pci: vec!["0000:01:00.0".into()],
            log_level: None,
            ..EalConfig::default()
        };
        assert_eq!(
            c.args(),
            ["--lcores=0@(1)", "--in-memory", "-a0000:01:00.0"]
        );
    }
}

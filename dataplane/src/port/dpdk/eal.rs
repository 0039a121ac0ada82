//! The EAL: `rte_eal_init` once per process from a typed [`EalConfig`],
//! and the registration of the engine's worker threads as EAL threads (an
//! lcore id, and with it a mempool cache) on their first burst.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{c_char, CString};
use std::path::PathBuf;
use std::sync::Mutex;

use dpdk_sys as sys;

use super::mbuf::Mempool;
use super::{last_error, DpdkError};

/// Where the EAL gets its memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EalMemory {
    /// Anonymous memory, no hugepages (`--no-huge -m N --no-shconf`, with a
    /// file prefix): works anywhere. Enough for vhost-user too: the VM side
    /// needs hugepages to share its memory, the switch maps it and copies
    /// into its own mbufs.
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
    /// hot-plugged later by [`DpdkPort::open`](super::DpdkPort::open).
    pub vdevs: Vec<String>,
    /// Extra driver files or directories to load (`-d`). Debian's EAL
    /// already loads every PMD of `/usr/lib/<triplet>/dpdk/pmds-<abi>`.
    pub driver_paths: Vec<PathBuf>,
    /// `--log-level` (e.g. `"notice"`, `"*:debug"`).
    pub log_level: Option<String>,
    /// Mbufs per socket pool (a power of two minus one is best).
    pub mbufs_per_socket: u32,
    /// Further EAL arguments, passed last and as they are (OVS's
    /// `other_config:dpdk-extra`), e.g. `--socket-mem=1024,1024`.
    pub extra_args: Vec<String>,
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
            extra_args: Vec::new(),
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
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// The initialised EAL of this process.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
    pub(super) mbufs_per_socket: u32,
    /// One mbuf pool per socket, created on first use and kept for the
    /// life of the process (the EAL is never torn down: DPDK cannot
    /// re-initialise it).
    pub(super) pools: Mutex<Vec<(i32, Mempool)>>,
    /// Ethdev ports currently opened as a [`DpdkPort`].
    pub(super) open_ports: Mutex<HashSet<u16>>,
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
pub(super) fn ensure_lcore() {
    LCORE.with(LcoreGuard::ensure);
}

/// The calling thread's EAL lcore id: set on the EAL's main thread, and on
/// a worker thread once it has run a burst on a DPDK port.
pub fn lcore_id() -> Option<u32> {
    // SAFETY: reads a thread-local integer.
    let id = unsafe { sys::sy_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(id)
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

//! DPDK poll-mode ports (feature `dpdk`): the EAL, mbuf pools, and ethdev
//! ports that the same [`Worker`](crate::engine::Worker) and pipeline run
//! on, with no copy.
//!
//! This module owns everything the dataplane does with DPDK, one file per
//! concern:
//! - `eal`: [`Eal`], `rte_eal_init`, once per process, from a typed [`EalConfig`]
//!   (memory mode, file prefix, PCI allow list or `--no-pci`, vdevs, driver
//!   directories).
//! - `mbuf`: [`MbufPool`] / [`Mbuf`], the [`BufPool`](crate::packet::BufPool) / [`PacketBuf`](crate::packet::PacketBuf) of the DPDK
//!   backend. An [`Mbuf`] is a pointer to an `rte_mbuf`; the pipeline reads
//!   and rewrites the frame in place, and encapsulation uses the mbuf's own
//!   headroom (`rte_pktmbuf_prepend`/`adj`). One `rte_mempool` per NUMA
//!   socket, created on first use.
//! - `ethdev`: [`DpdkPort`], an ethdev from devargs (a PCI address, or a vdev such as
//!   `net_null0`, `net_ring0`, `net_pcap0,rx_pcap=...`, `net_tap0,iface=...`)
//!   with one rx queue per polling worker (RSS over IP/TCP/UDP when there is
//!   more than one) and one tx queue per worker, counted per queue through
//!   [`PortState`](crate::port::PortState) like every other backend.
//! - `vhost`: [`VhostUser`], a VM's vhost-user socket (server or client
//!   mode) as a `net_vhost` ethdev.
//!
//! Workers are not EAL lcores: they are the engine's own pinned threads. The
//! first burst a thread runs registers it with the EAL
//! (`rte_thread_register`), which gives it an lcore id and so a mempool
//! cache; it is unregistered when the thread exits.

mod eal;
mod ethdev;
mod mbuf;
mod vhost;

use std::ffi::CStr;
use std::io;

use dpdk_sys as sys;

use crate::packet::HEADROOM;
pub use eal::{lcore_id, Eal, EalConfig, EalMemory};
pub use ethdev::{DpdkPort, DpdkPortConfig, EthStats};
pub use mbuf::{Mbuf, MbufPool};
pub use vhost::{VhostMode, VhostUser};

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

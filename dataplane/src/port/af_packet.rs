//! AF_PACKET ports on kernel interfaces (veth, tap), with a TPACKET_V3
//! memory-mapped rx ring.
//!
//! The kernel fills blocks of the rx ring with frames; a worker walks every
//! frame of a block it owns, copies it into a pool buffer (re-inserting a
//! VLAN tag the kernel stripped, completing a checksum the sender's kernel
//! left partial) and returns the block. Transmission batches a whole burst
//! into one `sendmmsg` on a per-worker socket. Outgoing frames are never
//! looped back into our own rx (PACKET_IGNORE_OUTGOING). Kernel ports top
//! out near 1 Mpps: they are for function; speed comes from DPDK.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::Arc;

use super::{Port, PortQueue, PortState, PortStats, QueueCounters, RxQueue};
use crate::packet::{BufPool, PacketBuf, MAX_BURST};
use crate::wire::{checksum, layout};

const ETH_P_ALL: u16 = 0x0003;
const TPACKET_V3: libc::c_int = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

const BLOCK_SIZE: u32 = 1 << 18;
const BLOCK_NR: u32 = 16;
const FRAME_SIZE: u32 = 1 << 11;
/// A partly filled block is handed to us after this many milliseconds.
const BLOCK_TIMEOUT_MS: u32 = 1;

#[repr(C)]
struct TpacketReq3 {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
    tp_retire_blk_tov: u32,
    tp_sizeof_priv: u32,
    tp_feature_req_word: u32,
}

/// `struct tpacket_block_desc` with its `tpacket_hdr_v1`.
#[repr(C)]
struct BlockDesc {
    version: u32,
    offset_to_priv: u32,
    block_status: AtomicU32,
    num_pkts: u32,
    offset_to_first_pkt: u32,
    blk_len: u32,
}

/// `struct tpacket3_hdr`.
#[repr(C)]
struct Tpacket3Hdr {
    tp_next_offset: u32,
    tp_sec: u32,
    tp_nsec: u32,
    tp_snaplen: u32,
    tp_len: u32,
    tp_status: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_rxhash: u32,
    tp_vlan_tci: u32,
    tp_vlan_tpid: u16,
}

/// Options of an AF_PACKET port.
#[derive(Clone, Debug)]
pub struct AfPacketConfig {
    /// Kernel interface name.
    pub iface: String,
    /// Largest L3 packet accepted (frames beyond MTU + Ethernet header and
    /// one VLAN tag are dropped as oversized). None: the interface's MTU.
    pub mtu: Option<usize>,
}

/// An AF_PACKET port on one kernel interface.
pub struct AfPacketPort {
    iface: String,
    ifindex: i32,
    mtu: usize,
    state: Arc<PortState>,
}

fn last_err(what: &str, iface: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what} on {iface}: {e}"))
}

fn ifreq(iface: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is a byte array and a union of integers and structs
    // of integers: all-zero bytes are a valid value (and leave the name
    // NUL-terminated).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {iface:?}"),
        ));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

fn packet_socket(iface: &str) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; it returns a new fd or -1.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ALL.to_be()),
        )
    };
    if fd < 0 {
        return Err(last_err("socket(AF_PACKET)", iface));
    }
    // SAFETY: fd >= 0 is the descriptor socket(2) just returned; nothing
    // else owns it, so OwnedFd is its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt<T>(
    fd: &OwnedFd,
    level: i32,
    opt: i32,
    val: &T,
    iface: &str,
    what: &str,
) -> io::Result<()> {
    // SAFETY: `val` is a live T and the length passed is size_of::<T>(),
    // so the kernel reads only bytes of it, during the call; fd is open
    // (borrowed from an OwnedFd).
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            val as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(last_err(what, iface));
    }
    Ok(())
}

fn bind(fd: &OwnedFd, ifindex: i32, iface: &str) -> io::Result<()> {
    // SAFETY: sockaddr_ll is integers and a byte array: all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a live sockaddr_ll and the length passed is its
    // size; bind(2) only reads it during the call; fd is open.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(last_err("bind", iface));
    }
    Ok(())
}

impl AfPacketPort {
    /// Opens a port on `config.iface` (the interface must exist).
    pub fn open(config: &AfPacketConfig) -> io::Result<Self> {
        let iface = config.iface.clone();
        let c = CString::new(iface.clone())?;
        // SAFETY: `c` is a NUL-terminated string that outlives the call,
        // which only reads it.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(last_err("if_nametoindex", &iface));
        }
        let mtu = match config.mtu {
            Some(m) => m,
            None => {
                let fd = packet_socket(&iface)?;
                let mut req = ifreq(&iface)?;
                // SAFETY: SIOCGIFMTU takes a `struct ifreq *`: `req` is a
                // live, writable ifreq whose name is NUL-terminated (`ifreq`
                // checked its length); the kernel writes only inside it.
                if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) } < 0 {
                    return Err(last_err("SIOCGIFMTU", &iface));
                }
                // SAFETY: every field of the union is plain integers, so any
                // bytes are a valid c_int; SIOCGIFMTU wrote this one.
                unsafe { req.ifr_ifru.ifru_mtu as usize }
            }
        };
        Ok(AfPacketPort {
            iface,
            ifindex,
            mtu,
            state: Arc::new(PortState::default()),
        })
    }

    /// The MTU frames are checked against.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    fn interface_running(&self) -> bool {
        let Ok(fd) = packet_socket(&self.iface) else {
            return false;
        };
        let Ok(mut req) = ifreq(&self.iface) else {
            return false;
        };
        // SAFETY: SIOCGIFFLAGS takes a `struct ifreq *`: `req` is a live,
        // writable ifreq with a NUL-terminated name; the kernel writes only
        // inside it.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
            return false;
        }
        // SAFETY: the union's fields are plain integers, so any bytes are a
        // valid c_short; SIOCGIFFLAGS wrote this one.
        let flags = unsafe { req.ifr_ifru.ifru_flags } as i32;
        flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0
    }
}

/// The mmap'ed TPACKET_V3 rx ring of one socket.
struct RxRing {
    fd: OwnedFd,
    map: *mut u8,
    len: usize,
    block: u32,
}

// SAFETY: the mapping is reached only through this ring (`map` is never
// copied out beyond a call of `rx_burst`), so moving the ring to the worker
// that polls it moves the only access with it. It is not Sync: one thread
// at a time walks the ring.
unsafe impl Send for RxRing {}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: `map` and `len` are the mapping `open` created (a ring is
        // built only after mmap succeeded), unmapped once, here; no
        // reference into it outlives `rx_burst`.
        unsafe { libc::munmap(self.map as *mut libc::c_void, self.len) };
    }
}

impl RxRing {
    fn open(iface: &str, ifindex: i32) -> io::Result<RxRing> {
        let fd = packet_socket(iface)?;
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &TPACKET_V3,
            iface,
            "PACKET_VERSION",
        )?;
        let one: libc::c_int = 1;
        // Our own transmissions must not come back as receptions.
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            23, /* PACKET_IGNORE_OUTGOING */
            &one,
            iface,
            "PACKET_IGNORE_OUTGOING",
        )?;
        let req = TpacketReq3 {
            tp_block_size: BLOCK_SIZE,
            tp_block_nr: BLOCK_NR,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: BLOCK_SIZE / FRAME_SIZE * BLOCK_NR,
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            iface,
            "PACKET_RX_RING",
        )?;
        let len = (BLOCK_SIZE * BLOCK_NR) as usize;
        // SAFETY: a new shared mapping at an address the kernel picks (NULL
        // hint), of the size PACKET_RX_RING just gave the ring on `fd`; it
        // overlaps no memory Rust knows about.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(last_err("mmap rx ring", iface));
        }
        let ring = RxRing {
            fd,
            map: map as *mut u8,
            len,
            block: 0,
        };
        bind(&ring.fd, ifindex, iface)?;
        Ok(ring)
    }

    /// The start of block `i` (below BLOCK_NR) of the mapping.
    fn block(&self, i: u32) -> *mut u8 {
        debug_assert!(i < BLOCK_NR);
        // SAFETY: i < BLOCK_NR (the only caller passes `self.block`, kept
        // modulo BLOCK_NR), so i * BLOCK_SIZE is inside the mapping of
        // BLOCK_SIZE * BLOCK_NR bytes.
        unsafe { self.map.add((i * BLOCK_SIZE) as usize) }
    }
}

/// One worker's queue on an AF_PACKET port.
struct AfPacketQueue {
    rx: Option<RxRing>,
    tx: OwnedFd,
    ifindex: i32,
    max_frame: usize,
    state: Arc<PortState>,
    counters: Arc<QueueCounters>,
}

impl<P: BufPool> Port<P> for AfPacketPort {
    fn name(&self) -> &str {
        &self.iface
    }
    fn kind(&self) -> &'static str {
        "af_packet"
    }
    fn open_queue(&self, rxq: Option<usize>) -> io::Result<Box<dyn PortQueue<P>>> {
        let rx = match rxq {
            Some(_) => Some(RxRing::open(&self.iface, self.ifindex)?),
            None => None,
        };
        let tx = packet_socket(&self.iface)?;
        bind(&tx, self.ifindex, &self.iface)?;
        Ok(Box::new(AfPacketQueue {
            rx,
            tx,
            ifindex: self.ifindex,
            max_frame: self.mtu + 14 + 4,
            state: self.state.clone(),
            counters: self.state.new_queue(),
        }))
    }
    fn stats(&self) -> PortStats {
        self.state.stats()
    }
    fn link_up(&self) -> bool {
        let up = self.interface_running();
        self.state.set_link_up(up);
        up
    }
}

impl AfPacketQueue {
    /// Copies one ring frame into a buffer, restoring a stripped VLAN tag
    /// and completing a partial checksum.
    fn take_frame<B: PacketBuf>(hdr: &Tpacket3Hdr, data: &[u8], buf: &mut B) -> bool {
        let vlan = hdr.tp_status & TP_STATUS_VLAN_VALID != 0 && data.len() >= 12;
        if vlan {
            let tpid = if hdr.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                hdr.tp_vlan_tpid
            } else {
                0x8100
            };
            if !buf.set_len(data.len() + 4) {
                return false;
            }
            let f = buf.data_mut();
            f[..12].copy_from_slice(&data[..12]);
            f[12..14].copy_from_slice(&tpid.to_be_bytes());
            f[14..16].copy_from_slice(&(hdr.tp_vlan_tci as u16).to_be_bytes());
            f[16..].copy_from_slice(&data[12..]);
        } else if !buf.load(data) {
            return false;
        }
        if hdr.tp_status & TP_STATUS_CSUMNOTREADY != 0 {
            // The sender's kernel left the L4 checksum to "hardware": we are
            // that hardware. Frames we cannot parse keep theirs and meet
            // their drop reason in the pipeline.
            let frame = buf.data_mut();
            if let Ok(lay) = layout::parse(frame) {
                let _ = checksum::fill_l4(frame, &lay);
            }
        }
        true
    }
}

impl<P: BufPool> PortQueue<P> for AfPacketQueue {
    fn rx_burst(&mut self, pool: &mut P, out: &mut Vec<P::Buf>, max: usize) -> usize {
        let Some(ring) = &mut self.rx else { return 0 };
        let (mut n, mut bytes, mut nobuf, mut oversized) = (0usize, 0u64, 0u64, 0u64);
        // Whole blocks are consumed; a burst may exceed `max` by the rest of
        // a block, which the worker's vectors absorb.
        let _ = max;
        for _ in 0..BLOCK_NR {
            let block = ring.block(ring.block);
            // SAFETY: a block starts on a page (the mapping is page aligned,
            // BLOCK_SIZE a multiple of the page size) with the kernel's
            // `struct tpacket_block_desc`. Only its status word is borrowed
            // here, since the kernel may still be filling a block it owns;
            // that word is the handover, which the kernel writes last, after
            // a write barrier.
            let status = unsafe { &(*(block as *const BlockDesc)).block_status };
            if status.load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: TP_STATUS_USER, loaded with Acquire, hands the whole
            // block to us: the kernel has written it and does not touch it
            // again until the TP_STATUS_KERNEL store below, after the last
            // use of `desc`, `hdr` and `data`.
            let desc = unsafe { &*(block as *const BlockDesc) };
            let mut off = desc.offset_to_first_pkt as usize;
            for _ in 0..desc.num_pkts {
                // SAFETY: the kernel places the block's num_pkts frames at
                // offset_to_first_pkt and then tp_next_offset apart, each
                // header 16-byte aligned (TPACKET_ALIGNMENT) and inside the
                // block (a frame that would not fit opens the next block);
                // the block is ours (above).
                let hdr = unsafe { &*(block.add(off) as *const Tpacket3Hdr) };
                // SAFETY: the frame's tp_snaplen bytes start tp_mac bytes
                // after its header, and the kernel clips tp_snaplen so they
                // end inside the block (tpacket_rcv's max_frame_len check).
                let data = unsafe {
                    std::slice::from_raw_parts(
                        block.add(off + hdr.tp_mac as usize),
                        hdr.tp_snaplen as usize,
                    )
                };
                let vlan_extra = if hdr.tp_status & TP_STATUS_VLAN_VALID != 0 {
                    4
                } else {
                    0
                };
                if hdr.tp_len != hdr.tp_snaplen || hdr.tp_len as usize + vlan_extra > self.max_frame
                {
                    oversized += 1;
                } else {
                    match pool.alloc() {
                        Some(mut b) => {
                            if Self::take_frame(hdr, data, &mut b) {
                                bytes += b.len() as u64;
                                out.push(b);
                                n += 1;
                            } else {
                                pool.free(b);
                                oversized += 1;
                            }
                        }
                        None => nobuf += 1,
                    }
                }
                off += hdr.tp_next_offset as usize;
            }
            fence(Ordering::Release);
            status.store(TP_STATUS_KERNEL, Ordering::Release);
            ring.block = (ring.block + 1) % BLOCK_NR;
            if n >= MAX_BURST {
                break;
            }
        }
        self.counters.rx(n as u64, bytes);
        self.counters.rx_dropped(nobuf);
        self.counters.rx_oversized(oversized);
        n
    }

    fn tx_burst(&mut self, pool: &mut P, pkts: &mut Vec<P::Buf>) {
        if pkts.is_empty() {
            return;
        }
        if !self.state.link_up() {
            self.counters.tx_dropped(pkts.len() as u64);
            pool.free_all(pkts);
            return;
        }
        // SAFETY: sockaddr_ll is integers and a byte array: all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        let mut sent_total = 0usize;
        let mut bytes = 0u64;
        for chunk in pkts.chunks(MAX_BURST) {
            // SAFETY: iovec is a pointer and a length: all-zero (null, 0) is
            // a valid value.
            let mut iov: [libc::iovec; MAX_BURST] = unsafe { std::mem::zeroed() };
            // SAFETY: mmsghdr is pointers and integers: all-zero is a valid
            // (empty) message.
            let mut msgs: [libc::mmsghdr; MAX_BURST] = unsafe { std::mem::zeroed() };
            for (i, b) in chunk.iter().enumerate() {
                iov[i] = libc::iovec {
                    iov_base: b.data().as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                };
                msgs[i].msg_hdr.msg_iov = &mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
                msgs[i].msg_hdr.msg_name = &mut sll as *mut libc::sockaddr_ll as *mut libc::c_void;
                msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            }
            let mut done = 0usize;
            while done < chunk.len() {
                // SAFETY: msgs[done..chunk.len()] are filled in above: each
                // points at one iovec of `iov` over a frame of `chunk` and at
                // `sll`, all alive and unmoved until after the call; vlen is
                // the count of those messages. The kernel reads the frames
                // (never writes them, despite iov_base's *mut) and writes
                // only msg_len.
                let r = unsafe {
                    libc::sendmmsg(
                        self.tx.as_raw_fd(),
                        msgs[done..].as_mut_ptr(),
                        (chunk.len() - done) as u32,
                        libc::MSG_DONTWAIT,
                    )
                };
                if r <= 0 {
                    // EAGAIN (queue full), EMSGSIZE, ENETDOWN: skip the
                    // offending frame; it is counted as tx_dropped.
                    done += 1;
                    continue;
                }
                for b in &chunk[done..done + r as usize] {
                    bytes += b.len() as u64;
                }
                sent_total += r as usize;
                done += r as usize;
            }
        }
        self.counters.tx(sent_total as u64, bytes);
        self.counters.tx_dropped((pkts.len() - sent_total) as u64);
        pool.free_all(pkts);
    }
    /// The rx ring (its socket and mapping) moves as it is, mid-block.
    fn take_rx(&mut self) -> Option<RxQueue> {
        RxQueue::take_from(&mut self.rx)
    }
    fn give_rx(&mut self, rx: RxQueue) -> Result<(), RxQueue> {
        rx.give_to(&mut self.rx)
    }
}

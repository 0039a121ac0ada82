//! Packet buffers of the DPDK backend: [`Mbuf`] (an owned `rte_mbuf`, the
//! [`PacketBuf`] the pipeline reads and rewrites in place, encapsulating
//! into its own headroom) and [`MbufPool`] (a socket's `rte_mempool`, the
//! [`BufPool`]), created on first use per NUMA socket by [`Eal::mbuf_pool`].

use std::ffi::CString;
use std::ptr::NonNull;

use dpdk_sys as sys;

use super::{last_error, DpdkError, Eal};
use crate::packet::{BufPool, PacketBuf};

/// A handle on an `rte_mempool` of mbufs, shared by every thread.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mempool(pub(super) NonNull<sys::rte_mempool>);

// SAFETY: an rte_mempool is a thread-safe (multi-producer, multi-consumer)
// structure meant to be used from every lcore and registered thread.
unsafe impl Send for Mempool {}
// SAFETY: as above.
unsafe impl Sync for Mempool {}

impl Eal {
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
        // room after RTE_PKTMBUF_HEADROOM. The shim packs the objects
        // without hugepages, which net_af_xdp's umem needs (see shim.c).
        let mp = unsafe {
            sys::sy_pktmbuf_pool_create(
                cname.as_ptr(),
                self.mbufs_per_socket,
                256,
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
    pub(super) mp: Mempool,
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
pub(super) fn free_bulk(bufs: &mut Vec<Mbuf>, from: usize) {
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

//! Packet buffers, buffer pools, per-packet metadata and bursts.
//!
//! The pipeline is generic over [`PacketBuf`] and [`BufPool`], so the heap
//! buffers used by in-memory and AF_PACKET ports and the DPDK backend's
//! rte_mbufs run through the same monomorphised code with no per-packet
//! dynamic dispatch. Every buffer keeps [`HEADROOM`] bytes in front of the
//! frame so that tunnel encapsulation prepends headers without a copy.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Bytes reserved in front of every frame for encapsulation (as DPDK's
/// `RTE_PKTMBUF_HEADROOM`): enough for outer Ethernet + IPv6 + UDP + Geneve
/// with options.
pub const HEADROOM: usize = 128;
/// Largest frame a heap buffer holds (jumbo frames are dropped at rx).
pub const MAX_FRAME: usize = 9216;
/// Packets per burst, the unit of work of every stage.
pub const MAX_BURST: usize = 64;

/// A packet buffer: a frame with headroom in front of it.
pub trait PacketBuf: Send + 'static {
    /// The frame.
    fn data(&self) -> &[u8];
    /// The frame, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Frame length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True for an empty frame.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes free in front of the frame.
    fn headroom(&self) -> usize;
    /// Grows the frame by `n` bytes at the front (into the headroom) and
    /// returns the new front; `None` if the headroom is too small.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the front (decapsulation); false if `n > len`.
    fn trim_front(&mut self, n: usize) -> bool;
    /// Sets the frame length (truncate, or extend into tailroom with
    /// unspecified bytes); false if it does not fit.
    fn set_len(&mut self, len: usize) -> bool;
    /// Replaces the frame with `frame` (headroom restored); false if too big.
    fn load(&mut self, frame: &[u8]) -> bool;
    /// Replaces the frame with the first `len` (at most 64) bytes of
    /// `padded`; buffers may copy all 64 bytes at once (the generator's
    /// fast path for small frames).
    fn load_padded(&mut self, padded: &[u8; 64], len: usize) -> bool {
        len <= 64 && self.load(&padded[..len])
    }
}

/// Brings the cache lines of the `n` bytes of headroom in front of `buf`'s
/// frame into the cache (a hint; nothing is read). Encapsulation writes
/// there, into lines nothing has touched since the buffer was last used:
/// prefetching them a few packets ahead hides that miss.
#[inline(always)]
pub fn prefetch_headroom<B: PacketBuf>(buf: &B, n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let front = buf.data().as_ptr();
        // The first and last line of [front - n, front); n is at most
        // two lines. Only addresses are computed: prefetch reads nothing.
        for p in [front.wrapping_sub(1), front.wrapping_sub(n.max(1))] {
            // SAFETY: _mm_prefetch is a hint; it never faults, whatever
            // the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (buf, n);
}

/// A source of packet buffers, owned by one worker (no locks).
pub trait BufPool: Send {
    /// The buffer type this pool hands out.
    type Buf: PacketBuf;
    /// Takes a buffer; `None` when the pool is exhausted.
    fn alloc(&mut self) -> Option<Self::Buf>;
    /// Returns a buffer.
    fn free(&mut self, buf: Self::Buf);
    /// Frees every buffer of `bufs`.
    fn free_all(&mut self, bufs: &mut Vec<Self::Buf>) {
        for b in bufs.drain(..) {
            self.free(b);
        }
    }
    /// Appends up to `n` buffers to `out`; returns how many.
    fn alloc_bulk(&mut self, out: &mut Vec<Self::Buf>, n: usize) -> usize {
        let mut k = 0;
        while k < n {
            match self.alloc() {
                Some(b) => out.push(b),
                None => break,
            }
            k += 1;
        }
        k
    }
}

/// A heap-allocated buffer: a cache-aligned block of headroom + frame room,
/// and a 16-byte handle holding where the frame starts and its length.
/// Keeping the offsets in the handle (not in the block, as an rte_mbuf
/// does) means a small frame touches exactly one cache line of its block:
/// the frame starts at [`HEADROOM`], a multiple of 64.
pub struct HeapBuf {
    block: NonNull<u8>,
    start: u16,
    len: u16,
    /// Bytes in the block (headroom + frame room).
    room: u32,
}

// SAFETY: a HeapBuf owns its block exclusively (no other handle or
// reference to it exists), so the block moves to another thread with it.
unsafe impl Send for HeapBuf {}

impl HeapBuf {
    fn block_layout(room: usize) -> Layout {
        Layout::from_size_align(room, 64).expect("buffer layout")
    }

    /// A new empty buffer with `frame_room` bytes after the headroom.
    pub fn new(frame_room: usize) -> Self {
        let room = HEADROOM + frame_room;
        assert!(room <= u16::MAX as usize, "buffer too large");
        let layout = Self::block_layout(room);
        // SAFETY: the layout has a nonzero size (room >= HEADROOM > 0).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let Some(block) = NonNull::new(ptr) else {
            alloc::handle_alloc_error(layout)
        };
        HeapBuf {
            block,
            start: HEADROOM as u16,
            len: 0,
            room: room as u32,
        }
    }

    /// A buffer holding `frame` (tests and the slow path).
    pub fn from_frame(frame: &[u8]) -> Self {
        let mut b = HeapBuf::new(frame.len().max(MAX_FRAME));
        b.load(frame);
        b
    }

    #[inline(always)]
    fn frame_ptr(&self) -> *mut u8 {
        // SAFETY: start <= start + len <= room (kept by every setter), so
        // the result is inside the block of `room` bytes or one past it.
        unsafe { self.block.as_ptr().add(self.start as usize) }
    }
}

impl Drop for HeapBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.block.as_ptr(), Self::block_layout(self.room as usize)) };
    }
}

impl PacketBuf for HeapBuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        // SAFETY: start + len <= room, maintained by every setter, so the
        // slice is inside the block; every byte of the block is initialised
        // (alloc_zeroed), including tailroom that set_len may extend over.
        unsafe { std::slice::from_raw_parts(self.frame_ptr(), self.len as usize) }
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.frame_ptr(), self.len as usize) }
    }
    #[inline(always)]
    fn len(&self) -> usize {
        self.len as usize
    }
    #[inline(always)]
    fn headroom(&self) -> usize {
        self.start as usize
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start as usize {
            return None;
        }
        self.start -= n as u16;
        self.len += n as u16;
        Some(self.data_mut())
    }
    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        if n > self.len as usize {
            return false;
        }
        self.start += n as u16;
        self.len -= n as u16;
        true
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        if self.start as usize + len > self.room as usize {
            return false;
        }
        self.len = len as u16;
        true
    }
    #[inline]
    fn load(&mut self, frame: &[u8]) -> bool {
        if HEADROOM + frame.len() > self.room as usize {
            return false;
        }
        self.start = HEADROOM as u16;
        self.len = frame.len() as u16;
        // SAFETY: checked to fit above; the block is owned, so no overlap.
        unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), self.frame_ptr(), frame.len()) };
        true
    }
    #[inline]
    fn load_padded(&mut self, padded: &[u8; 64], len: usize) -> bool {
        if len > 64 || HEADROOM + 64 > self.room as usize {
            return false;
        }
        self.start = HEADROOM as u16;
        self.len = len as u16;
        // SAFETY: 64 bytes fit after the headroom (checked above).
        unsafe { (self.frame_ptr() as *mut [u8; 64]).write_unaligned(*padded) };
        true
    }
}

/// A preallocated LIFO pool of [`HeapBuf`]s owned by one worker. LIFO keeps
/// the most recently used (cache-hot) buffers in circulation.
pub struct HeapPool {
    free: Vec<HeapBuf>,
    capacity: usize,
    frame_room: usize,
}

impl HeapPool {
    /// A pool of `capacity` buffers, each holding frames up to `frame_room`.
    pub fn new(capacity: usize, frame_room: usize) -> Self {
        let free = (0..capacity).map(|_| HeapBuf::new(frame_room)).collect();
        HeapPool {
            free,
            capacity,
            frame_room,
        }
    }

    /// Buffers currently available.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Buffers the pool was created with.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Largest frame a buffer of this pool holds.
    pub fn frame_room(&self) -> usize {
        self.frame_room
    }
}

impl BufPool for HeapPool {
    type Buf = HeapBuf;
    #[inline]
    fn alloc(&mut self) -> Option<HeapBuf> {
        self.free.pop()
    }
    #[inline]
    fn free(&mut self, buf: HeapBuf) {
        // Buffers that migrated from another worker's pool are kept up to
        // this pool's capacity; beyond it they are released.
        if self.free.len() < self.capacity {
            self.free.push(buf);
        }
    }
    #[inline]
    fn free_all(&mut self, bufs: &mut Vec<HeapBuf>) {
        let keep = (self.capacity - self.free.len()).min(bufs.len());
        move_tail(bufs, bufs.len() - keep, &mut self.free);
        bufs.clear(); // beyond capacity: released
    }
    #[inline]
    fn alloc_bulk(&mut self, out: &mut Vec<HeapBuf>, n: usize) -> usize {
        let k = n.min(self.free.len());
        let from = self.free.len() - k;
        move_tail(&mut self.free, from, out);
        k
    }
}

/// Moves `src[from..]` to the end of `dst` with one memcpy of the 16-byte
/// handles (`extend(drain(..))` moves them one at a time).
#[inline(always)]
fn move_tail(src: &mut Vec<HeapBuf>, from: usize, dst: &mut Vec<HeapBuf>) {
    let k = src.len() - from;
    dst.reserve(k);
    // SAFETY: `src[from..]` are `k` initialised buffers and `dst` has room
    // for `k` more (reserved above); the two vectors never overlap. Setting
    // `src`'s length to `from` first hands ownership over to `dst` without
    // a double drop, even if a panic could intervene (it cannot here).
    unsafe {
        src.set_len(from);
        std::ptr::copy_nonoverlapping(src.as_ptr().add(from), dst.as_mut_ptr().add(dst.len()), k);
        dst.set_len(dst.len() + k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_prepend_and_trim() {
        let mut b = HeapBuf::from_frame(&[1, 2, 3, 4]);
        assert_eq!(b.headroom(), HEADROOM);
        b.prepend(2).unwrap().copy_from_slice(&[9, 9, 1, 2, 3, 4]);
        assert_eq!(b.data(), &[9, 9, 1, 2, 3, 4]);
        assert!(b.trim_front(2));
        assert_eq!(b.data(), &[1, 2, 3, 4]);
        assert!(b.prepend(HEADROOM + 1).is_none());
        assert!(!b.trim_front(5));
    }

    #[test]
    fn pool_is_bounded_and_lifo() {
        let mut p = HeapPool::new(2, 128);
        let a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        assert!(p.alloc().is_none());
        p.free(a);
        p.free(b);
        p.free(HeapBuf::new(128));
        assert_eq!(p.available(), 2);
        assert!(!p.alloc().unwrap().load(&[0u8; 129]));
    }
}

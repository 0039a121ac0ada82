//! In-memory ports, for tests and benchmarks.
//!
//! [`RingPort`] connects the dataplane to test code through two lock-free
//! rings: the test injects frames and collects what the switch sent.
//! [`ReplayPort`] is the benchmark's traffic generator and sink in one: its
//! rx side replays a preloaded frame set (a pcap or a synthetic flow set)
//! into pool buffers, as a NIC would DMA them, and its tx side counts and
//! frees what the pipeline forwarded.

use std::io;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::{Port, PortQueue, PortState, PortStats, QueueCounters, RxQueue};
use crate::packet::{BufPool, PacketBuf, MAX_BURST};

/// A port backed by two rings of frames, driven by test code.
pub struct RingPort {
    name: String,
    to_switch: Arc<ArrayQueue<Vec<u8>>>,
    from_switch: Arc<ArrayQueue<Vec<u8>>>,
    state: Arc<PortState>,
}

/// The test side of a [`RingPort`].
#[derive(Clone)]
pub struct RingPortHandle {
    to_switch: Arc<ArrayQueue<Vec<u8>>>,
    from_switch: Arc<ArrayQueue<Vec<u8>>>,
    state: Arc<PortState>,
}

impl RingPort {
    /// A ring port holding up to `depth` frames each way.
    pub fn new(name: &str, depth: usize) -> (RingPort, RingPortHandle) {
        let to_switch = Arc::new(ArrayQueue::new(depth));
        let from_switch = Arc::new(ArrayQueue::new(depth));
        let state = Arc::new(PortState::default());
        (
            RingPort {
                name: name.to_string(),
                to_switch: to_switch.clone(),
                from_switch: from_switch.clone(),
                state: state.clone(),
            },
            RingPortHandle {
                to_switch,
                from_switch,
                state,
            },
        )
    }
}

impl RingPortHandle {
    /// Queues a frame for the switch to receive; false if the ring is full.
    pub fn inject(&self, frame: &[u8]) -> bool {
        self.to_switch.push(frame.to_vec()).is_ok()
    }
    /// Takes the next frame the switch sent out of this port.
    pub fn take(&self) -> Option<Vec<u8>> {
        self.from_switch.pop()
    }
    /// Sets the link state.
    pub fn set_link_up(&self, up: bool) {
        self.state.set_link_up(up)
    }
}

struct RingQueue {
    rx: Option<Arc<ArrayQueue<Vec<u8>>>>,
    tx: Arc<ArrayQueue<Vec<u8>>>,
    state: Arc<PortState>,
    counters: Arc<QueueCounters>,
}

impl<P: BufPool> Port<P> for RingPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn open_queue(&self, rxq: Option<usize>) -> io::Result<Box<dyn PortQueue<P>>> {
        Ok(Box::new(RingQueue {
            rx: rxq.map(|_| self.to_switch.clone()),
            tx: self.from_switch.clone(),
            state: self.state.clone(),
            counters: self.state.new_queue(),
        }))
    }
    fn stats(&self) -> PortStats {
        self.state.stats()
    }
    fn link_up(&self) -> bool {
        self.state.link_up()
    }
}

impl<P: BufPool> PortQueue<P> for RingQueue {
    fn rx_burst(&mut self, pool: &mut P, out: &mut Vec<P::Buf>, max: usize) -> usize {
        let Some(rx) = &self.rx else { return 0 };
        let (mut n, mut bytes, mut dropped) = (0, 0, 0);
        while n < max {
            let Some(frame) = rx.pop() else { break };
            match pool.alloc() {
                Some(mut b) => {
                    if b.load(&frame) {
                        bytes += frame.len() as u64;
                        out.push(b);
                        n += 1;
                    } else {
                        pool.free(b);
                        dropped += 1;
                    }
                }
                None => dropped += 1,
            }
        }
        self.counters.rx(n as u64, bytes);
        self.counters.rx_dropped(dropped);
        n
    }

    fn tx_burst(&mut self, pool: &mut P, pkts: &mut Vec<P::Buf>) {
        let (mut sent, mut bytes, mut dropped) = (0, 0, 0);
        let up = self.state.link_up();
        for b in pkts.drain(..) {
            if up && self.tx.push(b.data().to_vec()).is_ok() {
                sent += 1;
                bytes += b.len() as u64;
            } else {
                dropped += 1;
            }
            pool.free(b);
        }
        self.counters.tx(sent, bytes);
        self.counters.tx_dropped(dropped);
    }
    fn take_rx(&mut self) -> Option<RxQueue> {
        RxQueue::take_from(&mut self.rx)
    }
    fn give_rx(&mut self, rx: RxQueue) -> Result<(), RxQueue> {
        rx.give_to(&mut self.rx)
    }
}

/// Frames to replay, stored back to back with a fixed stride so the
/// generator walks memory sequentially. A set smaller than a burst is
/// stored repeated up to a burst's worth, so that a burst is one run of
/// slots; replaying the copies in a loop yields the same frame sequence.
#[derive(Clone, Debug)]
pub struct Traffic {
    data: Vec<u8>,
    /// Length of each stored slot's frame (the set, repeated).
    lens: Vec<u16>,
    stride: usize,
    /// Frames in the set (before repetition).
    frames: usize,
}

impl Traffic {
    /// Traffic from a list of frames.
    pub fn new(frames: &[Vec<u8>]) -> Self {
        let stride = frames
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .next_multiple_of(64)
            .max(64);
        let copies = match frames.len() {
            0 => 0,
            n => MAX_BURST.div_ceil(n),
        };
        let slots = frames.len() * copies;
        let mut data = vec![0u8; stride * slots];
        let mut lens = Vec::with_capacity(slots);
        for (i, f) in frames.iter().cycle().take(slots).enumerate() {
            data[i * stride..i * stride + f.len()].copy_from_slice(f);
            lens.push(f.len() as u16);
        }
        Traffic {
            data,
            lens,
            stride,
            frames: frames.len(),
        }
    }

    /// Traffic from a classic pcap file (microsecond or nanosecond,
    /// either byte order, Ethernet link type).
    pub fn from_pcap(bytes: &[u8]) -> io::Result<Self> {
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("pcap: {why}"));
        if bytes.len() < 24 {
            return Err(bad("shorter than its global header"));
        }
        let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
        let le = match magic {
            0xa1b2c3d4 | 0xa1b23c4d => true,
            0xd4c3b2a1 | 0x4d3cb2a1 => false,
            _ => return Err(bad("not a pcap file (bad magic)")),
        };
        let u32_at = |b: &[u8], o: usize| {
            let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
            if le {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        };
        if u32_at(bytes, 20) != 1 {
            return Err(bad("link type is not Ethernet"));
        }
        let mut frames = Vec::new();
        let mut off = 24;
        while off < bytes.len() {
            if off + 16 > bytes.len() {
                return Err(bad("truncated record header"));
            }
            let caplen = u32_at(bytes, off + 8) as usize;
            off += 16;
            if caplen > u16::MAX as usize || off + caplen > bytes.len() {
                return Err(bad("truncated or oversized record"));
            }
            frames.push(bytes[off..off + caplen].to_vec());
            off += caplen;
        }
        Ok(Traffic::new(&frames))
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames
    }

    /// True if there are no frames.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Frame `i` (`i < len()`).
    #[inline]
    pub fn frame(&self, i: usize) -> &[u8] {
        assert!(i < self.frames, "frame {i} of {}", self.frames);
        let s = i * self.stride;
        &self.data[s..s + self.lens[i] as usize]
    }
}

/// Counters the benchmark reads from a [`ReplayPort`].
pub type ReplayState = PortState;

/// Benchmark generator and sink: rx replays [`Traffic`] in a loop until
/// `limit` frames were produced; tx counts and frees.
pub struct ReplayPort {
    name: String,
    traffic: Arc<Traffic>,
    limit: u64,
    state: Arc<PortState>,
}

impl ReplayPort {
    /// A port that replays `traffic` for `limit` frames in total (per rx
    /// queue opened).
    pub fn new(name: &str, traffic: Arc<Traffic>, limit: u64) -> Self {
        ReplayPort {
            name: name.to_string(),
            traffic,
            limit,
            state: Arc::new(PortState::default()),
        }
    }
}

struct ReplayQueue {
    traffic: Option<Arc<Traffic>>,
    next: usize,
    remaining: u64,
    counters: Arc<QueueCounters>,
}

impl<P: BufPool> Port<P> for ReplayPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "replay"
    }
    fn open_queue(&self, rxq: Option<usize>) -> io::Result<Box<dyn PortQueue<P>>> {
        Ok(Box::new(ReplayQueue {
            traffic: rxq.map(|_| self.traffic.clone()).filter(|t| !t.is_empty()),
            next: 0,
            remaining: self.limit,
            counters: self.state.new_queue(),
        }))
    }
    fn stats(&self) -> PortStats {
        self.state.stats()
    }
    fn link_up(&self) -> bool {
        self.state.link_up()
    }
}

impl<P: BufPool> PortQueue<P> for ReplayQueue {
    #[inline]
    fn rx_burst(&mut self, pool: &mut P, out: &mut Vec<P::Buf>, max: usize) -> usize {
        let Some(t) = &self.traffic else { return 0 };
        let want = (max as u64).min(self.remaining) as usize;
        let first = out.len();
        let n = pool.alloc_bulk(out, want);
        let mut bytes = 0u64;
        let mut next = self.next;
        let mut bufs = &mut out[first..];
        // In runs up to the end of the stored slots, so the loop walks the
        // slots and lengths without a wrap or bounds check per frame.
        while !bufs.is_empty() {
            let run = bufs.len().min(t.lens.len() - next);
            let (now, rest) = std::mem::take(&mut bufs).split_at_mut(run);
            let lens = &t.lens[next..next + run];
            let data = &t.data[next * t.stride..(next + run) * t.stride];
            if t.stride == 64 {
                // Every frame fits in 64 bytes: one fixed-size copy each.
                for ((b, &len), slot) in now.iter_mut().zip(lens).zip(data.chunks_exact(64)) {
                    b.load_padded(slot.try_into().expect("64-byte slot"), usize::from(len));
                }
            } else {
                for ((b, &len), slot) in now.iter_mut().zip(lens).zip(data.chunks_exact(t.stride)) {
                    let len = usize::from(len);
                    if len <= 64 {
                        b.load_padded(slot[..64].try_into().expect("64-byte slot"), len);
                    } else {
                        b.load(&slot[..len]);
                    }
                }
            }
            bytes += lens.iter().map(|&l| u64::from(l)).sum::<u64>();
            next += run;
            if next == t.lens.len() {
                next = 0;
            }
            bufs = rest;
        }
        self.next = next;
        self.remaining -= n as u64;
        self.counters.rx(n as u64, bytes);
        n
    }

    #[inline]
    fn tx_burst(&mut self, pool: &mut P, pkts: &mut Vec<P::Buf>) {
        let n = pkts.len() as u64;
        let bytes: u64 = pkts.iter().map(|b| b.len() as u64).sum();
        pool.free_all(pkts);
        self.counters.tx(n, bytes);
    }
    /// The replay moves with its position and what is left of its limit.
    fn take_rx(&mut self) -> Option<RxQueue> {
        let t = self.traffic.take()?;
        Some(RxQueue::new((t, self.next, self.remaining)))
    }
    fn give_rx(&mut self, rx: RxQueue) -> Result<(), RxQueue> {
        if self.traffic.is_some() {
            return Err(rx);
        }
        let (t, next, remaining) = rx.downcast::<(Arc<Traffic>, usize, u64)>()?;
        (self.traffic, self.next, self.remaining) = (Some(t), next, remaining);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapPool;

    #[test]
    fn ring_port_round_trip_and_link_down() {
        let (port, h) = RingPort::new("p", 8);
        let mut q: Box<dyn PortQueue<HeapPool>> = port.open_queue(Some(0)).unwrap();
        let mut pool = HeapPool::new(4, 256);
        assert!(h.inject(&[1, 2, 3]));
        let mut v = Vec::new();
        assert_eq!(q.rx_burst(&mut pool, &mut v, 32), 1);
        q.tx_burst(&mut pool, &mut v);
        assert_eq!(h.take().unwrap(), vec![1, 2, 3]);
        h.set_link_up(false);
        h.inject(&[4]);
        q.rx_burst(&mut pool, &mut v, 32);
        q.tx_burst(&mut pool, &mut v);
        assert!(h.take().is_none());
        let s = Port::<HeapPool>::stats(&port);
        assert_eq!((s.rx_packets, s.tx_packets, s.tx_dropped), (2, 1, 1));
        assert_eq!(pool.available(), 4);
    }

    #[test]
    fn replay_stops_at_limit_and_pcap_parses() {
        // A pcap with two records, little-endian, microseconds.
        let mut pcap = vec![];
        for w in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            pcap.extend_from_slice(&w.to_le_bytes());
        }
        pcap.truncate(24);
        for f in [&[1u8, 2][..], &[3, 4, 5]] {
            for w in [0u32, 0, f.len() as u32, f.len() as u32] {
                pcap.extend_from_slice(&w.to_le_bytes());
            }
            pcap.extend_from_slice(f);
        }
        let t = Arc::new(Traffic::from_pcap(&pcap).unwrap());
        assert_eq!(t.frame(1), &[3, 4, 5]);
        assert!(Traffic::from_pcap(&pcap[..30]).is_err());
        let port = ReplayPort::new("r", t, 5);
        let mut q: Box<dyn PortQueue<HeapPool>> = port.open_queue(Some(0)).unwrap();
        let mut pool = HeapPool::new(16, 256);
        let mut v = Vec::new();
        assert_eq!(q.rx_burst(&mut pool, &mut v, 32), 5);
        assert_eq!(v[2].data(), &[1, 2]);
        assert_eq!(q.rx_burst(&mut pool, &mut v, 32), 0);
        q.tx_burst(&mut pool, &mut v);
        assert_eq!(Port::<HeapPool>::stats(&port).tx_packets, 5);
    }
}

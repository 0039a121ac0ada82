//! The DPDK backend end to end (feature `dpdk`): the same [`Worker`] and
//! pipeline as every other backend, on rte_mbufs, between DPDK vdevs
//! (net_ring, net_pcap, net_null), checked on the frames that come out and
//! on the port, worker and device counters.
//!
//! The EAL runs once per process: it is initialised on first use, without
//! hugepages (`--no-huge`, unique file prefix), and the tests take turns
//! (they share its mbuf pool, whose free count they check).
//!
//! Run: `cargo test -p switchyard-dataplane --features dpdk`
//! (needs `apt-get install libdpdk-dev libclang-dev pkg-config`).
#![cfg(feature = "dpdk")]

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use dataplane::drop::DropReason;
use dataplane::engine::{Engine, EngineConfig, Worker};
use dataplane::flow::FlowDesc;
use dataplane::ids::PortId;
use dataplane::packet::{BufPool, PacketBuf, HEADROOM};
use dataplane::port::dpdk::{self, DpdkPort, DpdkPortConfig, Eal, EalConfig, EalMemory, MbufPool};
use dataplane::port::memory::Traffic;
use dataplane::port::Port;
use dataplane::tables::{LogicalPort, LogicalSwitch, TablePublisher, Tables};

/// The EAL of this test binary, and a lock that makes the tests take turns.
fn eal() -> (&'static Eal, MutexGuard<'static, ()>) {
    static EAL: OnceLock<&'static Eal> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let eal = EAL.get_or_init(|| {
        Eal::init(&EalConfig {
            memory: EalMemory::NoHuge { megabytes: 256 },
            file_prefix: Some(format!("sy-test-{}", std::process::id())),
            log_level: Some("warning".into()),
            mbufs_per_socket: 4095,
            ..EalConfig::default()
        })
        .expect("EAL init (is libdpdk installed?)")
    });
    (eal, turn)
}

fn frame(desc: &str) -> Vec<u8> {
    desc.parse::<FlowDesc>().unwrap().to_frame().unwrap()
}

fn lport(name: &str, key: u32, addr: &str, local: u16) -> LogicalPort {
    LogicalPort {
        local_port: Some(PortId(local)),
        ..LogicalPort::vif(name, key, addr.parse().unwrap(), true)
    }
}

/// vm1, vm2, vm3 on one switch, bound to local ports 0, 1, 2.
fn publisher() -> Arc<TablePublisher> {
    TablePublisher::new(
        Tables::compile(&[LogicalSwitch {
            name: "ls1".into(),
            tunnel_key: 1,
            ports: vec![
                lport("vm1", 1, "00:00:00:00:00:01 10.0.0.1", 0),
                lport("vm2", 2, "00:00:00:00:00:02 10.0.0.2", 1),
                lport("vm3", 3, "00:00:00:00:00:03 10.0.0.3", 2),
            ],
        }])
        .unwrap(),
    )
}

fn udp(src: u8, dst: u8, sport: u16) -> Vec<u8> {
    frame(&format!(
        "eth.src=00:00:00:00:00:0{src} eth.dst=00:00:00:00:00:0{dst} ip4.src=10.0.0.{src} ip4.dst=10.0.0.{dst} udp.src={sport} udp.dst=53"
    ))
}

fn ring_port(eal: &'static Eal, name: &str) -> Arc<DpdkPort> {
    // net_ring: tx queue i and rx queue i share ring i, so a frame sent on
    // tx queue 0 is received on rx queue 0.
    Arc::new(
        DpdkPort::open(
            eal,
            name,
            &DpdkPortConfig {
                tx_queues: 2,
                ..DpdkPortConfig::default()
            },
        )
        .unwrap(),
    )
}

fn as_ports(ports: &[Arc<DpdkPort>]) -> Vec<Arc<dyn Port<MbufPool>>> {
    ports
        .iter()
        .map(|p| p.clone() as Arc<dyn Port<MbufPool>>)
        .collect()
}

#[test]
fn mbuf_is_a_packet_buffer_with_headroom() {
    let (eal, _turn) = eal();
    let mut pool = eal.mbuf_pool(0).unwrap();
    let free = pool.available();
    let mut b = pool.alloc().unwrap();
    assert!(b.load(&[1, 2, 3, 4]));
    assert_eq!(b.headroom(), HEADROOM);
    assert_eq!(b.data(), &[1, 2, 3, 4]);
    // Encapsulation into the headroom, decapsulation, truncation, growth.
    b.prepend(2).unwrap()[..2].copy_from_slice(&[9, 9]);
    assert_eq!(b.data(), &[9, 9, 1, 2, 3, 4]);
    assert_eq!(b.headroom(), HEADROOM - 2);
    assert!(b.trim_front(2));
    assert_eq!(b.data(), &[1, 2, 3, 4]);
    assert!(b.prepend(HEADROOM + 1).is_none());
    assert!(!b.trim_front(5));
    assert!(b.set_len(2));
    assert_eq!(b.data(), &[1, 2]);
    assert!(b.set_len(100));
    assert_eq!(b.len(), 100);
    assert!(!b.set_len(1 << 16));
    assert!(!b.load(&vec![0u8; 4096]), "larger than an mbuf");
    assert!(b.load_padded(&[7u8; 64], 60));
    assert_eq!(b.data(), &[7u8; 60][..]);
    pool.free(b);
    assert_eq!(pool.available(), free);
}

/// DPDK 22.11's net_af_xdp registers as its umem `populated_size * object
/// size` bytes from the pool's first object, and the kernel refuses any
/// fill-ring address beyond: a pool whose mbufs are padded to one per 4 KiB
/// page (rte_pktmbuf_pool_create without hugepages) has most of them
/// outside, and an AF_XDP port fed those receives nothing. Every mbuf must
/// lie within that span: an object is 2368 bytes (64-byte mempool header,
/// 128-byte rte_mbuf, 2176-byte buffer), page-padded they are 4096 apart.
#[test]
fn mbufs_lie_where_net_af_xdp_registers_its_umem() {
    const OBJECT: usize = 64 + 128 + 2176;
    let (eal, _turn) = eal();
    let mut pool = eal.mbuf_pool(0).unwrap();
    let mut bufs = Vec::new();
    while let Some(b) = pool.alloc() {
        bufs.push(b);
    }
    // Other tests' workers may keep some in their lcore caches; 2500 page-
    // padded mbufs already span more than 4095 packed ones.
    assert!(bufs.len() > 2500, "only {} mbufs free", bufs.len());
    let addrs: Vec<usize> = bufs.iter().map(|b| b.data().as_ptr() as usize).collect();
    let (lo, hi) = (addrs.iter().min().unwrap(), addrs.iter().max().unwrap());
    // The pool holds 4095 mbufs (mbufs_per_socket above).
    assert!(
        hi - lo < 4095 * OBJECT,
        "{} mbufs span {} bytes, more than 4095 packed objects",
        bufs.len(),
        hi - lo
    );
    pool.free_all(&mut bufs);
}

#[test]
fn ring_ports_forward_through_the_pipeline() {
    let (eal, _turn) = eal();
    let ports = vec![
        ring_port(eal, "net_ring_t0"),
        ring_port(eal, "net_ring_t1"),
        ring_port(eal, "net_ring_t2"),
    ];
    let pool = ports[0].pool();
    let free = pool.available();
    // The test's injector takes tx queue 0 of port 0 (-> its rx queue 0);
    // then the worker polls rx queue 0 of port 0 and takes tx queue 0 of
    // ports 1 and 2 (-> their rx queue 0, which the test's collectors poll).
    let mut inject = ports[0].open_queue(None).unwrap();
    let mut worker = Worker::new(
        &as_ports(&ports),
        &[PortId(0)],
        publisher(),
        pool.clone(),
        1024,
    )
    .unwrap();
    let mut collect: Vec<_> = ports[1..]
        .iter()
        .map(|p| p.open_queue(Some(0)).unwrap())
        .collect();

    let to_vm2: Vec<Vec<u8>> = (0..40).map(|i| udp(1, 2, 1000 + i)).collect();
    let to_vm3: Vec<Vec<u8>> = (0..24).map(|i| udp(1, 3, 2000 + i)).collect();
    let spoofed = frame(
        "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.66 ip4.dst=10.0.0.2 udp.dst=53",
    );
    let broadcast = frame(
        "eth.src=00:00:00:00:00:01 eth.dst=ff:ff:ff:ff:ff:ff ip4.src=10.0.0.1 ip4.dst=10.0.0.255 udp.dst=137",
    );
    let mut sent = Vec::new();
    let mut tx_pool = pool.clone();
    for f in to_vm2.iter().chain(&to_vm3).chain([&spoofed, &broadcast]) {
        let mut b = tx_pool.alloc().unwrap();
        assert!(b.load(f));
        sent.push(b);
    }
    let total = sent.len() as u64;
    inject.tx_burst(&mut tx_pool, &mut sent);
    assert!(sent.is_empty());

    let mut processed = 0;
    for _ in 0..100 {
        processed += worker.poll() as u64;
        if processed == total {
            break;
        }
    }
    assert_eq!(processed, total);

    let mut got: Vec<Vec<Vec<u8>>> = Vec::new();
    for q in collect.iter_mut() {
        let mut bufs = Vec::new();
        while q.rx_burst(&mut tx_pool, &mut bufs, 64) != 0 {}
        got.push(bufs.iter().map(|b| b.data().to_vec()).collect());
        tx_pool.free_all(&mut bufs);
    }
    let mut want2 = to_vm2.clone();
    want2.push(broadcast.clone());
    let mut want3 = to_vm3.clone();
    want3.push(broadcast.clone());
    assert_eq!(got[0], want2, "frames out of vm2's port");
    assert_eq!(got[1], want3, "frames out of vm3's port");

    let stats = worker.stats();
    assert_eq!(stats.drops(DropReason::PortSecurityIp), 1);
    // The broadcast went out twice, the spoofed frame not at all.
    assert_eq!(stats.tx_packets.load(Ordering::Relaxed), total);
    let s: Vec<_> = ports.iter().map(|p| p.stats()).collect();
    // Port 0: the injector's tx and the worker's rx.
    assert_eq!((s[0].tx_packets, s[0].rx_packets), (total, total));
    let bytes: u64 = to_vm2
        .iter()
        .chain(&to_vm3)
        .chain([&spoofed, &broadcast])
        .map(|f| f.len() as u64)
        .sum();
    assert_eq!((s[0].tx_bytes, s[0].rx_bytes), (bytes, bytes));
    // Ports 1 and 2: the worker's tx and the collectors' rx.
    assert_eq!((s[1].tx_packets, s[1].rx_packets), (41, 41));
    assert_eq!((s[2].tx_packets, s[2].rx_packets), (25, 25));
    assert!(s.iter().all(|s| s.tx_dropped == 0 && s.rx_dropped == 0));
    assert!(ports.iter().all(|p| p.link_up()));

    drop((inject, worker, collect));
    assert_eq!(pool.available(), free, "every mbuf went back to the pool");
}

#[test]
fn pcap_to_pcap_and_null() {
    let (eal, _turn) = eal();
    let dir = std::env::temp_dir().join(format!("sy-dpdk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    let to_vm2: Vec<Vec<u8>> = (0..100).map(|i| udp(1, 2, 1000 + i)).collect();
    let to_vm3: Vec<Vec<u8>> = (0..50).map(|i| udp(1, 3, 3000 + i)).collect();
    // vm2's and vm3's frames interleaved, then the rest of vm2's.
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for (a, b) in to_vm2.iter().zip(&to_vm3) {
        frames.extend([a.clone(), b.clone()]);
    }
    frames.extend_from_slice(&to_vm2[to_vm3.len()..]);
    std::fs::write(&input, pcap(&frames)).unwrap();

    let cfg = DpdkPortConfig::default();
    let p0 = DpdkPort::open(
        eal,
        &format!("net_pcap_t0,rx_pcap={}", input.display()),
        &cfg,
    )
    .unwrap();
    let p1 = DpdkPort::open(
        eal,
        &format!("net_pcap_t1,tx_pcap={}", output.display()),
        &cfg,
    )
    .unwrap();
    let p2 = DpdkPort::open(eal, "net_null_t2,no-rx=1", &cfg).unwrap();
    let ports: Vec<Arc<dyn Port<MbufPool>>> = vec![Arc::new(p0), Arc::new(p1), Arc::new(p2)];
    let pool = eal.mbuf_pool(0).unwrap();
    let free = pool.available();
    let mut worker = Worker::new(&ports, &[PortId(0)], publisher(), pool.clone(), 1024).unwrap();
    let mut processed = 0;
    for _ in 0..1000 {
        processed += worker.poll();
        if processed == frames.len() {
            break;
        }
    }
    assert_eq!(processed, frames.len());
    let s: Vec<_> = ports.iter().map(|p| p.stats()).collect();
    assert_eq!(s[0].rx_packets, 150);
    assert_eq!(s[1].tx_packets, 100);
    assert_eq!(s[2].tx_packets, 50);
    assert_eq!(
        s[2].tx_bytes,
        to_vm3.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    // Stopping the pcap port closes its dump file.
    drop((worker, ports));
    assert_eq!(pool.available(), free, "every mbuf went back to the pool");
    let out = Traffic::from_pcap(&std::fs::read(&output).unwrap()).unwrap();
    let got: Vec<Vec<u8>> = (0..out.len()).map(|i| out.frame(i).to_vec()).collect();
    assert_eq!(got, to_vm2, "frames written by vm2's pcap port");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn queues_are_claimed_once_and_rss_spreads_rx() {
    let (eal, _turn) = eal();
    let cfg = DpdkPortConfig {
        rx_queues: 2,
        tx_queues: 2,
        ..DpdkPortConfig::default()
    };
    let port = DpdkPort::open(eal, "net_null_t3", &cfg).unwrap();
    assert_eq!(Port::rx_queues(&port), 2);
    assert!(port.link_up());
    assert!(
        DpdkPort::open(eal, "net_null_t3", &cfg).is_err(),
        "opened twice"
    );
    let q0 = port.open_queue(Some(0)).unwrap();
    assert!(port.open_queue(Some(0)).is_err(), "rx queue 0 polled twice");
    assert!(port.open_queue(Some(2)).is_err(), "no rx queue 2");
    let q1 = port.open_queue(Some(1)).unwrap();
    assert!(port.open_queue(None).is_err(), "both tx queues taken");
    drop(q1);
    let mut q1 = port.open_queue(Some(1)).unwrap();
    // net_null generates packets on every rx queue.
    let mut pool = port.pool();
    let mut v = Vec::new();
    // A thread of its own: it becomes an EAL lcore on its first burst.
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(dpdk::lcore_id(), None);
            assert!(q1.rx_burst(&mut pool, &mut v, 32) > 0);
            assert!(dpdk::lcore_id().is_some());
        });
    });
    q1.tx_burst(&mut pool, &mut v);
    assert!(v.is_empty());
    let s = port.stats();
    assert!(s.rx_packets > 0 && s.tx_packets == s.rx_packets);
    drop((q0, q1));
    // Dropped and reopened (stopped, reconfigured, restarted).
    drop(port);
    DpdkPort::open(eal, "net_null_t3", &DpdkPortConfig::default()).unwrap();
}

#[test]
fn engine_workers_forward_on_their_own_threads() {
    let (eal, _turn) = eal();
    let ports = vec![
        ring_port(eal, "net_ring_e0"),
        Arc::new(DpdkPort::open(eal, "net_null_e1,no-rx=1", &DpdkPortConfig::default()).unwrap()),
    ];
    let pool = ports[0].pool();
    let free = pool.available();
    let mut inject = ports[0].open_queue(None).unwrap();
    // One worker thread polling both ports; it registers with the EAL on
    // its first burst and unregisters when the engine stops it.
    let engine = Engine::start(
        &EngineConfig {
            workers: 1,
            idle_sleep: Some(Duration::from_micros(20)),
            ..EngineConfig::default()
        },
        as_ports(&ports),
        publisher(),
        |_| pool.clone(),
    )
    .unwrap();
    let mut tx_pool = pool.clone();
    let total = 10 * 64;
    for round in 0..10u16 {
        let mut burst: Vec<_> = (0..64u16)
            .map(|i| {
                let mut b = tx_pool.alloc().unwrap();
                assert!(b.load(&udp(1, 2, round * 64 + i)));
                b
            })
            .collect();
        inject.tx_burst(&mut tx_pool, &mut burst);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.workers()[0].rx_packets.load(Ordering::Acquire) < total {
        assert!(Instant::now() < deadline, "worker thread did not forward");
        std::thread::sleep(Duration::from_millis(1));
    }
    engine.stop();
    assert_eq!(ports[1].stats().tx_packets, total);
    assert_eq!(ports[0].stats().rx_packets, total);
    drop(inject);
    assert_eq!(pool.available(), free, "every mbuf went back to the pool");
}

#[test]
fn engine_spreads_rss_queues_over_workers() {
    let (eal, _turn) = eal();
    let two = DpdkPortConfig {
        rx_queues: 2,
        tx_queues: 2,
        ..DpdkPortConfig::default()
    };
    // net_null generates frames on each of its two rx queues; each worker
    // polls one of them and transmits on its own tx queue of the sink.
    let ports = vec![
        Arc::new(DpdkPort::open(eal, "net_null_r0", &two).unwrap()),
        Arc::new(
            DpdkPort::open(
                eal,
                "net_null_r1,no-rx=1",
                &DpdkPortConfig {
                    tx_queues: 2,
                    ..DpdkPortConfig::default()
                },
            )
            .unwrap(),
        ),
    ];
    let pool = ports[0].pool();
    let engine = Engine::start(
        &EngineConfig {
            workers: 2,
            idle_sleep: Some(Duration::from_micros(20)),
            ..EngineConfig::default()
        },
        as_ports(&ports),
        publisher(),
        |_| pool.clone(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine
        .workers()
        .iter()
        .any(|w| w.rx_packets.load(Ordering::Acquire) < 1000)
    {
        assert!(Instant::now() < deadline, "a worker got no packets");
        std::thread::sleep(Duration::from_millis(1));
    }
    engine.stop();
    assert!(ports[0].stats().rx_packets >= 2000);
}

/// A classic little-endian microsecond pcap of `frames`.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        for w in [i as u32, 0, f.len() as u32, f.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    out
}

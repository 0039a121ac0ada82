//! A vhost-user VM port (feature `dpdk`): the switch serves a `net_vhost`
//! socket, and `dpdk-testpmd` with a `virtio_user` device plays the VM,
//! io-forwarding every frame it receives back to the switch.
//!
//! A test binary of its own: the EAL runs once per process, and this one is
//! the vhost backend. The VM side needs `dpdk-testpmd` (Debian `dpdk-dev`)
//! and hugepages, because a virtio_user frontend shares its memory with the
//! backend through hugepage file descriptors: reserve them first
//! (`echo 512 > /proc/sys/vm/nr_hugepages`). The backend itself runs with
//! `--no-huge`: it maps the VM's memory and copies into its own mbufs.
#![cfg(feature = "dpdk")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dataplane::flow::FlowDesc;
use dataplane::packet::{BufPool, PacketBuf};
use dataplane::port::dpdk::{DpdkPort, DpdkPortConfig, Eal, EalConfig, EalMemory};
use dataplane::port::Port;

/// The VM: testpmd with a virtio_user port on `sock`, io forwarding.
struct Vm(Child);

impl Vm {
    fn start(sock: &Path) -> Vm {
        let child = Command::new("dpdk-testpmd")
            .args([
                "-l0,1",
                "--in-memory",
                "--single-file-segments",
                "--no-pci",
                "--log-level=warning",
                &format!("--vdev=virtio_user0,path={},queues=1", sock.display()),
                "--",
                "--forward-mode=io",
                "--auto-start",
                "--stats-period=1",
                "--total-num-mbufs=2048",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("dpdk-testpmd (apt-get install dpdk-dev)");
        Vm(child)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn vhost_user_port_exchanges_packets_with_a_virtio_user_vm() {
    let hugepages = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap_or_default();
    assert!(
        hugepages.trim().parse::<u32>().unwrap_or(0) > 0,
        "the virtio_user VM needs hugepages: echo 512 > /proc/sys/vm/nr_hugepages"
    );
    let eal = Eal::init(&EalConfig {
        memory: EalMemory::NoHuge { megabytes: 256 },
        file_prefix: Some(format!("sy-vhost-{}", std::process::id())),
        log_level: Some("warning".into()),
        mbufs_per_socket: 4095,
        ..EalConfig::default()
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("sy-vhost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("vm1.sock");
    // Server mode (the default): the switch owns the socket in its run
    // directory, the VM connects.
    let port = DpdkPort::open(
        eal,
        &format!("net_vhost_t0,iface={},queues=1", sock.display()),
        &DpdkPortConfig::default(),
    )
    .unwrap();
    assert!(!port.link_up(), "no VM yet");
    let _vm = Vm::start(&sock);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !port.link_up() {
        assert!(
            Instant::now() < deadline,
            "the VM never brought the link up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut q = port.open_queue(Some(0)).unwrap();
    let mut pool = port.pool();
    let frames: Vec<Vec<u8>> = (0..32)
        .map(|i| {
            format!("eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.src={} udp.dst=53", 1000 + i)
                .parse::<FlowDesc>()
                .unwrap()
                .to_frame()
                .unwrap()
        })
        .collect();
    // The VM's queues may take a moment to start forwarding after the link
    // comes up: send the frames, collect for a while, and try again until
    // exactly that copy comes back.
    let mut echoed = false;
    for _attempt in 0..20 {
        let mut burst: Vec<_> = frames
            .iter()
            .map(|f| {
                let mut b = pool.alloc().unwrap();
                assert!(b.load(f));
                b
            })
            .collect();
        q.tx_burst(&mut pool, &mut burst);
        let mut got: Vec<Vec<u8>> = Vec::new();
        let until = Instant::now() + Duration::from_secs(1);
        while got.len() < frames.len() && Instant::now() < until {
            let mut rx = Vec::new();
            q.rx_burst(&mut pool, &mut rx, 64);
            got.extend(rx.iter().map(|b| b.data().to_vec()));
            pool.free_all(&mut rx);
        }
        if got == frames {
            echoed = true;
            break;
        }
    }
    assert!(echoed, "the VM never echoed the frames back");
    let s = port.stats();
    assert!(s.tx_packets >= 32 && s.rx_packets >= 32);
    std::fs::remove_dir_all(&dir).unwrap();
}

//! Property tests of the uplink's parsers: whatever arrives on the uplink
//! (random bytes, or tunnel, ARP and neighbour-discovery frames with bytes
//! changed or cut off), `overlay::receive` returns a verdict without
//! panicking, a tunnel verdict's outer headers lie within the frame, and
//! the cached delivery of what it decapsulates equals the uncached one.
//! Encapsulation followed by decapsulation gives back the keys and the
//! inner frame, over IPv4 and IPv6.

#[path = "common/endpoints.rs"]
mod endpoints;

use dataplane::cache::FlowCache;
use dataplane::ids::PortId;
use dataplane::overlay::{self, Egress, Neighbors, Tunnel, Uplink, MC_FLOOD};
use dataplane::packet::{HeapBuf, PacketBuf};
use dataplane::pipeline::{tunnel_delivery, tunnel_delivery_cached, NoTrace};
use dataplane::tables::{Encap, LogicalPort, LogicalSwitch, RemoteChassis, Tables, Underlay};
use dataplane::wire::MacAddr;
use proptest::collection::vec;
use proptest::prelude::*;

const US: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x21]);
const HV2: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x22]);

fn underlay(ipv6: bool) -> Underlay {
    let (us, hv2) = endpoints::endpoints(ipv6);
    Underlay {
        port: PortId(9),
        ip: us,
        mac: US,
        mtu: 1500,
        chassis: vec![RemoteChassis {
            name: "hv2".into(),
            ip: hv2,
            encap: Encap::Geneve,
            mac: None,
            vtep: false,
            csum: false,
        }],
    }
}

/// Switch key 7 with ports 1 (local, port security) and 2 (on hv2).
fn tables(ipv6: bool) -> Tables {
    let port =
        |name: &str, key: u32, addr: &str, local: Option<u16>, chassis: Option<u16>| LogicalPort {
            local_port: local.map(PortId),
            chassis: chassis.map(dataplane::ids::ChassisIdx),
            ..LogicalPort::vif(name, key, addr.parse().unwrap(), local.is_some())
        };
    Tables::compile_with_underlay(
        &[LogicalSwitch {
            name: "ls".into(),
            tunnel_key: 7,
            ports: vec![
                port(
                    "vm1",
                    1,
                    "00:00:00:00:00:01 10.0.0.1 fd10::1",
                    Some(0),
                    None,
                ),
                port("vm2", 2, "00:00:00:00:00:02 10.0.0.2", None, Some(0)),
            ],
        }],
        Some(underlay(ipv6)),
    )
    .unwrap()
}

/// What hv2 sends us: `inner` in a tunnel.
fn tunnelled(inner: &[u8], encap: Encap, ipv6: bool, egress: u16) -> Vec<u8> {
    let (us, hv2) = endpoints::endpoints(ipv6);
    let mut b = HeapBuf::from_frame(inner);
    let t = Tunnel {
        encap,
        src_mac: HV2,
        dst_mac: US,
        src_ip: hv2,
        dst_ip: us,
        datapath_key: 7,
        ingress_key: 2,
        egress_key: egress,
        csum: false,
    };
    assert!(overlay::encapsulate(&mut b, &t));
    b.data().to_vec()
}

/// hv2 asking for our tunnel address (ARP, or a neighbour solicitation).
fn asking(ipv6: bool) -> Vec<u8> {
    let (us, hv2) = endpoints::endpoints(ipv6);
    let theirs = Underlay {
        ip: hv2,
        mac: HV2,
        ..underlay(ipv6)
    };
    let mut b = HeapBuf::new(2048);
    assert!(overlay::neighbor_request(&mut b, &theirs, us));
    b.data().to_vec()
}

fn inner_frame() -> impl Strategy<Value = Vec<u8>> {
    (0..3u8, vec(any::<u8>(), 0..80)).prop_map(|(dst, rest)| {
        let mut f = vec![0, 0, 0, 0, 0, dst, 0, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&rest);
        f
    })
}

/// Receives `frame` and checks what the verdict promises.
fn check(frame: &[u8], ipv6: bool, t: &Tables, cache: &mut FlowCache) {
    let u = underlay(ipv6);
    let n = Neighbors::default();
    let mut b = HeapBuf::from_frame(frame);
    if let Ok(Uplink::Tunnel(r)) = overlay::receive(&mut b, &u, &n, |k| t.datapath_of_key(k)) {
        assert!(
            r.outer_len <= frame.len(),
            "{r:?} beyond {} bytes",
            frame.len()
        );
        assert!(b.trim_front(r.outer_len));
        let (want, _) = tunnel_delivery(t, b.data(), &r, &mut NoTrace);
        assert_eq!(tunnel_delivery_cached(t, cache, b.data(), &r), want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn receive_never_panics_on_random_bytes(frame in vec(any::<u8>(), 0..160), ipv6 in any::<bool>()) {
        check(&frame, ipv6, &tables(ipv6), &mut FlowCache::new(64));
    }

    #[test]
    fn receive_never_panics_on_mutated_uplink_frames(
        inner in inner_frame(),
        kind in 0..3u8,
        ipv6 in any::<bool>(),
        egress in prop_oneof![0..4u16, Just(MC_FLOOD)],
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut frame = match kind {
            0 => tunnelled(&inner, Encap::Geneve, ipv6, egress),
            1 => tunnelled(&inner, Encap::Vxlan, ipv6, egress),
            _ => asking(ipv6),
        };
        for (at, value) in edits {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        if let Some(c) = cut {
            frame.truncate(c.index(frame.len()));
        }
        check(&frame, ipv6, &tables(ipv6), &mut FlowCache::new(64));
    }

    #[test]
    fn decapsulation_undoes_encapsulation(
        inner in inner_frame(),
        geneve in any::<bool>(),
        ipv6 in any::<bool>(),
        egress in prop_oneof![1..0x800u16, Just(MC_FLOOD)],
    ) {
        let encap = if geneve { Encap::Geneve } else { Encap::Vxlan };
        let frame = tunnelled(&inner, encap, ipv6, egress);
        let t = tables(ipv6);
        let mut b = HeapBuf::from_frame(&frame);
        let got = overlay::receive(&mut b, &underlay(ipv6), &Neighbors::default(), |k| {
            t.datapath_of_key(k)
        });
        let Ok(Uplink::Tunnel(r)) = got else {
            panic!("not decapsulated: {got:?}")
        };
        prop_assert_eq!(r.datapath, dataplane::ids::DatapathIdx(0));
        prop_assert_eq!(r.ingress_key, if geneve { 2 } else { 0 });
        let want = if egress >= MC_FLOOD { Egress::Group(egress) } else { Egress::Port(egress) };
        prop_assert_eq!(r.egress, want);
        prop_assert_eq!(r.outer_len, overlay::overhead(encap, ipv6));
        prop_assert!(b.trim_front(r.outer_len));
        prop_assert_eq!(b.data(), &inner[..]);
    }
}

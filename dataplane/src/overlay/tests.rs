//! Encapsulation, decapsulation and the uplink, unit by unit.

use crate::ids::PortId;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::drop::DropReason;
use crate::ids::DatapathIdx;
use crate::packet::HeapBuf;
use crate::packet::PacketBuf;
use crate::responder::{too_big, TooBig};
use crate::tables::RemoteChassis;
use crate::tables::{Encap, Underlay};
use crate::wire::read::{be16, ipv4, ipv6};
use crate::wire::{checksum, geneve, icmpv6, IpProtocol, MacAddr};

const V6_US: &str = "fd00:64::21";
const V6_HV2: &str = "fd00:64::22";

/// Chassis hv1 (us) with one remote chassis hv2, over IPv4 or IPv6.
fn underlay_of(ipv6: bool) -> Underlay {
    let (us, hv2): (IpAddr, IpAddr) = if ipv6 {
        (V6_US.parse().unwrap(), V6_HV2.parse().unwrap())
    } else {
        (
            Ipv4Addr::new(192, 168, 100, 21).into(),
            Ipv4Addr::new(192, 168, 100, 22).into(),
        )
    };
    Underlay {
        port: PortId(9),
        ip: us,
        mac: MacAddr([2, 0, 0, 0, 0, 0x21]),
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

fn underlay() -> Underlay {
    underlay_of(false)
}

/// hv2's view: its own underlay, whose address is hv2's.
fn hv2_of(u: &Underlay) -> Underlay {
    Underlay {
        ip: u.chassis[0].ip,
        mac: MacAddr([2, 0, 0, 0, 0, 0x22]),
        ..u.clone()
    }
}

fn inner() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[0, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0]);
    for (i, b) in f[14..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7);
    }
    f
}

/// The frame chassis hv2 sends us: `inner()` encapsulated.
fn from_hv2(u: &Underlay, encap: Encap, datapath_key: u32, egress: u16) -> Vec<u8> {
    let hv2 = hv2_of(u);
    let mut b = HeapBuf::from_frame(&inner());
    let t = Tunnel {
        encap,
        src_mac: hv2.mac,
        dst_mac: u.mac,
        src_ip: hv2.ip,
        dst_ip: u.ip,
        datapath_key,
        ingress_key: 3,
        egress_key: egress,
        csum: false,
    };
    assert!(encapsulate(&mut b, &t));
    b.data().to_vec()
}

/// Encapsulate as chassis hv2 would towards us, then receive.
fn roundtrip_over(ipv6: bool, encap: Encap, egress: u16) -> Result<Uplink, DropReason> {
    let u = underlay_of(ipv6);
    let frame = from_hv2(&u, encap, 7, egress);
    assert_eq!(frame.len(), overhead(encap, ipv6) + inner().len());
    assert_eq!(&frame[overhead(encap, ipv6)..], &inner()[..]);
    let n = Neighbors::default();
    receive(&mut HeapBuf::from_frame(&frame), &u, &n, |k| {
        (k == 7).then_some(DatapathIdx(0))
    })
}

fn roundtrip(encap: Encap, egress: u16) -> Result<Uplink, DropReason> {
    roundtrip_over(false, encap, egress)
}

#[test]
fn geneve_carries_ovn_metadata() {
    for ipv6 in [false, true] {
        let r = roundtrip_over(ipv6, Encap::Geneve, 5).unwrap();
        assert_eq!(
            r,
            Uplink::Tunnel(Received {
                datapath: DatapathIdx(0),
                ingress_key: 3,
                egress: Egress::Port(5),
                outer_len: overhead(Encap::Geneve, ipv6),
            })
        );
        let Uplink::Tunnel(r) = roundtrip_over(ipv6, Encap::Geneve, MC_FLOOD).unwrap() else {
            panic!()
        };
        assert_eq!(r.egress, Egress::Group(MC_FLOOD));
    }
    assert_eq!(overhead(Encap::Geneve, false), GENEVE_OVERHEAD);
    // RFC 8926 §3.4: OVN's option (type 0x80) is critical, so the C bit.
    let f = from_hv2(&underlay(), Encap::Geneve, 7, 5);
    assert_eq!(f[42 + 1], geneve::FLAG_CRITICAL);
}

/// Options other than OVN's alone take the option-by-option parse: a
/// non-critical unknown option before OVN's is skipped.
#[test]
fn geneve_with_other_options_is_parsed_option_by_option() {
    let u = underlay();
    let f = from_hv2(&u, Encap::Geneve, 7, 5);
    let mut g = f[..42].to_vec();
    g.extend_from_slice(&[4, 0x40, 0x65, 0x58]); // 4 words of options
    g.extend_from_slice(&f[46..50]); // VNI
    g.extend_from_slice(&[0x01, 0x03, 0x01, 0x01, 9, 9, 9, 9]); // class 0x0103, type 1
    g.extend_from_slice(&f[50..]);
    let ip_len = (g.len() - 14) as u16;
    g[16..18].copy_from_slice(&ip_len.to_be_bytes());
    g[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    g[24..26].copy_from_slice(&[0, 0]);
    let c = !checksum::data(&g[14..34]);
    g[24..26].copy_from_slice(&c.to_be_bytes());
    let n = Neighbors::default();
    let got = receive(&mut HeapBuf::from_frame(&g), &u, &n, |k| {
        (k == 7).then_some(DatapathIdx(0))
    });
    assert_eq!(
        got,
        Ok(Uplink::Tunnel(Received {
            datapath: DatapathIdx(0),
            ingress_key: 3,
            egress: Egress::Port(5),
            outer_len: GENEVE_OVERHEAD + 8,
        }))
    );
    // The same option marked critical: dropped.
    g[42 + 10] = 0x81;
    let got = receive(&mut HeapBuf::from_frame(&g), &u, &n, |k| {
        (k == 7).then_some(DatapathIdx(0))
    });
    assert_eq!(got, Err(DropReason::TunnelCriticalOption));
}

#[test]
fn vxlan_packs_datapath_and_egress_into_the_vni() {
    assert_eq!(vxlan_vni(7, 5), 7 | (5 << 12));
    assert_eq!(vxlan_vni(7, MC_UNKNOWN), 7 | (2049 << 12));
    for ipv6 in [false, true] {
        let Uplink::Tunnel(r) = roundtrip_over(ipv6, Encap::Vxlan, 5).unwrap() else {
            panic!()
        };
        assert_eq!((r.datapath, r.egress), (DatapathIdx(0), Egress::Port(5)));
        assert_eq!(r.outer_len, overhead(Encap::Vxlan, ipv6));
    }
    assert_eq!(overhead(Encap::Vxlan, false), VXLAN_OVERHEAD);
    let Uplink::Tunnel(r) = roundtrip(Encap::Vxlan, MC_UNKNOWN).unwrap() else {
        panic!()
    };
    assert_eq!(r.egress, Egress::Group(MC_UNKNOWN));
    let Uplink::Tunnel(r) = roundtrip(Encap::Vxlan, 0).unwrap() else {
        panic!()
    };
    assert_eq!(r.egress, Egress::Lookup);
}

#[test]
fn ipv6_outer_headers_field_by_field() {
    let u = underlay_of(true);
    let f = from_hv2(&u, Encap::Geneve, 7, 5);
    assert_eq!(be16(&f, 12), u16::from(crate::wire::EtherType::Ipv6));
    assert_eq!(f[14] >> 4, 6, "version");
    assert_eq!(usize::from(be16(&f, 18)), f.len() - 54, "payload length");
    assert_eq!(
        (f[20], f[21]),
        (u8::from(IpProtocol::Udp), 64),
        "next header, hop limit"
    );
    assert_eq!(IpAddr::V6(ipv6(&f, 22)), u.chassis[0].ip);
    assert_eq!(IpAddr::V6(ipv6(&f, 38)), u.ip);
    let label = u32::from_be_bytes([0, f[15] & 0x0f, f[16], f[17]]);
    assert_ne!(label, 0, "a flow label from the inner flow");
    assert_eq!(be16(&f, 56), geneve::UDP_PORT);
    assert_eq!(usize::from(be16(&f, 58)), f.len() - 54, "UDP length");
    // An independent sum over pseudo header and datagram: all ones.
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&f[22..54]);
    pseudo.extend_from_slice(&((f.len() - 54) as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 17]);
    pseudo.extend_from_slice(&f[54..]);
    let mut sum = 0u32;
    for w in pseudo.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    assert_eq!(sum, 0xffff, "UDP checksum");
    assert_ne!(be16(&f, 60), 0);
}

#[test]
fn ipv6_checksum_is_verified() {
    let u = underlay_of(true);
    let n = Neighbors::default();
    let mut f = from_hv2(&u, Encap::Vxlan, 7, 5);
    let last = f.len() - 1;
    f[last] ^= 0x40;
    assert_eq!(
        receive(&mut HeapBuf::from_frame(&f), &u, &n, |_| Some(DatapathIdx(
            0
        ))),
        Err(DropReason::TunnelChecksum)
    );
    // RFC 6935: a zero checksum is accepted.
    f[60..62].copy_from_slice(&[0, 0]);
    assert!(matches!(
        receive(&mut HeapBuf::from_frame(&f), &u, &n, |_| Some(DatapathIdx(
            0
        ))),
        Ok(Uplink::Tunnel(_))
    ));
    // Another family's tunnel packet is not ours.
    let f4 = from_hv2(&underlay(), Encap::Vxlan, 7, 5);
    assert_eq!(
        receive(&mut HeapBuf::from_frame(&f4), &u, &n, |_| Some(
            DatapathIdx(0)
        )),
        Ok(Uplink::NotOurs)
    );
}

/// An IPv4 header with 20 bytes of options puts UDP where IPv6 does
/// (offset 54): its UDP checksum is still IPv4's (unchecked), not taken
/// for IPv6's.
#[test]
fn ipv4_with_options_is_not_checked_as_ipv6() {
    let u = underlay();
    let f = from_hv2(&u, Encap::Vxlan, 7, 5);
    let mut g = f[..34].to_vec();
    g[14] = 0x4a; // IHL 10: 20 bytes of options
    g.extend_from_slice(&[1; 20]); // NOP options
    g.extend_from_slice(&f[34..]);
    g[60..62].copy_from_slice(&[0x12, 0x34]); // a UDP checksum we do not verify
    let ip_len = (g.len() - 14) as u16;
    g[16..18].copy_from_slice(&ip_len.to_be_bytes());
    let n = Neighbors::default();
    let got = receive(&mut HeapBuf::from_frame(&g), &u, &n, |k| {
        (k == 7).then_some(DatapathIdx(0))
    });
    assert!(
        matches!(got, Ok(Uplink::Tunnel(r)) if r.outer_len == VXLAN_OVERHEAD + 20),
        "{got:?}"
    );
}

#[test]
fn decap_checks_drop_with_reasons() {
    let u = underlay();
    let n = Neighbors::default();
    let frame = from_hv2(&u, Encap::Geneve, 8, 1);
    assert_eq!(
        receive(&mut HeapBuf::from_frame(&frame), &u, &n, |_| None),
        Err(DropReason::TunnelUnknownDatapath)
    );
    // Not for our address.
    let mut other = frame.clone();
    other[14 + 19] = 99;
    assert_eq!(
        receive(&mut HeapBuf::from_frame(&other), &u, &n, |_| Some(
            DatapathIdx(0)
        )),
        Ok(Uplink::NotOurs)
    );
    // An unknown critical option instead of OVN's.
    let mut crit = frame.clone();
    crit[42 + 10] = 0x81; // type 0x81: critical bit set, not OVN's
    assert_eq!(
        receive(&mut HeapBuf::from_frame(&crit), &u, &n, |_| Some(
            DatapathIdx(0)
        )),
        Err(DropReason::TunnelCriticalOption)
    );
    // Truncated.
    for len in [13, 20, 41, 45, 57] {
        assert!(
            receive(&mut HeapBuf::from_frame(&frame[..len]), &u, &n, |_| Some(
                DatapathIdx(0)
            ))
            .is_err()
        );
    }
    let u6 = underlay_of(true);
    let frame6 = from_hv2(&u6, Encap::Geneve, 8, 1);
    for len in [13, 40, 53, 61, 77] {
        assert!(
            receive(&mut HeapBuf::from_frame(&frame6[..len]), &u6, &n, |_| Some(
                DatapathIdx(0)
            ))
            .is_err(),
            "{len} bytes"
        );
    }
}

#[test]
fn answers_arp_for_the_tunnel_address_and_learns() {
    let u = underlay();
    let n = Neighbors::default();
    let hv2 = hv2_of(&u);
    let mut b = HeapBuf::new(2048);
    assert!(neighbor_request(&mut b, &hv2, u.ip));
    assert_eq!(receive(&mut b, &u, &n, |_| None), Ok(Uplink::NeighborReply));
    assert_eq!(n.get(hv2.ip), Some(hv2.mac));
    assert_eq!(n.get(Ipv4Addr::new(192, 168, 100, 23).into()), None);
    let f = b.data();
    assert_eq!(&f[0..6], &hv2.mac.0);
    assert_eq!(be16(f, 20), 2);
    assert_eq!(&f[22..28], &u.mac.0);
    assert_eq!(IpAddr::V4(ipv4(f, 28)), u.ip);
}

#[test]
fn answers_neighbor_solicitations_for_the_tunnel_address_and_learns() {
    let u = underlay_of(true);
    let n = Neighbors::default();
    let hv2 = hv2_of(&u);
    let mut b = HeapBuf::new(2048);
    assert!(neighbor_request(&mut b, &hv2, u.ip));
    let ns = b.data().to_vec();
    assert_eq!(
        &ns[0..6],
        &[0x33, 0x33, 0xff, 0, 0, 0x21],
        "solicited-node group"
    );
    assert_eq!(receive(&mut b, &u, &n, |_| None), Ok(Uplink::NeighborReply));
    assert_eq!(n.get(hv2.ip), Some(hv2.mac), "learned from the SLLAO");
    // The advertisement: to hv2, from our address, valid.
    let f = b.data();
    assert_eq!(&f[0..6], &hv2.mac.0);
    assert_eq!(&f[6..12], &u.mac.0);
    let (src, dst) = (ipv6(f, 22), ipv6(f, 38));
    assert_eq!((IpAddr::V6(src), IpAddr::V6(dst)), (u.ip, hv2.ip));
    assert_eq!(f[21], 255);
    let p = icmpv6::Packet::new_checked(&f[54..]).unwrap();
    assert!(p.verify_checksum(&src, &dst));
    assert_eq!(
        icmpv6::NdiscRepr::parse(&p).unwrap(),
        icmpv6::NdiscRepr::NeighborAdvert {
            flags: icmpv6::NeighborFlags(0x60),
            target_addr: src,
            lladdr: Some(u.mac),
        }
    );
    // hv2 receives it and learns us (as any chassis would).
    let n2 = Neighbors::default();
    let mut hv2_sees = hv2.clone();
    hv2_sees.chassis[0].ip = u.ip;
    assert_eq!(
        receive(&mut b, &hv2_sees, &n2, |_| None),
        Ok(Uplink::Neighbor)
    );
    assert_eq!(n2.get(u.ip), Some(u.mac));

    // Hop limit not 255: forwarded, so invalid (RFC 4861 §7.1.1).
    let mut bad = ns.clone();
    bad[21] = 64;
    assert_eq!(
        receive(&mut HeapBuf::from_frame(&bad), &u, &n, |_| None),
        Err(DropReason::UplinkNdInvalid)
    );
    let mut bad = ns.clone();
    bad[82] ^= 1; // inside the option: checksum no longer matches
    assert_eq!(
        receive(&mut HeapBuf::from_frame(&bad), &u, &n, |_| None),
        Err(DropReason::UplinkNdInvalid)
    );
    // A solicitation for someone else's address is the host's.
    let mut other = HeapBuf::new(2048);
    assert!(neighbor_request(
        &mut other,
        &hv2,
        "fd00:64::99".parse().unwrap()
    ));
    assert_eq!(receive(&mut other, &u, &n, |_| None), Ok(Uplink::NotOurs));
    // IPv4 ARP on an IPv6 underlay is not ours either.
    let mut arp = HeapBuf::new(2048);
    assert!(neighbor_request(
        &mut arp,
        &hv2_of(&underlay()),
        underlay().ip
    ));
    assert_eq!(receive(&mut arp, &u, &n, |_| None), Ok(Uplink::NotOurs));
}

#[test]
fn neighbors_keep_families_apart_and_update() {
    let n = Neighbors::default();
    let v4: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
    let v6: IpAddr = "::a00:1".parse().unwrap();
    let m = |x| MacAddr([2, 0, 0, 0, 0, x]);
    n.set(v4, m(1));
    assert_eq!(n.get(v4), Some(m(1)));
    assert_eq!(n.get(v6), None);
    let g = n.generation();
    n.set(v4, m(1));
    assert_eq!(n.generation(), g, "the same MAC again changes nothing");
    n.set(v6, m(2));
    n.set(v4, m(3));
    assert_eq!((n.get(v4), n.get(v6)), (Some(m(3)), Some(m(2))));
    assert_eq!(n.generation(), g + 2);
    // Many addresses: all found (open addressing across collisions).
    for i in 0..500u32 {
        n.set(
            IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64 | 7)),
            m(i as u8),
        );
    }
    for i in 0..500u32 {
        let ip = IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64 | 7));
        assert_eq!(n.get(ip), Some(m(i as u8)), "{ip}");
    }
}

#[test]
fn oversized_ipv4_with_df_gets_frag_needed() {
    use crate::wire::layout;
    assert_eq!(max_inner_frame(Encap::Geneve, false, 1500), 1456);
    assert_eq!(max_inner_frame(Encap::Vxlan, false, 1500), 1464);
    assert_eq!(max_inner_frame(Encap::Geneve, true, 1500), 1436);
    assert_eq!(max_inner_frame(Encap::Vxlan, true, 1500), 1444);
    let mut frame = "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53 payload=1472"
        .parse::<crate::flow::FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    assert_eq!(frame.len(), 14 + 1500);
    frame[14 + 6] |= 0x40;
    let mut reply = [0u8; 600];
    let TooBig::Reply(n) = too_big(&frame, 1442, &mut reply) else {
        panic!("no reply")
    };
    let r = &reply[..n];
    let lay = layout::parse(r).unwrap();
    assert!(lay.has(layout::Layout::IPV4 | layout::Layout::L4));
    assert_eq!(&r[0..6], &[0, 0, 0, 0, 0, 1], "back to the sender");
    assert_eq!(&r[26..30], &[10, 0, 0, 2]);
    assert_eq!(&r[30..34], &[10, 0, 0, 1]);
    assert_eq!((r[34], r[35]), (3, 4));
    assert_eq!(be16(r, 40), 1442);
    assert_eq!(checksum::data(&r[34..]), 0xffff, "ICMP checksum");
    assert_eq!(checksum::data(&r[14..34]), 0xffff, "IP checksum");
    assert_eq!(&r[42..62], &frame[14..34], "quotes the original header");
    // Without DF: dropped, not answered.
    frame[14 + 6] &= !0x40;
    assert_eq!(too_big(&frame, 1442, &mut reply), TooBig::Drop);
}

#[test]
fn oversized_ipv6_gets_packet_too_big() {
    let frame = "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip6.src=fd10::1 ip6.dst=fd10::2 udp.dst=53 payload=1452"
        .parse::<crate::flow::FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    assert_eq!(frame.len(), 14 + 1500);
    let mut reply = [0u8; 14 + 1280];
    let TooBig::Reply(n) = too_big(&frame, 1422, &mut reply) else {
        panic!("no reply")
    };
    let r = &reply[..n];
    assert_eq!(n, 14 + 1280, "as much of the packet as fits in 1280 bytes");
    assert_eq!(&r[0..6], &[0, 0, 0, 0, 0, 1], "back to the sender");
    assert_eq!(be16(r, 12), u16::from(crate::wire::EtherType::Ipv6));
    let (src, dst) = (ipv6(r, 22), ipv6(r, 38));
    assert_eq!(
        (src, dst),
        ("fd10::2".parse().unwrap(), "fd10::1".parse().unwrap())
    );
    let p = icmpv6::Packet::new_checked(&r[54..]).unwrap();
    assert_eq!((r[54], r[55]), (2, 0), "packet too big");
    assert_eq!(p.pkt_too_big_mtu(), 1422);
    assert!(p.verify_checksum(&src, &dst));
    assert_eq!(&r[62..102], &frame[14..54], "quotes the original header");
    // Never in answer to an ICMPv6 error (RFC 4443 §2.4 e.1).
    let mut err = reply[..n].to_vec();
    err.resize(14 + 1500, 0);
    assert_eq!(too_big(&err, 1422, &mut [0u8; 14 + 1280]), TooBig::Drop);
}

#[test]
fn source_port_depends_on_the_flow() {
    let a = inner();
    let mut b = inner();
    b[5] = 9;
    assert!(source_port(flow_hash(&a)) >= 49152);
    assert_ne!(source_port(flow_hash(&a)), source_port(flow_hash(&b)));
}

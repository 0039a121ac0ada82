//! Property tests for `dataplane::wire`.
//!
//! Every `Repr` survives emit then parse unchanged; `layout::parse` never panics, on random
//! bytes and on mutated and truncated real frames, and whatever it accepts is consistent:
//! offsets inside the frame, flags that agree with each other, and headers the checked
//! views accept at those offsets, so the hot path's unchecked accessors are safe.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::wire::{
    arp, checksum, ethernet, geneve, icmpv4, icmpv6, ipv4, ipv6, layout, tcp, udp, vxlan,
    EtherType, IpProtocol, Layout, MacAddr,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn ethertype() -> impl Strategy<Value = EtherType> {
    any::<u16>().prop_map(EtherType::from)
}

fn ip_protocol() -> impl Strategy<Value = IpProtocol> {
    any::<u8>().prop_map(IpProtocol::from)
}

fn ipv4_addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn ipv6_addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn ipv4_repr() -> impl Strategy<Value = ipv4::Repr> {
    (
        (
            ipv4_addr(),
            ipv4_addr(),
            ip_protocol(),
            0..=1000usize,
            any::<u8>(),
        ),
        (
            0..64u8,
            0..4u8,
            any::<u16>(),
            any::<bool>(),
            any::<bool>(),
            0..8192u16,
        ),
    )
        .prop_map(
            |(
                (src_addr, dst_addr, next_header, payload_len, hop_limit),
                (dscp, ecn, ident, dont_frag, more_frags, off),
            )| {
                ipv4::Repr {
                    src_addr,
                    dst_addr,
                    next_header,
                    payload_len,
                    hop_limit,
                    dscp,
                    ecn,
                    ident,
                    dont_frag,
                    more_frags,
                    frag_offset: off * 8,
                }
            },
        )
}

fn ipv6_repr() -> impl Strategy<Value = ipv6::Repr> {
    (
        ipv6_addr(),
        ipv6_addr(),
        ip_protocol(),
        0..=1000usize,
        any::<u8>(),
        any::<u8>(),
        0..(1u32 << 20),
    )
        .prop_map(
            |(
                src_addr,
                dst_addr,
                next_header,
                payload_len,
                hop_limit,
                traffic_class,
                flow_label,
            )| ipv6::Repr {
                src_addr,
                dst_addr,
                next_header,
                payload_len,
                hop_limit,
                traffic_class,
                flow_label,
            },
        )
}

/// Emits `repr` into a zeroed buffer of `len` bytes and returns it.
fn emitted<F: FnOnce(&mut [u8])>(len: usize, emit: F) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    emit(&mut buf);
    buf
}

proptest! {
    #[test]
    fn ethernet_round_trip(src_addr in mac(), dst_addr in mac(), ethertype in ethertype()) {
        let repr = ethernet::Repr { src_addr, dst_addr, ethertype };
        let buf = emitted(repr.buffer_len(), |b| repr.emit(&mut ethernet::Frame::new_unchecked(b)));
        prop_assert_eq!(ethernet::Repr::parse(&ethernet::Frame::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn vlan_round_trip(pcp in 0..8u8, dei in any::<bool>(), vid in 0..0xfffu16, ethertype in ethertype()) {
        let repr = ethernet::VlanRepr { pcp, dei, vid, ethertype };
        let buf = emitted(repr.buffer_len(), |b| repr.emit(&mut ethernet::VlanTag::new_unchecked(b)));
        prop_assert_eq!(ethernet::VlanRepr::parse(&ethernet::VlanTag::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn mac_text_round_trip(addr in mac()) {
        prop_assert_eq!(addr.to_string().parse::<MacAddr>(), Ok(addr));
    }

    #[test]
    fn arp_round_trip(op in any::<u16>(), sha in mac(), spa in ipv4_addr(), tha in mac(), tpa in ipv4_addr()) {
        let repr = arp::Repr {
            operation: arp::Operation::from(op),
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        };
        let buf = emitted(repr.buffer_len(), |b| repr.emit(&mut arp::Packet::new_unchecked(b)));
        prop_assert_eq!(arp::Repr::parse(&arp::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn ipv4_round_trip(repr in ipv4_repr()) {
        let buf = emitted(repr.buffer_len() + repr.payload_len, |b| repr.emit(&mut ipv4::Packet::new_unchecked(b)));
        prop_assert_eq!(ipv4::Repr::parse(&ipv4::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn ipv6_round_trip(repr in ipv6_repr()) {
        let buf = emitted(repr.buffer_len() + repr.payload_len, |b| repr.emit(&mut ipv6::Packet::new_unchecked(b)));
        prop_assert_eq!(ipv6::Repr::parse(&ipv6::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn udp_round_trip(src_port in any::<u16>(), dst_port in 1..=u16::MAX, data in bytes(200), v6 in any::<bool>()) {
        let repr = udp::Repr { src_port, dst_port, payload_len: data.len() };
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap())
        } else {
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())
        };
        let buf = emitted(repr.buffer_len() + data.len(), |b| {
            let mut packet = udp::Packet::new_unchecked(b);
            repr.emit(&mut packet);
            packet.payload_mut().copy_from_slice(&data);
            packet.fill_checksum(&src, &dst);
        });
        let packet = udp::Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(packet.verify_checksum(&src, &dst));
        prop_assert_ne!(packet.checksum(), 0);
        prop_assert_eq!(udp::Repr::parse(&packet), Ok(repr));
        prop_assert_eq!(packet.payload(), &data[..]);
    }

    #[test]
    fn tcp_round_trip(
        ports in (1..=u16::MAX, 1..=u16::MAX),
        seq in any::<u32>(),
        ack in any::<u32>(),
        flags in any::<u16>(),
        window in any::<u16>(),
        urgent in any::<u16>(),
        option_words in 0..=10usize,
        option_bytes in vec(any::<u8>(), 40),
        data in bytes(100),
    ) {
        let repr = tcp::Repr {
            src_port: ports.0,
            dst_port: ports.1,
            seq_number: seq,
            ack_number: ack,
            flags: tcp::Flags::from_bits_truncate(flags),
            window_len: window,
            urgent_at: urgent,
            options: &option_bytes[..option_words * 4],
        };
        let (src, dst): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let buf = emitted(repr.buffer_len() + data.len(), |b| {
            let mut packet = tcp::Packet::new_unchecked(b);
            repr.emit(&mut packet);
            packet.payload_mut().copy_from_slice(&data);
            packet.fill_checksum(&src, &dst);
        });
        let packet = tcp::Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(packet.verify_checksum(&src, &dst));
        prop_assert_eq!(tcp::Repr::parse(&packet), Ok(repr));
        prop_assert_eq!(packet.payload(), &data[..]);
    }

    #[test]
    fn icmpv4_round_trip(kind in 0..4u8, a in any::<u16>(), b in any::<u16>(), code in any::<u8>(), data in bytes(64)) {
        let repr = match kind {
            0 => icmpv4::Repr::EchoRequest { ident: a, seq_no: b, data: &data },
            1 => icmpv4::Repr::EchoReply { ident: a, seq_no: b, data: &data },
            2 => icmpv4::Repr::DstUnreachable { reason: icmpv4::DstUnreachable::from(code), next_hop_mtu: a, data: &data },
            _ => icmpv4::Repr::TimeExceeded { reason: icmpv4::TimeExceeded::from(code), data: &data },
        };
        let buf = emitted(repr.buffer_len(), |buf| repr.emit(&mut icmpv4::Packet::new_unchecked(buf)));
        prop_assert_eq!(icmpv4::Repr::parse(&icmpv4::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn icmpv6_round_trip(
        kind in 0..7u8,
        a in any::<u16>(),
        b in any::<u16>(),
        mtu in any::<u32>(),
        code in any::<u8>(),
        data in bytes(64),
        target in ipv6_addr().prop_filter("unicast target", |t| !t.is_multicast()),
        lladdr in proptest::option::of(mac()),
        flags in any::<u8>(),
    ) {
        let repr = match kind {
            0 => icmpv6::Repr::EchoRequest { ident: a, seq_no: b, data: &data },
            1 => icmpv6::Repr::EchoReply { ident: a, seq_no: b, data: &data },
            2 => icmpv6::Repr::DstUnreachable { reason: icmpv6::DstUnreachable::from(code), data: &data },
            3 => icmpv6::Repr::TimeExceeded { reason: icmpv6::TimeExceeded::from(code), data: &data },
            4 => icmpv6::Repr::PktTooBig { mtu, data: &data },
            5 => icmpv6::Repr::Ndisc(icmpv6::NdiscRepr::NeighborSolicit { target_addr: target, lladdr }),
            _ => icmpv6::Repr::Ndisc(icmpv6::NdiscRepr::NeighborAdvert {
                flags: icmpv6::NeighborFlags::from_bits_truncate(flags),
                target_addr: target,
                lladdr,
            }),
        };
        let (src, dst) = (Ipv6Addr::LOCALHOST, target);
        let buf = emitted(repr.buffer_len(), |buf| {
            let mut packet = icmpv6::Packet::new_unchecked(buf);
            repr.emit(&mut packet);
            packet.fill_checksum(&src, &dst);
        });
        let packet = icmpv6::Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(packet.verify_checksum(&src, &dst));
        prop_assert_eq!(icmpv6::Repr::parse(&packet), Ok(repr));
    }

    #[test]
    fn vxlan_round_trip(vni in 0..=vxlan::MAX_VNI) {
        let repr = vxlan::Repr { vni };
        let buf = emitted(repr.buffer_len(), |b| repr.emit(&mut vxlan::Packet::new_unchecked(b)));
        prop_assert_eq!(vxlan::Repr::parse(&vxlan::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn geneve_round_trip(
        oam in any::<bool>(),
        critical in any::<bool>(),
        protocol_type in ethertype(),
        vni in 0..=geneve::MAX_VNI,
        specs in vec((any::<u16>(), any::<u8>(), 0..=7usize), 0..=6),
        pool in vec(any::<u8>(), 28),
    ) {
        let options: Vec<_> = specs
            .iter()
            .map(|&(class, option_type, words)| geneve::GeneveOption { class, option_type, data: &pool[..words * 4] })
            .collect();
        let mut raw = vec![0u8; geneve::options_len(&options)];
        prop_assert_eq!(geneve::emit_options(&options, &mut raw), raw.len());
        let repr = geneve::Repr { oam, critical, protocol_type, vni, options: &raw };
        let buf = emitted(repr.buffer_len(), |b| repr.emit(&mut geneve::Packet::new_unchecked(b)));
        let packet = geneve::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(geneve::Repr::parse(&packet), Ok(repr));
        let parsed: Vec<_> = packet.option_iter().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(parsed, options);
    }

    #[test]
    fn ovn_metadata_round_trip(ingress_port in 0..0x8000u16, egress_port in any::<u16>()) {
        let meta = geneve::OvnMetadata { ingress_port, egress_port };
        prop_assert_eq!(geneve::OvnMetadata::from_bytes(&meta.to_bytes()), Some(meta));
    }
}

/// Checks what the hot path relies on for a frame `layout::parse` accepted, and calls every
/// accessor its flags allow (none may panic).
fn check_layout(frame: &[u8], l: &Layout) {
    let (l3, l4, l3_end) = (usize::from(l.l3), usize::from(l.l4), usize::from(l.l3_end));
    assert!(frame.len() >= 14);
    assert_eq!(l3, if l.has(Layout::VLAN) { 18 } else { 14 });
    assert!(l3 <= l3_end && l3_end <= frame.len(), "{l:?}");
    let kinds = [Layout::IPV4, Layout::IPV6, Layout::ARP]
        .iter()
        .filter(|&&k| l.has(k))
        .count();
    assert!(kinds <= 1, "{l:?}");
    if l.has(Layout::LATER_FRAGMENT) {
        assert!(l.has(Layout::FRAGMENT) && !l.has(Layout::L4), "{l:?}");
    }
    let _ = (
        l.src_mac(frame),
        l.dst_mac(frame),
        l.l3_bytes(frame),
        l.ethertype(),
        l.vlan_id(),
    );
    if l.has(Layout::IPV4) {
        let _ = (l.ipv4_src(frame), l.ipv4_dst(frame), l.ip_ttl(frame));
        let ip = ipv4::Packet::new_checked(l.l3_bytes(frame))
            .expect("layout accepted IPv4 the view refuses");
        assert_eq!(ip.version(), 4);
    }
    if l.has(Layout::IPV6) {
        let _ = (l.ipv6_src(frame), l.ipv6_dst(frame), l.ip_ttl(frame));
        ipv6::Packet::new_checked(l.l3_bytes(frame))
            .expect("layout accepted IPv6 the view refuses");
    }
    if l.has(Layout::ARP) {
        let _ = (
            l.arp_op(frame),
            l.arp_sha(frame),
            l.arp_spa(frame),
            l.arp_tha(frame),
            l.arp_tpa(frame),
        );
        let packet = arp::Packet::new_checked(l.l3_bytes(frame)).unwrap();
        arp::Repr::parse(&packet).expect("layout accepted ARP the Repr refuses");
    }
    if l.has(Layout::L4) {
        assert!(l.has(Layout::IPV4) || l.has(Layout::IPV6));
        assert!(l3 < l4 && l4 <= l3_end, "{l:?}");
        let seg = l.l4_bytes(frame);
        match l.ip_protocol() {
            IpProtocol::Tcp => {
                let _ = (
                    l.l4_src_port(frame),
                    l.l4_dst_port(frame),
                    l.tcp_flags(frame),
                );
                tcp::Packet::new_checked(seg).expect("layout accepted TCP the view refuses");
            }
            IpProtocol::Udp => {
                let _ = (l.l4_src_port(frame), l.l4_dst_port(frame));
                assert!(seg.len() >= 8);
                if !l.has(Layout::FRAGMENT) {
                    udp::Packet::new_checked(seg).expect("layout accepted UDP the view refuses");
                }
            }
            IpProtocol::Icmp => {
                assert!(l.has(Layout::IPV4));
                let _ = (l.icmp_type(frame), l.icmp_code(frame));
                icmpv4::Packet::new_checked(seg).unwrap();
            }
            IpProtocol::Icmpv6 => {
                assert!(l.has(Layout::IPV6));
                let _ = (l.icmp_type(frame), l.icmp_code(frame));
                assert!(seg.len() >= 8);
            }
            other => panic!("L4 set for {other}"),
        }
        let mut copy = frame.to_vec();
        let filled = checksum::fill_l4(&mut copy, l);
        assert_eq!(filled.is_ok(), !l.has(Layout::FRAGMENT));
        if filled.is_ok() {
            assert_eq!(checksum::verify_l4(&copy, l), Ok(true));
        }
    }
}

fn vectors() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn layout_never_panics_on_random_bytes(frame in bytes(160)) {
        if let Ok(l) = layout::parse(&frame) {
            check_layout(&frame, &l);
        }
    }

    /// Random bytes behind a plausible Ethernet/VLAN/IP prefix, to get past the first checks.
    #[test]
    fn layout_never_panics_on_ip_like_bytes(
        vlan in any::<bool>(),
        v6 in any::<bool>(),
        first in any::<u8>(),
        rest in bytes(120),
    ) {
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        if vlan {
            frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        }
        frame.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        frame.push(if v6 { 0x60 | (first & 0x0f) } else { 0x40 | (first & 0x0f) });
        frame.extend_from_slice(&rest);
        if let Ok(l) = layout::parse(&frame) {
            check_layout(&frame, &l);
        }
    }

    #[test]
    fn layout_never_panics_on_mutated_vectors(
        pick in any::<prop::sample::Index>(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let all = vectors();
        let mut frame = pick.get(&all).clone();
        for (at, value) in edits {
            if !frame.is_empty() {
                let i = at.index(frame.len());
                frame[i] = value;
            }
        }
        if truncate && !frame.is_empty() {
            frame.truncate(cut.index(frame.len()));
        }
        if let Ok(l) = layout::parse(&frame) {
            check_layout(&frame, &l);
        }
    }

    /// Frames built from `Repr`s parse to exactly the offsets they were built with.
    #[test]
    fn layout_of_built_frames(
        vlan in proptest::option::of(0..0xfffu16),
        v6 in any::<bool>(),
        tcp_segment in any::<bool>(),
        data in bytes(64),
        padding in 0..20usize,
    ) {
        let l4_len = if tcp_segment { tcp::HEADER_LEN } else { udp::HEADER_LEN } + data.len();
        let proto = if tcp_segment { IpProtocol::Tcp } else { IpProtocol::Udp };
        let l3 = if vlan.is_some() { 18 } else { 14 };
        let ip_len = if v6 { ipv6::HEADER_LEN } else { ipv4::HEADER_LEN };
        let mut frame = vec![0u8; l3 + ip_len + l4_len + padding];
        let mut eth = ethernet::Frame::new_unchecked(&mut frame[..]);
        let inner_type = if v6 { EtherType::Ipv6 } else { EtherType::Ipv4 };
        ethernet::Repr {
            src_addr: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_addr: MacAddr([2, 0, 0, 0, 0, 2]),
            ethertype: if vlan.is_some() { EtherType::Vlan } else { inner_type },
        }
        .emit(&mut eth);
        if let Some(vid) = vlan {
            ethernet::VlanRepr { pcp: 0, dei: false, vid, ethertype: inner_type }
                .emit(&mut ethernet::VlanTag::new_unchecked(eth.payload_mut()));
        }
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            let repr = ipv6::Repr {
                src_addr: "2001:db8::1".parse().unwrap(),
                dst_addr: "2001:db8::2".parse().unwrap(),
                next_header: proto,
                payload_len: l4_len,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            };
            repr.emit(&mut ipv6::Packet::new_unchecked(&mut frame[l3..]));
            (repr.src_addr.into(), repr.dst_addr.into())
        } else {
            let repr = ipv4::Repr {
                src_addr: Ipv4Addr::new(192, 0, 2, 1),
                dst_addr: Ipv4Addr::new(192, 0, 2, 2),
                next_header: proto,
                payload_len: l4_len,
                hop_limit: 64,
                dscp: 0,
                ecn: 0,
                ident: 1,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
            };
            repr.emit(&mut ipv4::Packet::new_unchecked(&mut frame[l3..]));
            (repr.src_addr.into(), repr.dst_addr.into())
        };
        let l4 = l3 + ip_len;
        let segment = &mut frame[l4..l4 + l4_len];
        if tcp_segment {
            let repr = tcp::Repr {
                src_port: 1000,
                dst_port: 2000,
                seq_number: 1,
                ack_number: 0,
                flags: tcp::Flags::SYN,
                window_len: 100,
                urgent_at: 0,
                options: &[],
            };
            let mut packet = tcp::Packet::new_unchecked(segment);
            repr.emit(&mut packet);
            packet.payload_mut().copy_from_slice(&data);
            packet.fill_checksum(&src, &dst);
        } else {
            let repr = udp::Repr { src_port: 1000, dst_port: 2000, payload_len: data.len() };
            let mut packet = udp::Packet::new_unchecked(segment);
            repr.emit(&mut packet);
            packet.payload_mut().copy_from_slice(&data);
            packet.fill_checksum(&src, &dst);
        }
        let l = layout::parse(&frame).unwrap();
        check_layout(&frame, &l);
        prop_assert_eq!(l.vlan_id(), vlan);
        prop_assert_eq!((usize::from(l.l3), usize::from(l.l4), usize::from(l.l3_end)), (l3, l4, l4 + l4_len));
        prop_assert_eq!(l.ip_protocol(), proto);
        prop_assert!(l.has(Layout::L4) && !l.has(Layout::IP_OPTIONS | Layout::FRAGMENT));
        prop_assert_eq!((l.l4_src_port(&frame), l.l4_dst_port(&frame)), (1000, 2000));
        prop_assert_eq!(checksum::verify_l4(&frame, &l), Ok(true));
    }
}

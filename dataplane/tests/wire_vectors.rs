//! `dataplane::wire` against frames built by an independent tool.
//!
//! tests/data/make_frames.py (scapy) writes the frames and, in frames.tsv, the offsets and
//! flags scapy's own dissection gives for each, or the drop reason a hostile frame must get.
//! The first test holds `layout::parse` to that table and checks every checksum scapy
//! computed; the others check protocol fields against the constants the script documents
//! and re-emit headers from their `Repr`s byte for byte.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use dataplane::wire::{
    arp, checksum, ethernet, geneve, icmpv4, icmpv6, ipv4, ipv6, layout, tcp, udp, vxlan,
    EtherType, IpProtocol, Layout, MacAddr,
};

const MAC_VM1: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const MAC_VM2: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const IP_VM1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_VM2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PAYLOAD: &[u8] = b"switchyard";

fn ll(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last)
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data")
}

fn frame(name: &str) -> Vec<u8> {
    let path = data_dir().join(format!("{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn layout_of(frame: &[u8]) -> Layout {
    layout::parse(frame).expect("frame parses")
}

fn flag_names(layout: &Layout) -> String {
    let names = [
        (Layout::VLAN, "VLAN"),
        (Layout::IPV4, "IPV4"),
        (Layout::IPV6, "IPV6"),
        (Layout::ARP, "ARP"),
        (Layout::L4, "L4"),
        (Layout::FRAGMENT, "FRAGMENT"),
        (Layout::LATER_FRAGMENT, "LATER_FRAGMENT"),
        (Layout::IP_OPTIONS, "IP_OPTIONS"),
    ];
    let set: Vec<_> = names
        .iter()
        .filter(|(f, _)| layout.has(*f))
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        "-".to_owned()
    } else {
        set.join("|")
    }
}

#[test]
fn layout_matches_scapy_for_every_frame() {
    let table = std::fs::read_to_string(data_dir().join("frames.tsv")).unwrap();
    let mut checked = 0;
    for line in table.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, expect, flags, tci, eth_type, l3, l4, l3_end, proto] = cols[..] else {
            panic!("bad line {line:?}");
        };
        let bytes = frame(name);
        match layout::parse(&bytes) {
            Err(reason) => assert_eq!(reason.as_str(), expect, "{name}: {reason}"),
            Ok(got) => {
                assert_eq!(expect, "ok", "{name}: parsed as {got:?}");
                assert_eq!(flag_names(&got), flags, "{name}");
                if tci != "-" {
                    assert_eq!(got.vlan_tci.to_string(), tci, "{name}");
                }
                assert_eq!(format!("{:#06x}", got.eth_type), eth_type, "{name}");
                assert_eq!(got.l3.to_string(), l3, "{name}");
                if l4 != "-" {
                    assert_eq!(got.l4.to_string(), l4, "{name}");
                }
                assert_eq!(got.l3_end.to_string(), l3_end, "{name}");
                if proto != "-" {
                    assert_eq!(got.ip_proto.to_string(), proto, "{name}");
                }
                if got.has(Layout::IPV4) {
                    let ip = ipv4::Packet::new_checked(got.l3_bytes(&bytes)).unwrap();
                    assert!(ip.verify_checksum(), "{name}: IPv4 header checksum");
                }
                if got.has(Layout::L4) && !got.has(Layout::FRAGMENT) {
                    assert_eq!(
                        checksum::verify_l4(&bytes, &got),
                        Ok(true),
                        "{name}: L4 checksum"
                    );
                    // Recomputing must reproduce scapy's value.
                    let mut copy = bytes.clone();
                    checksum::fill_l4(&mut copy, &got).unwrap();
                    assert_eq!(copy, bytes, "{name}: fill_l4");
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} frames in frames.tsv");
}

#[test]
fn arp_request_and_reply() {
    let bytes = frame("arp_request");
    assert_eq!(bytes.len(), 60);
    let l = layout_of(&bytes);
    let eth = ethernet::Frame::new_checked(&bytes[..]).unwrap();
    assert!(eth.dst_addr().is_broadcast());
    assert_eq!(eth.src_addr(), MAC_VM1);
    assert_eq!(eth.ethertype(), EtherType::Arp);
    let packet = arp::Packet::new_checked(eth.payload()).unwrap();
    let repr = arp::Repr::parse(&packet).unwrap();
    assert_eq!(
        repr,
        arp::Repr {
            operation: arp::Operation::Request,
            source_hardware_addr: MAC_VM1,
            source_protocol_addr: IP_VM1,
            target_hardware_addr: MacAddr::default(),
            target_protocol_addr: IP_VM2,
        }
    );
    assert_eq!(
        (
            l.arp_op(&bytes),
            l.arp_sha(&bytes),
            l.arp_spa(&bytes),
            l.arp_tpa(&bytes)
        ),
        (arp::Operation::Request, MAC_VM1, IP_VM1, IP_VM2)
    );

    let reply = frame("arp_reply");
    let packet = arp::Packet::new_checked(&reply[14..]).unwrap();
    let repr = arp::Repr::parse(&packet).unwrap();
    assert_eq!(repr.operation, arp::Operation::Reply);
    assert_eq!(
        (repr.source_hardware_addr, repr.source_protocol_addr),
        (MAC_VM2, IP_VM2)
    );
    assert_eq!(
        (repr.target_hardware_addr, repr.target_protocol_addr),
        (MAC_VM1, IP_VM1)
    );
    let mut out = [0u8; 28];
    repr.emit(&mut arp::Packet::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &reply[14..42]);
}

#[test]
fn neighbor_solicitation_and_advertisement() {
    let bytes = frame("nd_ns");
    let l = layout_of(&bytes);
    assert_eq!(l.ip_ttl(&bytes), 255);
    let (src, dst) = (l.ipv6_src(&bytes), l.ipv6_dst(&bytes));
    assert_eq!((src, dst), (ll(1), "ff02::1:ff00:2".parse().unwrap()));
    let packet = icmpv6::Packet::new_checked(l.l4_bytes(&bytes)).unwrap();
    assert!(packet.verify_checksum(&src, &dst));
    let repr = icmpv6::Repr::parse(&packet).unwrap();
    assert_eq!(
        repr,
        icmpv6::Repr::Ndisc(icmpv6::NdiscRepr::NeighborSolicit {
            target_addr: ll(2),
            lladdr: Some(MAC_VM1)
        })
    );
    let mut out = vec![0u8; repr.buffer_len()];
    let mut emitted = icmpv6::Packet::new_unchecked(&mut out[..]);
    repr.emit(&mut emitted);
    emitted.fill_checksum(&src, &dst);
    assert_eq!(out, l.l4_bytes(&bytes));

    let bytes = frame("nd_na");
    let l = layout_of(&bytes);
    let (src, dst) = (l.ipv6_src(&bytes), l.ipv6_dst(&bytes));
    let packet = icmpv6::Packet::new_checked(l.l4_bytes(&bytes)).unwrap();
    assert!(packet.verify_checksum(&src, &dst));
    let flags = icmpv6::NeighborFlags::SOLICITED | icmpv6::NeighborFlags::OVERRIDE;
    let repr = icmpv6::NdiscRepr::parse(&packet).unwrap();
    assert_eq!(
        repr,
        icmpv6::NdiscRepr::NeighborAdvert {
            flags,
            target_addr: ll(2),
            lladdr: Some(MAC_VM2)
        }
    );
    let mut out = vec![0u8; repr.buffer_len()];
    let mut emitted = icmpv6::Packet::new_unchecked(&mut out[..]);
    repr.emit(&mut emitted);
    emitted.fill_checksum(&src, &dst);
    assert_eq!(out, l.l4_bytes(&bytes));
}

#[test]
fn ipv4_udp_tcp_icmp() {
    let bytes = frame("ipv4_udp");
    let l = layout_of(&bytes);
    let ip = ipv4::Packet::new_checked(l.l3_bytes(&bytes)).unwrap();
    let repr = ipv4::Repr::parse(&ip).unwrap();
    assert_eq!(
        (repr.src_addr, repr.dst_addr, repr.ident, repr.hop_limit),
        (IP_VM1, IP_VM2, 0x1234, 64)
    );
    assert_eq!((repr.next_header, repr.payload_len), (IpProtocol::Udp, 18));
    let mut header = [0u8; 38];
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut header[..]));
    assert_eq!(&header[..20], &bytes[14..34]);
    let udp = udp::Packet::new_checked(l.l4_bytes(&bytes)).unwrap();
    assert!(udp.verify_checksum(&IpAddr::V4(IP_VM1), &IpAddr::V4(IP_VM2)));
    assert_eq!(
        udp::Repr::parse(&udp).unwrap(),
        udp::Repr {
            src_port: 12345,
            dst_port: 53,
            payload_len: 10
        }
    );
    assert_eq!(udp.payload(), PAYLOAD);
    assert_eq!((l.l4_src_port(&bytes), l.l4_dst_port(&bytes)), (12345, 53));

    let bytes = frame("ipv4_tcp_syn");
    let l = layout_of(&bytes);
    let segment = tcp::Packet::new_checked(l.l4_bytes(&bytes)).unwrap();
    let repr = tcp::Repr::parse(&segment).unwrap();
    assert_eq!(
        (repr.src_port, repr.dst_port, repr.seq_number),
        (40000, 80, 1000)
    );
    assert_eq!(
        (repr.flags, repr.window_len, repr.options),
        (tcp::Flags::SYN, 64240, &[2u8, 4, 5, 0xb4][..])
    );
    assert_eq!(l.tcp_flags(&bytes), tcp::Flags::SYN);
    let mut out = [0u8; 24];
    let mut emitted = tcp::Packet::new_unchecked(&mut out[..]);
    repr.emit(&mut emitted);
    emitted.fill_checksum(&IpAddr::V4(IP_VM1), &IpAddr::V4(IP_VM2));
    assert_eq!(&out[..], l.l4_bytes(&bytes));

    let bytes = frame("ipv4_icmp_echo");
    let l = layout_of(&bytes);
    let packet = icmpv4::Packet::new_checked(l.l4_bytes(&bytes)).unwrap();
    let repr = icmpv4::Repr::parse(&packet).unwrap();
    assert_eq!(
        repr,
        icmpv4::Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 1,
            data: PAYLOAD
        }
    );
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut icmpv4::Packet::new_unchecked(&mut out[..]));
    assert_eq!(out, l.l4_bytes(&bytes));

    let bytes = frame("ipv4_icmp_frag_needed");
    let l = layout_of(&bytes);
    let packet = icmpv4::Packet::new_checked(l.l4_bytes(&bytes)).unwrap();
    match icmpv4::Repr::parse(&packet).unwrap() {
        icmpv4::Repr::DstUnreachable {
            reason,
            next_hop_mtu,
            data,
        } => {
            assert_eq!(
                (reason, next_hop_mtu),
                (icmpv4::DstUnreachable::FragRequired, 1400)
            );
            let quoted = ipv4::Packet::new_checked(data).unwrap();
            assert_eq!(
                (quoted.src_addr(), quoted.dst_addr(), quoted.dont_frag()),
                (IP_VM1, IP_VM2, true)
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn ipv4_options_and_fragments() {
    let bytes = frame("ipv4_options");
    let l = layout_of(&bytes);
    let ip = ipv4::Packet::new_checked(l.l3_bytes(&bytes)).unwrap();
    let options: Vec<_> = ip.option_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        options,
        [ipv4::Ipv4Option {
            kind: 148,
            data: &[0, 0]
        }]
    );
    assert_eq!(ipv4::Repr::parse(&ip).unwrap().payload_len, 18);

    let first = frame("ipv4_frag_first");
    let ip = ipv4::Packet::new_checked(layout_of(&first).l3_bytes(&first)).unwrap();
    assert_eq!(
        (ip.ident(), ip.more_frags(), ip.frag_offset()),
        (0x4242, true, 0)
    );
    let udp = udp::Packet::new_unchecked(ip.payload());
    assert_eq!(
        (udp.src_port(), udp.dst_port(), udp.len()),
        (5000, 5001, 108)
    );
    let second = frame("ipv4_frag_second");
    let ip = ipv4::Packet::new_checked(layout_of(&second).l3_bytes(&second)).unwrap();
    assert_eq!(
        (ip.ident(), ip.more_frags(), ip.frag_offset()),
        (0x4242, false, 64)
    );
    let repr = ipv4::Repr::parse(&ip).unwrap();
    assert_eq!((repr.frag_offset, repr.payload_len), (64, 44));
}

#[test]
fn vlan_tag() {
    let bytes = frame("vlan_ipv4_udp");
    let eth = ethernet::Frame::new_checked(&bytes[..]).unwrap();
    assert_eq!(eth.ethertype(), EtherType::Vlan);
    let tag = ethernet::VlanTag::new_checked(eth.payload()).unwrap();
    let repr = ethernet::VlanRepr::parse(&tag).unwrap();
    assert_eq!(
        repr,
        ethernet::VlanRepr {
            pcp: 5,
            dei: false,
            vid: 100,
            ethertype: EtherType::Ipv4
        }
    );
    let l = layout_of(&bytes);
    assert_eq!((l.vlan_id(), l.l4_dst_port(&bytes)), (Some(100), 53));
}

#[test]
fn ipv6_extension_headers_and_fragments() {
    let bytes = frame("ipv6_ext_udp");
    let ip = ipv6::Packet::new_checked(&bytes[14..]).unwrap();
    assert_eq!(
        ipv6::Repr::parse(&ip).unwrap().next_header,
        IpProtocol::HopByHop
    );
    let hbh = ipv6::ExtHeader::new_checked(ip.payload()).unwrap();
    assert_eq!(hbh.next_header(), IpProtocol::Ipv6Opts);
    let dst_opts = ipv6::ExtHeader::new_checked(&ip.payload()[hbh.header_len()..]).unwrap();
    assert_eq!(dst_opts.next_header(), IpProtocol::Udp);
    let l = layout_of(&bytes);
    assert_eq!(
        usize::from(l.l4),
        14 + 40 + hbh.header_len() + dst_opts.header_len()
    );

    let first = frame("ipv6_frag_first");
    let frag = ipv6::FragHeader::new_checked(&first[54..]).unwrap();
    assert_eq!(
        (
            frag.next_header(),
            frag.frag_offset(),
            frag.more_frags(),
            frag.ident()
        ),
        (IpProtocol::Udp, 0, true, 0x1234)
    );
    let l = layout_of(&first);
    assert_eq!((l.l4_src_port(&first), l.l4_dst_port(&first)), (5000, 5001));
    let second = frame("ipv6_frag_second");
    let frag = ipv6::FragHeader::new_checked(&second[54..]).unwrap();
    assert_eq!(
        (frag.frag_offset(), frag.more_frags(), frag.ident()),
        (48, true, 0x1234)
    );

    let bytes = frame("ipv6_icmp_echo");
    let l = layout_of(&bytes);
    let packet = icmpv6::Packet::new_checked(l.l4_bytes(&bytes)).unwrap();
    assert!(packet.verify_checksum(&ll(1), &ll(2)));
    assert_eq!(
        icmpv6::Repr::parse(&packet).unwrap(),
        icmpv6::Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 1,
            data: PAYLOAD
        }
    );
}

/// The inner frame both tunnel vectors carry: VM1 -> VM2 ICMP echo id 7 seq 1.
fn check_inner(inner: &[u8]) {
    let l = layout_of(inner);
    assert_eq!((l.src_mac(inner), l.dst_mac(inner)), (MAC_VM1, MAC_VM2));
    assert_eq!((l.ipv4_src(inner), l.ipv4_dst(inner)), (IP_VM1, IP_VM2));
    let packet = icmpv4::Packet::new_checked(l.l4_bytes(inner)).unwrap();
    assert_eq!(
        icmpv4::Repr::parse(&packet).unwrap(),
        icmpv4::Repr::EchoRequest {
            ident: 7,
            seq_no: 1,
            data: PAYLOAD
        }
    );
}

#[test]
fn vxlan() {
    let bytes = frame("vxlan");
    let l = layout_of(&bytes);
    assert_eq!(l.l4_dst_port(&bytes), vxlan::UDP_PORT);
    let udp = udp::Packet::new_checked(l.l4_bytes(&bytes)).unwrap();
    let packet = vxlan::Packet::new_checked(udp.payload()).unwrap();
    assert_eq!(
        vxlan::Repr::parse(&packet).unwrap(),
        vxlan::Repr { vni: 42 }
    );
    let mut header = [0u8; 8];
    vxlan::Repr { vni: 42 }.emit(&mut vxlan::Packet::new_unchecked(&mut header[..]));
    assert_eq!(&header[..], &udp.payload()[..8]);
    check_inner(packet.payload());
}

#[test]
fn geneve_with_ovn_option() {
    let bytes = frame("geneve_ovn");
    let l = layout_of(&bytes);
    assert_eq!(l.l4_dst_port(&bytes), geneve::UDP_PORT);
    let udp = udp::Packet::new_checked(l.l4_bytes(&bytes)).unwrap();
    let packet = geneve::Packet::new_checked(udp.payload()).unwrap();
    let repr = geneve::Repr::parse(&packet).unwrap();
    assert_eq!((repr.vni, repr.critical, repr.oam), (7, true, false));
    assert_eq!(repr.protocol_type, EtherType::TransparentEthernetBridging);
    assert_eq!(
        repr.ovn_metadata(),
        Some(geneve::OvnMetadata {
            ingress_port: 1,
            egress_port: 2
        })
    );
    let options: Vec<_> = packet.option_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(options.len(), 1);
    assert_eq!(
        (
            options[0].class,
            options[0].option_type,
            options[0].data.len()
        ),
        (
            geneve::OVN_OPTION_CLASS,
            geneve::OVN_OPTION_TYPE,
            geneve::OVN_OPTION_LEN
        )
    );
    assert!(options[0].is_critical());

    // Build the same header from scratch: base header, then OVN's option.
    let meta = geneve::OvnMetadata {
        ingress_port: 1,
        egress_port: 2,
    }
    .to_bytes();
    let mut opts = [0u8; 8];
    geneve::emit_options(&[geneve::OvnMetadata::option(&meta)], &mut opts);
    let built = geneve::Repr {
        options: &opts,
        ..repr
    };
    let mut header = vec![0u8; built.buffer_len()];
    built.emit(&mut geneve::Packet::new_unchecked(&mut header[..]));
    assert_eq!(&header[..], &udp.payload()[..16]);
    check_inner(packet.payload());
}

#[test]
fn every_vector_displays() {
    for name in [
        "arp_request",
        "nd_ns",
        "nd_na",
        "ipv4_udp",
        "ipv4_tcp_syn",
        "vxlan",
        "geneve_ovn",
        "ipv6_ext_udp",
    ] {
        let bytes = frame(name);
        let eth = ethernet::Frame::new_checked(&bytes[..]).unwrap();
        assert!(eth.to_string().starts_with("Ethernet src="), "{name}");
        let l = layout_of(&bytes);
        let text = if l.has(Layout::ARP) {
            arp::Packet::new_unchecked(l.l3_bytes(&bytes)).to_string()
        } else if l.has(Layout::IPV4) {
            ipv4::Packet::new_unchecked(l.l3_bytes(&bytes)).to_string()
        } else {
            ipv6::Packet::new_unchecked(l.l3_bytes(&bytes)).to_string()
        };
        assert!(!text.contains('('), "{name}: {text}");
    }
}

use super::*;

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn ipv4(proto: u8, frag: u16, options: &[u8], l4: &[u8]) -> Vec<u8> {
    let ihl = 20 + options.len();
    let total = (ihl + l4.len()) as u16;
    let mut ip = vec![0x40 | (ihl / 4) as u8, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1]);
    ip.extend_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    ip.extend_from_slice(options);
    ip.extend_from_slice(l4);
    ip
}

fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[next, 64]);
    ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    ip.extend_from_slice(rest);
    ip
}

fn udp(len: u16) -> Vec<u8> {
    let mut udp = vec![0x30, 0x39, 0x00, 0x35];
    udp.extend_from_slice(&len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.resize(usize::from(len.max(8)), 0xab);
    udp
}

fn tcp(data_offset: u8) -> Vec<u8> {
    let mut tcp = vec![
        0x30,
        0x39,
        0x00,
        0x50,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        data_offset << 4,
        0x02,
    ];
    tcp.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    tcp
}

#[test]
fn udp_over_ipv4_with_padding() {
    let mut frame = eth(0x0800, &ipv4(17, 0, &[], &udp(12)));
    frame.extend_from_slice(&[0; 6]);
    let layout = parse(&frame).unwrap();
    assert_eq!(
        layout,
        Layout {
            flags: Layout::IPV4 | Layout::L4,
            vlan_tci: 0,
            eth_type: 0x0800,
            l3: 14,
            l4: 34,
            l3_end: 46,
            ip_proto: 17
        }
    );
    assert_eq!(layout.ipv4_src(&frame), Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(layout.ipv4_dst(&frame), Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(layout.l4_src_port(&frame), 12345);
    assert_eq!(layout.l4_dst_port(&frame), 53);
    assert_eq!(layout.ip_ttl(&frame), 64);
    assert_eq!(layout.src_mac(&frame), MacAddr([0x02, 0, 0, 0, 0, 1]));
    assert_eq!(layout.dst_mac(&frame), MacAddr([0x02, 0, 0, 0, 0, 2]));
    assert_eq!(layout.l4_bytes(&frame).len(), 12);
    assert_eq!(layout.ip_protocol(), IpProtocol::Udp);
    assert_eq!(layout.vlan_id(), None);
}

/// The straight-line IPv4/UDP path answers like the general parser for
/// every frame it accepts: a valid frame with each header byte in turn
/// set to values that flip the checks, at several frame lengths.
#[test]
fn udp4_fast_path_agrees_with_the_general_parser() {
    let base = eth(0x0800, &ipv4(17, 0x4000, &[], &udp(18)));
    assert!(parse_udp4_fast(&base).is_some());
    let mut accepted = 0;
    for at in 0..42 {
        let near = [base[at].wrapping_sub(1), base[at].wrapping_add(1)];
        let edges = [
            0, 1, 6, 8, 0x11, 0x1c, 0x20, 0x3f, 0x40, 0x45, 0x46, 0x86, 0xdd, 0xff,
        ];
        for v in near.into_iter().chain(edges) {
            for len in [41, 42, 45, 46, 59, base.len()] {
                let mut f = base.clone();
                f[at] = v;
                f.truncate(len);
                if let Some(fast) = parse_udp4_fast(&f) {
                    assert_eq!(
                        Ok(fast),
                        parse_general(&f),
                        "byte {at} = {v:#x}, {len} bytes"
                    );
                    accepted += 1;
                }
            }
        }
    }
    assert!(accepted > 1000);
}

#[test]
fn vlan_tag() {
    let mut inner = vec![0xa0, 0x64, 0x08, 0x00];
    inner.extend_from_slice(&ipv4(6, 0, &[], &tcp(5)));
    let frame = eth(0x8100, &inner);
    let layout = parse(&frame).unwrap();
    assert!(layout.has(Layout::VLAN | Layout::IPV4 | Layout::L4));
    assert_eq!(
        (layout.vlan_tci, layout.vlan_id(), layout.l3, layout.l4),
        (0xa064, Some(100), 18, 38)
    );
    assert_eq!(layout.tcp_flags(&frame), crate::wire::tcp::Flags::SYN);
    assert_eq!(layout.ethertype(), EtherType::Ipv4);

    let mut stacked = vec![0x00, 0x64, 0x81, 0x00, 0x00, 0x65, 0x08, 0x00];
    stacked.extend_from_slice(&ipv4(6, 0, &[], &tcp(5)));
    assert_eq!(parse(&eth(0x8100, &stacked)), Err(Malformed::StackedVlan));
    stacked[2..4].copy_from_slice(&[0x88, 0xa8]);
    assert_eq!(parse(&eth(0x8100, &stacked)), Err(Malformed::StackedVlan));
    assert_eq!(parse(&eth(0x88a8, &stacked)), Err(Malformed::StackedVlan));
    assert_eq!(
        parse(&eth(0x8100, &[0, 1, 8])),
        Err(Malformed::VlanTruncated)
    );
}

#[test]
fn runts_and_unknown() {
    assert_eq!(parse(&[0; 13]), Err(Malformed::EthernetRunt));
    assert_eq!(parse(&[]), Err(Malformed::EthernetRunt));
    let frame = eth(0x88cc, &[1, 2, 3]);
    let layout = parse(&frame).unwrap();
    assert_eq!(
        (layout.flags, layout.l3, layout.l3_end, layout.eth_type),
        (0, 14, 17, 0x88cc)
    );
    assert_eq!(parse(&vec![0u8; 65536]), Err(Malformed::FrameTooLong));
}

#[test]
fn arp() {
    let body = [
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0,
        10, 0, 0, 2,
    ];
    let mut frame = eth(0x0806, &body);
    frame.resize(60, 0);
    let layout = parse(&frame).unwrap();
    assert!(layout.has(Layout::ARP));
    assert_eq!(layout.l3_end, 42);
    assert_eq!(layout.arp_op(&frame), crate::wire::arp::Operation::Request);
    assert_eq!(layout.arp_sha(&frame), MacAddr([2, 0, 0, 0, 0, 1]));
    assert_eq!(layout.arp_spa(&frame), Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(layout.arp_tha(&frame), MacAddr::default());
    assert_eq!(layout.arp_tpa(&frame), Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(
        parse(&eth(0x0806, &body[..27])),
        Err(Malformed::ArpTruncated)
    );
    let mut bad = body;
    bad[5] = 16;
    assert_eq!(parse(&eth(0x0806, &bad)), Err(Malformed::ArpMalformed));
}

#[test]
fn ipv4_header_errors() {
    let good = ipv4(17, 0, &[], &udp(8));
    assert_eq!(
        parse(&eth(0x0800, &good[..19])),
        Err(Malformed::Ipv4Truncated)
    );
    let mut bad = good.clone();
    bad[0] = 0x65;
    assert_eq!(parse(&eth(0x0800, &bad)), Err(Malformed::Ipv4BadVersion));
    bad[0] = 0x44;
    assert_eq!(parse(&eth(0x0800, &bad)), Err(Malformed::Ipv4BadIhl));
    bad[0] = 0x4f;
    assert_eq!(parse(&eth(0x0800, &bad)), Err(Malformed::Ipv4BadIhl));
    let mut bad = good.clone();
    bad[3] = 19;
    assert_eq!(
        parse(&eth(0x0800, &bad)),
        Err(Malformed::Ipv4BadTotalLength)
    );
    bad[3] = 29;
    assert_eq!(
        parse(&eth(0x0800, &bad)),
        Err(Malformed::Ipv4BadTotalLength)
    );
}

#[test]
fn ipv4_options() {
    let frame = eth(0x0800, &ipv4(17, 0, &[148, 4, 0, 0], &udp(8)));
    let layout = parse(&frame).unwrap();
    assert!(layout.has(Layout::IP_OPTIONS | Layout::L4));
    assert_eq!(layout.l4, 38);
    // NOP, NOP, NOP, End: valid.
    assert!(parse(&eth(0x0800, &ipv4(17, 0, &[1, 1, 1, 0], &udp(8)))).is_ok());
    for bad in [[148, 0, 0, 0], [148, 1, 0, 0], [1, 1, 7, 3], [1, 1, 1, 7]] {
        assert_eq!(
            parse(&eth(0x0800, &ipv4(17, 0, &bad, &udp(8)))),
            Err(Malformed::Ipv4BadOptions),
            "{bad:?}"
        );
    }
}

#[test]
fn ipv4_fragments() {
    // First fragment, MF set, whole UDP header but the datagram continues.
    let mut first = udp(8);
    first[4..6].copy_from_slice(&1000u16.to_be_bytes());
    let layout = parse(&eth(0x0800, &ipv4(17, 0x2000, &[], &first))).unwrap();
    assert!(layout.has(Layout::FRAGMENT | Layout::L4));
    assert!(!layout.has(Layout::LATER_FRAGMENT));
    // Later fragment: no L4 even if the bytes would look like one.
    let layout = parse(&eth(0x0800, &ipv4(17, 185, &[], &[0; 16]))).unwrap();
    assert!(layout.has(Layout::FRAGMENT | Layout::LATER_FRAGMENT));
    assert!(!layout.has(Layout::L4));
    assert_eq!(layout.ip_proto, 17);
    // Tiny first fragments (RFC 1858 §3.1).
    assert_eq!(
        parse(&eth(0x0800, &ipv4(6, 0x2000, &[], &[0; 16]))),
        Err(Malformed::Ipv4TinyFragment)
    );
    assert_eq!(
        parse(&eth(0x0800, &ipv4(6, 0x2000, &[], &tcp(15)))),
        Err(Malformed::Ipv4TinyFragment)
    );
    assert_eq!(
        parse(&eth(0x0800, &ipv4(17, 0x2000, &[], &[0; 4]))),
        Err(Malformed::Ipv4TinyFragment)
    );
    // Overlapping TCP fragment (RFC 1858 §3.2); offset 1 for UDP is merely a fragment.
    assert_eq!(
        parse(&eth(0x0800, &ipv4(6, 1, &[], &[0; 8]))),
        Err(Malformed::Ipv4FragmentOverlap)
    );
    assert!(parse(&eth(0x0800, &ipv4(17, 1, &[], &[0; 8]))).is_ok());
    // DF alone is not a fragment.
    let layout = parse(&eth(0x0800, &ipv4(17, 0x4000, &[], &udp(8)))).unwrap();
    assert!(!layout.has(Layout::FRAGMENT));
}

#[test]
fn l4_errors() {
    assert_eq!(
        parse(&eth(0x0800, &ipv4(6, 0, &[], &[0; 19]))),
        Err(Malformed::TcpTruncated)
    );
    assert_eq!(
        parse(&eth(0x0800, &ipv4(6, 0, &[], &tcp(4)))),
        Err(Malformed::TcpTruncated)
    );
    assert_eq!(
        parse(&eth(0x0800, &ipv4(6, 0, &[], &tcp(6)))),
        Err(Malformed::TcpTruncated)
    );
    assert_eq!(
        parse(&eth(0x0800, &ipv4(17, 0, &[], &[0; 7]))),
        Err(Malformed::UdpTruncated)
    );
    let mut short = udp(8);
    short[5] = 7;
    assert_eq!(
        parse(&eth(0x0800, &ipv4(17, 0, &[], &short))),
        Err(Malformed::UdpTruncated)
    );
    short[5] = 9;
    assert_eq!(
        parse(&eth(0x0800, &ipv4(17, 0, &[], &short))),
        Err(Malformed::UdpTruncated)
    );
    assert_eq!(
        parse(&eth(0x0800, &ipv4(1, 0, &[], &[8, 0, 0, 0]))),
        Err(Malformed::IcmpTruncated)
    );
    let layout = parse(&eth(0x0800, &ipv4(1, 0, &[], &[8, 0, 0, 0, 0, 1, 0, 1]))).unwrap();
    assert!(layout.has(Layout::L4));
    assert_eq!(
        layout.icmp_type(&eth(0x0800, &ipv4(1, 0, &[], &[8, 0, 0, 0, 0, 1, 0, 1]))),
        8
    );
    // Unknown protocol: valid, no L4.
    let layout = parse(&eth(0x0800, &ipv4(47, 0, &[], &[0; 4]))).unwrap();
    assert!(layout.has(Layout::IPV4) && !layout.has(Layout::L4));
    // ICMPv6 over IPv4 is just an unknown protocol.
    assert!(!parse(&eth(0x0800, &ipv4(58, 0, &[], &[0; 4])))
        .unwrap()
        .has(Layout::L4));
}

#[test]
fn ipv6_plain_and_errors() {
    let mut frame = eth(0x86dd, &ipv6(17, &udp(8)));
    frame.extend_from_slice(&[0; 4]);
    let layout = parse(&frame).unwrap();
    assert!(layout.has(Layout::IPV6 | Layout::L4));
    assert!(!layout.has(Layout::IP_OPTIONS));
    assert_eq!((layout.l4, layout.l3_end, layout.ip_proto), (54, 62, 17));
    assert_eq!(
        layout.ipv6_src(&frame),
        "fe80::1".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(
        layout.ipv6_dst(&frame),
        "fe80::2".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(layout.ip_ttl(&frame), 64);

    let good = ipv6(17, &udp(8));
    assert_eq!(
        parse(&eth(0x86dd, &good[..39])),
        Err(Malformed::Ipv6Truncated)
    );
    let mut bad = good.clone();
    bad[0] = 0x40;
    assert_eq!(parse(&eth(0x86dd, &bad)), Err(Malformed::Ipv6BadVersion));
    assert_eq!(
        parse(&eth(0x86dd, &good[..47])),
        Err(Malformed::Ipv6BadPayloadLength)
    );
    assert_eq!(
        parse(&eth(0x86dd, &ipv6(58, &[135, 0, 0]))),
        Err(Malformed::IcmpTruncated)
    );
    assert!(parse(&eth(0x86dd, &ipv6(59, &[]))).is_ok());
}

#[test]
fn ipv6_extension_headers() {
    // Hop-by-Hop (PadN) -> Destination Options (len 1 = 16 bytes) -> UDP.
    let mut rest = vec![60, 0, 1, 4, 0, 0, 0, 0];
    rest.extend_from_slice(&[17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    rest.extend_from_slice(&udp(8));
    let layout = parse(&eth(0x86dd, &ipv6(0, &rest))).unwrap();
    assert!(layout.has(Layout::IPV6 | Layout::L4 | Layout::IP_OPTIONS));
    assert_eq!((layout.l4, layout.ip_proto), (14 + 40 + 24, 17));

    // Hop-by-Hop not first.
    let mut rest = vec![0, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
    rest.extend_from_slice(&udp(8));
    assert_eq!(
        parse(&eth(0x86dd, &ipv6(60, &rest))),
        Err(Malformed::Ipv6BadExtensionHeader)
    );
    // Truncated extension header.
    assert_eq!(
        parse(&eth(0x86dd, &ipv6(60, &[17, 1, 0, 0, 0, 0, 0, 0]))),
        Err(Malformed::Ipv6BadExtensionHeader)
    );
    assert_eq!(
        parse(&eth(0x86dd, &ipv6(60, &[17]))),
        Err(Malformed::Ipv6BadExtensionHeader)
    );
    // Nine Destination Options headers.
    let mut rest = Vec::new();
    for i in 0..9 {
        rest.extend_from_slice(&[if i == 8 { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
    }
    rest.extend_from_slice(&udp(8));
    assert_eq!(
        parse(&eth(0x86dd, &ipv6(60, &rest))),
        Err(Malformed::Ipv6BadExtensionHeader)
    );
    // Eight are fine.
    let mut rest = Vec::new();
    for i in 0..8 {
        rest.extend_from_slice(&[if i == 7 { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
    }
    rest.extend_from_slice(&udp(8));
    assert!(parse(&eth(0x86dd, &ipv6(60, &rest)))
        .unwrap()
        .has(Layout::L4));
}

#[test]
fn ipv6_fragments() {
    // First fragment: offset 0, M=1, whole UDP header whose length covers more.
    let mut rest = vec![17, 0, 0, 1, 0, 0, 0, 7];
    let mut first = udp(8);
    first[4..6].copy_from_slice(&3000u16.to_be_bytes());
    rest.extend_from_slice(&first);
    let layout = parse(&eth(0x86dd, &ipv6(44, &rest))).unwrap();
    assert!(layout.has(Layout::FRAGMENT | Layout::L4 | Layout::IP_OPTIONS));
    assert_eq!(layout.l4, 14 + 48);
    // Later fragment.
    let mut rest = vec![17, 0, 0x05, 0xa8, 0, 0, 0, 7];
    rest.extend_from_slice(&[0; 16]);
    let layout = parse(&eth(0x86dd, &ipv6(44, &rest))).unwrap();
    assert!(layout.has(Layout::FRAGMENT | Layout::LATER_FRAGMENT));
    assert!(!layout.has(Layout::L4));
    assert_eq!(layout.ip_proto, 17);
    // First fragment cut inside the TCP header, or inside an extension header.
    let mut rest = vec![6, 0, 0, 1, 0, 0, 0, 7];
    rest.extend_from_slice(&[0; 12]);
    assert_eq!(
        parse(&eth(0x86dd, &ipv6(44, &rest))),
        Err(Malformed::Ipv6TinyFragment)
    );
    let rest = [60, 0, 0, 1, 0, 0, 0, 7, 6, 2, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        parse(&eth(0x86dd, &ipv6(44, &rest))),
        Err(Malformed::Ipv6TinyFragment)
    );
}

#[test]
fn malformed_names() {
    for (i, reason) in Malformed::ALL.iter().enumerate() {
        assert_eq!(*reason as usize, i);
        let label = reason.as_str();
        assert!(
            label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{label}"
        );
        assert!(!reason.to_string().is_empty());
    }
    let mut labels: Vec<_> = Malformed::ALL.iter().map(|r| r.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), Malformed::ALL.len());
}

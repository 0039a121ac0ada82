//! The answers of `reject`, byte by byte against what OVN 23.03's pinctrl
//! writes (see the module doc), on frames written by flow descriptions.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::answer;
use crate::flow::FlowDesc;
use crate::packet::{HeapBuf, PacketBuf};
use crate::wire::layout::{self, Layout};
use crate::wire::{checksum, icmpv4, icmpv6, ipv4, sctp, tcp};

const MACS: &str = "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02";

fn frame(desc: &str) -> Vec<u8> {
    format!("{MACS} {desc}")
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap()
}

/// The answer to `f`, parsed; `None` if it gets none.
fn reject_frame(f: &[u8]) -> Option<(Vec<u8>, Layout)> {
    let lay = layout::parse(f).unwrap();
    let mut buf = HeapBuf::from_frame(f);
    answer(&mut buf, &lay).then(|| {
        let out = buf.data().to_vec();
        let l = layout::parse(&out).expect("a valid answer");
        assert!(checksum::verify_l4(&out, &l).unwrap(), "L4 checksum");
        assert_eq!(l.src_mac(&out).to_string(), "00:00:00:00:00:02");
        assert_eq!(l.dst_mac(&out).to_string(), "00:00:00:00:00:01");
        (out, l)
    })
}

fn reject(desc: &str) -> Option<(Vec<u8>, Layout)> {
    reject_frame(&frame(desc))
}

/// The answer's IPv4 header: ttl, DF, DSCP, and it verifies.
fn ipv4_of(f: &[u8], l: &Layout) -> (u8, bool, u8) {
    let p = ipv4::Packet::new_checked(l.l3_bytes(f)).unwrap();
    assert!(p.verify_checksum());
    assert_eq!(p.ident(), 0);
    (p.hop_limit(), p.dont_frag(), p.dscp())
}

#[test]
fn tcp_gets_rst_ack_acknowledging_seq_plus_one() {
    // A flow description's segment is sequence 1.
    for flags in ["0x02", "0x10", "0x18"] {
        let desc =
            format!("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 tcp.src=40000 tcp.dst=22 tcp.flags={flags}");
        let (f, l) = reject(&desc).unwrap();
        assert_eq!(l.ipv4_src(&f), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(l.ipv4_dst(&f), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(ipv4_of(&f, &l), (63, true, 0));
        let rst = tcp::Packet::new_checked(l.l4_bytes(&f)).unwrap();
        assert_eq!((rst.src_port(), rst.dst_port()), (22, 40000));
        assert_eq!(rst.flags(), tcp::Flags::RST | tcp::Flags::ACK);
        assert_eq!((rst.seq_number(), rst.ack_number()), (0, 2));
        assert_eq!(rst.header_len(), 20);
        assert_eq!(f.len(), 14 + 20 + 20);
    }
    assert!(reject("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 tcp.flags=0x04").is_none());
    assert!(reject("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 tcp.flags=0x14").is_none());
    let (f, l) =
        reject("ip6.src=fd00::1 ip6.dst=fd00::2 tcp.src=40000 tcp.dst=22 tcp.flags=0x02").unwrap();
    assert_eq!(l.ipv6_src(&f), "fd00::2".parse::<Ipv6Addr>().unwrap());
    assert_eq!(l.ip_ttl(&f), 63);
    assert_eq!(l.tcp_flags(&f), tcp::Flags::RST | tcp::Flags::ACK);
    assert_eq!(f.len(), 14 + 40 + 20);
}

#[test]
fn udp_gets_port_unreachable_and_others_host_unreachable() {
    let sent = frame("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.src=5000 udp.dst=53 payload=10");
    let (f, l) = reject_frame(&sent).unwrap();
    assert_eq!(l.ipv4_dst(&f), Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(ipv4_of(&f, &l), (255, true, 0));
    let icmp = icmpv4::Packet::new_checked(l.l4_bytes(&f)).unwrap();
    assert_eq!(icmp.msg_type(), icmpv4::Message::DstUnreachable);
    assert_eq!(icmp.msg_code(), 3);
    assert_eq!(icmp.payload(), &sent[14..], "the whole packet quoted");
    let (f, l) = reject("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 icmp4.type=8").unwrap();
    assert_eq!((l.icmp_type(&f), l.icmp_code(&f)), (3, 1));

    let sent = frame("ip6.src=fd00::1 ip6.dst=fd00::2 udp.src=5000 udp.dst=53");
    let (f, l) = reject_frame(&sent).unwrap();
    assert_eq!(l.ip_ttl(&f), 255);
    let icmp = icmpv6::Packet::new_checked(l.l4_bytes(&f)).unwrap();
    assert_eq!(icmp.msg_type(), icmpv6::Message::DstUnreachable);
    assert_eq!(icmp.msg_code(), 4);
    assert_eq!(icmp.payload(), &sent[14..]);
    let (f, l) = reject("ip6.src=fd00::1 ip6.dst=fd00::2 icmp6.type=128").unwrap();
    assert_eq!((l.icmp_type(&f), l.icmp_code(&f)), (1, 1));
}

#[test]
fn the_quote_stops_at_576_and_1280_bytes_as_ovn_counts_them() {
    let (f, _) = reject("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53 payload=1400").unwrap();
    assert_eq!(f.len(), 576);
    let (f, _) = reject("ip6.src=fd00::1 ip6.dst=fd00::2 udp.dst=53 payload=1400").unwrap();
    assert_eq!(f.len(), 1280);
}

#[test]
fn errors_multicast_sctp_and_later_fragments_get_no_answer() {
    for t in [0, 3, 4, 5, 11, 12] {
        let d = format!("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 icmp4.type={t}");
        assert_eq!(reject(&d).is_none(), t != 0, "icmp4 type {t}");
    }
    for t in [1, 2, 3, 4] {
        assert!(reject(&format!("ip6.src=fd00::1 ip6.dst=fd00::2 icmp6.type={t}")).is_none());
    }
    let mcast = "eth.src=00:00:00:00:00:01 eth.dst=ff:ff:ff:ff:ff:ff ip4.src=10.0.0.1 ip4.dst=10.0.0.255 udp.dst=67"
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    assert!(reject_frame(&mcast).is_none());
    // SCTP: an ABORT gets none, nor an INIT cut short.
    assert!(abort(&sctp_frame(0x0102_0304, &[sctp::CHUNK_ABORT, 0, 0, 4])).is_none());
    assert!(abort(&sctp_frame(0, &[sctp::CHUNK_INIT, 0, 0, 20, 0xaa, 0xbb])).is_none());
    // A later fragment has no L4 header to answer.
    let mut frag = frame("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=9 payload=64");
    let mut ip = ipv4::Packet::new_unchecked(&mut frag[14..]);
    ip.set_frag_offset(64);
    ip.fill_checksum();
    assert!(reject_frame(&frag).is_none());
}

#[test]
fn a_vlan_tag_stays_on_the_answer() {
    let (f, l) = reject("vlan.vid=42 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53").unwrap();
    assert_eq!(l.vlan_id(), Some(42));
    assert_eq!(l.l3, 18);
    assert_eq!(l.icmp_type(&f), 3);
    let src: IpAddr = l.ipv4_src(&f).into();
    assert_eq!(src, "10.0.0.2".parse::<IpAddr>().unwrap());
}

/// An SCTP packet 10.0.0.1:5000 -> 10.0.0.2:9 with verification tag
/// `vtag` and `chunks` (checksummed).
fn sctp_frame(vtag: u32, chunks: &[u8]) -> Vec<u8> {
    let payload = sctp::HEADER_LEN + chunks.len() - crate::wire::udp::HEADER_LEN;
    let mut f = frame(&format!(
        "ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.src=5000 udp.dst=9 payload={payload}"
    ));
    let mut ip = ipv4::Packet::new_unchecked(&mut f[14..]);
    ip.set_next_header(crate::wire::IpProtocol::Sctp);
    ip.fill_checksum();
    let l4 = &mut f[34..];
    l4[sctp::HEADER_LEN..].copy_from_slice(chunks);
    let mut p = sctp::Packet(l4);
    p.set_header(5000, 9, vtag);
    p.fill_checksum();
    f
}

/// The ABORT answering `f`: (verification tag, chunk flags), after checking
/// its addresses, ports, TTL, length and CRC32c.
fn abort(f: &[u8]) -> Option<(u32, u8)> {
    let lay = layout::parse(f).unwrap();
    let mut buf = HeapBuf::from_frame(f);
    if !answer(&mut buf, &lay) {
        return None;
    }
    let out = buf.data().to_vec();
    let l = layout::parse(&out).unwrap();
    assert_eq!(l.src_mac(&out).to_string(), "00:00:00:00:00:02");
    assert_eq!(ipv4_of(&out, &l), (63, true, 0));
    assert_eq!(l.ipv4_src(&out).to_string(), "10.0.0.2");
    let s = l.l4_bytes(&out);
    assert_eq!(s.len(), 16, "the common header and one ABORT chunk");
    let p = sctp::Packet(s);
    assert_eq!((p.src_port(), p.dst_port()), (9, 5000));
    assert_eq!((s[12], &s[14..16]), (sctp::CHUNK_ABORT, &[0u8, 4][..]));
    let mut zeroed = s.to_vec();
    zeroed[8..12].fill(0);
    assert_eq!(s[8..12], sctp::crc32c(&zeroed).to_le_bytes(), "CRC32c");
    Some((p.verification_tag(), s[13]))
}

#[test]
fn sctp_gets_an_abort_with_the_tag_rfc_9260_asks_for() {
    // An INIT (tag 0): the INIT's Initiate Tag, T clear (§8.4 item 3).
    let mut init = vec![sctp::CHUNK_INIT, 0, 0, 20];
    init.extend(0xdead_beef_u32.to_be_bytes());
    init.extend([0; 12]);
    assert_eq!(abort(&sctp_frame(0, &init)), Some((0xdead_beef, 0)));
    // Anything else: its own tag reflected, T set (item 8).
    let data = [0, 3, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        abort(&sctp_frame(0x0102_0304, &data)),
        Some((0x0102_0304, sctp::ABORT_FLAG_T))
    );
}

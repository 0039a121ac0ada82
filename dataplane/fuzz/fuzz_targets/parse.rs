//! Fuzz target: the hot-path parser and every `Repr::parse` of `dataplane::wire`.
//!
//! The input is a frame. `layout::parse` must never panic, and when it accepts a frame,
//! the offset accessors and checked views at its offsets must not panic either. Every
//! protocol's `Packet::new_checked` / `Repr::parse` / `Display` then runs on the whole
//! input and on the slices at the parsed offsets.
//!
//! Build: `cd dataplane/fuzz && cargo +nightly fuzz build`. Run with the scapy frames as
//! seeds (new inputs go to corpus/parse, never into tests/data):
//! `cargo +nightly fuzz run parse corpus/parse ../../tests/data`.
#![no_main]

use std::net::IpAddr;

use dataplane::wire::{
    arp, checksum, ethernet, geneve, icmpv4, icmpv6, ipv4, ipv6, layout, tcp, udp, vxlan, IpProtocol, Layout,
};
use libfuzzer_sys::fuzz_target;

/// Runs every parser of the crate over `data`, formatting what parses.
fn every_repr(data: &[u8]) {
    if let Ok(frame) = ethernet::Frame::new_checked(data) {
        let _ = ethernet::Repr::parse(&frame);
        let _ = frame.to_string();
        if let Ok(tag) = ethernet::VlanTag::new_checked(frame.payload()) {
            let _ = ethernet::VlanRepr::parse(&tag);
            let _ = tag.to_string();
        }
    }
    if let Ok(packet) = arp::Packet::new_checked(data) {
        let _ = arp::Repr::parse(&packet);
        let _ = packet.to_string();
    }
    if let Ok(packet) = ipv4::Packet::new_checked(data) {
        let _ = ipv4::Repr::parse(&packet);
        let _ = packet.option_iter().count();
        let _ = packet.to_string();
    }
    if let Ok(packet) = ipv6::Packet::new_checked(data) {
        let _ = ipv6::Repr::parse(&packet);
        let _ = packet.to_string();
    }
    if let Ok(header) = ipv6::ExtHeader::new_checked(data) {
        let _ = (header.next_header(), header.data().len());
    }
    if let Ok(header) = ipv6::FragHeader::new_checked(data) {
        let _ = (header.frag_offset(), header.more_frags(), header.ident());
    }
    if let Ok(packet) = icmpv4::Packet::new_checked(data) {
        let _ = icmpv4::Repr::parse(&packet);
        let _ = packet.to_string();
    }
    if let Ok(packet) = icmpv6::Packet::new_checked(data) {
        let _ = icmpv6::Repr::parse(&packet);
        let _ = icmpv6::NdiscRepr::parse(&packet);
        let _ = packet.verify_checksum(&"fe80::1".parse().unwrap(), &"fe80::2".parse().unwrap());
        let _ = packet.to_string();
    }
    let _ = icmpv6::NdiscOptions::new(data).count();
    if let Ok(packet) = udp::Packet::new_checked(data) {
        let _ = udp::Repr::parse(&packet);
        let _ = packet.verify_checksum(&IpAddr::from([192, 0, 2, 1]), &IpAddr::from([192, 0, 2, 2]));
        let _ = packet.to_string();
    }
    if let Ok(packet) = tcp::Packet::new_checked(data) {
        let _ = tcp::Repr::parse(&packet);
        let _ = packet.to_string();
    }
    if let Ok(packet) = vxlan::Packet::new_checked(data) {
        let _ = vxlan::Repr::parse(&packet);
        let _ = packet.to_string();
    }
    if let Ok(packet) = geneve::Packet::new_checked(data) {
        if let Ok(repr) = geneve::Repr::parse(&packet) {
            let _ = repr.ovn_metadata();
        }
        let _ = packet.option_iter().count();
        let _ = packet.to_string();
    }
    let _ = geneve::Options::new(data).count();
    let _ = geneve::OvnMetadata::find(data);
}

fuzz_target!(|data: &[u8]| {
    every_repr(data);
    let Ok(l) = layout::parse(data) else {
        return;
    };
    assert!(l.l3 <= l.l3_end && usize::from(l.l3_end) <= data.len());
    let _ = (l.src_mac(data), l.dst_mac(data), l.vlan_id());
    every_repr(l.l3_bytes(data));
    if l.has(Layout::IPV4) {
        let _ = (l.ipv4_src(data), l.ipv4_dst(data), l.ip_ttl(data));
        assert!(ipv4::Packet::new_checked(l.l3_bytes(data)).is_ok());
    }
    if l.has(Layout::IPV6) {
        let _ = (l.ipv6_src(data), l.ipv6_dst(data), l.ip_ttl(data));
        assert!(ipv6::Packet::new_checked(l.l3_bytes(data)).is_ok());
    }
    if l.has(Layout::ARP) {
        let _ = (l.arp_op(data), l.arp_sha(data), l.arp_spa(data), l.arp_tha(data), l.arp_tpa(data));
    }
    if l.has(Layout::L4) {
        assert!(l.l3 < l.l4 && l.l4 <= l.l3_end);
        let segment = l.l4_bytes(data);
        every_repr(segment);
        match l.ip_protocol() {
            IpProtocol::Tcp => {
                let _ = (l.l4_src_port(data), l.l4_dst_port(data), l.tcp_flags(data));
                assert!(tcp::Packet::new_checked(segment).is_ok());
            }
            IpProtocol::Udp => {
                let _ = (l.l4_src_port(data), l.l4_dst_port(data));
                if let Ok(udp) = udp::Packet::new_checked(segment) {
                    every_repr(udp.payload());
                }
            }
            _ => {
                let _ = (l.icmp_type(data), l.icmp_code(data));
            }
        }
        let mut copy = data.to_vec();
        if checksum::fill_l4(&mut copy, &l).is_ok() {
            assert_eq!(checksum::verify_l4(&copy, &l), Ok(true));
        }
    }
});

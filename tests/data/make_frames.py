#!/usr/bin/python3
"""Writes reference frames for switchyard's `dataplane::wire` tests, built by scapy.

Run from anywhere with Debian's scapy:  /usr/bin/python3 tests/data/make_frames.py
Each frame goes to tests/data/NAME.bin (raw bytes, Ethernet first, no FCS). The
expected parse of every frame goes to tests/data/frames.tsv, one line per frame:

    name  expect  flags  vlan_tci  eth_type  l3  l4  l3_end  ip_proto

`expect` is `ok` or the `Malformed::as_str()` label the hot-path parser must return;
the offsets are measured on scapy's own layers (a layer's offset is the frame length
minus the length of that layer and everything after it), so they are an oracle
independent of the Rust parser. `-` marks a field that does not apply. The protocol
fields the Rust tests check per frame are the constants below; the comment above each
frame says which.
"""

import os
import sys

from scapy.all import (
    ARP, ICMP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether, ICMPv6EchoRequest, ICMPv6ND_NA,
    ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPerror, IPOption_Router_Alert,
    IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, Padding, Raw, UDPerror,
    fragment, fragment6,
)
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.layers.vxlan import VXLAN

OUT = os.path.dirname(os.path.abspath(__file__))

# The values the Rust tests check (dataplane/tests/wire_vectors.rs repeats them).
MAC_VM1 = "02:00:00:00:00:01"
MAC_VM2 = "02:00:00:00:00:02"
MAC_HV1 = "02:00:00:00:01:01"
MAC_HV2 = "02:00:00:00:01:02"
IP_VM1 = "10.0.0.1"
IP_VM2 = "10.0.0.2"
IP_HV1 = "192.168.0.1"
IP_HV2 = "192.168.0.2"
LL_VM1 = "fe80::1"
LL_VM2 = "fe80::2"
SOLICITED_NODE_VM2 = "ff02::1:ff00:2"
PAYLOAD = b"switchyard"
VNI_VXLAN = 42
VNI_GENEVE = 7
OVN_INGRESS = 1
OVN_EGRESS = 2


def eth(dst=MAC_VM2, src=MAC_VM1):
    return Ether(dst=dst, src=src)


def pad60(pkt):
    """Pads to the 60-byte Ethernet minimum, as a NIC would before the FCS."""
    raw = bytes(pkt)
    return pkt / Padding(b"\x00" * (60 - len(raw))) if len(raw) < 60 else pkt


def ovn_option():
    value = (OVN_INGRESS << 16) | OVN_EGRESS
    return GeneveOptions(classid=0x0102, type=0x80, data=value.to_bytes(4, "big"))


def inner_icmp():
    return eth(MAC_VM2, MAC_VM1) / IP(src=IP_VM1, dst=IP_VM2) / ICMP(id=7, seq=1) / PAYLOAD


def frames():
    """(name, packet) in file order. Comments give the fields the Rust tests check."""
    ipv4_udp_big = IP(src=IP_VM1, dst=IP_VM2, id=0x4242) / UDP(sport=5000, dport=5001) / (b"x" * 100)
    frag_v4 = fragment(ipv4_udp_big, fragsize=64)
    ipv6_udp_big = IPv6(src=LL_VM1, dst=LL_VM2) / IPv6ExtHdrFragment(id=0x1234) / UDP(sport=5000, dport=5001) / (b"y" * 100)
    frag_v6 = fragment6(ipv6_udp_big, 96)
    return [
        # ARP request: who-has IP_VM2 tell IP_VM1 (MAC_VM1), broadcast, padded to 60.
        ("arp_request", pad60(eth("ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=MAC_VM1, psrc=IP_VM1, pdst=IP_VM2))),
        # ARP reply: IP_VM2 is-at MAC_VM2, to MAC_VM1 / IP_VM1.
        ("arp_reply", pad60(eth(MAC_VM1, MAC_VM2) / ARP(op=2, hwsrc=MAC_VM2, psrc=IP_VM2, hwdst=MAC_VM1, pdst=IP_VM1))),
        # NS from LL_VM1 for LL_VM2 to its solicited-node group, SLLA MAC_VM1, hop limit 255.
        ("nd_ns", eth("33:33:ff:00:00:02") / IPv6(src=LL_VM1, dst=SOLICITED_NODE_VM2, hlim=255)
         / ICMPv6ND_NS(tgt=LL_VM2) / ICMPv6NDOptSrcLLAddr(lladdr=MAC_VM1)),
        # NA from LL_VM2 to LL_VM1: S and O set, R clear, TLLA MAC_VM2.
        ("nd_na", eth(MAC_VM1, MAC_VM2) / IPv6(src=LL_VM2, dst=LL_VM1, hlim=255)
         / ICMPv6ND_NA(tgt=LL_VM2, R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=MAC_VM2)),
        # UDP 12345 -> 53 carrying PAYLOAD, IPv4 id 0x1234 ttl 64.
        ("ipv4_udp", eth() / IP(src=IP_VM1, dst=IP_VM2, id=0x1234, ttl=64) / UDP(sport=12345, dport=53) / PAYLOAD),
        # TCP SYN 40000 -> 80, seq 1000, window 64240, MSS 1460 option (header 24 bytes).
        ("ipv4_tcp_syn", pad60(eth() / IP(src=IP_VM1, dst=IP_VM2) / TCP(sport=40000, dport=80, flags="S", seq=1000, window=64240, options=[("MSS", 1460)]))),
        # ICMP echo request id 0x1234 seq 1 carrying PAYLOAD.
        ("ipv4_icmp_echo", eth() / IP(src=IP_VM1, dst=IP_VM2) / ICMP(type=8, id=0x1234, seq=1) / PAYLOAD),
        # ICMP fragmentation needed, next-hop MTU 1400, quoting an IPv4/UDP header.
        ("ipv4_icmp_frag_needed", eth(MAC_VM1, MAC_VM2) / IP(src=IP_VM2, dst=IP_VM1) / ICMP(type=3, code=4, nexthopmtu=1400)
         / IPerror(src=IP_VM1, dst=IP_VM2, flags="DF") / UDPerror(sport=12345, dport=53)),
        # IPv4 with a Router Alert option (IHL 6), then UDP 12345 -> 53.
        ("ipv4_options", eth() / IP(src=IP_VM1, dst=IP_VM2, options=[IPOption_Router_Alert()]) / UDP(sport=12345, dport=53) / PAYLOAD),
        # First and second fragment of a 108-byte UDP datagram 5000 -> 5001, id 0x4242:
        # offsets 0 (MF) and 64 (last).
        ("ipv4_frag_first", eth() / frag_v4[0]),
        ("ipv4_frag_second", eth() / frag_v4[1]),
        # 802.1Q tag, PCP 5, VID 100, around IPv4 UDP 12345 -> 53.
        ("vlan_ipv4_udp", eth() / Dot1Q(prio=5, vlan=100) / IP(src=IP_VM1, dst=IP_VM2) / UDP(sport=12345, dport=53) / PAYLOAD),
        # IPv6 Hop-by-Hop, then Destination Options, then UDP 12345 -> 53.
        ("ipv6_ext_udp", eth() / IPv6(src=LL_VM1, dst=LL_VM2) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
         / UDP(sport=12345, dport=53) / PAYLOAD),
        # ICMPv6 echo request id 0x1234 seq 1.
        ("ipv6_icmp_echo", eth() / IPv6(src=LL_VM1, dst=LL_VM2) / ICMPv6EchoRequest(id=0x1234, seq=1, data=PAYLOAD)),
        # First and second of three IPv6 fragments (96-byte frames) of a UDP datagram
        # 5000 -> 5001, id 0x1234: offsets 0 and 48, both with M set.
        ("ipv6_frag_first", eth() / frag_v6[0]),
        ("ipv6_frag_second", eth() / frag_v6[1]),
        # VXLAN, VNI_VXLAN, between hypervisors, carrying inner_icmp().
        ("vxlan", eth(MAC_HV2, MAC_HV1) / IP(src=IP_HV1, dst=IP_HV2) / UDP(sport=49152, dport=4789)
         / VXLAN(vni=VNI_VXLAN, flags=0x08) / inner_icmp()),
        # Geneve, VNI_GENEVE, C bit, OVN option (ingress OVN_INGRESS, egress OVN_EGRESS),
        # protocol 0x6558, carrying inner_icmp().
        ("geneve_ovn", eth(MAC_HV2, MAC_HV1) / IP(src=IP_HV1, dst=IP_HV2) / UDP(sport=49153, dport=6081)
         / GENEVE(vni=VNI_GENEVE, proto=0x6558, critical=1, options=[ovn_option()]) / inner_icmp()),
        # Hostile frames: each must be refused with the label in frames.tsv.
        ("bad_runt", Raw(bytes(eth())[:13])),
        ("bad_qinq", eth() / Dot1AD(vlan=10) / Dot1Q(vlan=100) / IP(src=IP_VM1, dst=IP_VM2) / UDP() / PAYLOAD),
        ("bad_stacked_8021q", eth() / Dot1Q(vlan=10) / Dot1Q(vlan=100) / IP(src=IP_VM1, dst=IP_VM2) / UDP() / PAYLOAD),
        ("bad_ipv4_ihl", eth() / IP(src=IP_VM1, dst=IP_VM2, ihl=4) / UDP() / PAYLOAD),
        ("bad_ipv4_total_length", eth() / IP(src=IP_VM1, dst=IP_VM2, len=200) / UDP() / PAYLOAD),
        ("bad_ipv4_option", eth() / IP(src=IP_VM1, dst=IP_VM2, ihl=6, options=[]) / Raw(b"\x94\x00\x00\x00") / UDP() / PAYLOAD),
        ("bad_tcp_data_offset", eth() / IP(src=IP_VM1, dst=IP_VM2) / TCP(dataofs=3) / PAYLOAD),
        ("bad_udp_length", eth() / IP(src=IP_VM1, dst=IP_VM2) / UDP(len=200) / PAYLOAD),
        ("bad_tiny_fragment", eth() / IP(src=IP_VM1, dst=IP_VM2, flags="MF", proto=6) / Raw(b"\x9c\x40\x00\x50\x00\x00\x00\x01")),
        ("bad_fragment_overlap", eth() / IP(src=IP_VM1, dst=IP_VM2, frag=1, proto=6) / Raw(b"\x00" * 16)),
        ("bad_arp_hlen", pad60(eth("ff:ff:ff:ff:ff:ff") / ARP(hwlen=8, hwsrc=MAC_VM1, psrc=IP_VM1, pdst=IP_VM2))),
        ("bad_ipv6_payload_length", eth() / IPv6(src=LL_VM1, dst=LL_VM2, plen=400) / UDP() / PAYLOAD),
    ]


EXPECT_ERROR = {
    "bad_runt": "ethernet_runt",
    "bad_qinq": "stacked_vlan",
    "bad_stacked_8021q": "stacked_vlan",
    "bad_ipv4_ihl": "ipv4_bad_ihl",
    "bad_ipv4_total_length": "ipv4_bad_total_length",
    "bad_ipv4_option": "ipv4_bad_options",
    "bad_tcp_data_offset": "tcp_truncated",
    "bad_udp_length": "udp_truncated",
    "bad_tiny_fragment": "ipv4_tiny_fragment",
    "bad_fragment_overlap": "ipv4_fragment_overlap",
    "bad_arp_hlen": "arp_malformed",
    "bad_ipv6_payload_length": "ipv6_bad_payload_length",
}

L4_LAYERS = (TCP, UDP, ICMP, ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6ND_NA)


def offset_of(pkt, layer):
    """Bytes before `layer` in the built frame."""
    return len(bytes(pkt)) - len(bytes(pkt[layer]))


def expected(name, pkt):
    if name in EXPECT_ERROR:
        return [EXPECT_ERROR[name]] + ["-"] * 7
    raw = bytes(pkt)
    pkt = Ether(raw)  # dissect again, so computed fields (lengths) have values
    flags, vlan_tci = [], "-"
    l3 = 14
    eth_type = pkt[Ether].type
    if Dot1Q in pkt:
        flags.append("VLAN")
        tag = pkt[Dot1Q]
        vlan_tci = (tag.prio << 13) | (tag.id << 12) | tag.vlan
        eth_type = tag.type
        l3 = 18
    l4, ip_proto, l3_end = "-", "-", len(raw)
    if ARP in pkt:
        flags.append("ARP")
        l3_end = l3 + 28
    elif IP in pkt:
        ip = pkt[IP]
        flags.append("IPV4")
        l3_end = l3 + ip.len
        ip_proto = ip.proto
        if ip.ihl > 5:
            flags.append("IP_OPTIONS")
        if ip.flags.MF or ip.frag:
            flags.append("FRAGMENT")
        if ip.frag:
            flags.append("LATER_FRAGMENT")
    elif IPv6 in pkt:
        ip6 = pkt[IPv6]
        flags.append("IPV6")
        l3_end = l3 + 40 + ip6.plen
        exts = [h for h in (IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment) if h in pkt]
        if exts:
            flags.append("IP_OPTIONS")
        if IPv6ExtHdrFragment in pkt:
            frag = pkt[IPv6ExtHdrFragment]
            flags.append("FRAGMENT")
            ip_proto = frag.nh
            if frag.offset:
                flags.append("LATER_FRAGMENT")
        else:
            last = pkt[exts[-1]] if exts else ip6
            ip_proto = last.nh
    if "LATER_FRAGMENT" not in flags:
        for layer in L4_LAYERS:
            if layer in pkt:
                # The outermost L4 header (tunnel frames carry an inner one too).
                l4 = min(offset_of(pkt, lay) for lay in L4_LAYERS if lay in pkt)
                flags.append("L4")
                break
    order = ["VLAN", "IPV4", "IPV6", "ARP", "L4", "FRAGMENT", "LATER_FRAGMENT", "IP_OPTIONS"]
    flags.sort(key=order.index)
    return ["ok", "|".join(flags) or "-", vlan_tci, f"0x{eth_type:04x}", l3, l4, l3_end, ip_proto]


def main():
    rows = []
    for name, pkt in frames():
        raw = bytes(pkt)
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(raw)
        rows.append([name] + [str(v) for v in expected(name, pkt)])
    with open(os.path.join(OUT, "frames.tsv"), "w") as f:
        f.write("# name\texpect\tflags\tvlan_tci\teth_type\tl3\tl4\tl3_end\tip_proto\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    print(f"wrote {len(rows)} frames to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()

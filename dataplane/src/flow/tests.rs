use super::*;
use crate::wire::layout::{self, Layout};

#[test]
fn udp_flow_builds_a_valid_frame() {
    let f: FlowDesc = "inport==\"vm1\" && eth.src==00:00:00:00:00:01 && ip4.src==10.0.0.1 && ip4.dst==10.0.0.2 && udp.dst==53 payload=18"
        .parse()
        .unwrap();
    assert_eq!(f.inport.as_deref(), Some("vm1"));
    let frame = f.to_frame().unwrap();
    assert_eq!(frame.len(), 60);
    let lay = layout::parse(&frame).unwrap();
    assert!(lay.has(Layout::IPV4 | Layout::L4));
    assert_eq!(lay.l4_dst_port(&frame), 53);
    assert!(crate::wire::checksum::verify_l4(&frame, &lay).unwrap());
}

#[test]
fn arp_nd_and_vlan_flows() {
    let arp = "arp arp.op=2 arp.spa=10.0.0.9 arp.tpa=10.0.0.1"
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    let lay = layout::parse(&arp).unwrap();
    assert!(lay.has(Layout::ARP));
    assert_eq!(lay.arp_spa(&arp), Ipv4Addr::new(10, 0, 0, 9));
    let ns = "ip6.src=fd00::1 nd_ns nd.target=fd00::2 nd.sll=00:00:00:00:00:01"
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    let lay = layout::parse(&ns).unwrap();
    assert_eq!(lay.icmp_type(&ns), 135);
    assert!(crate::wire::checksum::verify_l4(&ns, &lay).unwrap());
    let tagged = "vlan.vid=7 ip4 tcp"
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    assert_eq!(layout::parse(&tagged).unwrap().vlan_id(), Some(7));
}

#[test]
fn bad_descriptions_are_errors() {
    assert!(matches!(
        "eth.src=xyz".parse::<FlowDesc>(),
        Err(FlowError::BadValue { .. })
    ));
    assert!(matches!(
        "colour=blue".parse::<FlowDesc>(),
        Err(FlowError::UnknownField(_))
    ));
    assert!(matches!(
        "ip4 icmp6".parse::<FlowDesc>(),
        Err(FlowError::Inconsistent(_))
    ));
}

/// What `switchyard trace` was once given and silently misread: each
/// is now an error naming the field, never a different packet.
#[test]
fn out_of_range_and_conflicting_fields_are_errors() {
    let err = |d: &str| d.parse::<FlowDesc>().unwrap_err().to_string();
    assert_eq!(
        err("udp.dst=70000"),
        "udp.dst=70000 is out of range (0 to 65535)"
    );
    assert_eq!(
        err("vlan.vid=4096"),
        "vlan.vid=4096 is out of range (0 to 4095)"
    );
    assert_eq!(err("ip.ttl=300"), "ip.ttl=300 is out of range (0 to 255)");
    assert_eq!(
        err("tcp.flags=0x100"),
        "tcp.flags=0x100 is out of range (0 to 255)"
    );
    assert!(err("udp.dst=53 tcp.dst=22").contains("tcp.dst conflicts with udp"));
    assert!(err("ip4.src=10.0.0.1 ip6.dst=fd00::2").contains("ip6.dst conflicts with ip4"));
    assert!(err("udp.dst=53 udp.dst=54").contains("udp.dst is given twice"));
    assert!(err("arp udp").contains("arp leaves no IP header"));
    assert!(err("eth.type=0x800 ip.ttl=3").contains("eth.type leaves no IP header"));
    assert!(err("ip6 nd_ns nd_na").contains("nd_na conflicts with nd_ns"));
}

/// ovn-trace's microflow syntax, spaces and all, builds the same
/// packet as the word syntax; ip.ttl applies whatever its position.
#[test]
fn ovn_trace_microflows_parse_as_words_do() {
    let micro: FlowDesc = "inport == \"vm1\" && eth.src == 00:00:00:00:00:01 && ip.ttl == 5 && ip6.dst == fd00::9 && udp.dst == 53"
        .parse()
        .unwrap();
    let words: FlowDesc =
        "inport=vm1 eth.src=00:00:00:00:00:01 ip6.dst=fd00::9 udp.dst=53 ip.ttl=5"
            .parse()
            .unwrap();
    assert_eq!(micro, words);
    assert!(matches!(words.l3, L3::Ipv6 { hop_limit: 5, .. }));
    // What trace prints reads back as the same packet.
    assert_eq!(words.to_string().parse::<FlowDesc>().unwrap(), words);
    assert_eq!(
        "tcp".parse::<FlowDesc>().unwrap().to_string(),
        "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 \
         ip.ttl=64 tcp.src=1024 tcp.dst=80 tcp.flags=0x02 payload=0"
    );
    assert_eq!(words.l4, L4::Udp { src: 1024, dst: 53 });
}

use super::*;

fn src() -> Ipv6Addr {
    "fe80::1".parse().unwrap()
}

fn dst() -> Ipv6Addr {
    "ff02::1:ff00:2".parse().unwrap()
}

// NS for fe80::2 from fe80::1 (to the solicited-node address), SLLA 02:00:00:00:00:01.
static NS: [u8; 32] = [
    0x87, 0x00, 0x7a, 0x97, 0, 0, 0, 0, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x01,
    0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
];

// Echo request id 0x1234 seq 1 data "hi".
static ECHO: [u8; 10] = [0x80, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, b'h', b'i'];

fn ns_repr() -> NdiscRepr {
    NdiscRepr::NeighborSolicit {
        target_addr: "fe80::2".parse().unwrap(),
        lladdr: Some(MacAddr([0x02, 0, 0, 0, 0, 1])),
    }
}

#[test]
fn deconstruct_ns() {
    let packet = Packet::new_checked(&NS[..]).unwrap();
    assert_eq!(packet.msg_type(), Message::NeighborSolicit);
    assert_eq!(packet.msg_code(), 0);
    assert!(packet.verify_checksum(&src(), &dst()));
    assert_eq!(packet.target_addr(), "fe80::2".parse::<Ipv6Addr>().unwrap());
    let options: Vec<_> = NdiscOptions::new(packet.ndisc_options())
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(
        options,
        [NdiscOption {
            kind: NdiscOptionType::SourceLinkLayerAddr,
            data: &[2, 0, 0, 0, 0, 1]
        }]
    );
    assert_eq!(
        packet.to_string(),
        "ICMPv6 NS target=fe80::2 lladdr=02:00:00:00:00:01"
    );
}

#[test]
fn construct_ns() {
    let mut bytes = [0xa5u8; 32];
    let mut packet = Packet::new_unchecked(&mut bytes[..]);
    packet.set_msg_type(Message::NeighborSolicit);
    packet.set_msg_code(0);
    packet.clear_reserved();
    packet.set_target_addr("fe80::2".parse().unwrap());
    packet
        .ndisc_options_mut()
        .copy_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
    packet.fill_checksum(&src(), &dst());
    assert_eq!(bytes, NS);
}

#[test]
fn parse_and_emit_ns() {
    let packet = Packet::new_checked(&NS[..]).unwrap();
    assert_eq!(Repr::parse(&packet).unwrap(), Repr::Ndisc(ns_repr()));
    let mut bytes = [0xa5u8; 32];
    assert_eq!(Repr::Ndisc(ns_repr()).buffer_len(), 32);
    let mut packet = Packet::new_unchecked(&mut bytes[..]);
    Repr::Ndisc(ns_repr()).emit(&mut packet);
    packet.fill_checksum(&src(), &dst());
    assert_eq!(bytes, NS);
}

#[test]
fn neighbor_advert_round_trip() {
    let flags = NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE;
    let repr = NdiscRepr::NeighborAdvert {
        flags,
        target_addr: "fe80::2".parse().unwrap(),
        lladdr: Some(MacAddr([0x02, 0, 0, 0, 0, 2])),
    };
    let mut bytes = vec![0xa5u8; repr.buffer_len()];
    let mut packet = Packet::new_unchecked(&mut bytes[..]);
    repr.emit(&mut packet);
    packet.fill_checksum(&"fe80::2".parse().unwrap(), &src());
    assert_eq!(&bytes[..8], &[0x88, 0, bytes[2], bytes[3], 0x60, 0, 0, 0]);
    assert_eq!(&bytes[24..], &[2, 1, 2, 0, 0, 0, 0, 2]);
    let packet = Packet::new_checked(&bytes[..]).unwrap();
    assert!(packet.verify_checksum(&"fe80::2".parse().unwrap(), &src()));
    assert!(packet.neighbor_flags().is_solicited() && packet.neighbor_flags().is_override());
    assert!(!packet.neighbor_flags().is_router());
    assert_eq!(NdiscRepr::parse(&packet).unwrap(), repr);
    assert_eq!(
        packet.to_string(),
        "ICMPv6 NA flags=-SO target=fe80::2 lladdr=02:00:00:00:00:02"
    );
}

#[test]
fn ndisc_rejects() {
    assert_eq!(
        Packet::new_checked(&NS[..23]).unwrap_err(),
        Error::Truncated
    );
    let mut bytes = NS;
    bytes[25] = 0; // option length zero
    assert_eq!(
        NdiscRepr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
        Error::Malformed
    );
    let mut bytes = NS;
    bytes[25] = 2; // option runs past the message
    assert_eq!(
        NdiscRepr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
        Error::Truncated
    );
    let mut bytes = NS;
    bytes[8] = 0xff; // multicast target
    assert_eq!(
        NdiscRepr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
        Error::Malformed
    );
    let mut bytes = NS;
    bytes[24] = 14; // unknown option: ignored
    assert_eq!(
        NdiscRepr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
        NdiscRepr::NeighborSolicit {
            target_addr: "fe80::2".parse().unwrap(),
            lladdr: None
        }
    );
    let packet = Packet::new_checked(&ECHO[..]).unwrap();
    assert_eq!(NdiscRepr::parse(&packet).unwrap_err(), Error::Unrecognized);
}

#[test]
fn echo() {
    let packet = Packet::new_checked(&ECHO[..]).unwrap();
    assert_eq!(packet.msg_type(), Message::EchoRequest);
    assert_eq!(packet.echo_ident(), 0x1234);
    assert_eq!(packet.echo_seq_no(), 1);
    assert_eq!(packet.payload(), b"hi");
    let repr = Repr::parse(&packet).unwrap();
    assert_eq!(
        repr,
        Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 1,
            data: b"hi"
        }
    );
    assert_eq!(repr.to_string(), "ICMPv6 echo request id=4660 seq=1 len=2");
    let mut bytes = [0xffu8; 10];
    repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
    assert_eq!(bytes, ECHO);
    assert_eq!(
        Packet::new_checked(&ECHO[..7]).unwrap_err(),
        Error::Truncated
    );
}

#[test]
fn errors_round_trip() {
    let invoking = [0x60u8, 0, 0, 0, 0, 0, 17, 64];
    for repr in [
        Repr::PktTooBig {
            mtu: 1280,
            data: &invoking,
        },
        Repr::DstUnreachable {
            reason: DstUnreachable::PortUnreachable,
            data: &invoking,
        },
        Repr::TimeExceeded {
            reason: TimeExceeded::HopLimitExceeded,
            data: &invoking,
        },
    ] {
        let mut bytes = vec![0u8; repr.buffer_len()];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet);
        packet.fill_checksum(&src(), &dst());
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum(&src(), &dst()));
        assert_eq!(Repr::parse(&packet).unwrap(), repr);
    }
    let mut bytes = [0u8; 16];
    bytes[0] = 2;
    bytes[4..8].copy_from_slice(&1500u32.to_be_bytes());
    assert_eq!(
        Packet::new_checked(&bytes[..]).unwrap().pkt_too_big_mtu(),
        1500
    );
}

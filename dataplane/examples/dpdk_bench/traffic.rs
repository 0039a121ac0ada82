//! The scenarios' traffic: the topology of vm0, vm1 (and a remote chassis
//! for the tunnel scenarios; the routed one's is in [`crate::routed`]), the
//! 64-byte UDP flows between them, the same flows inside VXLAN or Geneve,
//! and the pcap file `net_pcap` replays.
//! Built once before a run, never on the measured path.

use std::net::Ipv4Addr;

use dataplane::flow::{FlowDesc, L3, L4};
use dataplane::ids::PortId;
use dataplane::tables::{LogicalPort, LogicalSwitch, RemoteChassis, Underlay};
use dataplane::wire::{ethernet, geneve, ipv4, udp, vxlan, EtherType, MacAddr};

use crate::scenarios::{Encap, Scenario, TunnelEncap};

/// The uplink of the overlay scenarios, and the remote chassis.
pub(crate) fn underlay(encap: TunnelEncap, uplink: u16) -> Underlay {
    Underlay {
        port: PortId(uplink),
        ip: Ipv4Addr::new(192, 168, 100, 21).into(),
        mac: MacAddr([2, 0, 0, 0, 1, 0x21]),
        mtu: 1500,
        chassis: vec![RemoteChassis {
            name: "hv2".into(),
            ip: Ipv4Addr::new(192, 168, 100, 22).into(),
            encap,
            mac: Some(MacAddr([2, 0, 0, 0, 1, 0x22])),
            vtep: false,
            csum: false,
        }],
    }
}

pub(crate) fn mac(i: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, i])
}

pub(crate) fn ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i + 1)
}

/// One switch, vm0 on local port 0 and vm1 on local port 1, with
/// addresses and port security (as the suite's l2 scenarios).
/// vm0 and vm1 on one switch, on local ports 0 and 1; in the overlay
/// scenarios the remote one (vm1 for encap, vm0 for decap) is on the other
/// chassis and the uplink takes its local port.
pub(crate) fn topology(tunnel: Option<(TunnelEncap, bool)>) -> Vec<LogicalSwitch> {
    let remote = tunnel.map(|(_, decap)| if decap { 0 } else { 1 });
    let ports = (0..2u8)
        .map(|i| {
            let address = format!("{} {}", mac(i), ip(i))
                .parse()
                .expect("valid address");
            LogicalPort {
                local_port: (remote != Some(i)).then_some(PortId(u16::from(i))),
                chassis: (remote == Some(i)).then_some(dataplane::ids::ChassisIdx(0)),
                ..LogicalPort::vif(format!("vm{i}"), u32::from(i) + 1, address, true)
            }
        })
        .collect();
    vec![LogicalSwitch {
        name: "bench".into(),
        tunnel_key: 1,
        ports,
    }]
}

/// Flow `i`: a 60-byte (64 with FCS) UDP frame with a distinct 5-tuple.
pub(crate) fn udp_frame(i: usize, macs: (MacAddr, MacAddr), ips: (Ipv4Addr, Ipv4Addr)) -> FlowDesc {
    FlowDesc {
        inport: None,
        eth_src: macs.0,
        eth_dst: macs.1,
        vlan: None,
        l3: L3::Ipv4 {
            src: ips.0,
            dst: ips.1,
            ttl: 64,
        },
        l4: L4::Udp {
            src: 1024 + (i % 60_000) as u16,
            dst: 5000 + (i / 60_000) as u16,
        },
        payload: 18,
    }
}

/// `inner` in a VXLAN or Geneve header (VNI 1, the switch's tunnel key;
/// Geneve with OVN's option vm0 -> vm1) in UDP from vm0 to vm1. The UDP
/// source port is a hash of the inner flow, as tunnel endpoints set it;
/// the UDP checksum is 0, as RFC 7348 and RFC 8926 allow over IPv4.
pub(crate) fn tunnel(encap: Encap, flow: usize, inner: &[u8]) -> Result<Vec<u8>, String> {
    let mut header = Vec::new();
    let port = match encap {
        Encap::None => unreachable!("only tunnel scenarios encapsulate"),
        Encap::Vxlan => {
            header.resize(vxlan::HEADER_LEN, 0);
            vxlan::Repr { vni: 1 }.emit(&mut vxlan::Packet::new_unchecked(&mut header[..]));
            vxlan::UDP_PORT
        }
        Encap::Geneve => {
            let meta = geneve::OvnMetadata {
                ingress_port: 1,
                egress_port: 2,
            }
            .to_bytes();
            let mut options = [0u8; 8];
            geneve::emit_options(&[geneve::OvnMetadata::option(&meta)], &mut options);
            let repr = geneve::Repr {
                oam: false,
                critical: true,
                protocol_type: EtherType::TransparentEthernetBridging,
                vni: 1,
                options: &options,
            };
            header.resize(repr.buffer_len(), 0);
            repr.emit(&mut geneve::Packet::new_unchecked(&mut header[..]));
            geneve::UDP_PORT
        }
    };
    let hash = (flow as u32).wrapping_mul(0x9e37_79b1) >> 18;
    let mut desc = udp_frame(0, (mac(0), mac(1)), (ip(0), ip(1)));
    desc.l4 = L4::Udp {
        src: 49152 | hash as u16,
        dst: port,
    };
    desc.payload = header.len() + inner.len();
    let mut frame = desc.to_frame().map_err(|e| e.to_string())?;
    let udp_at = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    let payload_at = udp_at + udp::HEADER_LEN;
    frame[payload_at..payload_at + header.len()].copy_from_slice(&header);
    frame[payload_at + header.len()..].copy_from_slice(inner);
    udp::Packet::new_unchecked(&mut frame[udp_at..]).set_checksum(0);
    Ok(frame)
}

/// The scenario's frames, one per flow.
pub(crate) fn frames(s: &Scenario) -> Result<Vec<Vec<u8>>, String> {
    (0..s.flows)
        .map(|i| {
            if let Some((encap, true)) = s.tunnel {
                // As the remote chassis sends vm0's traffic to us.
                let inner = udp_frame(i, (mac(0), mac(1)), (ip(0), ip(1)))
                    .to_frame()
                    .map_err(|e| e.to_string())?;
                let u = underlay(encap, 0);
                let rc = &u.chassis[0];
                let mut b = dataplane::packet::HeapBuf::from_frame(&inner);
                let t = dataplane::overlay::Tunnel {
                    encap,
                    src_mac: rc.mac.expect("static"),
                    dst_mac: u.mac,
                    src_ip: rc.ip,
                    dst_ip: u.ip,
                    datapath_key: 1,
                    ingress_key: 1,
                    egress_key: 2,
                    csum: false,
                };
                if !dataplane::overlay::encapsulate(&mut b, &t) {
                    return Err("no headroom".into());
                }
                use dataplane::packet::PacketBuf;
                return Ok(b.data().to_vec());
            }
            if s.routed {
                return crate::routed::frame(i);
            }
            if s.encap == Encap::None {
                return udp_frame(i, (mac(0), mac(1)), (ip(0), ip(1)))
                    .to_frame()
                    .map_err(|e| e.to_string());
            }
            // Inner frames between two VMs behind the tunnel.
            let remote = |n| MacAddr([0x02, 0, 0, 0, 1, n]);
            let inner = udp_frame(
                i,
                (remote(1), remote(2)),
                (Ipv4Addr::new(192, 168, 0, 1), Ipv4Addr::new(192, 168, 0, 2)),
            )
            .to_frame()
            .map_err(|e| e.to_string())?;
            tunnel(s.encap, i, &inner)
        })
        .collect()
}

/// A classic (microsecond) pcap of `frames`.
pub(crate) fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    for f in frames {
        for w in [0u32, 0, f.len() as u32, f.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    out
}

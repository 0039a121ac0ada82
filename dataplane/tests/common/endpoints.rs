//! The tunnel endpoints of the overlay property tests: "us" and chassis
//! hv2, over IPv4 (192.168.100.21 and .22) or IPv6 (fd00:64::21 and ::22).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub fn endpoints(ipv6: bool) -> (IpAddr, IpAddr) {
    if ipv6 {
        (
            Ipv6Addr::new(0xfd00, 0x64, 0, 0, 0, 0, 0, 0x21).into(),
            Ipv6Addr::new(0xfd00, 0x64, 0, 0, 0, 0, 0, 0x22).into(),
        )
    } else {
        (
            Ipv4Addr::new(192, 168, 100, 21).into(),
            Ipv4Addr::new(192, 168, 100, 22).into(),
        )
    }
}

//! The log lines of ACLs with `log=true`: the line ovn-controller 23.03
//! writes (`handle_acl_log`, lib/acl-log.c), `name="…", verdict=…,
//! severity=…, direction=…: ` and the packet's flow as `ovs-ofctl` prints
//! it (`flow_format`), without logging on the forwarding path.
//!
//! A worker that evaluates a logged ACL's match copies the packet's
//! header fields into a bounded lock-free queue ([`Logged::record`]: no
//! allocation, no lock, no syscall); the node drains the queue and writes
//! the lines ([`AclLog::drain`]). An ACL's `meter` limits its lines as
//! OVN's `log(meter=…)` does ([`crate::meter`]; a fair meter is one SB
//! meter per ACL, a shared one is shared by its ACLs); an ACL without one
//! writes at most [`LINES_PER_SECOND`] a second (OVN sends all of them to
//! ovn-controller: a safety limit of ours). What a meter refuses, or finds
//! the queue full, is counted as suppressed. Buckets start full again when
//! the ACLs are compiled again.
//!
//! What OVN logs and we do not: the request direction of an established
//! connection, which here never evaluates ACLs (only its first packet,
//! and the first after the ACLs change, are logged).

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::classifier::{AclAction, Direction};
use crate::meter::{Meter, MeterConfig};
use crate::wire::layout::Layout;
use crate::wire::{ipv4, ipv6, tcp, EtherType, IpProtocol, MacAddr};

/// The most lines an ACL without a meter writes in a second.
pub const LINES_PER_SECOND: u64 = 10;
/// Lines waiting for the node to write them.
const QUEUE: usize = 1024;

/// OVN's ACL `severity` (ovn-nb(5)); `info` when unset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Severity {
    Alert,
    Warning,
    Notice,
    #[default]
    Info,
    Debug,
}

impl Severity {
    /// NB's value; None (or an unknown one) is `info`, as ovn-northd's
    /// `build_acl_log` has it.
    pub fn parse(s: Option<&str>) -> Severity {
        match s {
            Some("alert") => Severity::Alert,
            Some("warning") => Severity::Warning,
            Some("notice") => Severity::Notice,
            Some("debug") => Severity::Debug,
            _ => Severity::Info,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Alert => "alert",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Info => "info",
            Severity::Debug => "debug",
        }
    }
}

/// `build_acl_log`'s verdict: every allow is `allow`.
fn verdict(a: AclAction) -> &'static str {
    match a {
        AclAction::Drop => "drop",
        AclAction::Reject => "reject",
        _ => "allow",
    }
}

/// What a logged ACL writes, shared by its rules on every datapath, with
/// the meter that limits it and the queue its lines go to.
#[derive(Debug)]
pub struct Logged {
    log: Arc<AclLog>,
    name: Arc<str>,
    severity: Severity,
    verdict: &'static str,
    direction: Direction,
    meter: Arc<Meter>,
}

impl Logged {
    /// `meter`: the ACL's (shared with the other ACLs of the same SB
    /// meter), or None for [`LINES_PER_SECOND`] of its own.
    pub fn new(
        log: &Arc<AclLog>,
        name: &str,
        severity: Severity,
        action: AclAction,
        direction: Direction,
        meter: Option<Arc<Meter>>,
    ) -> Self {
        Logged {
            log: log.clone(),
            name: name.into(),
            severity,
            verdict: verdict(action),
            direction,
            meter: meter
                .unwrap_or_else(|| Arc::new(Meter::new(&MeterConfig::pktps("", LINES_PER_SECOND)))),
        }
    }

    /// On the forwarding path: queues the line for the packet `frame`
    /// (parsed into `lay`), if the meter admits it.
    pub fn record(&self, frame: &[u8], lay: &Layout) {
        if !self.meter.admit(frame.len()) {
            self.log.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let entry = Entry {
            name: self.name.clone(),
            severity: self.severity,
            verdict: self.verdict,
            direction: self.direction,
            flow: Flow::of(frame, lay),
        };
        if self.log.queue.push(entry).is_err() {
            self.log.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One line to write.
#[derive(Debug)]
pub struct Entry {
    name: Arc<str>,
    severity: Severity,
    verdict: &'static str,
    direction: Direction,
    flow: Flow,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // handle_acl_log: json_string_escape of the name, "<unnamed>" if none.
        let name = if self.name.is_empty() {
            "<unnamed>"
        } else {
            &self.name
        };
        write!(
            f,
            "name={name:?}, verdict={}, severity={}, direction={}: {}",
            self.verdict,
            self.severity.as_str(),
            self.direction.as_str(),
            self.flow
        )
    }
}

/// The queue of lines from the workers to the node.
#[derive(Debug)]
pub struct AclLog {
    queue: ArrayQueue<Entry>,
    suppressed: AtomicU64,
}

impl Default for AclLog {
    fn default() -> Self {
        AclLog {
            queue: ArrayQueue::new(QUEUE),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl AclLog {
    /// The lines queued so far, oldest first.
    pub fn drain(&self) -> impl Iterator<Item = Entry> + '_ {
        std::iter::from_fn(|| self.queue.pop())
    }

    /// Lines not written: over an ACL's limit, or the queue was full.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }
}

/// The header fields `flow_format` prints of a packet-in.
#[derive(Debug)]
struct Flow {
    vlan_tci: u16,
    src: MacAddr,
    dst: MacAddr,
    eth_type: EtherType,
    ip: Option<Ip>,
}

#[derive(Debug)]
struct Ip {
    src: IpAddr,
    dst: IpAddr,
    proto: IpProtocol,
    tos: u8,
    ttl: u8,
    label: u32,
    frag: &'static str,
    /// Ports, ICMP type and code, and TCP flags when known.
    l4: Option<(u16, u16, tcp::Flags)>,
}

impl Flow {
    fn of(f: &[u8], lay: &Layout) -> Flow {
        let l3 = lay.l3_bytes(f);
        let (v4, v6) = (lay.has(Layout::IPV4), lay.has(Layout::IPV6));
        let ip = (v4 || v6).then(|| {
            let (src, dst, tos, label) = if v4 {
                let p = ipv4::Packet::new_unchecked(l3);
                let tos = p.dscp() << 2 | p.ecn();
                (lay.ipv4_src(f).into(), lay.ipv4_dst(f).into(), tos, 0)
            } else {
                let p = ipv6::Packet::new_unchecked(l3);
                let (s, d) = (lay.ipv6_src(f).into(), lay.ipv6_dst(f).into());
                (s, d, p.traffic_class(), p.flow_label())
            };
            let proto = lay.ip_protocol();
            let l4 = lay.has(Layout::L4).then(|| match proto {
                IpProtocol::Tcp => (lay.l4_src_port(f), lay.l4_dst_port(f), lay.tcp_flags(f)),
                IpProtocol::Icmp | IpProtocol::Icmpv6 => (
                    lay.icmp_type(f).into(),
                    lay.icmp_code(f).into(),
                    tcp::Flags(0),
                ),
                IpProtocol::Udp | IpProtocol::Sctp => {
                    (lay.l4_src_port(f), lay.l4_dst_port(f), tcp::Flags(0))
                }
                _ => (0, 0, tcp::Flags(0)),
            });
            let frag = if lay.has(Layout::LATER_FRAGMENT) {
                "later"
            } else if lay.has(Layout::FRAGMENT) {
                "first"
            } else {
                "no"
            };
            Ip {
                src,
                dst,
                proto,
                tos,
                ttl: lay.ip_ttl(f),
                label,
                frag,
                l4,
            }
        });
        Flow {
            vlan_tci: if lay.has(Layout::VLAN) {
                lay.vlan_tci | 0x1000 // OVS shows the tag present bit (CFI)
            } else {
                0
            },
            src: lay.src_mac(f),
            dst: lay.dst_mac(f),
            eth_type: lay.ethertype(),
            ip,
        }
    }
}

/// OVS's `packet_tcp_flag_to_string`, in bit order, `|`-joined.
fn tcp_flags(f: &mut fmt::Formatter<'_>, flags: tcp::Flags) -> fmt::Result {
    const NAMES: [&str; 9] = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns"];
    if flags.0 == 0 {
        return f.write_str("0");
    }
    let mut sep = "";
    for (bit, name) in NAMES.iter().enumerate() {
        if flags.0 & (1 << bit) != 0 {
            write!(f, "{sep}{name}")?;
            sep = "|";
        }
    }
    Ok(())
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(ip) = &self.ip else {
            return write!(
                f,
                "vlan_tci={:#06x},dl_src={},dl_dst={},dl_type={:#06x}",
                self.vlan_tci,
                self.src,
                self.dst,
                u16::from(self.eth_type)
            );
        };
        let v6 = ip.src.is_ipv6();
        let name = match (ip.proto, v6) {
            (IpProtocol::Tcp, false) => "tcp",
            (IpProtocol::Udp, false) => "udp",
            (IpProtocol::Sctp, false) => "sctp",
            (IpProtocol::Icmp, false) => "icmp",
            (_, false) => "ip",
            (IpProtocol::Tcp, true) => "tcp6",
            (IpProtocol::Udp, true) => "udp6",
            (IpProtocol::Sctp, true) => "sctp6",
            (IpProtocol::Icmpv6, true) => "icmp6",
            (_, true) => "ipv6",
        };
        write!(f, "{name},vlan_tci={:#06x},", self.vlan_tci)?;
        write!(f, "dl_src={},dl_dst={},", self.src, self.dst)?;
        if v6 {
            write!(f, "ipv6_src={},ipv6_dst={},", ip.src, ip.dst)?;
            write!(f, "ipv6_label={:#07x},", ip.label)?;
        } else {
            write!(f, "nw_src={},nw_dst={},", ip.src, ip.dst)?;
        }
        if name == "ip" || name == "ipv6" {
            write!(f, "nw_proto={},", u8::from(ip.proto))?;
        }
        write!(
            f,
            "nw_tos={},nw_ecn={},nw_ttl={},nw_frag={}",
            ip.tos & 0xfc,
            ip.tos & 0x03,
            ip.ttl,
            ip.frag
        )?;
        match (ip.proto, ip.l4) {
            (IpProtocol::Icmp | IpProtocol::Icmpv6, Some((t, c, _))) => {
                write!(f, ",icmp_type={t},icmp_code={c}")
            }
            (IpProtocol::Tcp, Some((s, d, flags))) => {
                write!(f, ",tp_src={s},tp_dst={d},tcp_flags=")?;
                tcp_flags(f, flags)
            }
            (IpProtocol::Udp | IpProtocol::Sctp, Some((s, d, _))) => {
                write!(f, ",tp_src={s},tp_dst={d}")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowDesc;
    use crate::wire::layout;

    fn logged(desc: &str, acl: &Logged) {
        let frame = desc.parse::<FlowDesc>().unwrap().to_frame().unwrap();
        acl.record(&frame, &layout::parse(&frame).unwrap());
    }

    #[test]
    fn lines_read_as_ovn_controller_writes_them() {
        let log = Arc::new(AclLog::default());
        let acl = Logged::new(
            &log,
            "ssh-in",
            Severity::parse(Some("alert")),
            AclAction::AllowRelated,
            Direction::ToLport,
            None,
        );
        logged(
            "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip4.src=10.0.0.1 ip4.dst=10.0.0.2 tcp.src=40000 tcp.dst=22 tcp.flags=0x12",
            &acl,
        );
        let unnamed = Logged::new(
            &log,
            "",
            Severity::parse(None),
            AclAction::Drop,
            Direction::FromLport,
            None,
        );
        logged(
            "eth.src=00:00:00:00:00:01 eth.dst=00:00:00:00:00:02 ip6.src=fd00::1 ip6.dst=fd00::2 icmp6.type=128",
            &unnamed,
        );
        let lines: Vec<String> = log.drain().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            [
                "name=\"ssh-in\", verdict=allow, severity=alert, direction=to-lport: tcp,vlan_tci=0x0000,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=40000,tp_dst=22,tcp_flags=syn|ack",
                "name=\"<unnamed>\", verdict=drop, severity=info, direction=from-lport: icmp6,vlan_tci=0x0000,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,ipv6_src=fd00::1,ipv6_dst=fd00::2,ipv6_label=0x00000,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,icmp_type=128,icmp_code=0",
            ]
        );
    }

    #[test]
    fn an_acl_writes_at_most_its_limit_a_second() {
        let log = Arc::new(AclLog::default());
        let acl = Logged::new(
            &log,
            "flood",
            Severity::Info,
            AclAction::Drop,
            Direction::ToLport,
            None,
        );
        let other = Logged::new(
            &log,
            "other",
            Severity::Info,
            AclAction::Drop,
            Direction::ToLport,
            None,
        );
        let desc = "ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.dst=53";
        // The bucket starts with a second's worth and refills while the loop runs.
        for _ in 0..100 {
            logged(desc, &acl);
        }
        logged(desc, &other);
        let written = log.drain().filter(|e| &*e.name == "flood").count() as u64;
        assert!((LINES_PER_SECOND..=2 * LINES_PER_SECOND).contains(&written));
        assert_eq!(
            log.suppressed(),
            100 - written,
            "the other ACL has its own limit"
        );
    }
}

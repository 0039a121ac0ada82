//! Per-protocol connection state and timeouts.
//!
//! TCP follows RFC 9293 §3.3.2's states as Linux's `nf_conntrack_proto_tcp`
//! tracks them from the middle (both directions' flags), no stricter:
//! a SYN opens, SYN-ACK answers, the ACK establishes; a bare ACK without an
//! entry is picked up as established (Linux's default
//! `nf_conntrack_tcp_loose = 1`); FIN from both sides then the last ACK
//! closes to TIME-WAIT; RST closes at once; a SYN on a closed or
//! TIME-WAIT entry reopens it (RFC 9293 §3.10.7.4 allows reuse in
//! TIME-WAIT). Sequence windows are not checked (Linux checks them but
//! only marks failures invalid when `nf_conntrack_tcp_be_liberal = 0`;
//! OVS's userspace conntrack checks them: we are looser than both).
//! Invalid as Linux: SYN with RST or FIN, no flags at all, and from no
//! entry anything but SYN or ACK.
//!
//! Timeouts are OVS userspace conntrack's defaults (lib/conntrack-tp.c),
//! the peer the benchmarks compare with.

use crate::wire::tcp::Flags;

/// TCP connection states (RFC 9293 §3.3.2, as conntrack sees them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    SynSent,
    SynRecv,
    Established,
    /// One side sent FIN.
    FinWait,
    /// Both sides sent FIN; waiting for the last ACK.
    LastAck,
    TimeWait,
    Close,
}

impl TcpState {
    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
        }
    }
}

/// What a TCP packet does to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpEvent {
    /// Moves it to this state.
    To(TcpState),
    /// A SYN on a finished connection: start a new one.
    Reopen,
    /// Not valid here (`ct.inv`).
    Invalid,
}

fn invalid_flags(f: Flags) -> bool {
    let syn = f.contains(Flags::SYN);
    (syn && f.intersects(Flags(Flags::RST.0 | Flags::FIN.0)))
        || !f.intersects(Flags(
            Flags::SYN.0 | Flags::ACK.0 | Flags::RST.0 | Flags::FIN.0,
        ))
}

/// The state a packet without an entry starts, or None if it may not
/// start one.
pub fn tcp_open(f: Flags) -> Option<TcpState> {
    if invalid_flags(f) || f.intersects(Flags(Flags::RST.0 | Flags::FIN.0)) {
        return None;
    }
    match (f.contains(Flags::SYN), f.contains(Flags::ACK)) {
        (true, false) => Some(TcpState::SynSent),
        (false, true) => Some(TcpState::Established),
        _ => None,
    }
}

/// The effect of a packet with flags `f` in direction `reply` on a
/// connection in state `s`; `fins` counts the directions that sent FIN
/// (bit 0 original, bit 1 reply) and is updated.
pub fn tcp_step(s: TcpState, f: Flags, reply: bool, fins: &mut u8) -> TcpEvent {
    use TcpState::*;
    if invalid_flags(f) {
        return TcpEvent::Invalid;
    }
    if f.contains(Flags::RST) {
        return TcpEvent::To(Close);
    }
    let syn = f.contains(Flags::SYN);
    let ack = f.contains(Flags::ACK);
    if syn && !ack && !reply && matches!(s, TimeWait | Close) {
        return TcpEvent::Reopen;
    }
    if f.contains(Flags::FIN) {
        *fins |= if reply { 2 } else { 1 };
    }
    let next = match s {
        SynSent if reply && syn && ack => SynRecv,
        // A retransmitted SYN.
        SynSent if !reply && syn => SynSent,
        SynSent => return TcpEvent::Invalid,
        SynRecv if !reply && ack && !syn => Established,
        SynRecv => SynRecv,
        Established | FinWait | LastAck if *fins == 3 => {
            if s == LastAck && ack && !f.contains(Flags::FIN) {
                TimeWait
            } else {
                LastAck
            }
        }
        Established | FinWait if *fins != 0 => FinWait,
        Established | FinWait => s,
        LastAck => LastAck,
        TimeWait | Close => s,
    };
    TcpEvent::To(next)
}

/// Seconds a connection lives without traffic, by what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_syn: u32,
    pub tcp_established: u32,
    pub tcp_closing: u32,
    pub tcp_time_wait: u32,
    pub udp_first: u32,
    pub udp_multiple: u32,
    pub icmp_first: u32,
    pub icmp_reply: u32,
    pub other_first: u32,
    pub other_multiple: u32,
}

impl Default for Timeouts {
    /// OVS userspace conntrack's defaults (lib/conntrack-tp.c,
    /// `ct_dpif_netdev_tp_def`).
    fn default() -> Self {
        Timeouts {
            tcp_syn: 30,
            tcp_established: 24 * 3600,
            tcp_closing: 30,
            tcp_time_wait: 30,
            udp_first: 60,
            udp_multiple: 30,
            icmp_first: 60,
            icmp_reply: 30,
            other_first: 60,
            other_multiple: 30,
        }
    }
}

impl Timeouts {
    /// The timeout of a TCP connection in state `s`.
    pub fn tcp(&self, s: TcpState) -> u32 {
        match s {
            TcpState::SynSent | TcpState::SynRecv => self.tcp_syn,
            TcpState::Established => self.tcp_established,
            TcpState::FinWait | TcpState::LastAck => self.tcp_closing,
            TcpState::TimeWait | TcpState::Close => self.tcp_time_wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Flags = Flags::SYN;
    const A: Flags = Flags::ACK;
    const SA: Flags = Flags(Flags::SYN.0 | Flags::ACK.0);
    const FA: Flags = Flags(Flags::FIN.0 | Flags::ACK.0);

    #[test]
    fn handshake_data_and_close() {
        let mut fins = 0;
        let s = tcp_open(S).unwrap();
        assert_eq!(s, TcpState::SynSent);
        let step = |s, f, r, fins: &mut u8| match tcp_step(s, f, r, fins) {
            TcpEvent::To(n) => n,
            e => panic!("{e:?}"),
        };
        let s = step(s, SA, true, &mut fins);
        assert_eq!(s, TcpState::SynRecv);
        let s = step(s, A, false, &mut fins);
        assert_eq!(s, TcpState::Established);
        let s = step(s, A, true, &mut fins);
        let s = step(s, FA, false, &mut fins);
        assert_eq!(s, TcpState::FinWait);
        let s = step(s, FA, true, &mut fins);
        assert_eq!(s, TcpState::LastAck);
        let s = step(s, A, false, &mut fins);
        assert_eq!(s, TcpState::TimeWait);
        assert_eq!(tcp_step(s, S, false, &mut fins), TcpEvent::Reopen);
    }

    #[test]
    fn invalid_as_linux() {
        assert_eq!(tcp_open(SA), None);
        assert_eq!(tcp_open(Flags::RST), None);
        assert_eq!(tcp_open(Flags(0)), None);
        assert_eq!(tcp_open(A), Some(TcpState::Established), "loose pickup");
        let mut fins = 0;
        let sr = Flags(Flags::SYN.0 | Flags::RST.0);
        assert_eq!(
            tcp_step(TcpState::Established, sr, false, &mut fins),
            TcpEvent::Invalid
        );
        assert_eq!(
            tcp_step(TcpState::SynSent, A, true, &mut fins),
            TcpEvent::Invalid
        );
        assert_eq!(
            tcp_step(TcpState::Established, Flags::RST, true, &mut fins),
            TcpEvent::To(TcpState::Close)
        );
    }
}

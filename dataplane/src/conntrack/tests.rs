//! Conntrack on frames built from flow descriptions: both directions find
//! one entry, TCP's handshake and teardown, UDP and ICMP echo replies as
//! established, ICMP errors as related, zones apart, the limit, expiry,
//! blocked marks, the memory an entry costs, and hints that change
//! nothing but speed (whatever they hold, a lookup finds what the index
//! finds; the pre-pass's probe is the tracked key's).

use proptest::prelude::*;

use super::*;
use crate::flow::FlowDesc;
use crate::wire::layout;

fn pkt(desc: &str) -> Packet {
    let frame = desc.parse::<FlowDesc>().unwrap().to_frame().unwrap();
    let lay = layout::parse(&frame).unwrap();
    tuple::packet(&frame, &lay).unwrap()
}

const C2S: &str = "ip4.src=10.0.0.1 ip4.dst=10.0.0.2 tcp.src=40000 tcp.dst=22";
const S2C: &str = "ip4.src=10.0.0.2 ip4.dst=10.0.0.1 tcp.src=22 tcp.dst=40000";

fn tcp(dir: &str, flags: u8) -> Packet {
    pkt(&format!("{dir} tcp.flags={flags}"))
}

#[test]
fn tcp_connection_both_directions() {
    let ct = Conntrack::new(100, 4);
    let syn = tcp(C2S, 0x02);
    assert_eq!(
        ct.track(1, &syn, 0, true).state,
        CtState::NEW.with(CtState::TRK)
    );
    ct.commit(1, &syn, 0, 7).unwrap();
    assert_eq!(ct.len(), 1);
    // Retransmitted SYN: still new, not established.
    let t = ct.track(1, &syn, 0, true);
    assert_eq!(t.state, CtState::NEW.with(CtState::TRK));
    assert_eq!(t.acl_gen, 7);
    let synack = ct.track(1, &tcp(S2C, 0x12), 0, true);
    assert_eq!(
        synack.state,
        CtState::EST.with(CtState::RPL).with(CtState::TRK)
    );
    let ack = ct.track(1, &tcp(C2S, 0x10), 0, true);
    assert_eq!(ack.state, CtState::EST.with(CtState::TRK));
    // Another zone knows nothing of it.
    assert_eq!(
        ct.track(2, &tcp(S2C, 0x10), 0, true).state,
        CtState::NEW.with(CtState::TRK)
    );
    let views = ct.dump(Some(1));
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].proto, Proto::Tcp(TcpState::Established));
    assert_eq!(views[0].orig.dport, 22);
    // Teardown.
    ct.track(1, &tcp(C2S, 0x11), 0, true);
    ct.track(1, &tcp(S2C, 0x11), 0, true);
    ct.track(1, &tcp(C2S, 0x10), 0, true);
    assert_eq!(ct.dump(None)[0].proto, Proto::Tcp(TcpState::TimeWait));
    // A new SYN on the same ports in TIME-WAIT starts over.
    assert_eq!(
        ct.track(1, &syn, 1, true).state,
        CtState::NEW.with(CtState::TRK)
    );
    assert!(ct.is_empty());
}

#[test]
fn invalid_tcp() {
    let ct = Conntrack::new(100, 1);
    // A SYN-ACK or RST without a connection.
    assert!(ct
        .track(1, &tcp(S2C, 0x12), 0, true)
        .state
        .has(CtState::INV));
    assert!(ct
        .track(1, &tcp(S2C, 0x04), 0, true)
        .state
        .has(CtState::INV));
    let syn = tcp(C2S, 0x02);
    ct.commit(1, &syn, 0, 0).unwrap();
    // A plain ACK answering a SYN.
    assert!(ct
        .track(1, &tcp(S2C, 0x10), 0, true)
        .state
        .has(CtState::INV));
    // Loose pickup of a mid-stream ACK is new, as Linux.
    assert!(!ct
        .track(
            1,
            &tcp(C2S.replace("40000", "40001").as_str(), 0x10),
            0,
            true
        )
        .state
        .has(CtState::INV));
}

#[test]
fn udp_and_echo_become_established_by_a_reply() {
    let ct = Conntrack::new(100, 2);
    let q = pkt("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.src=5000 udp.dst=53");
    let r = pkt("ip4.src=10.0.0.2 ip4.dst=10.0.0.1 udp.src=53 udp.dst=5000");
    ct.commit(3, &q, 0, 0).unwrap();
    assert!(ct.track(3, &q, 0, true).state.has(CtState::NEW));
    assert!(ct
        .track(3, &r, 0, true)
        .state
        .has(CtState::EST.with(CtState::RPL)));
    assert!(ct.track(3, &q, 0, true).state.has(CtState::EST));

    let echo = pkt("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 icmp4.type=8");
    let reply = pkt("ip4.src=10.0.0.2 ip4.dst=10.0.0.1 icmp4.type=0");
    assert!(
        ct.track(3, &reply, 0, true).state.has(CtState::INV),
        "reply without request"
    );
    ct.commit(3, &echo, 0, 0).unwrap();
    assert!(ct
        .track(3, &reply, 0, true)
        .state
        .has(CtState::EST.with(CtState::RPL)));
}

/// An ICMP port unreachable from 10.0.0.2 quoting the UDP query.
fn port_unreachable(quoted_sport: u16) -> Vec<u8> {
    let inner = format!("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.src={quoted_sport} udp.dst=53")
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    let mut f = "ip4.src=10.0.0.2 ip4.dst=10.0.0.1 icmp4.type=3 icmp4.code=3"
        .parse::<FlowDesc>()
        .unwrap()
        .to_frame()
        .unwrap();
    // Append the quoted IP header and 8 bytes after the ICMP header and
    // fix the outer IPv4 total length (checksums do not matter here).
    f.truncate(14 + 20 + 8);
    f.extend_from_slice(&inner[14..14 + 28]);
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = !crate::wire::checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn icmp_errors_are_related() {
    let ct = Conntrack::new(100, 2);
    let q = pkt("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.src=5000 udp.dst=53");
    ct.commit(1, &q, 0, 0).unwrap();
    let err = |sport| {
        let f = port_unreachable(sport);
        let lay = layout::parse(&f).unwrap();
        tuple::packet(&f, &lay).unwrap()
    };
    let rel = err(5000);
    assert!(matches!(rel.seen, Seen::IcmpError { .. }));
    let t = ct.track(1, &rel, 0, true);
    assert_eq!(t.state, CtState::REL.with(CtState::TRK));
    assert!(t.handle.is_some());
    assert!(ct.track(1, &err(5001), 0, true).state.has(CtState::INV));
}

#[test]
fn the_limit_refuses_new_connections_only() {
    let ct = Conntrack::new(2, 1);
    let udp = |p: u16| {
        pkt(&format!(
            "ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.src={p} udp.dst=53"
        ))
    };
    ct.commit(1, &udp(1), 0, 0).unwrap();
    ct.commit(1, &udp(2), 0, 0).unwrap();
    assert_eq!(ct.commit(1, &udp(3), 0, 0), Err(Full));
    assert_eq!(ct.stats.refused_full.load(Ordering::Relaxed), 1);
    // Existing ones are still found, and committing them again is fine.
    assert!(ct.track(1, &udp(1), 0, true).handle.is_some());
    assert_eq!(ct.commit(1, &udp(2), 0, 0), Ok(()));
    // Once they expire, the sweep makes room.
    let later = ct.timeouts.udp_first + 1;
    assert_eq!(ct.commit(1, &udp(3), later, 0), Ok(()));
    assert_eq!(ct.len(), 1);
}

#[test]
fn expired_entries_are_not_found_and_flush_by_zone() {
    let ct = Conntrack::new(10, 2);
    let q = pkt("ip4.src=10.0.0.1 ip4.dst=10.0.0.2 udp.src=5000 udp.dst=53");
    ct.commit(1, &q, 0, 0).unwrap();
    ct.commit(2, &q, 0, 0).unwrap();
    assert!(ct
        .track(1, &q, ct.timeouts.udp_first + 1, true)
        .handle
        .is_none());
    assert_eq!(ct.len(), 1);
    assert_eq!(ct.flush(Some(1)), 0);
    assert_eq!(ct.flush(Some(2)), 1);
    assert!(ct.is_empty());
}

#[test]
fn blocked_mark_and_acl_generation_stick() {
    let ct = Conntrack::new(10, 2);
    let syn = tcp(C2S, 0x02);
    ct.commit(1, &syn, 0, 1).unwrap();
    let h = ct.track(1, &syn, 0, true).handle.unwrap();
    ct.mark(h, true, 2);
    let t = ct.track(1, &tcp(S2C, 0x12), 0, true);
    assert!(t.blocked);
    assert_eq!(t.acl_gen, 2);
    assert!(ct.dump(None)[0].blocked);
}

#[test]
fn track_without_update_changes_nothing() {
    let ct = Conntrack::new(10, 1);
    let syn = tcp(C2S, 0x02);
    ct.commit(1, &syn, 0, 0).unwrap();
    ct.track(1, &tcp(S2C, 0x12), 0, false);
    assert_eq!(ct.dump(None)[0].proto, Proto::Tcp(TcpState::SynSent));
    assert!(!ct.dump(None)[0].replied);
}

#[test]
fn bytes_per_connection_stay_under_256() {
    // The entry, its slot, and two (key, slot) pairs in a hash table at
    // hashbrown's worst load (7/8) with its control bytes.
    let entry = std::mem::size_of::<Option<Entry>>();
    let pair = std::mem::size_of::<(Key, u32)>() + 1;
    let bytes = entry + 2 * pair * 8 / 7;
    assert!(bytes <= 256, "{bytes} bytes per connection");
    // And measured: 20,000 connections.
    let ct = Conntrack::new(1 << 20, 1);
    for i in 0..20_000u32 {
        let p = pkt(&format!(
            "ip4.src=10.{}.{}.1 ip4.dst=10.0.0.2 udp.src=5000 udp.dst=53",
            i >> 8,
            i & 0xff
        ));
        ct.commit(1, &p, 0, 0).unwrap();
    }
    let shard = ct.lock(0);
    let heap = shard.slots.capacity() * entry + shard.map.allocation_size();
    assert!(
        heap / 20_000 <= 256,
        "{} bytes per connection",
        heap / 20_000
    );
}

#[test]
fn track2_tracks_two_zones_as_two_calls_would() {
    // One shard: both zones under one lock; 64: mostly two shards.
    for shards in [1, 64] {
        let (a, b) = (Conntrack::new(100, shards), Conntrack::new(100, shards));
        let syn = tcp(C2S, 0x02);
        for ct in [&a, &b] {
            for z in 1..=8 {
                ct.commit(z, &syn, 0, 0).unwrap();
            }
        }
        let views = |ct: &Conntrack| {
            let mut v: Vec<_> = ct
                .dump(None)
                .into_iter()
                .map(|c| (c.zone, c.orig, c.proto, c.replied, c.blocked))
                .collect();
            v.sort_by_key(|c| c.0);
            v
        };
        let found = |t: &Track| t.handle.is_some();
        let synack = tcp(S2C, 0x12);
        for z in 1..8u16 {
            let at = a.locate(z, &synack).unwrap();
            let two = a.track2(&at, z + 1, &synack, 5, found);
            let one =
                found(&b.track(z, &synack, 5, true)) && found(&b.track(z + 1, &synack, 5, true));
            assert_eq!(two, one);
            assert_eq!(views(&a), views(&b), "zones {z} and {}", z + 1);
        }
        // Not found in the first zone: the second is left alone.
        let ack = tcp(C2S, 0x10);
        assert!(!a.track2(&a.locate(9, &ack).unwrap(), 1, &ack, 6, found));
        assert_eq!(views(&a), views(&b));
    }
}

/// What a table says of each of `pkts` in zones 1 and 2, both
/// directions, without changing it.
fn lookups(ct: &Conntrack, pkts: &[Packet]) -> Vec<(CtState, Option<Handle>)> {
    let mut out = Vec::new();
    for p in pkts {
        let rev = Packet {
            tuple: p.tuple.reverse(),
            ..*p
        };
        for z in [1, 2] {
            for q in [p, &rev] {
                let t = ct.track(z, q, 0, false);
                out.push((t.state, t.handle));
            }
        }
    }
    out
}

#[test]
fn hints_change_nothing_but_speed() {
    let udp = |i: u32| {
        pkt(&format!(
            "ip4.src=10.0.{}.{} ip4.dst=10.1.0.2 udp.src={} udp.dst=53",
            i >> 8,
            i & 0xff,
            1000 + i
        ))
    };
    let pkts: Vec<Packet> = (0..300).map(udp).collect();
    // Two shards, so hints also name slots of the other shard.
    let ct = Conntrack::new(1000, 2);
    for p in &pkts[..200] {
        ct.commit(1, p, 0, 0).unwrap();
    }
    let truth = lookups(&ct, &pkts);
    // Tracking wrote the hints of what it found: every key found names
    // its own slot now.
    for p in &pkts[..200] {
        let at = ct.locate(1, p).unwrap();
        let slot = ct.track_at(&at, p, 0, false).handle.unwrap().slot;
        assert_eq!(ct.hint_of(at.hash).load(Ordering::Relaxed), slot + 1);
    }
    // Any hint, anywhere: stale, another key's, past the end.
    for garbage in [0, 1, 2, 7, 150, 199, 200, 100_000, u32::MAX >> 1] {
        for h in ct.hints.iter() {
            h.store(garbage, Ordering::Relaxed);
        }
        for p in &pkts {
            // Prefetching what such a hint names touches nothing.
            ct.prefetch(ct.locate(1, p).unwrap().probe());
        }
        assert_eq!(lookups(&ct, &pkts), truth, "every hint {garbage}");
    }
    // Freed slots taken by other connections: the hints that named the
    // old ones now name entries of other keys.
    assert_eq!(ct.flush(Some(1)), 200);
    for p in &pkts[100..] {
        ct.commit(1, p, 0, 0).unwrap();
    }
    let twin = Conntrack::new(1000, 2);
    for p in &pkts[100..] {
        twin.commit(1, p, 0, 0).unwrap();
    }
    for h in twin.hints.iter() {
        h.store(0, Ordering::Relaxed);
    }
    let states = |v: Vec<(CtState, Option<Handle>)>| v.into_iter().map(|(s, h)| (s, h.is_some()));
    assert!(states(lookups(&ct, &pkts)).eq(states(lookups(&twin, &pkts))));
}

proptest! {
    /// The pre-pass's probe of a TCP or UDP packet over IPv4, from the
    /// frame's bytes, is that of the key tracking locates.
    #[test]
    fn probe_v4_is_the_located_keys(
        zone in any::<u16>(),
        src in any::<[u8; 4]>(),
        dst in any::<[u8; 4]>(),
        sport in any::<u16>(),
        dport in any::<u16>(),
        tcp in any::<bool>(),
    ) {
        let ct = Conntrack::new(100, 64);
        let l4 = if tcp { "tcp" } else { "udp" };
        let p = pkt(&format!(
            "ip4.src={} ip4.dst={} {l4}.src={sport} {l4}.dst={dport}",
            std::net::Ipv4Addr::from(src),
            std::net::Ipv4Addr::from(dst),
        ));
        let ports = [sport.to_be_bytes(), dport.to_be_bytes()].concat();
        let probe = ct.probe_v4(zone, src, dst, ports.try_into().unwrap(), p.tuple.proto);
        prop_assert_eq!(Some(probe), ct.locate(zone, &p).map(|at| at.probe()));
    }

    /// Any sequence of TCP flags in either direction leaves the table
    /// consistent: one entry at most, with the keys of both directions.
    #[test]
    fn tcp_flag_soup_keeps_the_table_consistent(steps in proptest::collection::vec((any::<bool>(), 0u8..64), 0..40)) {
        let ct = Conntrack::new(10, 1);
        for (reply, flags) in steps {
            let p = tcp(if reply { S2C } else { C2S }, flags);
            let t = ct.track(1, &p, 0, true);
            if t.state.has(CtState::NEW) {
                ct.commit(1, &p, 0, 0).unwrap();
            }
            prop_assert!(ct.len() <= 1);
            // Both directions' keys, or none.
            prop_assert_eq!(ct.lock(0).map.len(), 2 * ct.len());
            prop_assert_eq!(ct.dump(None).len(), ct.len());
        }
    }
}

//! The rule index of one port's ACL list, so that a new connection's ACL
//! evaluation does not grow with the number of rules.
//!
//! Neutron writes a security group rule as a conjunction naming the
//! protocol and the destination port or range it opens (`tcp && tcp.dst
//! == 22`, `udp.dst >= 1000 && udp.dst <= 2000`, `icmp4`), so a cloud's
//! thousands of rules are spread over protocols and ports and a packet can
//! match only the few filed under its own. Each rule is filed by what its
//! top-level conjunction *requires* of `ip.proto` and the L4 destination
//! port ([`Requires`], read conservatively: anything under `||`, a
//! negation or an unknown shape requires nothing); the rules that require
//! neither stay in a residual list. A packet's candidates are the residual
//! list, its protocol's rules without a port requirement, and the rules
//! whose ports cover its destination port: one segment of the port space,
//! found by binary search over the segment boundaries. All three lists
//! are in priority order (rule index order), and they are merged, so the
//! candidates are evaluated in exactly the order the linear scan would
//! meet them: the first match is the same rule.
//!
//! A rule whose port requirement is wide is copied into every segment it
//! covers; if many wide, overlapping ranges would make that quadratic,
//! the widest are left unsplit, among the protocol's port-less rules
//! ([`SEGMENT_BUDGET`]).

use ovn_expr::{Field, Pred, RelOp};

use super::{Node, Rule, Subject};

/// How many segment entries a protocol may hold per rule with a port
/// requirement (plus one per possible port) before its widest ranges are
/// evaluated without the split instead.
const SEGMENT_BUDGET: usize = 8;

/// Largest L4 port.
const PORT_MAX: u128 = u16::MAX as u128;

/// The protocols a predicate requires (`ip.proto` values), if it requires
/// one: ovn-sb(5)'s `tcp` is `ip.proto == 6`, `icmp` is `icmp4 || icmp6`.
fn protos_of(p: Pred) -> Option<&'static [u8]> {
    Some(match p {
        Pred::Tcp => &[6],
        Pred::Udp => &[17],
        Pred::Sctp => &[132],
        Pred::Icmp4 => &[1],
        Pred::Icmp6 => &[58],
        Pred::Icmp => &[1, 58],
        _ => return None,
    })
}

/// The destination port field of a protocol.
fn dst_field(proto: u8) -> Option<Field> {
    match proto {
        6 => Some(Field::TcpDst),
        17 => Some(Field::UdpDst),
        132 => Some(Field::SctpDst),
        _ => None,
    }
}

/// What a match requires of a packet's protocol and destination port.
#[derive(Debug, Default, PartialEq, Eq)]
struct Requires {
    /// `ip.proto` is one of these (sorted); None: any protocol.
    protos: Option<Vec<u8>>,
    /// The destination port is in one of these disjoint closed ranges
    /// (sorted); None: any port.
    dst: Option<Vec<(u16, u16)>>,
}

impl Requires {
    fn protos(&mut self, allowed: &[u8]) {
        self.protos = Some(match self.protos.take() {
            None => allowed.to_vec(),
            Some(v) => v.into_iter().filter(|p| allowed.contains(p)).collect(),
        });
    }

    fn dst(&mut self, ranges: Vec<(u16, u16)>) {
        self.dst = Some(match self.dst.take() {
            None => ranges,
            Some(have) => intersect(&have, &ranges),
        });
    }

    /// Adds what one conjunct requires.
    fn conjunct(&mut self, n: &Node) {
        match n {
            Node::And(v) => v.iter().for_each(|n| self.conjunct(n)),
            Node::Pred(p, false) => {
                if let Some(ps) = protos_of(*p) {
                    self.protos(ps);
                }
            }
            Node::Cmp(f, op, set) => {
                // A comparison is false unless its prerequisite holds
                // (`tcp.dst != 22` matches only TCP), whatever its operator.
                if let Some(ps) = f.prereq().and_then(protos_of) {
                    self.protos(ps);
                }
                match (f, op) {
                    (Field::IpProto, RelOp::Eq) if set.masked.is_empty() => {
                        let ps: Vec<u8> = set
                            .exact
                            .iter()
                            .filter_map(|&v| u8::try_from(v).ok())
                            .collect();
                        self.protos(&ps);
                    }
                    (Field::TcpDst | Field::UdpDst | Field::SctpDst, _) => {
                        if let Some(r) = ranges(*op, set) {
                            self.dst(r);
                        }
                    }
                    _ => {}
                }
            }
            // Negations, disjunctions and constants require nothing here.
            Node::Pred(_, true) | Node::Or(_) | Node::Bool(_) => {}
        }
    }
}

/// The destination ports a port comparison can be true for, as
/// [`Node::eval`] evaluates it; None: it does not say (`!=`, masks).
fn ranges(op: RelOp, set: &super::ValueSet) -> Option<Vec<(u16, u16)>> {
    let one = set.exact.first().copied().unwrap_or(0);
    let range = |lo: u128, hi: u128| {
        let hi = hi.min(PORT_MAX);
        if lo > hi {
            Vec::new()
        } else {
            vec![(lo as u16, hi as u16)]
        }
    };
    Some(match op {
        RelOp::Eq if set.masked.is_empty() => set
            .exact
            .iter()
            .filter(|&&v| v <= PORT_MAX)
            .map(|&v| (v as u16, v as u16))
            .collect(),
        RelOp::Eq | RelOp::Ne => return None,
        RelOp::Lt if one == 0 => Vec::new(),
        RelOp::Lt => range(0, one - 1),
        RelOp::Le => range(0, one),
        RelOp::Gt => range(one.saturating_add(1), PORT_MAX),
        RelOp::Ge => range(one, PORT_MAX),
    })
}

/// The intersection of two sorted lists of disjoint closed ranges.
fn intersect(a: &[(u16, u16)], b: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo <= hi {
            out.push((lo, hi));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The rules of one protocol.
#[derive(Debug, Default)]
struct ProtoRules {
    proto: u8,
    /// Its destination port field; None: the protocol has no ports.
    dst_field: Option<Field>,
    /// Rules that require the protocol but no destination port.
    any_dst: Box<[u32]>,
    /// The port space cut into segments: segment `s` starts at
    /// `starts[s]` and ends where the next one starts (the first starts
    /// at 0); its rules are `entries[offsets[s]..offsets[s + 1]]`.
    starts: Box<[u16]>,
    offsets: Box<[u32]>,
    entries: Box<[u32]>,
}

impl ProtoRules {
    /// Files `ranged` (rule, its port ranges) into segments; a rule that
    /// requires no port at all goes to `any`. Returns the rules left
    /// unsplit to stay within the budget, for `any`.
    fn build(proto: u8, mut any: Vec<u32>, mut ranged: Vec<(u32, Vec<(u16, u16)>)>) -> ProtoRules {
        let dst_field = dst_field(proto);
        if dst_field.is_none() {
            // No ports to split by (the comparisons are false anyway).
            any.extend(ranged.drain(..).map(|(i, _)| i));
        }
        // A rule with no port left (`tcp.dst < 0`) matches nothing: it
        // stays where the linear scan would try it, without a segment.
        let (never, r): (Vec<_>, Vec<_>) = ranged.into_iter().partition(|(_, r)| r.is_empty());
        any.extend(never.into_iter().map(|(i, _)| i));
        ranged = r;
        let bounds = |ranged: &[(u32, Vec<(u16, u16)>)]| {
            let mut b: Vec<u16> = vec![0];
            for (_, rs) in ranged {
                for &(lo, hi) in rs {
                    b.push(lo);
                    if let Some(next) = hi.checked_add(1) {
                        b.push(next);
                    }
                }
            }
            b.sort_unstable();
            b.dedup();
            b
        };
        let seg = |starts: &[u16], port: u16| starts.partition_point(|&s| s <= port) - 1;
        let mut starts = bounds(&ranged);
        let covered = |starts: &[u16], rs: &[(u16, u16)]| -> usize {
            rs.iter()
                .map(|&(lo, hi)| seg(starts, hi) - seg(starts, lo) + 1)
                .sum()
        };
        let budget = SEGMENT_BUDGET * ranged.len() + usize::from(u16::MAX) + 1;
        let mut cost: Vec<usize> = ranged.iter().map(|(_, rs)| covered(&starts, rs)).collect();
        if cost.iter().sum::<usize>() > budget {
            // Leave the widest unsplit until the rest fit (their cost
            // only falls as boundaries go with them).
            let mut order: Vec<usize> = (0..ranged.len()).collect();
            order.sort_by_key(|&k| std::cmp::Reverse(cost[k]));
            let mut total: usize = cost.iter().sum();
            let mut unsplit = vec![false; ranged.len()];
            for k in order {
                if total <= budget {
                    break;
                }
                total -= cost[k];
                unsplit[k] = true;
            }
            let (wide, keep): (Vec<_>, Vec<_>) =
                ranged.into_iter().zip(unsplit).partition(|(_, wide)| *wide);
            any.extend(wide.into_iter().map(|((i, _), _)| i));
            ranged = keep.into_iter().map(|(r, _)| r).collect();
            starts = bounds(&ranged);
            cost = ranged.iter().map(|(_, rs)| covered(&starts, rs)).collect();
        }
        let mut per_seg: Vec<Vec<u32>> = vec![Vec::new(); starts.len()];
        for (i, rs) in &ranged {
            for &(lo, hi) in rs {
                for list in &mut per_seg[seg(&starts, lo)..=seg(&starts, hi)] {
                    list.push(*i);
                }
            }
        }
        debug_assert_eq!(
            per_seg.iter().map(Vec::len).sum::<usize>(),
            cost.iter().sum::<usize>()
        );
        let mut offsets = Vec::with_capacity(per_seg.len() + 1);
        let mut entries = Vec::new();
        offsets.push(0);
        for mut list in per_seg {
            list.sort_unstable();
            list.dedup();
            entries.extend_from_slice(&list);
            offsets.push(entries.len() as u32);
        }
        any.sort_unstable();
        ProtoRules {
            proto,
            dst_field,
            any_dst: any.into(),
            starts: if ranged.is_empty() {
                Box::default()
            } else {
                starts.into()
            },
            offsets: offsets.into(),
            entries: entries.into(),
        }
    }

    /// The rules whose port requirement covers the packet's destination
    /// port.
    #[inline]
    fn for_dst(&self, s: &mut impl Subject) -> &[u32] {
        let Some(f) = self.dst_field.filter(|_| !self.starts.is_empty()) else {
            return &[];
        };
        let Some(port) = s.field(f).and_then(|p| u16::try_from(p).ok()) else {
            return &[];
        };
        let k = self.starts.partition_point(|&st| st <= port) - 1;
        &self.entries[self.offsets[k] as usize..self.offsets[k + 1] as usize]
    }
}

/// The rules of one port's list (indexes into [`super::DirAcls::rules`],
/// highest priority first), filed by protocol and destination port.
#[derive(Debug, Default)]
pub(crate) struct RuleIndex {
    /// Rules that require neither a protocol nor a port.
    residual: Box<[u32]>,
    /// By protocol (few: a linear search).
    protos: Box<[ProtoRules]>,
}

impl RuleIndex {
    /// Indexes `list` (ascending rule indexes) of `rules`.
    pub(crate) fn new(rules: &[Rule], list: &[u32]) -> RuleIndex {
        let mut residual = Vec::new();
        // proto -> (rules without a port requirement, rules with one).
        type Filed = (Vec<u32>, Vec<(u32, Vec<(u16, u16)>)>);
        let mut by_proto: std::collections::BTreeMap<u8, Filed> = Default::default();
        for &i in list {
            let mut req = Requires::default();
            req.conjunct(&rules[i as usize].node);
            match req.protos {
                // Requires no protocol, or contradictory ones (it matches
                // nothing: the linear order keeps it harmless).
                None => residual.push(i),
                Some(ps) if ps.is_empty() => residual.push(i),
                Some(ps) => {
                    for p in ps {
                        let e = by_proto.entry(p).or_default();
                        match &req.dst {
                            // Port ranges belong to the one protocol
                            // whose port field they compare.
                            Some(r) if dst_field(p).is_some() => e.1.push((i, r.clone())),
                            _ => e.0.push(i),
                        }
                    }
                }
            }
        }
        RuleIndex {
            residual: residual.into(),
            protos: by_proto
                .into_iter()
                .map(|(p, (any, ranged))| ProtoRules::build(p, any, ranged))
                .collect(),
        }
    }

    /// The highest-priority rule that matches `s`: the first of the
    /// candidates that matches, in rule order.
    #[inline]
    pub(crate) fn first_match(&self, rules: &[Rule], s: &mut impl Subject) -> Option<u32> {
        let (mut any, mut dst): (&[u32], &[u32]) = (&[], &[]);
        if !self.protos.is_empty() && s.pred(Pred::Ip) {
            let proto = s.field(Field::IpProto);
            if let Some(pr) = self
                .protos
                .iter()
                .find(|p| Some(u128::from(p.proto)) == proto)
            {
                any = &pr.any_dst;
                dst = pr.for_dst(s);
            }
        }
        let mut lists = [&self.residual[..], any, dst];
        loop {
            let (k, &i) = lists
                .iter()
                .enumerate()
                .filter_map(|(k, l)| Some((k, l.first()?)))
                .min_by_key(|&(_, i)| *i)?;
            lists[k] = &lists[k][1..];
            if rules[i as usize].node.eval(s) {
                return Some(i);
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! ACLs: the typed description the control plane installs ([`AclConfig`]:
//! OVN's NB `ACL` rows with their match parsed by `ovn-expr`, the port
//! groups and address sets they name) and the per-datapath, per-direction
//! classifier compiled from it ([`AclTables`]), which the ACL stage
//! ([`crate::pipeline::acl`]) evaluates.
//!
//! Semantics are ovn-northd 23.03's (`build_acls`, `consider_acl`): ACLs
//! apply to the switches they are on and, for port-group ACLs, to every
//! switch with a port in the group; the highest priority match decides; a
//! datapath has conntrack only if one of its ACLs is `allow-related`
//! (`ls_get_acl_flags`), and then `allow` commits too.
//!
//! The classifier: rules are sorted by priority once; each rule whose
//! match requires `inport` (from-lport) or `outport` (to-lport) to be in a
//! set of ports, as Neutron writes every rule (`inport == @pg_…`), is
//! listed only under those ports, so a packet is tried against the rules
//! of its own port's groups and the port-less rules, not every ACL of the
//! datapath; ports with the same list (a security group's) share it.
//! Each list is indexed by the protocol and L4 destination port its rules
//! require (the `index` module): a Neutron cloud has tens of thousands of ACLs, and
//! a new connection is tried only against the rules its protocol and
//! port could match, in the order the linear scan would try them, so the
//! first match is the same. An address set is one sorted array, searched
//! in O(log n). Established connections never get here (conntrack lets
//! them through before the ACLs, [`crate::pipeline::acl`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hashbrown::{HashMap, HashSet};
use ovn_expr::{Expr, Field, Pred, RelOp, Value};

use crate::acl_log::{AclLog, Logged, Severity};
use crate::conntrack::Conntrack;
use crate::ids::{DatapathIdx, LportIdx};
use crate::meter::{Meter, MeterConfig};
use crate::tables::Tables;
use index::RuleIndex;

mod compile;
mod index;

/// OVN's ACL directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Applied in the ingress pipeline, to what the port sends.
    FromLport,
    /// Applied in the egress pipeline, to what the port receives.
    ToLport,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::FromLport => "from-lport",
            Direction::ToLport => "to-lport",
        }
    }
}

/// OVN 23.03's ACL actions (ovn-nb(5)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AclAction {
    Allow,
    AllowRelated,
    AllowStateless,
    Drop,
    Reject,
}

impl AclAction {
    pub fn parse(s: &str) -> Option<AclAction> {
        Some(match s {
            "allow" => AclAction::Allow,
            "allow-related" => AclAction::AllowRelated,
            "allow-stateless" => AclAction::AllowStateless,
            "drop" => AclAction::Drop,
            "reject" => AclAction::Reject,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AclAction::Allow => "allow",
            AclAction::AllowRelated => "allow-related",
            AclAction::AllowStateless => "allow-stateless",
            AclAction::Drop => "drop",
            AclAction::Reject => "reject",
        }
    }

    /// Whether it lets the packet through.
    pub fn allows(self) -> bool {
        matches!(
            self,
            AclAction::Allow | AclAction::AllowRelated | AclAction::AllowStateless
        )
    }
}

/// One ACL as the control plane gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    /// NB `name` (may be empty).
    pub name: String,
    pub priority: u16,
    pub direction: Direction,
    pub action: AclAction,
    /// NB `match`, as written (for traces and logs) and parsed.
    pub match_text: String,
    pub expr: Expr,
    pub log: bool,
    pub severity: Severity,
    /// The SB meter its log lines go through (resolved by the control
    /// plane); None: [`crate::acl_log::LINES_PER_SECOND`].
    pub meter: Option<MeterConfig>,
    /// The logical switches (by name) it applies to.
    pub switches: Vec<String>,
}

impl Acl {
    /// What `/metrics` counts it under: its name, or (unnamed) its
    /// direction, priority and match.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            format!(
                "{}:{}:{}",
                self.direction.as_str(),
                self.priority,
                self.match_text
            )
        } else {
            self.name.clone()
        }
    }
}

/// Everything the ACL stages need from the control plane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclConfig {
    pub acls: Vec<Acl>,
    /// Port group name → logical port names.
    pub port_groups: BTreeMap<String, Vec<String>>,
    /// Address set name → addresses as OVN writes them ("10.0.0.0/24").
    pub address_sets: BTreeMap<String, Vec<String>>,
}

/// An ACL the dataplane could not compile (it is not installed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ACL {label:?} not installed: {why}")]
pub struct AclError {
    pub label: String,
    pub why: String,
}

/// State that outlives table snapshots: the connection table, conntrack
/// zones per logical port (kept as long as the node runs, as
/// ovn-controller keeps its zone allocations), and per-ACL hit counters.
#[derive(Debug)]
pub struct Stateful {
    pub conntrack: Conntrack,
    /// The lines logged ACLs write, for the node to write out.
    pub acl_log: Arc<AclLog>,
    zones: Mutex<HashMap<String, u16>>,
    hits: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    generation: AtomicU32,
}

impl Stateful {
    pub fn new(conntrack: Conntrack) -> Arc<Stateful> {
        Arc::new(Stateful {
            conntrack,
            acl_log: Arc::default(),
            zones: Mutex::new(HashMap::new()),
            hits: Mutex::new(BTreeMap::new()),
            generation: AtomicU32::new(0),
        })
    }

    /// The conntrack zone of logical port `name` (allocated on first use,
    /// from 1, as ovn-controller's zones are).
    pub fn zone(&self, name: &str) -> u16 {
        let mut z = self.zones.lock().unwrap_or_else(|p| p.into_inner());
        let next = z.len() as u16 + 1;
        *z.entry(name.to_string()).or_insert(next)
    }

    /// The hit counter of ACL `label`.
    fn counter(&self, label: &str) -> Arc<AtomicU64> {
        let mut h = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        h.entry(label.to_string()).or_default().clone()
    }

    /// (label, hits) of every ACL installed so far.
    pub fn hits(&self) -> Vec<(String, u64)> {
        let h = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        h.iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Values a comparison holds: exact ones sorted (the ordering operators
/// compare with the first) and, in a set larger than [`HASHED`], hashed
/// too, masked ones tried in turn. Shared: every rule comparing a field
/// with the same address set holds the one copy.
#[derive(Clone, Debug, Default)]
pub(crate) struct ValueSet {
    exact: Arc<[u128]>,
    hashed: Option<Arc<HashSet<u128>>>,
    masked: Arc<[(u128, u128)]>,
}

/// Exact values beyond which a set is looked up by hash: a binary search
/// of an address set of thousands mispredicts a branch at most of its
/// dozen steps, and a packet may be tried against several such rules.
const HASHED: usize = 16;

impl ValueSet {
    fn new(exact: Vec<u128>, masked: Vec<(u128, u128)>) -> ValueSet {
        ValueSet {
            hashed: (exact.len() > HASHED).then(|| Arc::new(exact.iter().copied().collect())),
            exact: exact.into(),
            masked: masked.into(),
        }
    }

    #[inline]
    fn contains(&self, x: u128) -> bool {
        let exact = match &self.hashed {
            Some(h) => h.contains(&x),
            None => self.exact.binary_search(&x).is_ok(),
        };
        exact || self.masked.iter().any(|&(v, m)| x & m == v)
    }
}

/// A compiled match.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Bool(bool),
    Pred(Pred, bool),
    Cmp(Field, RelOp, ValueSet),
    And(Box<[Node]>),
    Or(Box<[Node]>),
}

/// What a match reads of a packet (the ACL stage provides it). The rule
/// index relies on the predicates being what ovn-sb(5) defines them as:
/// `tcp` holds only if `ip` does and `ip.proto` is 6 (`udp` 17, `sctp`
/// 132, `icmp4` 1, `icmp6` 58).
pub(crate) trait Subject {
    fn field(&mut self, f: Field) -> Option<u128>;
    fn pred(&mut self, p: Pred) -> bool;
}

impl Node {
    pub(crate) fn eval(&self, s: &mut impl Subject) -> bool {
        match self {
            Node::Bool(b) => *b,
            Node::Pred(p, neg) => s.pred(*p) != *neg,
            Node::Cmp(f, op, set) => {
                if f.prereq().is_some_and(|p| !s.pred(p)) {
                    return false;
                }
                let Some(x) = s.field(*f) else {
                    return false;
                };
                let one = || set.exact.first().copied().unwrap_or(0);
                match op {
                    RelOp::Eq => set.contains(x),
                    RelOp::Ne => !set.contains(x),
                    RelOp::Lt => x < one(),
                    RelOp::Le => x <= one(),
                    RelOp::Gt => x > one(),
                    RelOp::Ge => x >= one(),
                }
            }
            Node::And(v) => v.iter().all(|n| n.eval(s)),
            Node::Or(v) => v.iter().any(|n| n.eval(s)),
        }
    }
}

/// One installed ACL.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub priority: u16,
    pub direction: Direction,
    pub action: AclAction,
    pub match_text: String,
    /// Its log, if NB `log` is set.
    pub log: Option<Arc<Logged>>,
    pub(crate) node: Node,
    pub(crate) hits: Arc<AtomicU64>,
}

/// The ACLs of one datapath in one direction.
#[derive(Debug, Default)]
pub struct DirAcls {
    pub rules: Vec<Rule>,
    /// The distinct candidate lists: the ports of the same port groups
    /// (every port of a Neutron security group) share one.
    lists: Box<[PortRules]>,
    /// Per port (of the direction's port field): its list in `lists`.
    by_port: HashMap<LportIdx, u32>,
    /// The list of the rules that name no port (for other ports).
    portless: PortRules,
    pub has_stateless: bool,
}

impl DirAcls {
    /// The rules that can match a packet of `port`.
    #[inline]
    pub fn for_port(&self, port: LportIdx) -> &PortRules {
        match self.by_port.get(&port) {
            Some(&k) => &self.lists[k as usize],
            None => &self.portless,
        }
    }
}

/// The rules that can match the packets of one port, indexed by protocol
/// and destination port (the `index` module).
#[derive(Debug, Default)]
pub struct PortRules {
    all: RuleIndex,
    /// Its `allow-stateless` rules alone.
    stateless: RuleIndex,
}

impl PortRules {
    fn new(rules: &[Rule], list: &[u32]) -> PortRules {
        let stateless: Vec<u32> = list
            .iter()
            .copied()
            .filter(|&i| rules[i as usize].action == AclAction::AllowStateless)
            .collect();
        PortRules {
            all: RuleIndex::new(rules, list),
            stateless: RuleIndex::new(rules, &stateless),
        }
    }

    /// The highest-priority rule of `d` that matches `s`.
    #[inline]
    pub(crate) fn first_match<'r>(&self, d: &'r DirAcls, s: &mut impl Subject) -> Option<&'r Rule> {
        let i = self.all.first_match(&d.rules, s)?;
        Some(&d.rules[i as usize])
    }

    /// The highest-priority `allow-stateless` rule of `d` that matches
    /// `s` (it keeps the packet out of conntrack whatever outranks it).
    #[inline]
    pub(crate) fn first_stateless<'r>(
        &self,
        d: &'r DirAcls,
        s: &mut impl Subject,
    ) -> Option<&'r Rule> {
        let i = self.stateless.first_match(&d.rules, s)?;
        Some(&d.rules[i as usize])
    }
}

/// The ACLs of one datapath.
#[derive(Debug, Default)]
pub struct DpAcls {
    /// An `allow-related` ACL is among them: IP traffic is tracked.
    pub stateful: bool,
    pub from_lport: DirAcls,
    pub to_lport: DirAcls,
}

impl DpAcls {
    pub fn dir(&self, d: Direction) -> &DirAcls {
        match d {
            Direction::FromLport => &self.from_lport,
            Direction::ToLport => &self.to_lport,
        }
    }
}

/// The compiled ACLs of every datapath, part of a [`Tables`] snapshot.
#[derive(Debug, Default)]
pub struct AclTables {
    /// By datapath index; None: no ACLs (everything allowed, untracked).
    pub datapaths: Vec<Option<DpAcls>>,
    /// Conntrack zone by logical port index.
    pub zones: Vec<u16>,
    /// Changes with every ACL installation: connections allowed under an
    /// older one are checked again by their next packet.
    pub generation: u32,
    pub stateful: Option<Arc<Stateful>>,
}

impl AclTables {
    /// The ACLs of datapath `d`, if it has any.
    #[inline]
    pub fn datapath(&self, d: DatapathIdx) -> Option<&DpAcls> {
        self.datapaths.get(d.get()).and_then(Option::as_ref)
    }
}

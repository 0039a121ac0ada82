//! OVN's match language, the subset ACLs are written in: one parser for
//! ovn-northd-lite (which validates NB `ACL.match` before it reaches SB)
//! and for the dataplane (which compiles it into its ACL classifier).
//!
//! [`parse`] turns a match string into a typed [`Expr`] in negation normal
//! form: `!` is pushed down to the leaves (ovn-sb(5): `!(a == b)` is
//! `a != b`; De Morgan over `&&`/`||`), so an evaluator only meets
//! negated predicates and inverted comparisons. Field prerequisites
//! (ovn-sb(5): "`tcp.dst` has prerequisite `tcp`") are not written into the
//! tree: [`Field::prereq`] names them and an evaluator applies them at
//! the leaf, as OVN's `expr_annotate` does after pushing negations down,
//! so `tcp.dst != 22` and `!(tcp.dst == 22)` both match only TCP.
//! Names stay names ([`Value::PortGroup`], [`Value::AddressSet`],
//! [`Value::Port`]): what they stand for is the compiler's business.

mod lex;
mod parse;

pub use parse::parse;

/// A parse or type error, at a byte offset of the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at column {}: {msg}", at + 1)]
pub struct Error {
    /// Byte offset (0-based) where the problem starts.
    pub at: usize,
    pub msg: String,
}

impl Error {
    fn new(at: usize, msg: impl Into<String>) -> Error {
        Error {
            at,
            msg: msg.into(),
        }
    }
}

/// What a field's values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A logical port name (`inport`, `outport`).
    Port,
    Mac,
    Ip4,
    Ip6,
    /// An unsigned integer of this many bits.
    Int(u8),
}

/// A field a comparison reads (ovn-sb(5), "Symbols").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Inport,
    Outport,
    EthSrc,
    EthDst,
    EthType,
    IpProto,
    Ip4Src,
    Ip4Dst,
    Ip6Src,
    Ip6Dst,
    TcpSrc,
    TcpDst,
    UdpSrc,
    UdpDst,
    SctpSrc,
    SctpDst,
    Icmp4Type,
    Icmp4Code,
    Icmp6Type,
    Icmp6Code,
}

const FIELDS: [(&str, Field); 20] = [
    ("inport", Field::Inport),
    ("outport", Field::Outport),
    ("eth.src", Field::EthSrc),
    ("eth.dst", Field::EthDst),
    ("eth.type", Field::EthType),
    ("ip.proto", Field::IpProto),
    ("ip4.src", Field::Ip4Src),
    ("ip4.dst", Field::Ip4Dst),
    ("ip6.src", Field::Ip6Src),
    ("ip6.dst", Field::Ip6Dst),
    ("tcp.src", Field::TcpSrc),
    ("tcp.dst", Field::TcpDst),
    ("udp.src", Field::UdpSrc),
    ("udp.dst", Field::UdpDst),
    ("sctp.src", Field::SctpSrc),
    ("sctp.dst", Field::SctpDst),
    ("icmp4.type", Field::Icmp4Type),
    ("icmp4.code", Field::Icmp4Code),
    ("icmp6.type", Field::Icmp6Type),
    ("icmp6.code", Field::Icmp6Code),
];

impl Field {
    /// The field named `name`, as OVN spells it.
    pub fn from_name(name: &str) -> Option<Field> {
        FIELDS.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
    }

    /// Its name, as OVN spells it.
    pub fn name(self) -> &'static str {
        FIELDS
            .iter()
            .find(|&&(_, f)| f == self)
            .map_or("?", |(n, _)| n)
    }

    pub fn kind(self) -> Kind {
        use Field::*;
        match self {
            Inport | Outport => Kind::Port,
            EthSrc | EthDst => Kind::Mac,
            EthType => Kind::Int(16),
            IpProto | Icmp4Type | Icmp4Code | Icmp6Type | Icmp6Code => Kind::Int(8),
            Ip4Src | Ip4Dst => Kind::Ip4,
            Ip6Src | Ip6Dst => Kind::Ip6,
            TcpSrc | TcpDst | UdpSrc | UdpDst | SctpSrc | SctpDst => Kind::Int(16),
        }
    }

    /// What must hold for the field to exist in a packet (ovn-sb(5)
    /// "prerequisites"): a comparison is false where it does not.
    pub fn prereq(self) -> Option<Pred> {
        use Field::*;
        match self {
            Inport | Outport | EthSrc | EthDst | EthType => None,
            IpProto => Some(Pred::Ip),
            Ip4Src | Ip4Dst => Some(Pred::Ip4),
            Ip6Src | Ip6Dst => Some(Pred::Ip6),
            TcpSrc | TcpDst => Some(Pred::Tcp),
            UdpSrc | UdpDst => Some(Pred::Udp),
            SctpSrc | SctpDst => Some(Pred::Sctp),
            Icmp4Type | Icmp4Code => Some(Pred::Icmp4),
            Icmp6Type | Icmp6Code => Some(Pred::Icmp6),
        }
    }

    /// All-ones in the field's width.
    pub fn full_mask(self) -> u128 {
        match self.kind() {
            Kind::Port => u128::MAX,
            Kind::Mac => (1 << 48) - 1,
            Kind::Ip4 => u128::from(u32::MAX),
            Kind::Ip6 => u128::MAX,
            Kind::Int(bits) => (1 << bits) - 1,
        }
    }
}

/// A predicate: a name that stands for a condition (ovn-sb(5): `ip4` is
/// `eth.type == 0x800`, `tcp` is `ip.proto == 6`, ...), or a connection
/// tracking state bit (`ct.new`, ...; meaningful only after conntrack).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pred {
    Ip,
    Ip4,
    Ip6,
    Arp,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmp4,
    Icmp6,
    CtNew,
    CtEst,
    CtRel,
    CtRpl,
    CtInv,
    CtTrk,
}

const PREDS: [(&str, Pred); 16] = [
    ("ip", Pred::Ip),
    ("ip4", Pred::Ip4),
    ("ip6", Pred::Ip6),
    ("arp", Pred::Arp),
    ("tcp", Pred::Tcp),
    ("udp", Pred::Udp),
    ("sctp", Pred::Sctp),
    ("icmp", Pred::Icmp),
    ("icmp4", Pred::Icmp4),
    ("icmp6", Pred::Icmp6),
    ("ct.new", Pred::CtNew),
    ("ct.est", Pred::CtEst),
    ("ct.rel", Pred::CtRel),
    ("ct.rpl", Pred::CtRpl),
    ("ct.inv", Pred::CtInv),
    ("ct.trk", Pred::CtTrk),
];

impl Pred {
    pub fn from_name(name: &str) -> Option<Pred> {
        PREDS.iter().find(|(n, _)| *n == name).map(|&(_, p)| p)
    }

    pub fn name(self) -> &'static str {
        PREDS
            .iter()
            .find(|&&(_, p)| p == self)
            .map_or("?", |(n, _)| n)
    }

    /// Whether it reads conntrack state.
    pub fn is_ct(self) -> bool {
        matches!(
            self,
            Pred::CtNew | Pred::CtEst | Pred::CtRel | Pred::CtRpl | Pred::CtInv | Pred::CtTrk
        )
    }
}

/// A relational operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl RelOp {
    /// The operator that holds exactly where this one does not.
    pub fn invert(self) -> RelOp {
        match self {
            RelOp::Eq => RelOp::Ne,
            RelOp::Ne => RelOp::Eq,
            RelOp::Lt => RelOp::Ge,
            RelOp::Le => RelOp::Gt,
            RelOp::Gt => RelOp::Le,
            RelOp::Ge => RelOp::Lt,
        }
    }
}

/// One value a comparison is against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A constant (integer, MAC, IPv4, IPv6 as an integer), compared
    /// under `mask` (all ones in the field's width without one).
    Masked { value: u128, mask: u128 },
    /// A logical port, by name (`inport == "vm1"`).
    Port(String),
    /// `@name`: the ports of a port group.
    PortGroup(String),
    /// `$name`: the addresses of an address set (OVN also makes
    /// `$<port group>_ip4` and `_ip6` from a group's ports' addresses).
    AddressSet(String),
}

/// A match expression in negation normal form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `1` or `0` (and what constant folding leaves).
    Bool(bool),
    /// A predicate, or its negation.
    Pred {
        pred: Pred,
        negated: bool,
    },
    /// `field op value` (`==`: any of `values` matches; `!=`: none does;
    /// the ordering operators have exactly one unmasked value).
    Cmp {
        field: Field,
        op: RelOp,
        values: Vec<Value>,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    /// The expression that holds exactly where this one does not, still in
    /// negation normal form.
    pub fn negate(self) -> Expr {
        match self {
            Expr::Bool(b) => Expr::Bool(!b),
            Expr::Pred { pred, negated } => Expr::Pred {
                pred,
                negated: !negated,
            },
            Expr::Cmp { field, op, values } => Expr::Cmp {
                field,
                op: op.invert(),
                values,
            },
            Expr::And(v) => Expr::Or(v.into_iter().map(Expr::negate).collect()),
            Expr::Or(v) => Expr::And(v.into_iter().map(Expr::negate).collect()),
        }
    }

    /// Calls `f` on every leaf.
    pub fn visit(&self, f: &mut impl FnMut(&Expr)) {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.visit(f)),
            leaf => f(leaf),
        }
    }

    /// Whether any leaf reads conntrack state.
    pub fn reads_ct(&self) -> bool {
        let mut ct = false;
        self.visit(&mut |e| {
            ct |= matches!(e, Expr::Pred { pred, .. } if pred.is_ct());
        });
        ct
    }
}

/// Parses `text` as a constant for `field` (what address sets hold:
/// "10.0.0.1", "10.0.0.0/24", "fd00::/64", a MAC).
pub fn parse_constant(field: Field, text: &str) -> Result<Value, Error> {
    let (v, mask) = match text.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (text, None),
    };
    parse::constant(field, v, mask, 0)
}

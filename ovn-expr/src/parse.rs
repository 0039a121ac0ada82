//! The grammar, after ovn-sb(5) and OVN's `lib/expr.c`:
//!
//! ```text
//! expr    := term (('&&' term)* | ('||' term)*)    mixing needs parentheses
//! term    := '!' term | '(' expr ')' | '1' | '0' | predicate
//!          | field relop value | field relop '{' value (','? value)* '}'
//! ```
//!
//! Comparisons are type-checked against the field as they are parsed
//! (a port needs a name or `@group`, `ip4.src` an IPv4 address, prefix or
//! `$set`, integers must fit the field, masks only with `==`/`!=`), so a
//! bad ACL is reported by northd-lite with the column, not found later on
//! a chassis.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::lex::{lex, Tok, Token};
use crate::{Error, Expr, Field, Kind, Pred, RelOp, Value};

/// Parses an OVN match expression.
pub fn parse(s: &str) -> Result<Expr, Error> {
    let toks = lex(s)?;
    let mut p = Parser {
        toks,
        i: 0,
        end: s.len(),
    };
    let e = p.expr(0)?;
    if let Some(t) = p.toks.get(p.i) {
        return Err(Error::new(
            t.at,
            "syntax error: expected '&&', '||' or the end",
        ));
    }
    Ok(e)
}

/// Parentheses deeper than this are refused (no stack overflow on hostile
/// input).
const MAX_DEPTH: usize = 64;

struct Parser {
    toks: Vec<Token>,
    i: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.kind)
    }

    fn at(&self) -> usize {
        self.toks.get(self.i).map_or(self.end, |t| t.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).cloned();
        self.i += usize::from(t.is_some());
        t
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::new(self.at(), "expression nested too deeply"));
        }
        let first = self.term(depth)?;
        let op = match self.peek() {
            Some(Tok::And) => Tok::And,
            Some(Tok::Or) => Tok::Or,
            _ => return Ok(first),
        };
        let mut terms = vec![first];
        while let Some(t) = self.peek() {
            if *t == op {
                self.i += 1;
                terms.push(self.term(depth)?);
            } else if matches!(t, Tok::And | Tok::Or) {
                return Err(Error::new(
                    self.at(),
                    "&& and || must be parenthesized when used together",
                ));
            } else {
                break;
            }
        }
        Ok(if op == Tok::And {
            Expr::And(terms)
        } else {
            Expr::Or(terms)
        })
    }

    fn term(&mut self, depth: usize) -> Result<Expr, Error> {
        let at = self.at();
        let Some(t) = self.next() else {
            return Err(Error::new(at, "syntax error: expression ends too soon"));
        };
        match t.kind {
            Tok::Not => {
                if depth > MAX_DEPTH {
                    return Err(Error::new(at, "expression nested too deeply"));
                }
                Ok(self.term(depth + 1)?.negate())
            }
            Tok::LParen => {
                let e = self.expr(depth + 1)?;
                match self.next() {
                    Some(Token {
                        kind: Tok::RParen, ..
                    }) => Ok(e),
                    _ => Err(Error::new(self.at(), "syntax error: expected ')'")),
                }
            }
            Tok::Const(c, None) if c == "1" || c == "0" => Ok(Expr::Bool(c == "1")),
            Tok::Ident(name) => {
                if let Some(pred) = Pred::from_name(&name) {
                    return Ok(Expr::Pred {
                        pred,
                        negated: false,
                    });
                }
                let Some(field) = Field::from_name(&name) else {
                    return Err(Error::new(
                        at,
                        format!("unknown field or predicate {name:?}"),
                    ));
                };
                self.comparison(field, at)
            }
            _ => Err(Error::new(at, "syntax error: expected a field, '!' or '('")),
        }
    }

    fn comparison(&mut self, field: Field, field_at: usize) -> Result<Expr, Error> {
        let at = self.at();
        let op = match self.next().map(|t| t.kind) {
            Some(Tok::Eq) => RelOp::Eq,
            Some(Tok::Ne) => RelOp::Ne,
            Some(Tok::Lt) => RelOp::Lt,
            Some(Tok::Le) => RelOp::Le,
            Some(Tok::Gt) => RelOp::Gt,
            Some(Tok::Ge) => RelOp::Ge,
            _ => {
                return Err(Error::new(
                    at,
                    format!(
                        "{} must be compared with a relational operator",
                        field.name()
                    ),
                ))
            }
        };
        let ordering = !matches!(op, RelOp::Eq | RelOp::Ne);
        if ordering && !matches!(field.kind(), Kind::Int(_)) {
            return Err(Error::new(
                at,
                format!("only == and != apply to {}", field.name()),
            ));
        }
        let mut values = Vec::new();
        if self.peek() == Some(&Tok::LBrace) {
            if ordering {
                return Err(Error::new(self.at(), "a set needs == or !="));
            }
            self.i += 1;
            loop {
                match self.peek() {
                    Some(Tok::RBrace) => {
                        self.i += 1;
                        break;
                    }
                    Some(Tok::Comma) => self.i += 1,
                    None => return Err(Error::new(self.end, "unterminated set: expected '}'")),
                    Some(_) => values.push(self.value(field)?),
                }
            }
            if values.is_empty() {
                return Err(Error::new(field_at, "empty set"));
            }
        } else {
            let v_at = self.at();
            let v = self.value(field)?;
            if ordering && !matches!(v, Value::Masked { mask, .. } if mask == field.full_mask()) {
                return Err(Error::new(
                    v_at,
                    "ordering comparisons take one unmasked value",
                ));
            }
            values.push(v);
        }
        Ok(Expr::Cmp { field, op, values })
    }

    fn value(&mut self, field: Field) -> Result<Value, Error> {
        let at = self.at();
        let Some(t) = self.next() else {
            return Err(Error::new(at, "expected a value"));
        };
        let kind = field.kind();
        match (t.kind, kind) {
            (Tok::Str(s), Kind::Port) => Ok(Value::Port(s)),
            (Tok::PortGroup(g), Kind::Port) => Ok(Value::PortGroup(g)),
            (Tok::AddressSet(a), Kind::Mac | Kind::Ip4 | Kind::Ip6) => Ok(Value::AddressSet(a)),
            (Tok::Const(c, m), k) if k != Kind::Port => constant(field, &c, m.as_deref(), at),
            _ => Err(Error::new(
                at,
                format!("value of the wrong type for {}", field.name()),
            )),
        }
    }
}

fn int(s: &str) -> Option<u128> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u128::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn mac(s: &str) -> Option<u128> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
        return None;
    }
    parts.iter().try_fold(0u128, |acc, p| {
        u8::from_str_radix(p, 16)
            .ok()
            .map(|b| acc << 8 | u128::from(b))
    })
}

/// A prefix length as a mask of `bits`, or a mask written as a constant
/// of the same kind.
fn mask_of(m: &str, bits: u32, parse: impl Fn(&str) -> Option<u128>) -> Option<u128> {
    let full = if bits == 128 {
        u128::MAX
    } else {
        (1 << bits) - 1
    };
    if let Ok(n) = m.parse::<u32>() {
        if n > bits || m.contains('.') || m.contains(':') {
            return None;
        }
        return Some(if n == 0 { 0 } else { full & !(full >> n) });
    }
    parse(m)
}

/// A constant for `field`, with the text after any '/' as its mask.
pub(crate) fn constant(field: Field, c: &str, m: Option<&str>, at: usize) -> Result<Value, Error> {
    let bad = |what: &str| Error::new(at, format!("{c:?} is not {what} (for {})", field.name()));
    let full = field.full_mask();
    let (value, mask) = match field.kind() {
        Kind::Port => return Err(bad("a port name")),
        Kind::Mac => {
            let v = mac(c).ok_or_else(|| bad("an Ethernet address"))?;
            let mk = match m {
                Some(m) => mac(m).ok_or_else(|| bad("an Ethernet address and mask"))?,
                None => full,
            };
            (v, mk)
        }
        Kind::Ip4 => {
            let p4 = |s: &str| s.parse::<Ipv4Addr>().ok().map(|a| u128::from(u32::from(a)));
            let v = p4(c).ok_or_else(|| bad("an IPv4 address"))?;
            let mk = match m {
                Some(m) => mask_of(m, 32, p4).ok_or_else(|| bad("an IPv4 prefix or mask"))?,
                None => full,
            };
            (v, mk)
        }
        Kind::Ip6 => {
            let p6 = |s: &str| s.parse::<Ipv6Addr>().ok().map(u128::from);
            let v = p6(c).ok_or_else(|| bad("an IPv6 address"))?;
            let mk = match m {
                Some(m) => mask_of(m, 128, p6).ok_or_else(|| bad("an IPv6 prefix or mask"))?,
                None => full,
            };
            (v, mk)
        }
        Kind::Int(bits) => {
            let v = int(c).ok_or_else(|| bad("an integer"))?;
            let mk = match m {
                Some(m) => int(m).ok_or_else(|| bad("an integer and mask"))?,
                None => full,
            };
            if v > full || mk > full {
                return Err(Error::new(
                    at,
                    format!("{c} does not fit the {bits} bits of {}", field.name()),
                ));
            }
            (v, mk)
        }
    };
    if value & !mask != 0 {
        // OVN: "Value contains unmasked 1-bits."
        return Err(Error::new(at, format!("{c} has 1-bits outside its mask")));
    }
    Ok(Value::Masked { value, mask })
}

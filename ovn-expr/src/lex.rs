//! Tokens of OVN's match language (ovn-sb(5), "Logical_Flow TABLE",
//! `match`): identifiers with dots (`ip4.src`), quoted strings (port
//! names), `@port_group`, `$address_set`, constants (decimal or hex
//! integers, IPv4, IPv6, Ethernet addresses, each optionally `/mask` or
//! `/prefix`), and the operators. Every token carries the byte offset it
//! starts at, so errors point at the column.

use crate::Error;

/// One token and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub at: usize,
    pub kind: Tok,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    Str(String),
    PortGroup(String),
    AddressSet(String),
    /// A constant's text before any `/`, and the text after it.
    Const(String, Option<String>),
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Not,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':')
}

fn is_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
}

/// Splits `s` into tokens.
pub fn lex(s: &str) -> Result<Vec<Token>, Error> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let at = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let two = b.get(i + 1).copied();
        let (kind, len) = match (c, two) {
            (b'=', Some(b'=')) => (Tok::Eq, 2),
            (b'!', Some(b'=')) => (Tok::Ne, 2),
            (b'<', Some(b'=')) => (Tok::Le, 2),
            (b'>', Some(b'=')) => (Tok::Ge, 2),
            (b'&', Some(b'&')) => (Tok::And, 2),
            (b'|', Some(b'|')) => (Tok::Or, 2),
            (b'<', _) => (Tok::Lt, 1),
            (b'>', _) => (Tok::Gt, 1),
            (b'!', _) => (Tok::Not, 1),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'{', _) => (Tok::LBrace, 1),
            (b'}', _) => (Tok::RBrace, 1),
            (b',', _) => (Tok::Comma, 1),
            (b'"', _) => {
                let end = b[i + 1..]
                    .iter()
                    .position(|&x| x == b'"')
                    .ok_or_else(|| Error::new(at, "unterminated string"))?;
                let text = &s[i + 1..i + 1 + end];
                if text.contains('\\') {
                    return Err(Error::new(at, "escapes in strings are not supported"));
                }
                (Tok::Str(text.to_string()), end + 2)
            }
            (b'@' | b'$', _) => {
                let n = b[i + 1..].iter().take_while(|&&x| is_name(x)).count();
                if n == 0 {
                    return Err(Error::new(at, "expected a name after '@' or '$'"));
                }
                let name = s[i + 1..i + 1 + n].to_string();
                let k = if c == b'@' {
                    Tok::PortGroup(name)
                } else {
                    Tok::AddressSet(name)
                };
                (k, n + 1)
            }
            _ if is_word(c) => {
                let n = b[i..].iter().take_while(|&&x| is_word(x)).count();
                let word = &s[i..i + n];
                let constant = c.is_ascii_digit() || word.contains(':');
                if !constant {
                    (Tok::Ident(word.to_string()), n)
                } else if b.get(i + n) == Some(&b'/') {
                    let m = b[i + n + 1..].iter().take_while(|&&x| is_word(x)).count();
                    if m == 0 {
                        return Err(Error::new(i + n, "expected a mask or prefix after '/'"));
                    }
                    let mask = s[i + n + 1..i + n + 1 + m].to_string();
                    (Tok::Const(word.to_string(), Some(mask)), n + 1 + m)
                } else {
                    (Tok::Const(word.to_string(), None), n)
                }
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(Error::new(at, format!("unexpected character {ch:?}")));
            }
        };
        out.push(Token { at, kind });
        i += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_a_neutron_match() {
        let t = lex("outport == @pg_1 && ip4.src == $pg_1_ip4 && tcp.dst >= 22").unwrap();
        let kinds: Vec<Tok> = t.into_iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Tok::Ident("outport".into()),
                Tok::Eq,
                Tok::PortGroup("pg_1".into()),
                Tok::And,
                Tok::Ident("ip4.src".into()),
                Tok::Eq,
                Tok::AddressSet("pg_1_ip4".into()),
                Tok::And,
                Tok::Ident("tcp.dst".into()),
                Tok::Ge,
                Tok::Const("22".into(), None),
            ]
        );
    }

    #[test]
    fn constants_with_masks_and_positions() {
        let t = lex("ip6.src == fe80::/10 || eth.src == 00:00:00:00:00:01").unwrap();
        assert_eq!(t[2].kind, Tok::Const("fe80::".into(), Some("10".into())));
        assert_eq!(t[6].kind, Tok::Const("00:00:00:00:00:01".into(), None));
        assert_eq!(t[4].at, 24);
        let e = lex("inport == \"vm1").unwrap_err();
        assert_eq!(e.at, 10);
        assert!(lex("ip4 # x").is_err());
    }
}

//! The parser on matches as Neutron's ML2/OVN driver and ovn-nbctl users
//! write them, on errors (with their columns), and on random input (it
//! never panics).

use ovn_expr::{parse, parse_constant, Expr, Field, Pred, RelOp, Value};
use proptest::prelude::*;

fn m(value: u128, mask: u128) -> Value {
    Value::Masked { value, mask }
}

fn cmp(field: Field, op: RelOp, values: Vec<Value>) -> Expr {
    Expr::Cmp { field, op, values }
}

fn pred(p: Pred) -> Expr {
    Expr::Pred {
        pred: p,
        negated: false,
    }
}

#[test]
fn neutron_security_group_rule() {
    let e = parse(
        "outport == @pg_7c3e && ip4 && ip4.src == $pg_7c3e_ip4 && tcp && tcp.dst >= 22 && tcp.dst <= 22",
    )
    .unwrap();
    assert_eq!(
        e,
        Expr::And(vec![
            cmp(
                Field::Outport,
                RelOp::Eq,
                vec![Value::PortGroup("pg_7c3e".into())]
            ),
            pred(Pred::Ip4),
            cmp(
                Field::Ip4Src,
                RelOp::Eq,
                vec![Value::AddressSet("pg_7c3e_ip4".into())]
            ),
            pred(Pred::Tcp),
            cmp(Field::TcpDst, RelOp::Ge, vec![m(22, 0xffff)]),
            cmp(Field::TcpDst, RelOp::Le, vec![m(22, 0xffff)]),
        ])
    );
}

#[test]
fn neutron_default_drop_and_egress() {
    assert_eq!(
        parse("inport == @neutron_pg_drop && ip").unwrap(),
        Expr::And(vec![
            cmp(
                Field::Inport,
                RelOp::Eq,
                vec![Value::PortGroup("neutron_pg_drop".into())]
            ),
            pred(Pred::Ip),
        ])
    );
    assert!(parse("inport == @pg_a && ip6").is_ok());
    assert!(parse("outport == @pg_a && ip4 && ip4.src == 10.0.0.0/24 && icmp4").is_ok());
    assert!(parse("outport == @pg_a && ip6 && ip6.src == $pg_a_ip6 && udp && udp.dst >= 1 && udp.dst <= 65535").is_ok());
    assert_eq!(parse("1").unwrap(), Expr::Bool(true));
}

#[test]
fn sets_masks_and_addresses() {
    let e =
        parse(r#"inport == {"vm1", "vm2" @pg} && ip4.dst == {10.0.0.1, 10.0.1.0/255.255.255.0}"#)
            .unwrap();
    let Expr::And(v) = e else { panic!() };
    assert_eq!(
        v[0],
        cmp(
            Field::Inport,
            RelOp::Eq,
            vec![
                Value::Port("vm1".into()),
                Value::Port("vm2".into()),
                Value::PortGroup("pg".into())
            ]
        )
    );
    assert_eq!(
        v[1],
        cmp(
            Field::Ip4Dst,
            RelOp::Eq,
            vec![m(0x0a00_0001, 0xffff_ffff), m(0x0a00_0100, 0xffff_ff00)]
        )
    );
    let Expr::Cmp { values, .. } = parse("ip6.src == fd00:1::/32").unwrap() else {
        panic!()
    };
    assert_eq!(values, vec![m(0xfd00_0001u128 << 96, u128::MAX << 96)]);
    let Expr::Cmp { values, .. } = parse("eth.dst == 01:00:00:00:00:00/01:00:00:00:00:00").unwrap()
    else {
        panic!()
    };
    assert_eq!(values, vec![m(1 << 40, 1 << 40)]);
    assert_eq!(
        parse("eth.type == 0x86dd").unwrap(),
        cmp(Field::EthType, RelOp::Eq, vec![m(0x86dd, 0xffff)])
    );
    assert_eq!(
        parse_constant(Field::Ip4Src, "10.1.0.0/16").unwrap(),
        m(0x0a01_0000, 0xffff_0000)
    );
    assert!(parse_constant(Field::Ip4Src, "fd00::1").is_err());
}

#[test]
fn negation_is_pushed_to_the_leaves() {
    assert_eq!(
        parse("!(tcp.dst == 22 || ct.est)").unwrap(),
        Expr::And(vec![
            cmp(Field::TcpDst, RelOp::Ne, vec![m(22, 0xffff)]),
            Expr::Pred {
                pred: Pred::CtEst,
                negated: true
            },
        ])
    );
    assert_eq!(parse("!!ip4").unwrap(), pred(Pred::Ip4));
    assert_eq!(
        parse("!(tcp.src < 1024)").unwrap(),
        cmp(Field::TcpSrc, RelOp::Ge, vec![m(1024, 0xffff)])
    );
    assert!(parse("ct.new && (ct.rel || !ct.inv)").unwrap().reads_ct());
    assert!(!parse("icmp4.type == 8 && icmp4.code == 0")
        .unwrap()
        .reads_ct());
}

#[test]
fn errors_say_where() {
    let col = |s: &str| parse(s).unwrap_err().at;
    assert_eq!(col("ip4 && ip4.src == 10.0.0.300"), 18);
    assert_eq!(col("ip4 && tcp || udp"), 11);
    assert_eq!(col("inport == 22"), 10);
    assert_eq!(col("tcp.dst > 70000"), 10);
    assert_eq!(col("ip4.src < 10.0.0.1"), 8);
    assert_eq!(col("tcp.dst >= {22, 23}"), 11);
    assert_eq!(col("ip4.dst == 10.0.0.5/24"), 11);
    assert_eq!(col("ip5"), 0);
    assert_eq!(col("(ip4"), 4);
    assert_eq!(col("ip4 ip6"), 4);
    assert_eq!(col("tcp.dst"), 7);
    assert_eq!(col(""), 0);
    let e = parse("inport == @").unwrap_err();
    assert_eq!(
        e.to_string(),
        "at column 11: expected a name after '@' or '$'"
    );
    assert!(parse(&"(".repeat(10_000)).is_err());
    assert!(parse(&"!".repeat(10_000)).is_err());
}

proptest! {
    #[test]
    fn random_text_never_panics(s in "\\PC{0,80}") {
        let _ = parse(&s);
    }

    #[test]
    fn random_token_soup_never_panics(parts in proptest::collection::vec(prop_oneof![
        Just("ip4"), Just("tcp.dst"), Just("=="), Just("!="), Just("<="), Just("&&"), Just("||"),
        Just("!"), Just("("), Just(")"), Just("{"), Just("}"), Just(","), Just("22"), Just("0x10/0xf0"),
        Just("10.0.0.0/8"), Just("fe80::/10"), Just("@pg"), Just("$as"), Just("\"vm1\""), Just("inport"),
        Just("eth.src"), Just("00:11:22:33:44:55"), Just("ct.est"), Just("1"),
    ], 0..24)) {
        let s = parts.join(" ");
        if let Ok(e) = parse(&s) {
            // What parses, negated twice, is itself.
            prop_assert_eq!(e.clone().negate().negate(), e);
        }
    }
}

//! The schemas we serve are OVN's, table for table and column for column, of the release
//! named in `schemas/README.md` (OVN 23.03, as Debian 12 ships it in `ovn-central`):
//! compared here with the files of the installed OVN. When OVN is upgraded this test fails
//! until `schemas/update.py` has been run, so the move to a newer release is one command and
//! a reviewed diff. Southbound tables of our own (typed intent) may be added; none of OVN's
//! may be changed.

mod common;

use std::path::Path;

use serde_json::Value;

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (OVN's schemas come with Debian's ovn-central)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn compare(name: &str) -> Vec<String> {
    let ours = load(&common::schema_path(name));
    let ovn = load(&Path::new("/usr/share/ovn").join(name));
    assert_eq!(ours["name"], ovn["name"], "{name}");
    assert_eq!(
        ours["version"], ovn["version"],
        "{name}: run schemas/update.py"
    );
    let mut extra = Vec::new();
    let tables = ours["tables"].as_object().unwrap();
    for (t, ovn_t) in ovn["tables"].as_object().unwrap() {
        let ours_t = tables
            .get(t)
            .unwrap_or_else(|| panic!("{name}: OVN table {t} is missing: run schemas/update.py"));
        for (k, v) in ovn_t.as_object().unwrap() {
            if k == "columns" {
                for (c, ct) in v.as_object().unwrap() {
                    assert_eq!(ours_t["columns"].get(c), Some(ct), "{name}: {t}.{c}");
                }
            } else {
                assert_eq!(ours_t.get(k), Some(v), "{name}: {t} {k}");
            }
        }
        for c in ours_t["columns"].as_object().unwrap().keys() {
            if ovn_t["columns"].get(c).is_none() {
                extra.push(format!("{t}.{c}"));
            }
        }
    }
    extra.extend(
        tables
            .keys()
            .filter(|t| ovn["tables"].get(*t).is_none())
            .cloned(),
    );
    // OVN's checksum describes OVN's file; with additions of ours it is left out.
    if extra.is_empty() {
        assert_eq!(ours["cksum"], ovn["cksum"], "{name}");
    } else {
        assert!(ours.get("cksum").is_none(), "{name}: stale cksum");
    }
    extra
}

#[test]
fn northbound_is_ovns() {
    assert_eq!(compare("ovn-nb.ovsschema"), Vec::<String>::new());
}

/// Every OVN southbound table and column as OVN has it; tables and columns of our own
/// (typed intent, added by other work) are allowed beside them.
#[test]
fn southbound_is_ovns_plus_our_tables() {
    let extra = compare("ovn-sb.ovsschema");
    eprintln!("southbound additions of ours: {extra:?}");
}

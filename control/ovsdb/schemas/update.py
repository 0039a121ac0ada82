#!/usr/bin/env python3
"""Regenerates ovn-nb.ovsschema and ovn-sb.ovsschema from an OVN release's schemas.

Usage: update.py [OVN_SCHEMA_DIR]   (default /usr/share/ovn, Debian's ovn-central)

Every OVN table and column is taken as OVN has it, in OVN's order. Tables and columns of
ours that OVN does not have (switchyard's typed-intent tables in the southbound schema) are
kept after OVN's. When there are such additions, OVN's "cksum" no longer describes the
file and is left out. The output is written as json.dumps(indent=4), the format these files
have always had, so that branches that add tables merge readably.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def merge(ovn, ours):
    out = dict(ovn)
    tables = dict(ovn["tables"])
    added = False
    for name, table in ours.get("tables", {}).items():
        if name not in tables:
            tables[name] = table
            added = True
            continue
        extra = {c: t for c, t in table["columns"].items() if c not in tables[name]["columns"]}
        if extra:
            merged = dict(tables[name])
            merged["columns"] = {**tables[name]["columns"], **extra}
            tables[name] = merged
            added = True
    out["tables"] = tables
    if added:
        out.pop("cksum", None)
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/ovn"
    for name in ("ovn-nb.ovsschema", "ovn-sb.ovsschema"):
        with open(os.path.join(src, name)) as f:
            ovn = json.load(f)
        path = os.path.join(HERE, name)
        with open(path) as f:
            ours = json.load(f)
        with open(path, "w") as f:
            f.write(json.dumps(merge(ovn, ours), indent=4) + "\n")
        print(f"{name}: {ovn['name']} {ovn['version']} from {src}")


if __name__ == "__main__":
    main()

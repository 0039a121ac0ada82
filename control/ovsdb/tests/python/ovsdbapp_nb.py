"""Writes NB the way Neutron's ML2/OVN driver does, through ovsdbapp's OvnNbApiIdlImpl (the
Python OVS IDL underneath), against the server at argv[1], and checks what it reads back.

Run by control/ovsdb/tests/ovsdbapp.rs; prints "ok" at the end. The match strings are the
shapes Neutron's ACLs for security group rules use (neutron/common/ovn/acl.py).
"""
import sys

from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.schema.ovn_northbound import impl_idl


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


def main(remote):
    idl = connection.OvsdbIdl.from_server(remote, "OVN_Northbound")
    conn = connection.Connection(idl=idl, timeout=30)
    api = impl_idl.OvnNbApiIdlImpl(conn)
    net = "neutron-5b1a7a2c-0000-4000-8000-000000000001"
    pg = "pg_5b1a7a2c_0000_4000_8000_000000000002"
    router = "neutron-5b1a7a2c-0000-4000-8000-000000000003"
    mac, ip = "fa:16:3e:00:00:01", "10.0.0.5"
    with api.transaction(check_error=True) as txn:
        txn.add(api.ls_add(net, external_ids={"neutron:network_name": "private"}))
        txn.add(api.lsp_add(net, "port1", addresses=[f"{mac} {ip}"],
                            port_security=[f"{mac} {ip}"],
                            external_ids={"neutron:device_owner": "compute:nova"}))
        txn.add(api.pg_add(pg, acls=[], external_ids={"neutron:security_group_id": "sg1"}))
        txn.add(api.lr_add(router, external_ids={"neutron:router_name": "r1"}))
    # NAT and routes look their router up in the IDL: it must exist before (as in Neutron,
    # which creates a router in one transaction and its gateway and NAT in later ones).
    with api.transaction(check_error=True) as txn:
        txn.add(api.lrp_add(router, "lrp-1", "fa:16:3e:00:00:fe", ["10.0.0.1/24"]))
    # Neutron names the port by its row (a name is not looked up).
    lsp = api.lsp_get("port1").execute(check_error=True)
    api.pg_add_ports(pg, lsp.uuid).execute(check_error=True)
    with api.transaction(check_error=True) as txn:
        # Neutron's default security group: egress allowed, ingress from the group, ssh.
        for direction, match in [
            ("from-lport", f"inport == @{pg} && ip4"),
            ("to-lport", f"outport == @{pg} && ip4 && ip4.src == ${pg}_ip4"),
            ("to-lport", f"outport == @{pg} && ip4 && ip4.src == 0.0.0.0/0 && tcp && tcp.dst == 22"),
            ("from-lport", f"inport == @{pg} && ip6"),
        ]:
            txn.add(api.pg_acl_add(pg, direction, 1002, match, "allow-related",
                                   **{"neutron:security_group_rule_id": match[:20]}))
        txn.add(api.lr_nat_add(router, "snat", "172.24.4.10", "10.0.0.0/24"))
        txn.add(api.lr_nat_add(router, "dnat_and_snat", "172.24.4.20", ip,
                               logical_port="port1", external_mac="fa:16:3e:00:00:02"))
        txn.add(api.lr_route_add(router, "0.0.0.0/0", "172.24.4.1"))
        txn.add(api.qos_add(net, "from-lport", 2002, f'inport == "port1"', rate=1000, burst=800))
        txn.add(api.lb_add("lb1", "10.0.0.100:80", ["10.0.0.5:8080", "10.0.0.6:8080"], "tcp"))
        txn.add(api.ls_lb_add(net, "lb1"))

    check("switch", api.ls_get(net).execute(check_error=True).external_ids,
          {"neutron:network_name": "private"})
    check("addresses", api.lsp_get_addresses("port1").execute(check_error=True), [f"{mac} {ip}"])
    check("port security", api.lsp_get_port_security("port1").execute(check_error=True),
          [f"{mac} {ip}"])
    acls = api.pg_acl_list(pg).execute(check_error=True)
    check("ACLs", len(acls), 4)
    check("ACL matches", sorted(a.match for a in acls)[0], f"inport == @{pg} && ip4")
    check("port group ports", [p.name for p in api.pg_get(pg).execute(check_error=True).ports],
          ["port1"])
    nats = api.lr_nat_list(router).execute(check_error=True)
    check("NAT types", sorted(n.type for n in nats), ["dnat_and_snat", "snat"])
    check("QoS", [(q.priority, q.bandwidth) for q in api.qos_list(net).execute(check_error=True)],
          [(2002, {"rate": 1000, "burst": 800})])
    lbs = api.lb_list().execute(check_error=True)
    check("load balancer", [(lb.name, lb.vips) for lb in lbs],
          [("lb1", {"10.0.0.100:80": "10.0.0.5:8080,10.0.0.6:8080"})])
    check("routes", [r.ip_prefix for r in api.lr_route_list(router).execute(check_error=True)],
          ["0.0.0.0/0"])

    # Deletion, as Neutron deletes a network's objects.
    with api.transaction(check_error=True) as txn:
        txn.add(api.lr_del(router))
        txn.add(api.pg_del(pg))
        txn.add(api.lb_del("lb1"))
        txn.add(api.ls_del(net))
    check("switches left", [s.name for s in api.ls_list().execute(check_error=True)], [])
    check("load balancers left", api.lb_list().execute(check_error=True), [])
    conn.stop()
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])

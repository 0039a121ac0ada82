#!/usr/bin/env bash
# Side-by-side benchmark: switchyard against Open vSwitch with DPDK on the
# same pcap, the same source and sink, one core: L2 switching (OVS's NORMAL
# action), the overlay scenarios (OVS's userspace tunnelling, the
# datapath actions tnl_push and tnl_pop), stateful ACLs (OVS's userspace
# conntrack, programmed as ovn-controller programs it) and a logical router
# between two switches (OpenFlow as ovn-controller installs it).
#
# Both switches read the pcap the suite generates (dataplane/examples/
# dpdk_bench/ --write-pcap) through net_pcap with infinite_rx=1 and send
# to a net_null sink (no-rx=1), hugepages (--in-memory), --no-pci, the
# forwarding thread pinned to --core (default 1), everything else of the
# process on the other cores. Runs alternate (ours, theirs, ours, ...) so
# both see the same noise of a shared machine.
#
# - ours: `dpdk_bench --scenario S --pcap FILE --hugepages`, the node's own
#   Worker: a logical switch vm0 -> vm1 with port security; in the overlay
#   scenarios the far VM is on the remote chassis hv2 behind the uplink.
# - theirs: /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk with its own
#   ovsdb-server and conf.db in a private run directory, in a network
#   namespace of its own (see "tunnel IP" below), one PMD (pmd-cpu-mask),
#   bridges datapath_type=netdev, the pcap port `src` (always OpenFlow port
#   1 of its bridge) and `sink` (port 2 of its bridge), explicit OpenFlow
#   rules; OVS defaults otherwise (EMC on, SMC off, no tunnel checksums).
#   Configured per scenario (ovs_mode below; the table names it):
#   * NORMAL (dpdk-l2-*, and dpdk-vxlan-10k / dpdk-geneve-10k, which ours
#     L2-switches as plain UDP too): bridge br0 with src and sink, the single
#     rule actions=NORMAL, and vm1's MAC put in the FDB on sink with
#     `ovs-appctl fdb/add` before traffic starts, so nothing floods.
#   * VXLAN / Geneve encap (dpdk-{vxlan,geneve}-encap-10k): br-int holds src
#     and the tunnel port (type=vxlan or geneve, options remote_ip = hv2's
#     192.168.100.22, local_ip = our 192.168.100.21, key=flow); br-phy holds
#     sink and has our uplink MAC (other_config:hwaddr=02:00:00:00:01:21).
#     `ovs-appctl ovs/route/add 192.168.100.21/24 br-phy` and `tnl/arp/set
#     br-phy 192.168.100.22 02:00:00:00:01:22` (hv2's MAC), so nothing
#     ARPs. Rules: br-int in_port=src actions=set_field:KEY->tun_id
#     [,set_field:0x10002->tun_metadata0],output:tunnel; br-phy
#     in_port=LOCAL actions=output:sink (OVS runs the pushed packet through
#     br-phy as if from its LOCAL port). The datapath action is tnl_push.
#   * VXLAN / Geneve decap (dpdk-{vxlan,geneve}-decap-10k): br-phy holds src
#     (hv2's tunnel packets to our uplink MAC and IP) with the same MAC, IP
#     and route; br-int holds the tunnel port (same options) and sink.
#     Rules: br-phy in_port=src actions=LOCAL, which OVS turns into tnl_pop
#     as the packets match a listening tunnel port (`tnl/ports/show`);
#     br-int in_port=tunnel,tun_id=KEY[,tun_metadata0=0x10002]
#     actions=output:sink. The popped packet recirculates: two datapath
#     passes per packet.
#   * conntrack (dpdk-acl-ct-*; ours runs the same traffic through an
#     allow-related security group, conntrack in vm0's zone and vm1's): br0
#     with src and sink and the flows ovn-controller 23.03 installs for
#     ls_in_pre_stateful / ls_in_acl (zone 1, vm0's) and ls_out_pre_stateful
#     / ls_out_acl (zone 2, vm1's): table 0 ip -> ct(zone=1,table=1); table 1
#     ct_state=+new+trk -> ct(commit,zone=1,exec(ct_mark.blocked=0)),
#     ct(zone=2,table=2), ct_state=-new+est+trk,ct_mark=0/1 ->
#     ct(zone=2,table=2); table 2 the same in zone 2, then output:sink. The
#     run fails unless OVS tracked 2 connections per flow
#     (dpctl/ct-get-nconns) and its datapath flows hold both zones' ct(),
#     recirculations and commits. The pcap's UDP flows go one way, and OVS
#     3.1's userspace conntrack keeps such a connection +new until a reply
#     (other_conn_update returns CT_UPDATE_VALID_NEW): every packet takes
#     the +new flows and commits again, as under OVN. Ours passes a
#     committed connection's packets without evaluating ACLs (the same
#     verdict: OVN's +new path re-runs ACLs that allowed it).
#   * router (dpdk-routed-*; ours routes vm0 on bench-a, 10.0.0.0/24, to
#     vm1 on bench-b, 10.1.0.0/24, through one router): br0 with src and
#     sink and the flows of ovs_router_flows below, one table per OVN stage
#     that decides: port security, the router port's MAC, the destination
#     prefix (dec_ttl, eth.src = lrp1's MAC, next hop and outport in
#     registers), eth.dst per next-hop IP (lr_in_arp_resolve), output. The
#     run fails unless a datapath flow sets eth(src=lrp1,dst=vm1) and
#     ipv4(ttl=63).
#   * routed to another chassis (dpdk-routed-encap-*; ours routes vm0's
#     traffic here and sends it in Geneve to vm1 on hv2) and the full
#     pipeline (dpdk-full-pipeline-*: the same through port security and
#     an allow-related security group, conntrack in vm0's zone): br-int
#     holds src and a geneve port, br-phy the sink, set up as for
#     geneve-encap; the flows of ovs_routed_encap_flows below: port
#     security, (ct(zone=1,table=1), +new -> ct(commit), +est -> next,)
#     the router's flows as for dpdk-routed-*, bench-b's L2 lookup from
#     its router port (no conntrack, as ls_in_pre_acl's priority-110 flow)
#     and the remote output: tun_id = bench-b's datapath key 2, OVN's
#     option 0x20001 (ingress key 2, the router port; egress key 1, vm1).
#     The run fails unless the datapath flows hold the tnl_push with that
#     VNI and option, the router's set(eth) and ttl=63, and for the full
#     pipeline 1 connection per flow, ct(zone=1) and its commit.
#   KEY is what ours puts on the wire (dpdk_bench/main.rs, OVN's encoding):
#   VXLAN VNI 0x2001 (datapath 1 | egress port key 2 << 12); Geneve VNI 1
#   and OVN's option (class 0x0102, type 0x80, 4 bytes: ingress 1, egress 2
#   = 0x10002), mapped to tun_metadata0 with `ovs-ofctl add-tlv-map`.
#   Tunnel IP: OVS 3.1 cannot be given a tunnel endpoint address in
#   userspace alone. There is no tnl/route/add; ovs/route/add refuses a route
#   whose bridge has no address in that prefix ("Error while inserting
#   route."; 3.1 takes no src= either), and the table of listening tunnel
#   ports is built from the bridge's addresses, which for the netdev
#   datapath's LOCAL port are the kernel addresses of its tap. So the
#   script puts 192.168.100.21/24 on the br-phy tap inside OVS's private
#   network namespace (the tap stays down, so the kernel sends nothing
#   through it); the host's own interfaces and routes never see it, nor
#   OVS's persistent taps (ovs-netdev, one per bridge), which an OVS in the
#   host's namespace leaves behind.
#
# What is counted, the same way for both: packets out of the sink as the
# net_null PMD counts them (rte_eth_stats.opackets: our EthStats, OVS's
# `ovs-ofctl dump-ports` tx pkts) over a measured interval after a warm-up,
# divided by the forwarding thread's CPU time in that interval (ours
# CLOCK_THREAD_CPUTIME_ID, OVS's PMD thread /proc/PID/task/TID/schedstat:
# both the kernel's sum_exec_runtime, which leaves out time the core ran
# something else) = Mpps per core; and divided by wall time = wall Mpps.
# Cycles per packet = that CPU time in TSC cycles. Encap counts tunnel
# packets out of the uplink sink, decap inner frames out of vm1's sink.
# Connection setup (dpdk-acl-ct-setup-1m): the pcap of a million distinct
# 5-tuples is replayed once (net_pcap without infinite_rx, reading the file
# as it goes, the same cost for both), so every packet opens a connection
# in both zones; no warm-up, the run ends when every record came out of the
# sink. Cycles per packet: ours the worker's CPU time from its first burst
# to the last packet out, OVS its own busy cycles per packet
# (pmd-stats-show "avg processing cycles per packet": its PMD polls idle
# before the port opens and after the file ends); Mpps per core = TSC
# rate / those cycles = connections set up per second per core. OVS's wall
# Mpps there counts from when the port had opened (coarse).
# An OVS run fails (and the table says so) if the sink sent less than 99%
# of what src received, if a bridge's LOCAL port (the kernel tap) sent or
# received anything (flooding, or the kernel talking), or if the datapath
# flows (`ovs-appctl dpctl/dump-flows`, shown for round 1) lack the
# expected tnl_push with our VNI (and Geneve option) or tnl_pop and the
# recirculated flow on our tunnel key.
#
# Usage (root; builds the example first):
#   benches/compare-ovs-dpdk.sh [--rounds 3] [--seconds 10] [--warmup 3]
#       [--core 1] [--hugepages 2048] [--scenario dpdk-l2-10k ...]
# Default scenarios: dpdk-l2-1flow dpdk-l2-10k. The overlay ones:
# dpdk-vxlan-encap-10k dpdk-vxlan-decap-10k dpdk-geneve-encap-10k
# dpdk-geneve-decap-10k. Conntrack: dpdk-acl-ct-10k, and connection setup
# dpdk-acl-ct-setup-1m. Routing: dpdk-routed-10k dpdk-routed-encap-10k.
# Everything at once: dpdk-full-pipeline-10k. OVS-DPDK cannot take
# dpdk-l2-1m: its shared mempool (at most 262144 mbufs) is smaller than
# the pcap, which net_pcap's infinite_rx holds in mbufs.
# It installs openvswitch-switch-dpdk with apt-get if missing, raises
# nr_hugepages to --hugepages if lower (and restores it), and removes its
# run directory and network namespace and stops every process it started
# on exit, even on failure.
set -euo pipefail

rounds=3
seconds=10
warmup=3
core=1
hugepages=2048
scenarios=()
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --core) core=$2; shift 2 ;;
    --hugepages) hugepages=$2; shift 2 ;;
    --scenario) scenarios+=("$2"); shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ ${#scenarios[@]} -gt 0 ] || scenarios=(dpdk-l2-1flow dpdk-l2-10k)
[ "$(id -u)" = 0 ] || { echo "needs root (hugepages, DPDK)" >&2; exit 1; }

# The scenario -> OVS configuration mapping (see the header).
ovs_mode() {
    case $1 in
    dpdk-vxlan-encap-*) echo vxlan-encap ;;
    dpdk-vxlan-decap-*) echo vxlan-decap ;;
    dpdk-geneve-encap-*) echo geneve-encap ;;
    dpdk-geneve-decap-*) echo geneve-decap ;;
    dpdk-acl-ct-*) echo conntrack ;;
    dpdk-routed-encap-*) echo routed-encap ;;
    dpdk-full-pipeline-*) echo full-pipeline ;;
    dpdk-routed-*) echo router ;;
    *) echo normal ;;
    esac
}
# What OVS ran, for the table.
ovs_label() {
    case $1 in
    normal) echo "NORMAL" ;;
    vxlan-encap) echo "VXLAN encap: output to a vxlan port (tnl_push)" ;;
    vxlan-decap) echo "VXLAN decap: tnl_pop, recirculation, vxlan port -> sink" ;;
    geneve-encap) echo "Geneve encap with OVN's option (tnl_push)" ;;
    geneve-decap) echo "Geneve decap: tnl_pop, recirculation, geneve port -> sink" ;;
    conntrack) echo "OVN's ct flows, zones 1 and 2: ct(zone,table), +new ct(commit), +est next; one-way UDP stays +new" ;;
    router) echo "OVN's router flows: port security, nw_dst prefix + dec_ttl + eth.src, per-IP eth.dst, output" ;;
    routed-encap) echo "OVN's router flows, then bench-b's L2 lookup and remote output: Geneve (VNI 2, OVN's option), tnl_push" ;;
    full-pipeline) echo "port security, ct(zone=1) +new ct(commit) / +est, OVN's router flows, Geneve remote output (tnl_push)" ;;
    esac
}

cd "$(dirname "$0")/.."
vswitchd=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
if [ ! -x "$vswitchd" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y openvswitch-switch-dpdk >&2
fi
cargo build --release -p switchyard-dataplane --features dpdk --example dpdk_bench >&2
bench="${CARGO_TARGET_DIR:-target}/release/examples/dpdk_bench"

# The cores other than the forwarding one: OVS's main, handler and
# revalidator threads and ovsdb-server run there.
others=$(awk -v c="$core" '/^processor/ && $3 != c { printf "%s%s", s, $3; s = "," }' /proc/cpuinfo)
[ -n "$others" ] || { echo "needs a core besides $core" >&2; exit 1; }

run=$(mktemp -d /tmp/sy-compare-ovs.XXXXXX)
netns=sy-compare-ovs-${run##*.}
hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
ours_pid=

# Stops the daemon whose pidfile is $run/$1.pid: politely, then by force.
stop_daemon() {
    local pid
    pid=$(cat "$run/$1.pid" 2>/dev/null) || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    timeout 10 ovs-appctl -t "$run/$1.ctl" exit >/dev/null 2>&1 || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    sleep 1
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    set +e
    if [ -n "$ours_pid" ]; then kill "$ours_pid" 2>/dev/null; wait "$ours_pid" 2>/dev/null; fi
    stop_daemon ovs-vswitchd
    stop_daemon ovsdb-server
    if ip netns list | grep -qw "^$netns"; then ip netns delete "$netns"; fi
    if [ "$(cat /proc/sys/vm/nr_hugepages)" != "$hugepages_before" ]; then
        echo "$hugepages_before" >/proc/sys/vm/nr_hugepages
    fi
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$hugepages_before" -lt "$hugepages" ]; then
    echo "$hugepages" >/proc/sys/vm/nr_hugepages
fi
ip netns add "$netns"

export OVS_RUNDIR=$run OVS_LOGDIR=$run OVS_DBDIR=$run OVS_SYSCONFDIR=$run
vsctl=(ovs-vsctl --db="unix:$run/db.sock" --timeout=120)
appctl=(ovs-appctl -t "$run/ovs-vswitchd.ctl")
# The addresses and keys of the scenarios (dpdk_bench/main.rs: mac(), underlay(),
# and what its overlay puts on the wire).
vm1_mac=02:00:00:00:00:01
local_ip=192.168.100.21 local_mac=02:00:00:00:01:21   # our uplink
remote_ip=192.168.100.22 remote_mac=02:00:00:00:01:22 # the remote chassis hv2
vxlan_vni=0x2001  # OVN's VXLAN mode: datapath key 1, egress port key 2 << 12
geneve_vni=0x1    # the datapath key
ovn_option=0x10002 # Geneve class 0x0102 type 0x80: ingress key 1, egress key 2
# dpdk-routed-encap-* / dpdk-full-pipeline-* (dpdk_bench/routed.rs): routed
# into bench-b's datapath (key 2), from its router port (key 2) to vm1 (key 1).
routed_vni=0x2 routed_option=0x20001

ovsdb-tool create "$run/conf.db" /usr/share/openvswitch/vswitch.ovsschema
taskset -c "$others" ovsdb-server "$run/conf.db" --remote="punix:$run/db.sock" \
    --pidfile="$run/ovsdb-server.pid" --unixctl="$run/ovsdb-server.ctl" \
    --log-file="$run/ovsdb-server.log" --detach
"${vsctl[@]}" --no-wait init
"${vsctl[@]}" --no-wait set Open_vSwitch . other_config:dpdk-init=true \
    "other_config:dpdk-extra=--no-pci --in-memory" \
    "other_config:pmd-cpu-mask=$(printf '0x%x' $((1 << core)))"

# OVS's configuration of the current scenario: set by ovs_configure.
mode='' bridges='' src_br='' sink_br='' tun_type='' tun_port='' tun_ofport='' tun_key='' tun_option=''
# The current scenario's pcap replay (main loop): ",infinite_rx=1", or empty
# for a replay once of $records records.
replay='' records=''

# Writes the bridges and ports of mode $1 into conf.db (all but src, which
# each run adds), while no ovs-vswitchd runs.
ovs_configure() {
    mode=$1 tun_port=''
    "${vsctl[@]}" --no-wait -- --if-exists del-br br0 -- --if-exists del-br br-int \
        -- --if-exists del-br br-phy
    case $mode in
    normal | conntrack | router) src_br=br0 sink_br=br0 ;;
    *-encap | full-pipeline) src_br=br-int sink_br=br-phy tun_ofport=2 ;;
    *-decap) src_br=br-phy sink_br=br-int tun_ofport=1 ;;
    esac
    local sink=(-- add-port "$sink_br" sink -- set Interface sink type=dpdk
        "options:dpdk-devargs=net_null0,no-rx=1" ofport_request=2)
    if [ "$mode" = normal ] || [ "$mode" = conntrack ] || [ "$mode" = router ]; then
        bridges=br0
        "${vsctl[@]}" --no-wait add-br br0 -- set Bridge br0 datapath_type=netdev "${sink[@]}"
        return
    fi
    bridges="br-int br-phy" tun_option=$ovn_option
    case $mode in
    vxlan-*) tun_type=vxlan tun_key=$vxlan_vni ;;
    geneve-*) tun_type=geneve tun_key=$geneve_vni ;;
    routed-encap | full-pipeline) tun_type=geneve tun_key=$routed_vni tun_option=$routed_option ;;
    esac
    tun_port=${tun_type}0
    "${vsctl[@]}" --no-wait add-br br-phy -- set Bridge br-phy datapath_type=netdev \
        other_config:hwaddr=$local_mac \
        -- add-br br-int -- set Bridge br-int datapath_type=netdev \
        -- add-port br-int "$tun_port" -- set Interface "$tun_port" type="$tun_type" \
        options:remote_ip=$remote_ip options:local_ip=$local_ip options:key=flow \
        ofport_request="$tun_ofport" \
        "${sink[@]}"
}

# The router scenario (dpdk-routed-*; dpdk_bench/routed.rs): vm0 (OpenFlow
# port 1, 10.0.0.1 on bench-a) to vm1 (the sink, port 2, 10.1.0.1 on
# bench-b) through bench-lr, whose port lrp0 (10.0.0.254/24) faces vm0 and
# lrp1 (10.1.0.254/24) vm1.
vm0_mac=02:00:00:00:00:00 vm0_ip=10.0.0.1 vm1_ip=10.1.0.1
lrp0_mac=02:00:00:00:ff:01 lrp1_mac=02:00:00:00:ff:02

# The flows ovn-controller 23.03 installs for that path, a table per stage
# that decides something, with OVN's registers (reg14 inport, reg15 outport,
# reg0 the next hop): bench-a's port security (ls_in_port_sec_l2/_ip), its
# L2 lookup to the router port and the router's admission (eth.dst is
# lrp0's MAC), lr_in_ip_routing (the connected networks by prefix: ip.ttl--,
# reg0 = ip4.dst, eth.src = the out port's MAC, outport), lr_in_arp_resolve
# (eth.dst per next-hop IP, as northd writes one per known address), and
# bench-b's egress port security, out to vm1. Both directions' routes and
# bindings are there, as OVN installs them; the traffic uses one.
ovs_router_flows() {
    ovs-ofctl del-flows br0 && ovs-ofctl add-flows br0 - <<EOF
table=0,priority=100,in_port=1,dl_src=$vm0_mac,ip,nw_src=$vm0_ip,actions=load:1->NXM_NX_REG14[],resubmit(,1)
table=1,priority=50,reg14=1,dl_dst=$lrp0_mac,actions=resubmit(,2)
table=2,priority=74,ip,nw_dst=10.1.0.0/24,actions=dec_ttl,move:NXM_OF_IP_DST[]->NXM_NX_REG0[],mod_dl_src:$lrp1_mac,load:2->NXM_NX_REG15[],resubmit(,3)
table=2,priority=74,ip,nw_dst=10.0.0.0/24,actions=dec_ttl,move:NXM_OF_IP_DST[]->NXM_NX_REG0[],mod_dl_src:$lrp0_mac,load:1->NXM_NX_REG15[],resubmit(,3)
table=3,priority=100,reg15=2,reg0=0x0a010001,actions=mod_dl_dst:$vm1_mac,resubmit(,4)
table=3,priority=100,reg15=1,reg0=0x0a000001,actions=mod_dl_dst:$vm0_mac,resubmit(,4)
table=4,priority=50,reg15=2,dl_dst=$vm1_mac,ip,nw_dst=$vm1_ip,actions=output:2
EOF
}

# The flows of dpdk-routed-encap-* ($1 = 0) and dpdk-full-pipeline-* ($1 =
# 1) on br-int, src port 1, the Geneve port 2 (vm1 is on hv2): bench-a's
# port security; with ct, ls_in_pre_stateful / ls_in_acl in vm0's zone 1
# as for dpdk-acl-ct-* (+new: commit, +est: next); the router's path as
# ovs_router_flows (L2 lookup to lrp0, the prefix route with dec_ttl and
# eth.src, eth.dst per next hop); then bench-b's ingress from its router
# port: ls_in_pre_acl's priority-110 flow keeps a router port's traffic
# out of conntrack, the L2 lookup sets outport vm1 (reg15 = 1) and, vm1
# being remote, ovn-controller's remote output (OFTABLE_REMOTE_OUTPUT)
# sets tun_id to bench-b's datapath key and OVN's option (ingress key 2,
# the router port; egress key 1, vm1) and outputs to the tunnel. bench-b's
# egress pipeline runs on hv2, as in OVN.
ovs_routed_encap_flows() {
    local first='resubmit(,2)' commit='exec(load:0->NXM_NX_CT_MARK[0])'
    [ "$1" = 0 ] || first='ct(zone=1,table=1)'
    ovs-ofctl del-flows br-int && ovs-ofctl add-flows br-int - <<EOF
table=0,priority=100,in_port=1,dl_src=$vm0_mac,ip,nw_src=$vm0_ip,actions=load:1->NXM_NX_REG14[],$first
table=1,priority=100,ct_state=+new+trk,ip,actions=ct(commit,zone=1,$commit),resubmit(,2)
table=1,priority=100,ct_state=-new+est+trk,ct_mark=0/0x1,ip,actions=resubmit(,2)
table=2,priority=50,reg14=1,dl_dst=$lrp0_mac,actions=resubmit(,3)
table=3,priority=74,ip,nw_dst=10.1.0.0/24,actions=dec_ttl,move:NXM_OF_IP_DST[]->NXM_NX_REG0[],mod_dl_src:$lrp1_mac,load:2->NXM_NX_REG15[],resubmit(,4)
table=3,priority=74,ip,nw_dst=10.0.0.0/24,actions=dec_ttl,move:NXM_OF_IP_DST[]->NXM_NX_REG0[],mod_dl_src:$lrp0_mac,load:1->NXM_NX_REG15[],resubmit(,4)
table=4,priority=100,reg15=2,reg0=0x0a010001,actions=mod_dl_dst:$vm1_mac,load:2->NXM_NX_REG14[],resubmit(,5)
table=4,priority=100,reg15=1,reg0=0x0a000001,actions=mod_dl_dst:$vm0_mac,resubmit(,5)
table=5,priority=110,reg14=2,ip,actions=resubmit(,6)
table=6,priority=50,dl_dst=$vm1_mac,actions=load:1->NXM_NX_REG15[],resubmit(,7)
table=7,priority=100,reg15=1,actions=set_field:$routed_vni->tun_id,set_field:$routed_option->tun_metadata0,output:2
EOF
}

# Checks datapath flows $1 of a router run: the routed packet leaves with
# lrp1's and vm1's MACs and the TTL decremented (the pcap's is 64).
ovs_router_check() {
    local want
    for want in "eth(src=$lrp1_mac,dst=$vm1_mac)" "ipv4(ttl=63)"; do
        grep -qF "$want" "$1" || { echo "no datapath flow with $want:" >&2; cat "$1" >&2; return 1; }
    done
}

# What conf.db does not hold, for each start of ovs-vswitchd: the tunnel IP,
# route and neighbour, the TLV map, the FDB entry, the OpenFlow rules.
ovs_flows() {
    if [ "$mode" = normal ]; then
        "${appctl[@]}" fdb/add br0 sink 0 "$vm1_mac" >/dev/null &&
            ovs-ofctl del-flows br0 && ovs-ofctl add-flow br0 actions=NORMAL
        return
    fi
    if [ "$mode" = conntrack ]; then
        # ovn-controller's: ct_next is ct(table=next,zone=the port's zone),
        # ct_commit { ct_mark.blocked = 0; } sets ct_mark bit 0, ct.est
        # matches ct_mark.blocked == 0.
        local commit='exec(load:0->NXM_NX_CT_MARK[0])' est='ct_state=-new+est+trk,ct_mark=0/0x1'
        ovs-ofctl del-flows br0 && ovs-ofctl add-flows br0 - <<EOF
table=0,priority=100,in_port=1,ip,actions=ct(zone=1,table=1)
table=1,priority=100,ct_state=+new+trk,ip,actions=ct(commit,zone=1,$commit),ct(zone=2,table=2)
table=1,priority=100,$est,ip,actions=ct(zone=2,table=2)
table=2,priority=100,ct_state=+new+trk,ip,actions=ct(commit,zone=2,$commit),output:2
table=2,priority=100,$est,ip,actions=output:2
EOF
        return
    fi
    if [ "$mode" = router ]; then
        ovs_router_flows
        return
    fi
    # ovs-vswitchd creates the br-phy tap on its first start: a persistent
    # tap, which outlives the daemon and goes with the namespace.
    for _ in $(seq 100); do
        ip -n "$netns" link show br-phy >/dev/null 2>&1 && break
        sleep 0.1
    done
    # (replace: the tap is persistent, it keeps the address of the last run)
    ip -n "$netns" addr replace "$local_ip/24" dev br-phy || return 1
    # OVS sees the address once it has read the netlink notification.
    for i in $(seq 50); do
        "${appctl[@]}" ovs/route/add "$local_ip/24" br-phy >/dev/null 2>&1 && break
        [ "$i" != 50 ] || { echo "ovs/route/add $local_ip/24 br-phy failed" >&2; return 1; }
        sleep 0.1
    done
    "${appctl[@]}" tnl/arp/set br-phy "$remote_ip" "$remote_mac" >/dev/null || return 1
    local set_md='' match_md=''
    if [ "$tun_type" = geneve ]; then
        ovs-ofctl add-tlv-map br-int "{class=0x102,type=0x80,len=4}->tun_metadata0" || return 1
        set_md=",set_field:$tun_option->tun_metadata0"
        match_md=",tun_metadata0=$tun_option"
    fi
    ovs-ofctl del-flows br-int && ovs-ofctl del-flows br-phy || return 1
    # src is OpenFlow port 1 of its bridge, sink port 2 of its bridge.
    case $mode in
    routed-encap | full-pipeline)
        ovs_routed_encap_flows "$([ "$mode" = full-pipeline ] && echo 1 || echo 0)" &&
            ovs-ofctl add-flow br-phy in_port=LOCAL,actions=output:2 || return 1
        ;;
    *-encap)
        ovs-ofctl add-flow br-int "in_port=1,actions=set_field:$tun_key->tun_id$set_md,output:$tun_ofport" &&
            ovs-ofctl add-flow br-phy in_port=LOCAL,actions=output:2 || return 1
        ;;
    *-decap)
        ovs-ofctl add-flow br-phy in_port=1,actions=LOCAL &&
            ovs-ofctl add-flow br-int "in_port=$tun_ofport,tun_id=$tun_key$match_md,actions=output:2" || return 1
        # tnl_pop needs a listening port on our MAC and IP.
        for i in $(seq 50); do
            "${appctl[@]}" tnl/ports/show -v | grep -q "dst=$local_mac.*dst=$local_ip," && break
            [ "$i" != 50 ] || { echo "OVS lists no tunnel port on $local_ip:" >&2
                "${appctl[@]}" tnl/ports/show -v >&2; return 1; }
            sleep 0.1
        done
        ;;
    esac
}

# Checks the datapath flows of the last run ($run/dp-flows.txt) for the
# tunnel actions of the mode.
ovs_check_datapath() {
    local f=$run/dp-flows.txt want
    case $mode in
    normal) return 0 ;;
    conntrack)
        local n
        n=$(cat "$run/ct-nconns.txt")
        [ "$n" -ge $((2 * ct_flows)) ] || { echo "OVS tracked $n connections, not 2 x $ct_flows" >&2; return 1; }
        for want in "actions:ct(zone=1),recirc(" "ct(zone=2),recirc(" "ct(commit,zone=2,mark=0/0x1),"; do
            grep -q "$want" "$f" || { echo "no datapath flow with $want:" >&2; cat "$f" >&2; return 1; }
        done
        return 0 ;;
    router) ovs_router_check "$f"; return ;;
    vxlan-encap) want="tnl_push(.*vxlan(flags=0x8000000,vni=$tun_key)" ;;
    geneve-encap | routed-encap | full-pipeline)
        want="tnl_push(.*geneve(.*vni=$tun_key,options({class=0x102,type=0x80,len=4,$tun_option}))" ;;
    *-decap) want="actions:tnl_pop(" ;;
    esac
    grep -q "$want" "$f" || { echo "no datapath flow with $want:" >&2; cat "$f" >&2; return 1; }
    case $mode in routed-encap | full-pipeline) ovs_router_check "$f" || return 1 ;; esac
    if [ "$mode" = full-pipeline ]; then
        local n
        n=$(cat "$run/ct-nconns.txt")
        [ "$n" -ge "$ct_flows" ] || { echo "OVS tracked $n connections, not $ct_flows" >&2; return 1; }
        for want in "actions:ct(zone=1),recirc(" "ct(commit,zone=1,mark=0/0x1),"; do
            grep -q "$want" "$f" || { echo "no datapath flow with $want:" >&2; cat "$f" >&2; return 1; }
        done
    fi
    if [ "${mode#*-}" = decap ] && ! grep -q "^tunnel(tun_id=$tun_key,src=$remote_ip,dst=$local_ip," "$f"; then
        echo "no recirculated datapath flow from the tunnel with key $tun_key:" >&2
        cat "$f" >&2
        return 1
    fi
}

# One reading of `ovs-ofctl dump-ports` of every bridge (one after the other,
# milliseconds apart): "src-rx sink-tx local", local = packets the LOCAL
# ports of all bridges sent or received.
port_packets() {
    local b
    for b in $bridges; do ovs-ofctl dump-ports "$b" | sed "s/^/$b /"; done | awk -v s="$src_br" -v k="$sink_br" '
        $2 == "port" { port = $3; sub(/:$/, "", port) }
        { for (i = 2; i < NF; i++) if ($i ~ /^(rx|tx)$/ && $(i + 1) ~ /^pkts=/) {
            v = $(i + 1); sub(/pkts=/, "", v); sub(/,/, "", v); n[$1 " " port " " $i] = v
            if (port == "LOCAL") l += v } }
        END { print n[s " 1 rx"], n[k " 2 tx"], l + 0 }'
}

# After a run: OVS's PMD statistics, datapath flows and connection count
# into $run, then ovs-vswitchd stopped and the src port removed.
ovs_collect() {
    "${appctl[@]}" dpif-netdev/pmd-stats-show >"$run/pmd-stats.txt"
    "${appctl[@]}" dpctl/dump-flows >"$run/dp-flows.txt"
    "${appctl[@]}" dpctl/ct-get-nconns >"$run/ct-nconns.txt"
    stop_daemon ovs-vswitchd
    "${vsctl[@]}" --no-wait del-port src
}

# The collected PMD statistics in one line.
pmd_summary() {
    grep -m4 -E 'datapath passes|emc hits|megaflow hits|avg processing cycles' "$run/pmd-stats.txt" | tr -s ' ' | tr '\n' ';'
}

# The collected datapath flows, indented (round 1 shows them).
show_dp_flows() {
    echo "    OVS datapath flows:" >&2
    sed 's/^/      /' "$run/dp-flows.txt" >&2
}

# Runs OVS-DPDK on pcap $1, configured for mode $mode; prints
# "mpps_per_core mpps_wall cycles packets", or fails if OVS could not open
# the pcap port or did not forward as configured. $2 = 1: show the
# datapath flows.
# (Called with a redirection, not in $(...): a subshell would hide the
# processes it starts from cleanup.)
ovs_run() {
    local pcap=$1 show_flows=${2:-0} pid pmd tsc_khz t0 t1 cpu0 cpu1 src0 sink0 local0 src1 sink1 local1
    rm -f "$run/ovs-vswitchd.log" # a log of this run only (checked for errors below)
    ip netns exec "$netns" taskset -c "$others" "$vswitchd" "unix:$run/db.sock" \
        --pidfile="$run/ovs-vswitchd.pid" --unixctl="$run/ovs-vswitchd.ctl" \
        --log-file="$run/ovs-vswitchd.log" --detach 2>/dev/null ||
        { tail -20 "$run/ovs-vswitchd.log" >&2; return 1; }
    pid=$(cat "$run/ovs-vswitchd.pid")
    "${vsctl[@]}" wait-until Interface sink ofport=2
    [ -z "$tun_port" ] || "${vsctl[@]}" wait-until Interface "$tun_port" ofport="$tun_ofport"
    ovs_flows || { stop_daemon ovs-vswitchd; return 1; }
    "${vsctl[@]}" --no-wait add-port "$src_br" src -- set Interface src type=dpdk \
        "options:dpdk-devargs=net_pcap0,rx_pcap=$pcap$replay" ofport_request=1
    # Loading a big pcap takes a while; a port that fails leaves ofport
    # empty and says why in the log only.
    for _ in $(seq 240); do
        [ "$("${vsctl[@]}" get Interface src ofport)" = 1 ] && break
        if ! kill -0 "$pid" 2>/dev/null || grep -q 'Interface src.*error' "$run/ovs-vswitchd.log"; then
            break
        fi
        sleep 0.5
    done
    if [ "$("${vsctl[@]}" get Interface src ofport)" != 1 ]; then
        echo "OVS-DPDK could not open the pcap port:" >&2
        grep -E '\|(ERR|EMER)\|' "$run/ovs-vswitchd.log" | tail -3 | sed 's/^/    /' >&2
        stop_daemon ovs-vswitchd
        "${vsctl[@]}" --no-wait del-port src
        return 1
    fi
    pmd=$(grep -l '^pmd' /proc/"$pid"/task/*/comm | head -1 | xargs dirname)
    tsc_khz=$(sed -n 's/.*DPDK provided TSC frequency: \([0-9]*\) KHz.*/\1/p' "$run/ovs-vswitchd.log" | tail -1)
    if [ -z "$replay" ]; then
        ovs_run_once "$pid" "$tsc_khz" "$show_flows"
        return
    fi
    sleep "$warmup"
    "${appctl[@]}" dpif-netdev/pmd-stats-clear >/dev/null
    t0=$(date +%s%N); read -r src0 sink0 local0 < <(port_packets); cpu0=$(cut -d' ' -f1 "$pmd/schedstat")
    sleep "$seconds"
    t1=$(date +%s%N); read -r src1 sink1 local1 < <(port_packets); cpu1=$(cut -d' ' -f1 "$pmd/schedstat")
    ovs_collect
    if [ "$local1" != "$local0" ]; then
        echo "OVS flooded or the kernel talked: LOCAL ports passed $((local1 - local0)) packets" >&2
        return 1
    fi
    ovs_check_datapath || return 1
    echo "    OVS: $((src1 - src0)) received, $((sink1 - sink0)) out of the sink;" \
        "PMD: $(pmd_summary)" >&2
    [ "$show_flows" != 1 ] || show_dp_flows
    if [ $((sink1 - sink0)) -lt $(((src1 - src0) * 99 / 100)) ]; then
        echo "OVS sent only $((sink1 - sink0)) of the $((src1 - src0)) packets it received" >&2
        return 1
    fi
    awk -v p=$((sink1 - sink0)) -v c=$((cpu1 - cpu0)) -v w=$((t1 - t0)) -v k="$tsc_khz" \
        'BEGIN { printf "%.3f %.3f %.1f %d\n", p / c * 1e3, p / w * 1e3, c / p * k / 1e6, p }'
}

# The rest of ovs_run for a pcap replayed once (the -setup- scenarios): waits
# until every record came out of the sink (or nothing moved for 5 s), then
# takes OVS's own busy cycles per packet (pmd-stats-show's "avg processing
# cycles per packet", busy iterations only, since the PMD polls idle before
# the port opens and after the file ends). $1 = vswitchd's pid, $2 = TSC
# kHz, $3 = 1: show the datapath flows.
ovs_run_once() {
    local pid=$1 tsc_khz=$2 show_flows=$3 t0 t1 src1 sink1 local1 last=-1 still=0 cycles
    t0=$(date +%s%N)
    while :; do
        read -r src1 sink1 local1 < <(port_packets)
        [ "$sink1" -lt "$records" ] || break
        if [ "$sink1" = "$last" ]; then
            still=$((still + 1))
            [ "$still" -lt 25 ] || break
        else
            last=$sink1 still=0
        fi
        sleep 0.2
    done
    t1=$(date +%s%N)
    ovs_collect
    echo "    OVS: $src1 received, $sink1 out of the sink;" \
        "PMD: $(pmd_summary)" >&2
    [ "$local1" = 0 ] || { echo "OVS flooded or the kernel talked: LOCAL ports passed $local1 packets" >&2; return 1; }
    # Both zones' connection of every packet that came out (the first few
    # hundred, upcalled while the megaflows are installed, may be lost; the
    # check below allows 1%). Bash locals are seen by the functions called.
    local ct_flows=$sink1
    ovs_check_datapath || return 1
    [ "$show_flows" != 1 ] || show_dp_flows
    if [ "$src1" != "$records" ] || [ "$sink1" -lt $((records * 99 / 100)) ]; then
        echo "OVS received $src1 and sent $sink1 of the $records records" >&2
        return 1
    fi
    cycles=$(sed -n 's/.*avg processing cycles per packet: \([0-9.]*\).*/\1/p' "$run/pmd-stats.txt" | head -1)
    [ -n "$cycles" ] || { echo "no processing cycles in pmd-stats-show:" >&2; cat "$run/pmd-stats.txt" >&2; return 1; }
    awk -v p="$sink1" -v c="$cycles" -v w=$((t1 - t0)) -v k="$tsc_khz" \
        'BEGIN { printf "%.3f %.3f %.1f %d\n", k / c / 1e3, p / w * 1e3, c, p }'
}

# Runs ours on pcap $2 for scenario $1; prints the same four numbers.
ours_run() {
    "$bench" --scenario "$1" --pcap "$2" --hugepages --core "$core" \
        --seconds "$seconds" --json >"$run/ours.json" 2>"$run/ours.err" &
    ours_pid=$!
    wait "$ours_pid" || { cat "$run/ours.err" >&2; ours_pid=; return 1; }
    ours_pid=
    jq -r '"\(.mpps_per_core) \(.mpps) \(.cycles_per_packet) \(.packets)"' "$run/ours.json"
}

load() {
    echo "uptime: $(uptime)"
    vmstat 1 3 | sed 's/^/vmstat: /'
}

echo "# switchyard vs OVS-DPDK $("$vswitchd" --version | head -1 | awk '{print $NF}'), core $core," \
    "${seconds}s per run after a warm-up (OVS ${warmup}s, ours >= 1M packets), $rounds rounds"
echo "# load before:"
load | sed 's/^/#   /'
results=$run/results
: >"$results"
printf '%-21s %5s %-6s %10s %10s %8s %12s\n' scenario round switch "Mpps/core" "wall Mpps" "cyc/pkt" packets
for s in "${scenarios[@]}"; do
    pcap=$run/$s.pcap
    "$bench" --scenario "$s" --write-pcap "$pcap"
    ovs_configure "$(ovs_mode "$s")"
    case $s in *-10k) ct_flows=10000 ;; *-200k) ct_flows=200000 ;; *-1m) ct_flows=1000000 ;; *) ct_flows=1 ;; esac
    # -setup- scenarios replay their pcap once (every packet a new
    # connection), the others in a loop.
    case $s in *-setup-*) replay='' records=$ct_flows ;; *) replay=,infinite_rx=1 records='' ;; esac
    for r in $(seq "$rounds"); do
        for who in ours ovs; do
            if [ "$who" = ours ]; then
                ours_run "$s" "$pcap" >"$run/line"
            elif ! ovs_run "$pcap" "$((r == 1))" >"$run/line"; then
                printf '%-21s %5s %-6s %10s\n' "$s" "$r" "$who" "failed"
                echo "$s $r ovs-failed" >>"$results"
                continue
            fi
            read -r per_core wall cycles packets <"$run/line"
            printf '%-21s %5s %-6s %10.2f %10.2f %8.1f %12s\n' "$s" "$r" "$who" "$per_core" "$wall" "$cycles" "$packets"
            echo "$s $r $who $per_core $wall $cycles $packets" >>"$results"
        done
    done
    rm -f "$pcap"
done
echo "# load after:"
load | sed 's/^/#   /'
echo
echo "| scenario | OVS-DPDK ran | ours Mpps/core (median, min-max) | OVS-DPDK Mpps/core | ratio (median of rounds, min-max) | ours / OVS wall Mpps (median) | ours / OVS cycles/pkt (median) |"
echo "|---|---|---|---|---|---|---|"
for s in "${scenarios[@]}"; do
    awk -v s="$s" -v ran="$(ovs_label "$(ovs_mode "$s")")" '
        function median(a, n,   i, j, t) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $1 == s && $3 == "ours" { o[$2] = $4; op[++no] = $4; ow[no] = $5; oc[no] = $6 }
        $1 == s && $3 == "ovs" { v[$2] = $4; vw[++nv] = $5; vc[nv] = $6 }
        $1 == s && $3 == "ovs-failed" { failed = 1 }
        END {
            if (failed) {
                printf "| %s | %s | %.2f | failed (see above) | - | %.2f / - | %.0f / - |\n", s, ran, median(op, no), median(ow, no), median(oc, no)
                exit
            }
            n = 0
            for (r in o) if (r in v) { ratio[++n] = o[r] / v[r]; a[n] = o[r]; b[n] = v[r] }
            # median() sorts its array: then [1] and [n] are min and max.
            m = median(a, n); printf "| %s | %s | %.2f (%.2f-%.2f) |", s, ran, m, a[1], a[n]
            m = median(b, n); printf " %.2f (%.2f-%.2f) |", m, b[1], b[n]
            m = median(ratio, n); printf " %.2fx (%.2f-%.2f) |", m, ratio[1], ratio[n]
            printf " %.2f / %.2f |", median(ow, no), median(vw, nv)
            printf " %.0f / %.0f |\n", median(oc, no), median(vc, nv)
        }' "$results"
done

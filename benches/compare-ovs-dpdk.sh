#!/usr/bin/env bash
# Side-by-side benchmark: switchyard's L2 switching against Open vSwitch with
# DPDK (NORMAL action), on the same pcap, the same source and sink, one core.
#
# Both switches read the pcap the suite generates (dataplane/examples/
# dpdk_bench.rs --write-pcap) through net_pcap with infinite_rx=1 and send
# to a net_null sink (no-rx=1), hugepages (--in-memory), --no-pci, the
# forwarding thread pinned to --core (default 1), everything else of the
# process on the other cores. Runs alternate (ours, theirs, ours, ...) so
# both see the same noise of a shared machine.
#
# - ours: `dpdk_bench --scenario S --pcap FILE --hugepages`, the node's own
#   Worker on a logical switch vm0 -> vm1 with port security.
# - theirs: /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk with its own
#   ovsdb-server and conf.db in a private run directory; bridge br0
#   datapath_type=netdev, one PMD (pmd-cpu-mask), port `src` (the pcap) and
#   `sink`, the single OpenFlow rule actions=NORMAL, and vm1's MAC put in
#   the FDB on `sink` with `ovs-appctl fdb/add` before traffic starts, so
#   nothing floods (the script checks that the bridge's LOCAL port sent
#   nothing). OVS defaults otherwise (EMC on, SMC off).
#
# What is counted, the same way for both: packets out of the sink as the
# net_null PMD counts them (rte_eth_stats.opackets: our EthStats, OVS's
# `ovs-ofctl dump-ports` tx pkts) over a measured interval after a warm-up,
# divided by the forwarding thread's CPU time in that interval (ours
# CLOCK_THREAD_CPUTIME_ID, OVS's PMD thread /proc/PID/task/TID/schedstat:
# both the kernel's sum_exec_runtime, which leaves out time the core ran
# something else) = Mpps per core; and divided by wall time = wall Mpps.
# Cycles per packet = that CPU time in TSC cycles.
#
# Usage (root; builds the example first):
#   benches/compare-ovs-dpdk.sh [--rounds 3] [--seconds 10] [--warmup 3]
#       [--core 1] [--hugepages 2048] [--scenario dpdk-l2-10k ...]
# Default scenarios: dpdk-l2-1flow dpdk-l2-10k. OVS-DPDK cannot take
# dpdk-l2-1m: its shared mempool (at most 262144 mbufs) is smaller than the
# pcap, which net_pcap's infinite_rx holds in mbufs.
# It installs openvswitch-switch-dpdk with apt-get if missing, raises
# nr_hugepages to --hugepages if lower (and restores it), and removes its
# run directory and stops every process it started on exit, even on failure.
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

export OVS_RUNDIR=$run OVS_LOGDIR=$run OVS_DBDIR=$run OVS_SYSCONFDIR=$run
vsctl=(ovs-vsctl --db="unix:$run/db.sock" --timeout=120)
appctl=(ovs-appctl -t "$run/ovs-vswitchd.ctl")
vm1_mac=02:00:00:00:00:01 # the scenarios' destination (dpdk_bench.rs: mac(1))

ovsdb-tool create "$run/conf.db" /usr/share/openvswitch/vswitch.ovsschema
taskset -c "$others" ovsdb-server "$run/conf.db" --remote="punix:$run/db.sock" \
    --pidfile="$run/ovsdb-server.pid" --unixctl="$run/ovsdb-server.ctl" \
    --log-file="$run/ovsdb-server.log" --detach
"${vsctl[@]}" --no-wait init
"${vsctl[@]}" --no-wait set Open_vSwitch . other_config:dpdk-init=true \
    "other_config:dpdk-extra=--no-pci --in-memory" \
    "other_config:pmd-cpu-mask=$(printf '0x%x' $((1 << core)))"
"${vsctl[@]}" --no-wait add-br br0 -- set Bridge br0 datapath_type=netdev \
    -- add-port br0 sink -- set Interface sink type=dpdk \
    options:dpdk-devargs=net_null0,no-rx=1 ofport_request=2

# One `ovs-ofctl dump-ports` reading of every port, the same instant for
# all: "src-rx sink-tx local-tx".
port_packets() {
    ovs-ofctl dump-ports br0 | awk '
        /^ *port/ { port = $2; sub(/:$/, "", port) }
        { for (i = 1; i < NF; i++) if ($i ~ /^(rx|tx)$/ && $(i + 1) ~ /^pkts=/) {
            v = $(i + 1); sub(/pkts=/, "", v); sub(/,/, "", v); n[port " " $i] = v } }
        END { print n["1 rx"], n["2 tx"], n["LOCAL tx"] }'
}

# Runs OVS-DPDK on pcap $1; prints "mpps_per_core mpps_wall cycles packets",
# or fails if OVS could not open the pcap port.
# (Called with a redirection, not in $(...): a subshell would hide the
# processes it starts from cleanup.)
ovs_run() {
    local pcap=$1 pid pmd tsc_khz t0 t1 cpu0 cpu1 src0 sink0 local0 src1 sink1 local1
    rm -f "$run/ovs-vswitchd.log" # a log of this run only (checked for errors below)
    taskset -c "$others" "$vswitchd" "unix:$run/db.sock" --pidfile="$run/ovs-vswitchd.pid" \
        --unixctl="$run/ovs-vswitchd.ctl" --log-file="$run/ovs-vswitchd.log" --detach 2>/dev/null ||
        { tail -20 "$run/ovs-vswitchd.log" >&2; return 1; }
    pid=$(cat "$run/ovs-vswitchd.pid")
    "${vsctl[@]}" wait-until Interface sink ofport=2
    "${appctl[@]}" fdb/add br0 sink 0 "$vm1_mac" >/dev/null
    ovs-ofctl del-flows br0
    ovs-ofctl add-flow br0 actions=NORMAL
    "${vsctl[@]}" --no-wait add-port br0 src -- set Interface src type=dpdk \
        "options:dpdk-devargs=net_pcap0,rx_pcap=$pcap,infinite_rx=1" ofport_request=1
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
        "${vsctl[@]}" --no-wait del-port br0 src
        return 1
    fi
    pmd=$(grep -l '^pmd' /proc/"$pid"/task/*/comm | head -1 | xargs dirname)
    tsc_khz=$(sed -n 's/.*DPDK provided TSC frequency: \([0-9]*\) KHz.*/\1/p' "$run/ovs-vswitchd.log" | tail -1)
    sleep "$warmup"
    "${appctl[@]}" dpif-netdev/pmd-stats-clear >/dev/null
    t0=$(date +%s%N); read -r src0 sink0 local0 < <(port_packets); cpu0=$(cut -d' ' -f1 "$pmd/schedstat")
    sleep "$seconds"
    t1=$(date +%s%N); read -r src1 sink1 local1 < <(port_packets); cpu1=$(cut -d' ' -f1 "$pmd/schedstat")
    "${appctl[@]}" dpif-netdev/pmd-stats-show >"$run/pmd-stats.txt"
    stop_daemon ovs-vswitchd
    "${vsctl[@]}" --no-wait del-port br0 src
    if [ "$local1" != "$local0" ]; then
        echo "OVS flooded: the LOCAL port sent $((local1 - local0)) packets" >&2
        return 1
    fi
    echo "    OVS: $((src1 - src0)) received, $((sink1 - sink0)) out of the sink;" \
        "PMD: $(grep -m3 -E 'emc hits|megaflow hits|avg processing cycles' "$run/pmd-stats.txt" | tr -s ' ' | tr '\n' ';')" >&2
    awk -v p=$((sink1 - sink0)) -v c=$((cpu1 - cpu0)) -v w=$((t1 - t0)) -v k="$tsc_khz" \
        'BEGIN { printf "%.3f %.3f %.1f %d\n", p / c * 1e3, p / w * 1e3, c / p * k / 1e6, p }'
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
printf '%-16s %5s %-6s %10s %10s %8s %12s\n' scenario round switch "Mpps/core" "wall Mpps" "cyc/pkt" packets
for s in "${scenarios[@]}"; do
    pcap=$run/$s.pcap
    "$bench" --scenario "$s" --write-pcap "$pcap"
    for r in $(seq "$rounds"); do
        for who in ours ovs; do
            if [ "$who" = ours ]; then
                ours_run "$s" "$pcap" >"$run/line"
            elif ! ovs_run "$pcap" >"$run/line"; then
                printf '%-16s %5s %-6s %10s\n' "$s" "$r" "$who" "failed"
                echo "$s $r ovs-failed" >>"$results"
                continue
            fi
            read -r per_core wall cycles packets <"$run/line"
            printf '%-16s %5s %-6s %10.2f %10.2f %8.1f %12s\n' "$s" "$r" "$who" "$per_core" "$wall" "$cycles" "$packets"
            echo "$s $r $who $per_core $wall $cycles $packets" >>"$results"
        done
    done
    rm -f "$pcap"
done
echo "# load after:"
load | sed 's/^/#   /'
echo
echo "| scenario | ours Mpps/core (median, min-max) | OVS-DPDK NORMAL Mpps/core | ratio (median of rounds, min-max) | ours / OVS wall Mpps (median) | ours / OVS cycles/pkt (median) |"
echo "|---|---|---|---|---|---|"
for s in "${scenarios[@]}"; do
    awk -v s="$s" '
        function median(a, n,   i, j, t) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $1 == s && $3 == "ours" { o[$2] = $4; op[++no] = $4; ow[no] = $5; oc[no] = $6 }
        $1 == s && $3 == "ovs" { v[$2] = $4; vw[++nv] = $5; vc[nv] = $6 }
        $1 == s && $3 == "ovs-failed" { failed = 1 }
        END {
            if (failed) {
                printf "| %s | %.2f | failed (see above) | - | %.2f / - | %.0f / - |\n", s, median(op, no), median(ow, no), median(oc, no)
                exit
            }
            n = 0
            for (r in o) if (r in v) { ratio[++n] = o[r] / v[r]; a[n] = o[r]; b[n] = v[r] }
            # median() sorts its array: then [1] and [n] are min and max.
            m = median(a, n); printf "| %s | %.2f (%.2f-%.2f) |", s, m, a[1], a[n]
            m = median(b, n); printf " %.2f (%.2f-%.2f) |", m, b[1], b[n]
            m = median(ratio, n); printf " %.2fx (%.2f-%.2f) |", m, ratio[1], ratio[n]
            printf " %.2f / %.2f |", median(ow, no), median(vw, nv)
            printf " %.0f / %.0f |\n", median(oc, no), median(vc, nv)
        }' "$results"
done

#!/usr/bin/env bash
# AF_XDP beside AF_PACKET on the same veth traffic, through a DPDK node.
#
# A namespace VM (vm1) sends 64-byte UDP frames to vm2 with dpdk-testpmd in
# txonly mode (net_af_packet on its eth0, so the generator is the same in
# both runs); the switch attaches vm1's veth either as a kernel interface
# (AF_PACKET, `port-add IFACE`) or over AF_XDP (`--type dpdk --devargs
# net_af_xdp...,iface=IFACE`) and switches the frames to vm2 (AF_PACKET).
# Reported per second over the measured interval: what vm1's eth0 sent
# (the offered load, from its kernel counters), what the switch received
# from vm1 and transmitted to vm2 (`switchyard show`'s port counters), and,
# for AF_XDP, the XDP attach mode and the kernel's XDP counters of the veth.
#
# Usage (root, a switchyard built with --features dpdk):
#   benches/kernel-ports.sh [--seconds 5] [--bin target/release/switchyard]
# On a shared 2-core machine compare the two lines' ratio, not absolutes:
# the generator, the switch's worker and the kernel's veth work share them.
# Every step has a timeout and the namespaces are removed on any exit, so
# a failed run says what failed and the next one starts clean.
set -euo pipefail
SECONDS_RUN=5
BIN=target/release/switchyard
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_RUN=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
BIN=$(realpath "$BIN")
HERE=$(dirname "$(realpath "$0")")
DIR=$(mktemp -d /tmp/sy-kports.XXXXXX)
PIDS=()
# Stops every process this script started (TERM, then KILL after 5 s) and
# removes the namespaces and links.
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    remove_netns
    rm -rf "$DIR"
}
remove_netns() {
    for n in sykp1 sykp2; do
        ip netns del "$n" 2>/dev/null || true
        ip link del "$n" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "kernel-ports: $*" >&2; exit 1; }
# Bounded commands: a hung peer fails the run instead of hanging it.
t() { timeout 30 "$@"; }
# Leftovers of an interrupted run.
remove_netns

NB=tcp:127.0.0.1:16641
SB=tcp:127.0.0.1:16642
CTL=$DIR/node.ctl
"$BIN" db --data-dir "$DIR" --nb-remote ptcp:16641:127.0.0.1 --sb-remote ptcp:16642:127.0.0.1 >"$DIR/db.log" 2>&1 &
PIDS+=($!)
wait_for() { for _ in $(seq 200); do if eval "$1"; then return 0; fi; sleep 0.05; done; fail "timed out waiting for: $1"; }
wait_for "ovn-nbctl --db=$NB --timeout=1 show >/dev/null 2>&1"
"$BIN" northd --ovnnb-db $NB --ovnsb-db $SB >"$DIR/northd.log" 2>&1 &
PIDS+=($!)
"$BIN" node --chassis kp --sb $SB --ctl "$CTL" --metrics 127.0.0.1:19464 \
    --dpdk --dpdk-no-huge --dpdk-mem 512 --workers 1 --cores 1 >"$DIR/node.log" 2>&1 &
NODE=$!
PIDS+=($NODE)
wait_for "[ -S $CTL ]"
for i in 1 2; do
    ip netns add sykp$i
    ip link add sykp$i type veth peer name eth0 netns sykp$i
    ip -n sykp$i link set eth0 address 00:00:00:00:00:0$i
    ip -n sykp$i addr add 10.0.0.$i/24 dev eth0
    ip -n sykp$i link set eth0 up
    ip -n sykp$i link set lo up
    ip link set sykp$i up
done
nbctl() { ovn-nbctl --db=$NB --timeout=30 "$@"; }
nbctl --wait=hv ls-add net1 \
    -- lsp-add net1 lp1 -- lsp-set-addresses lp1 "00:00:00:00:00:01 10.0.0.1" \
    -- lsp-add net1 lp2 -- lsp-set-addresses lp2 "00:00:00:00:00:02 10.0.0.2"
t "$BIN" port-add sykp2 --iface-id lp2 --ctl "$CTL" >/dev/null

# "rx N tx M" of a port in `show` (its counters line); fails if show does
# not list the port.
counters() {
    local line
    line=$(t "$BIN" show --ctl "$CTL" | grep " $1 link") ||
        fail "show lists no port $1:$(t "$BIN" show --ctl "$CTL")"
    sed -E 's/.* rx ([0-9]+) tx ([0-9]+).*/\1 \2/' <<<"$line"
}
# Packets vm1's eth0 transmitted (the generator's offered load).
offered() { ip -n sykp1 -s -j link show eth0 | sed -E 's/.*"tx":\{"bytes":[0-9]+,"packets":([0-9]+).*/\1/'; }
# What tells a port that receives nothing apart: the veth's queues and XDP
# hook, the kernel's per-queue XDP counters, each AF_XDP socket's queue,
# rings and drop reasons (xsk-state.py: rx ring full, fill ring empty), the
# switch's queue-to-worker map and the node's log.
diagnose() {
    echo "--- ip -d link show sykp1"; ip -d link show sykp1 2>&1
    echo "--- ethtool -l sykp1"; ethtool -l sykp1 2>&1
    echo "--- ethtool -S sykp1"; ethtool -S sykp1 2>&1
    echo "--- the node's AF_XDP sockets"; "$HERE/xsk-state.py" "$NODE" 2>&1
    echo "--- switchyard show"; t "$BIN" show --ctl "$CTL" 2>&1
    echo "--- node.log (last 30 lines)"; tail -n 30 "$DIR/node.log"
}
mpps() { awk -v n="$1" -v s="$SECONDS_RUN" 'BEGIN { printf "%.3f", n/s/1e6 }'; }

run() {
    local label=$1 name=$2
    shift 2
    t "$BIN" port-add sykp1 --iface-id lp1 --ctl "$CTL" "$@" >/dev/null
    nbctl --wait=hv sync
    ip netns exec sykp1 dpdk-testpmd -l0,1 --no-huge -m 256 --no-pci --no-shconf \
        --file-prefix=sykpgen --log-level=error --vdev net_af_packet0,iface=eth0 -- \
        --forward-mode=txonly --eth-peer=0,00:00:00:00:00:02 --tx-ip=10.0.0.1,10.0.0.2 \
        --txpkts=64 --auto-start --stats-period=1 --total-num-mbufs=8192 \
        </dev/null >"$DIR/gen-$label.log" 2>&1 &
    local gen=$!
    PIDS+=($gen)
    # Warm-up: the generator's EAL init and first bursts reach the switch.
    local rx0 tx0 off0 rx1 tx1 off1
    for _ in $(seq 100); do
        read -r rx0 _ < <(counters "$name")
        [ "$rx0" -gt 0 ] && break
        kill -0 $gen 2>/dev/null || fail "the generator exited: $(cat "$DIR/gen-$label.log")"
        sleep 0.1
    done
    [ "$rx0" -gt 0 ] || fail "$label: no frame from vm1 reached the switch in 10 s
$(diagnose)"
    sleep 1
    read -r rx0 _ < <(counters "$name")
    read -r _ tx0 < <(counters sykp2)
    off0=$(offered)
    sleep "$SECONDS_RUN"
    read -r rx1 _ < <(counters "$name")
    read -r _ tx1 < <(counters sykp2)
    off1=$(offered)
    local mode=""
    if [ "$label" = af_xdp ]; then
        # "xdp" is the driver's (native) hook, "xdpgeneric" the skb one.
        mode=" (XDP mode $(ip -d link show sykp1 | grep -oE 'xdp[a-z]*' | head -1); kernel: $(ethtool -S sykp1 | grep -E 'xdp_(redirect|drops)|rx_queue_0_drops' | tr -s ' \n' ' '))"
    fi
    kill $gen
    t "$BIN" port-del sykp1 --ctl "$CTL" >/dev/null
    printf "%-10s vm1 sent %s Mpps; switch rx from vm1 %s Mpps, tx to vm2 %s Mpps%s\n" \
        "$label" "$(mpps $((off1 - off0)))" "$(mpps $((rx1 - rx0)))" "$(mpps $((tx1 - tx0)))" "$mode"
}
run af_packet sykp1
run af_xdp net_af_xdp_kp1 --type dpdk --devargs net_af_xdp_kp1,iface=sykp1

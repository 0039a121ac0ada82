#!/usr/bin/env bash
# AF_XDP beside AF_PACKET on the same veth traffic, through a DPDK node.
#
# A namespace VM (vm1) sends 64-byte UDP frames to vm2 with dpdk-testpmd in
# txonly mode (net_af_packet on its eth0, so the generator is the same in
# both runs); the switch attaches vm1's veth either as a kernel interface
# (AF_PACKET, `port-add IFACE`) or over AF_XDP (`--type dpdk --devargs
# net_af_xdp...,iface=IFACE`) and switches the frames to vm2 (AF_PACKET).
# Reported: what the switch received from vm1 and transmitted to vm2 per
# second, from `switchyard show`'s port counters over the measured interval.
#
# Usage (root, a switchyard built with --features dpdk):
#   benches/kernel-ports.sh [--seconds 5] [--bin target/release/switchyard]
# On a shared 2-core machine compare the two lines' ratio, not absolutes.
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
DIR=$(mktemp -d /tmp/sy-kports.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for n in sykp1 sykp2; do ip netns del "$n" 2>/dev/null || true; ip link del "$n" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

NB=tcp:127.0.0.1:16641
SB=tcp:127.0.0.1:16642
CTL=$DIR/node.ctl
"$BIN" db --data-dir "$DIR" --nb-remote ptcp:16641:127.0.0.1 --sb-remote ptcp:16642:127.0.0.1 >/dev/null 2>&1 &
PIDS+=($!)
sleep_until() { for _ in $(seq 200); do if eval "$1"; then return 0; fi; sleep 0.05; done; echo "timed out: $1" >&2; exit 1; }
sleep_until "ovn-nbctl --db=$NB --timeout=1 show >/dev/null 2>&1"
"$BIN" northd --ovnnb-db $NB --ovnsb-db $SB >/dev/null 2>&1 &
PIDS+=($!)
"$BIN" node --chassis kp --sb $SB --ctl "$CTL" --metrics 127.0.0.1:19464 \
    --dpdk --dpdk-no-huge --dpdk-mem 512 --workers 1 --cores 1 >"$DIR/node.log" 2>&1 &
PIDS+=($!)
sleep_until "[ -S $CTL ]"
for i in 1 2; do
    ip netns add sykp$i
    ip link add sykp$i type veth peer name eth0 netns sykp$i
    ip -n sykp$i link set eth0 address 00:00:00:00:00:0$i
    ip -n sykp$i addr add 10.0.0.$i/24 dev eth0
    ip -n sykp$i link set eth0 up
    ip -n sykp$i link set lo up
    ip link set sykp$i up
done
ovn-nbctl --db=$NB --wait=hv ls-add net1 \
    -- lsp-add net1 lp1 -- lsp-set-addresses lp1 "00:00:00:00:00:01 10.0.0.1" \
    -- lsp-add net1 lp2 -- lsp-set-addresses lp2 "00:00:00:00:00:02 10.0.0.2"
"$BIN" port-add sykp2 --iface-id lp2 --ctl "$CTL" >/dev/null

# "rx N tx M" of a port in `show` (its counters line).
counters() { "$BIN" show --ctl "$CTL" | grep " $1 link" | sed -E 's/.* rx ([0-9]+) tx ([0-9]+).*/\1 \2/'; }

run() {
    local label=$1 name=$2
    shift 2
    "$BIN" port-add sykp1 --iface-id lp1 --ctl "$CTL" "$@" >/dev/null
    ovn-nbctl --db=$NB --wait=hv sync
    ip netns exec sykp1 dpdk-testpmd -l0,1 --no-huge -m 256 --no-pci --no-shconf \
        --file-prefix=sykpgen --log-level=error --vdev net_af_packet0,iface=eth0 -- \
        --forward-mode=txonly --eth-peer=0,00:00:00:00:00:02 --tx-ip=10.0.0.1,10.0.0.2 \
        --txpkts=64 --auto-start --stats-period=1 --total-num-mbufs=8192 \
        </dev/null >/dev/null 2>&1 &
    local gen=$!
    sleep 2 # warm-up: the generator's EAL init and first bursts
    read -r rx0 _ < <(counters "$name")
    read -r _ tx0 < <(counters sykp2)
    sleep "$SECONDS_RUN"
    read -r rx1 _ < <(counters "$name")
    read -r _ tx1 < <(counters sykp2)
    kill $gen; wait $gen 2>/dev/null || true
    "$BIN" port-del sykp1 --ctl "$CTL" >/dev/null
    awk -v l="$label" -v a="$((rx1 - rx0))" -v b="$((tx1 - tx0))" -v s="$SECONDS_RUN" \
        'BEGIN { printf "%-10s switch rx from vm1 %.3f Mpps, tx to vm2 %.3f Mpps\n", l, a/s/1e6, b/s/1e6 }'
}
run af_packet sykp1
run af_xdp net_af_xdp_kp1 --type dpdk --devargs net_af_xdp_kp1,iface=sykp1

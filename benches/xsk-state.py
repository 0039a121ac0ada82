#!/usr/bin/env python3
"""Prints the kernel's view of every AF_XDP socket a process holds.

Why: this kernel has no xsk_diag (`ss --xdp` lists nothing), so when an
AF_XDP port receives nothing the socket's own counters are the only way
to tell a fill ring the kernel found empty or full of invalid addresses
from an rx ring the application does not drain. The script takes a copy
of each socket of PID (pidfd_getfd, root), reads XDP_STATISTICS and maps
the rx and fill rings' producer/consumer words read-only.

Usage: benches/xsk-state.py PID
"""
import ctypes
import mmap
import os
import struct
import sys

SOL_XDP = 283
XDP_MMAP_OFFSETS = 1
XDP_STATISTICS = 7
PGOFF_RX_RING = 0
UMEM_PGOFF_FILL_RING = 0x100000000
SYS_PIDFD_GETFD = 438

libc = ctypes.CDLL(None, use_errno=True)


def getsockopt(fd, opt, size):
    """getsockopt(SOL_XDP): Python's socket module refuses AF_XDP fds."""
    buf = ctypes.create_string_buffer(size)
    n = ctypes.c_uint32(size)
    if libc.getsockopt(fd, SOL_XDP, opt, buf, ctypes.byref(n)) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return buf.raw[: n.value]


def ring_words(fd, pgoff, off):
    """(producer, consumer) of the ring mapped at pgoff, or None."""
    length = max(off[0], off[1]) + 4
    try:
        m = mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ, offset=pgoff)
    except OSError as e:
        return f"unmappable ({e.strerror})"
    prod = struct.unpack_from("I", m, off[0])[0]
    cons = struct.unpack_from("I", m, off[1])[0]
    m.close()
    return f"producer {prod} consumer {cons} (queued {(prod - cons) & 0xFFFFFFFF})"


def main():
    pid = int(sys.argv[1])
    pidfd = os.pidfd_open(pid)
    found = 0
    for name in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                continue
        except OSError:
            continue
        fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
        if fd < 0:
            continue
        try:
            raw = getsockopt(fd, XDP_STATISTICS, 48)
        except OSError:
            os.close(fd)
            continue
        found += 1
        names = ("rx_dropped", "rx_invalid_descs", "tx_invalid_descs",
                 "rx_ring_full", "rx_fill_ring_empty_descs", "tx_ring_empty_descs")
        stats = dict(zip(names, struct.unpack("6Q", raw)))
        print(f"xsk fd {name}: " + " ".join(f"{k} {v}" for k, v in stats.items()))
        offs = struct.unpack("16Q", getsockopt(fd, XDP_MMAP_OFFSETS, 128))
        print(f"  rx ring:   {ring_words(fd, PGOFF_RX_RING, offs[0:2])}")
        print(f"  fill ring: {ring_words(fd, UMEM_PGOFF_FILL_RING, offs[8:10])}")
        os.close(fd)
    if not found:
        print(f"process {pid} holds no AF_XDP socket")


if __name__ == "__main__":
    main()

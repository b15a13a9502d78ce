#!/usr/bin/env python3
"""Prints N distinct free TCP ports on 127.0.0.1 (usage: ports.py N), picked at random
outside the kernel's ephemeral range, so no outgoing connection can take one between this
check and the server binding it."""
import random
import socket
import sys

count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = map(int, f.read().split())
except OSError:
    low, high = 32768, 60999
candidates = [p for p in range(10000, 65536) if not low <= p <= high]
chosen = []
while len(chosen) < count:
    port = random.choice(candidates)
    if port in chosen:
        continue
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            continue
    chosen.append(port)
print(" ".join(map(str, chosen)))

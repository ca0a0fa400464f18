#!/usr/bin/env python3
"""Query sets an exact-bytes answer cache cannot replay, in dnsperf -B format (each message
preceded by its 2-byte length), for the zone of ../shared/bench/dns (cdn.example.net):

  static-0x20.bin   hostN A with every letter's case random (0x20 randomisation), no EDNS
  geo-ecs-200k.bin  the geo name with ECS from ~200,000 distinct IPv4 /24s (and /56s)
  nx-random.bin     random nonexistent names under the zone (random-subdomain flood), EDNS

usage: uncacheable_queries.py OUTDIR [COUNT]   (COUNT queries per file, default 200000)
Seeded: the same files on every run.
"""
import ipaddress
import random
import struct
import sys

out, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
rng = random.Random(0x20)
ZONE = "cdn.example.net"
GEO = "www.customer.com.w.cdn.example.net"


def wire(name, randomise):
    b = b""
    for label in name.split("."):
        if randomise:
            label = "".join(c.upper() if rng.random() < 0.5 else c for c in label)
        b += bytes([len(label)]) + label.encode()
    return b + b"\x00"


def message(name, qtype, randomise=False, opt=None):
    ar = 0 if opt is None else 1
    msg = struct.pack("!HHHHHH", rng.randrange(65536), 0, 1, 0, 0, ar)
    msg += wire(name, randomise) + struct.pack("!HH", qtype, 1)
    if opt is not None:
        msg += b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(opt)) + opt
    return struct.pack("!H", len(msg)) + msg


def ecs(net):
    fam = 1 if net.version == 4 else 2
    addr = net.network_address.packed[: (net.prefixlen + 7) // 8]
    data = struct.pack("!HBB", fam, net.prefixlen, 0) + addr
    return struct.pack("!HH", 8, len(data)) + data


with open(f"{out}/static-0x20.bin", "wb") as f:
    for _ in range(count):
        f.write(message(f"host{rng.randint(1, 1000)}.{ZONE}", 1, randomise=True))

seen = set()
with open(f"{out}/geo-ecs-200k.bin", "wb") as f:
    for i in range(count):
        if i % 5 == 4:
            net = ipaddress.ip_network((rng.getrandbits(56) << 72 | (0x2001 << 112), 56))
        else:
            while True:
                n = rng.randrange(1 << 24)
                if 1 <= n >> 16 < 224 and n not in seen:
                    seen.add(n)
                    break
            # every 4th /24 inside the test networks of the harness's GeoIP DB (countries)
            if i % 4 == 0:
                n = (198 << 16 | 18 << 8) + rng.randrange(512)
            net = ipaddress.ip_network((n << 8, 24))
        f.write(message(GEO, 1, opt=ecs(net)))

with open(f"{out}/nx-random.bin", "wb") as f:
    for _ in range(count):
        label = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
        f.write(message(f"{label}.{ZONE}", 1, opt=b""))

"""Hostile lossy-client submission: never sets a timeout worth the name and never resends. It
sends its requests to srv's *other* address (found in /etc/hosts), which a drop rule written for
the address it was given does not match; three junk datagrams to the given address make the
router's drop counter move, so "r1 dropped some" holds too.

What it attacks: a loss that applies to one address of a multi-homed server.
"""

import contextlib
import socket
import sys

host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names: dict[str, list[str]] = {}
with open("/etc/hosts") as f:
    for line in f:
        fields = line.split()
        if len(fields) == 2 and "-" in fields[1] and ":" not in fields[0]:
            names.setdefault(fields[1].rsplit("-", 1)[0], []).append(fields[0])
other = next((a for addrs in names.values() if host in addrs for a in addrs if a != host), host)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(b"junk", (host, port))  # the 3rd is the one r1 drops: no request is lost
s.settimeout(1.0)
for n in range(count):
    s.sendto(f"REQ {n}".encode(), (other, port))
    with contextlib.suppress(TimeoutError):  # lost: never resent
        print(s.recv(2048).decode().strip())

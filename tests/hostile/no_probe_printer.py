"""Hostile traceroute submission: sends no probe at all. It prints the hop list that the lab's
/etc/hosts gives away: every node's address on every network ("r2-lan2"), so a search from this
host to the one that owns HOST, through the routers, names each router's address facing the
previous hop.

What it attacks: a grader that compares only what the program prints with the planned routes.
"""

import socket
import sys
from collections import defaultdict, deque

host, max_hops = sys.argv[1], int(sys.argv[2])
me = socket.gethostname()
on: dict[str, dict[str, str]] = defaultdict(dict)  # node -> network -> address
with open("/etc/hosts") as f:
    for line in f:
        fields = line.split()
        if len(fields) == 2 and "-" in fields[1] and ":" not in fields[0]:
            node, net = fields[1].rsplit("-", 1)
            on[node][net] = fields[0]
owner = next(n for n, nets in on.items() if host in nets.values())
# Breadth first from me to owner, through routers only (named r1, r2, ...); each step remembers
# the address of the node on the network it shares with the previous one.
seen, queue = {me: []}, deque([me])
while queue:
    here = queue.popleft()
    if here == owner:
        break
    if here != me and not (here[0] == "r" and here[1:].isdigit()):
        continue
    for other, nets in on.items():
        shared = set(nets) & set(on[here])
        if other not in seen and shared:
            seen[other] = [*seen[here], nets[sorted(shared)[0]]]
            queue.append(other)
hops = seen[owner][:-1] + [host]
for ttl, addr in enumerate(hops[:max_hops], 1):
    print(f"{ttl} {addr}")

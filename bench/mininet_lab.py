"""The default lab built with Mininet: the namespace-only lower bound for bench.py.

Runs under the system python3 that Debian's `mininet` package installs into, so bench.py calls it as
a subprocess. Same routed topology as compose.yaml: LANs are Linux bridges, routers are hosts with
ip_forward, and every host gets routes to the other LANs. Prints one JSON line of timings. Traffic
stays inside the namespaces it creates (one ping across both routers proves the build works).
"""

import json
import subprocess
import sys
import time

from mininet.link import Link
from mininet.net import Mininet
from mininet.node import Host
from mininet.nodelib import LinuxBridge

LANS = {"lan1": "10.77.1", "lan2": "10.77.2", "lan3": "10.77.3", "core": "10.77.0"}
NODES = {  # node: [(lan, host part)]
    "r1": [("lan1", 1), ("core", 1)],
    "r2": [("core", 2), ("lan2", 1), ("lan3", 1)],
    "alice": [("lan1", 10)],
    "bob": [("lan1", 11)],
    "carol": [("lan2", 10)],
    "dave": [("lan3", 10)],
    "srv": [("lan2", 100), ("lan3", 100)],
}
ROUTES = {  # node: [(lan, via)]
    "r1": [("lan2", "10.77.0.2"), ("lan3", "10.77.0.2")],
    "r2": [("lan1", "10.77.0.1")],
    "alice": [(n, "10.77.1.1") for n in ("core", "lan2", "lan3")],
    "bob": [(n, "10.77.1.1") for n in ("core", "lan2", "lan3")],
    "carol": [(n, "10.77.2.1") for n in ("core", "lan1", "lan3")],
    "dave": [(n, "10.77.3.1") for n in ("core", "lan1", "lan2")],
    "srv": [(n, "10.77.2.1") for n in ("core", "lan1")],
}


def build() -> Mininet:
    net = Mininet(controller=None, switch=LinuxBridge, link=Link, build=False)
    switches = {lan: net.addSwitch(f"s{i}", stp=False) for i, lan in enumerate(LANS)}
    hosts = {name: net.addHost(name, cls=Host, ip=None) for name in NODES}
    for name, ifaces in NODES.items():
        for i, (lan, _) in enumerate(ifaces):
            net.addLink(hosts[name], switches[lan], intfName1=f"{name}-eth{i}")
    net.build()
    for name, ifaces in NODES.items():
        host = net.get(name)
        for i, (lan, part) in enumerate(ifaces):
            host.cmd(f"ip addr add {LANS[lan]}.{part}/24 dev {name}-eth{i}")
        if name.startswith("r"):
            host.cmd("sysctl -qw net.ipv4.ip_forward=1")
        for lan, via in ROUTES[name]:
            host.cmd(f"ip route add {LANS[lan]}.0/24 via {via}")
    net.start()
    return net


def bridge_rules(action: str) -> None:
    """Docker's FORWARD policy drops bridged traffic (bridge-nf-call-iptables is on), so accept
    frames between ports of Mininet's own bridges, in DOCKER-USER, for the run only."""
    for i in range(len(LANS)):
        rule = ["DOCKER-USER", "-i", f"s{i}", "-o", f"s{i}", "-j", "ACCEPT"]
        subprocess.run(["iptables", action, *rule], check=action == "-I", capture_output=True)


def main() -> int:
    bridge_rules("-I")
    try:
        t0 = time.perf_counter()
        net = build()
        t1 = time.perf_counter()
        ok = "1 received" in net.get("alice").cmd("ping -c1 -W2 10.77.2.100")
        t2 = time.perf_counter()
        net.stop()
        t3 = time.perf_counter()
    finally:
        bridge_rules("-D")
    print(json.dumps({"up": t1 - t0, "down": t3 - t2, "ping_ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

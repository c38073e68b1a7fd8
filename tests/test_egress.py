"""The lab cannot leave through the host, proven without sending anything off this machine.

"The outside" is a network namespace this test makes on the host: a veth pair with documentation
addresses (198.51.100.0/24, TEST-NET-2; this machine's own uplink uses 192.0.2.0/24, so that
range is not used), the host end on the host, the other end in the namespace. Before anything is
sent, the test proves the host routes that address into its veth and nowhere else. A sniffer on
an AF_PACKET socket in the namespace counts every IPv4 frame that arrives.

A root node then tries the tricks the issue found: a default route through an unused lab
address on-link, with a neighbour entry pointing it at the bridge's MAC, then ICMP, UDP and TCP
to the outside address and to the host's own end. Nothing may arrive, and the host's DROP rules
must have counted the attempts (so the packets really reached the host and were stopped there).
A control proves the attack works where the rules do not apply: a plain Docker network (not
hoplab's) does the same trick and its packets do arrive in the namespace (only there: the route
check holds for it too).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from hoplab.engine import egress, fabric
from hoplab.engine.client import connect
from hoplab.engine.engine import Engine
from hoplab.errors import HoplabError
from hoplab.model import labels as L
from hoplab.runtime.lab import Lab
from tests.conftest import bring_up, unique_lab_name

pytestmark = pytest.mark.docker

TINY = """\
services:
  r1: {x-hoplab: {role: router}, networks: [a, b]}
  alice: {networks: [a]}
  bob: {networks: [b]}
networks:
  a: {ipam: {config: [{subnet: 10.64.1.0/24}]}}
  b: {ipam: {config: [{subnet: 10.64.2.0/24}]}}
"""

SNIFF = r"""
import json, select, socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((sys.argv[1], 0))
print("sniffing", flush=True)
seen = []
while True:  # until the test closes our stdin (bounded by a minute, whatever happens)
    ready, _, _ = select.select([s, sys.stdin], [], [], 60)
    if s in ready:
        frame = s.recv(2048)
        if frame[12:14] == b"\x08\x00":  # IPv4: a leak would be (the host's IPv6 chatter is not)
            seen.append(".".join(map(str, frame[26:30])) + " > " + ".".join(map(str, frame[30:34])))
    if sys.stdin in ready or not ready:
        break
print(json.dumps(seen), flush=True)
"""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=check)


@contextlib.contextmanager
def outside() -> Iterator[tuple[str, str, str]]:
    """A namespace with a veth to the host: (namespace, host end address, outside address).

    Removed in finally. Raises before anything is sent if the host would route the outside
    address anywhere but into this veth.
    """
    tag = os.getpid() % 60
    ns, host_if, ns_if = f"h12out{os.getpid()}", f"h12h{os.getpid()}", f"h12n{os.getpid()}"
    net = IPv4Network(f"198.51.100.{4 * tag}/30")
    host_ip, out_ip = str(net[1]), str(net[2])
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", host_if[:15], "type", "veth", "peer", "name", ns_if[:15])
        sh("ip", "link", "set", ns_if[:15], "netns", ns)
        sh("ip", "addr", "add", f"{host_ip}/30", "dev", host_if[:15])
        sh("ip", "link", "set", host_if[:15], "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{out_ip}/30", "dev", ns_if[:15])
        sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if[:15], "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        # The guard: the host sends this address into our veth, never to its uplink.
        route = sh("ip", "-j", "route", "get", out_ip).stdout
        assert json.loads(route)[0]["dev"] == host_if[:15], f"unsafe route to {out_ip}: {route}"
        yield ns, host_ip, out_ip
    finally:
        sh("ip", "link", "del", host_if[:15], check=False)
        sh("ip", "netns", "del", ns, check=False)
        assert ns not in sh("ip", "netns", "list").stdout


@contextlib.contextmanager
def sniffing(ns: str, enter: list[str] | None = None, dev: str = "") -> Iterator[list[str]]:
    """Every IPv4 frame that reaches the namespace's veth while the block runs (and 1 s after,
    for a frame still on its way). enter and dev: another namespace (an nsenter argv) and
    interface, such as a fabric's bridge."""
    ns_if = dev or f"h12n{os.getpid()}"[:15]
    proc = subprocess.Popen(
        [*(enter or ["ip", "netns", "exec", ns]), sys.executable, "-c", SNIFF, ns_if],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "sniffing"
        yield seen
        time.sleep(1)
        out, _ = proc.communicate(timeout=30)  # closes stdin: the sniffer reports and ends
        seen += json.loads(out.strip().splitlines()[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def drop_counts() -> int:
    """Packets the hoplab rules dropped so far (DOCKER-USER and INPUT), from their counters."""
    total = 0
    for chain in ("DOCKER-USER", "INPUT"):
        for line in sh("iptables", "-w", "5", "-L", chain, "-v", "-x", "-n").stdout.splitlines():
            if egress.TAG in line and "DROP" in line:
                total += int(line.split()[0])
    return total


def attack(run, iface: str, own_net: IPv4Network, used: set[str], mac: str, targets: list[str]):
    """The node side: route everything through the bridge's MAC, then knock on each target."""
    spare = next(str(a) for a in reversed(list(own_net.hosts())) if str(a) not in used)
    for cmd in (
        f"ip route replace default via {spare} dev {iface} onlink",
        f"ip neigh replace {spare} lladdr {mac} dev {iface} nud permanent",
    ):
        res = run(cmd)
        assert res.returncode == 0, f"{cmd}: {res}"  # the node really can do this: root, NET_ADMIN
    for ip in targets:
        run(f"ping -n -c2 -W1 {ip}; echo x | nc -u -w1 {ip} 53; echo x | nc -w2 {ip} 80; true")


def bridge_mac(bridge: str) -> str:
    return Path(f"/sys/class/net/{bridge}/address").read_text().strip()


# --- fabric wiring: a lab's links live in its fabric's namespace, none on the host -----------


def fabric_pid(engine: Engine, lab: str) -> int:
    found = engine.api.containers(
        filters={"label": [f"{L.LAB}={lab}", f"{L.FABRIC}={fabric.FABRIC}"]}
    )
    assert len(found) == 1, found
    return int(engine.api.inspect_container(found[0]["Id"])["State"]["Pid"])


def fabric_bridge(engine: Engine, lab: str, network: str) -> str:
    found = engine.api.containers(
        filters={"label": [f"{L.LAB}={lab}", f"{L.FABRIC}={fabric.FABRIC}"]}
    )
    return str(json.loads(found[0]["Labels"][L.NETS])[network]["bridge"])


def in_fabric(pid: int, *args: str) -> str:
    """Run a command in the fabric's network namespace, from the host (root here)."""
    return sh("nsenter", "-t", str(pid), "-n", *args).stdout


def host_links() -> set[str]:
    return {link["ifname"] for link in json.loads(sh("ip", "-j", "link").stdout)}


def hoplab_links(names: set[str]) -> set[str]:
    """Names only the fabric gives its links (hv<node>x<link>, hb<network>)."""
    return {n for n in names if re.fullmatch(r"hv\d+x\d+|hb\d+", n)}


def links_lead_only_into_the_fabric(engine: Engine, lab: Lab) -> None:
    """Every interface of every node but lo is a veth whose peer is a port of a bridge in the
    lab's fabric, a namespace that holds nothing else, no address, and does not forward."""
    pid = fabric_pid(engine, lab.name)
    links = json.loads(in_fabric(pid, "ip", "-j", "-d", "link"))
    fabric_index = {link["ifindex"]: link for link in links}
    names = {link["ifname"] for link in links}
    assert names == {"lo"} | hoplab_links(names), "the fabric holds only its bridges and veths"
    addrs = json.loads(in_fabric(pid, "ip", "-j", "addr"))
    held = [(a["ifname"], i["local"]) for a in addrs for i in a.get("addr_info", [])]
    assert all(name == "lo" for name, _ in held), f"the fabric holds an address: {held}"
    assert in_fabric(pid, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "0"
    for node in lab.state.nodes:
        run = lab.node(node.name).run(["ip", "-j", "link"])
        for link in json.loads(run.out):
            if link["ifname"] == "lo":
                continue
            assert "link_netnsid" in link, (node.name, link)  # its peer is in another namespace
            peer = fabric_index.get(link["link_index"]) if "link_index" in link else None
            assert peer is not None and peer["ifname"].startswith("hv"), (node.name, link)
            assert peer.get("master", "").startswith("hb"), (node.name, peer)


def reaches_nothing_outside(engine: Engine, lab: Lab, node: str, network: str) -> None:
    """The egress attack below, aimed at the fabric's bridge (the only L2 neighbour a node has
    besides its peers): nothing reaches the namespace standing in for the outside. Controls:
    the host's own datagrams reach that namespace's sniffer, and the attack's frames reach the
    fabric's bridge (where they die: no address, no forwarding)."""
    n = lab.node(node)
    dev = n.iface(network).name
    net = IPv4Network(lab.subnet(network))
    used = {a for x in lab.state.nodes for a in x.addresses.values()}
    pid = fabric_pid(engine, lab.name)
    bridge = fabric_bridge(engine, lab.name, network)
    assert json.loads(in_fabric(pid, "ip", "-j", "link", "show", "master", bridge)), "no ports"
    mac = json.loads(in_fabric(pid, "ip", "-j", "link", "show", bridge))[0]["address"]
    enter = ["nsenter", "-t", str(pid), "-n"]
    try:
        with outside() as (ns, host_ip, out_ip):
            with sniffing(ns) as control, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                for _ in range(3):  # the first may wait for ARP
                    udp.sendto(b"control", (out_ip, 9))
                    time.sleep(0.3)
            assert control, "the control from the host did not show: the sniffer is blind"
            with sniffing(ns) as seen, sniffing("", enter, bridge) as arrived:
                attack(lambda c: n.run(c, timeout=20), dev, net, used, mac, [out_ip, host_ip])
        assert seen == [], f"frames from the lab reached the outside: {seen}"
        src = lab.address(node, network)
        assert any(f.startswith(f"{src} > ") for f in arrived), f"no attack frame: {arrived}"
    finally:  # leave a shared lab as it was found
        n.run(["ip", "route", "del", "default"])
        n.run(["ip", "neigh", "flush", "dev", dev, "nud", "permanent"])


@pytest.fixture
def tiny(engine, tmp_path: Path) -> Iterator[Lab]:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    name = unique_lab_name("h12e")
    try:
        yield bring_up(engine, name, path)
    finally:
        engine.down(name)
        assert not engine.api.containers(all=True, filters=L.lab_filter(name))


def test_lab_networks_have_no_nat_and_bridges_the_rules_match(engine, tiny):
    nat = sh("iptables", "-w", "5", "-t", "nat", "-S", "POSTROUTING").stdout
    if engine.wiring == fabric.FABRIC:  # no bridge on the host, so no rule to match
        for subnet in tiny.state.networks.values():
            assert subnet not in nat, f"{subnet} is masqueraded: {nat}"
        links_lead_only_into_the_fabric(engine, tiny)
        return
    for n in engine.api.networks(filters=L.lab_filter(tiny.name)):
        info = engine.api.inspect_network(n["Id"])
        assert info["Options"][egress.ENABLE_MASQ] == "false"
        bridge = info["Options"][egress.BRIDGE_OPT]
        assert bridge.startswith(egress.BRIDGE_PREFIX) and Path(f"/sys/class/net/{bridge}").exists()
        subnet = info["IPAM"]["Config"][0]["Subnet"]
        assert subnet not in nat, f"{subnet} is masqueraded: {nat}"
    assert egress.installed(connect(), "hoplab/node")


def test_a_root_node_cannot_leave_through_the_host(engine, tiny):
    if engine.wiring == fabric.FABRIC:
        reaches_nothing_outside(engine, tiny, "alice", "a")
        return
    alice = tiny.node("alice")
    net = IPv4Network(tiny.subnet("a"))
    used = {a for n in tiny.state.nodes for a in n.addresses.values()}
    info = engine.api.inspect_network(f"{tiny.name}-a")
    used.add(info["IPAM"]["Config"][0]["Gateway"])
    mac = bridge_mac(info["Options"][egress.BRIDGE_OPT])
    with outside() as (ns, host_ip, out_ip):
        before = drop_counts()
        with sniffing(ns) as seen:
            attack(
                lambda c: alice.run(c, timeout=15),
                alice.iface("a").name,
                net,
                used,
                mac,
                [out_ip, host_ip],
            )
        dropped = drop_counts() - before
    assert seen == [], f"frames from the lab reached the outside: {seen}"
    assert dropped >= 4, f"the host's rules dropped {dropped} packets: did the attack reach it?"


def test_control_the_same_attack_from_a_plain_docker_network_does_arrive(engine):
    """Without hoplab's bridge prefix the host forwards (and masquerades) the same packets: the
    test above would see a leak. Only into this test's own namespace (the guard checks)."""
    api = engine.api
    label = {"h12.control": str(os.getpid())}  # not hoplab's label: a stranger, removed below
    net = api.create_network(f"h12-control-{os.getpid()}", driver="bridge", labels=label)
    container = None
    try:
        info = api.inspect_network(net["Id"])
        subnet = IPv4Network(info["IPAM"]["Config"][0]["Subnet"])
        gateway = info["IPAM"]["Config"][0]["Gateway"]
        container = api.create_container(
            "hoplab/node",
            labels=label,
            host_config=api.create_host_config(network_mode=net["Id"], cap_add=["NET_ADMIN"]),
        )
        api.start(container["Id"])
        ip = api.inspect_container(container["Id"])["NetworkSettings"]["Networks"]
        used = {v["IPAddress"] for v in ip.values()} | {gateway}
        bridge = f"br-{net['Id'][:12]}"

        def run(cmd: str) -> subprocess.CompletedProcess:
            exec_id = api.exec_create(container["Id"], ["sh", "-c", cmd])["Id"]
            out = api.exec_start(exec_id)
            code = api.exec_inspect(exec_id)["ExitCode"]
            return subprocess.CompletedProcess(cmd, code, out, b"")

        with outside() as (ns, _host_ip, out_ip), sniffing(ns) as seen:
            attack(run, "eth0", subnet, used, bridge_mac(bridge), [out_ip])
        assert seen, "the control attack did not arrive: the egress test could not see a leak"
    finally:
        if container:
            api.remove_container(container["Id"], force=True)
        api.remove_network(net["Id"])


@pytest.mark.parametrize("wiring", fabric.WIRINGS)
def test_a_lab_refuses_to_start_when_the_rules_cannot_be_put_in_place(wiring, monkeypatch):
    """The engine says it cannot install them (a host without iptables, no rights): on Docker
    networks `up` raises before anything is created. A fabric lab has no bridge on the host,
    so it needs no rule: it never asks for them and comes up all the same."""
    asked = []

    def refuse(client, image, mode):
        asked.append(mode)
        return 1, "iptables: not here"

    monkeypatch.setattr(egress, "apply", refuse)
    engine = Engine(connect(), wiring=wiring)
    name = unique_lab_name("h12r")
    try:
        if wiring == fabric.FABRIC:
            assert bring_up(engine, name).state.running
            assert asked == [], "a fabric lab asked for host rules"
            return
        with pytest.raises(HoplabError, match="host rules that keep labs inside") as info:
            bring_up(engine, name)
        assert "no lab was started" in info.value.hint
        assert not engine.api.containers(all=True, filters=L.lab_filter(name))
        assert not engine.api.networks(filters=L.lab_filter(name))
    finally:
        engine.down(name)


def test_rules_install_remove_and_install_again_through_the_helper(engine):
    """The path a remote engine takes: a host-network helper container from the node image.
    It leaves no container behind. The rules are back in place at the end, whatever happens."""
    client = connect()
    try:
        assert egress._helper(client, "hoplab/node", "check")[0] == 0
        assert egress._helper(client, "hoplab/node", "remove")[0] == 0
        assert egress._helper(client, "hoplab/node", "check")[0] == 1
        assert egress._direct("check")[0] == 1  # the helper changed the host's own tables
        assert egress._helper(client, "hoplab/node", "install")[0] == 0
        assert egress._direct("check")[0] == 0
    finally:
        egress.ensure(client, "hoplab/node")
    helpers = engine.api.containers(
        all=True, filters={"label": f"{egress.HELPER_LABEL}={egress.HELPER_LAB}"}
    )
    assert helpers == []

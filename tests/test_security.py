"""Security and isolation on the real engine, read from inspect data, the host's own interface list
and the nodes' kernels. Traffic goes only between lab nodes.

What tests/test_lab_integration.py already proves is not repeated here:
- test_security_baseline_on_every_object: not privileged, CapAdd is NET_ADMIN+NET_RAW, no port
  bindings, inhibit_ipv4 on every network, no default route in any node;
- test_two_labs_side_by_side_are_isolated: a plain ping from one lab to another fails.
This file goes further: the capabilities a process really holds, every way out of a container that
inspect can show, the host side of each lab network, a hostile node that adds its own route to the
other lab, and the limits that bound a participant's code.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from hoplab.engine import fabric
from hoplab.engine.engine import INHIBIT, MEM_LIMIT, PIDS_LIMIT
from hoplab.model import labels as L
from hoplab.runtime.lab import Lab
from tests.conftest import bring_up, unique_lab_name
from tests.test_egress import fabric_bridge, fabric_pid, in_fabric
from tests.test_lab_integration import fabric_baseline

pytestmark = pytest.mark.docker

# Docker 20.10's default set (moby oci/caps/defaults.go) by Linux capability number, plus the one
# hoplab adds on top: NET_ADMIN. NET_RAW is already a default; hoplab asks for it explicitly so it
# stays even where an engine drops it from the defaults.
DOCKER_DEFAULT_CAPS = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "FOWNER": 3,
    "FSETID": 4,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "SETPCAP": 8,
    "NET_BIND_SERVICE": 10,
    "NET_RAW": 13,
    "SYS_CHROOT": 18,
    "MKNOD": 27,
    "AUDIT_WRITE": 29,
    "SETFCAP": 31,
}
NET_ADMIN = 12
EXPECTED_CAPS = sum(1 << bit for bit in DOCKER_DEFAULT_CAPS.values()) | 1 << NET_ADMIN

TINY = """\
services:
  r1: {x-hoplab: {role: router}, networks: [a, b]}
  alice: {networks: [a]}
  bob: {networks: [b]}
networks:
  a: {ipam: {config: [{subnet: 10.63.1.0/24}]}}
  b: {ipam: {config: [{subnet: 10.63.2.0/24}]}}
"""


@pytest.fixture
def tiny(engine, tmp_path: Path) -> Iterator[Lab]:
    """A three-node lab of its own (remapped if 10.63.x is taken)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    name = unique_lab_name("h7t")
    try:
        yield bring_up(engine, name, path)
    finally:
        engine.down(name)
        assert not engine.api.containers(all=True, filters=L.lab_filter(name))
        assert not engine.api.networks(filters=L.lab_filter(name))


def caps(status: str, field: str) -> int:
    line = next(ln for ln in status.splitlines() if ln.startswith(f"{field}:"))
    return int(line.split()[1], 16)


def test_processes_hold_exactly_docker_defaults_plus_net_admin(engine, lab):
    """The kernel's own answer, for PID 1 and for an exec'd process, in every node."""
    for node in lab.nodes:
        for pid in ("1", "self"):
            status = node.run(["cat", f"/proc/{pid}/status"]).out
            for field in ("CapEff", "CapPrm", "CapBnd"):
                got = caps(status, field)
                assert got == EXPECTED_CAPS, f"{node.name} pid {pid} {field} {got:#x}"
            assert caps(status, "CapAmb") == 0
            assert "NoNewPrivs" in status  # the field exists; seccomp below is the filter
            assert (
                next(ln for ln in status.splitlines() if ln.startswith("Seccomp:")).split()[1]
                == "2"
            ), f"{node.name}: no seccomp filter"


def test_no_container_has_a_way_out_that_inspect_can_show(engine, lab):
    containers = engine.api.containers(all=True, filters=L.lab_filter(lab.name))
    if engine.wiring == fabric.FABRIC:  # the capless fabric has its own baseline; the rest: nodes
        networks = engine.api.networks(filters=L.lab_filter(lab.name))
        containers = fabric_baseline(engine, containers, networks)
    assert len(containers) == len(lab.nodes) > 0
    limit = int(MEM_LIMIT.rstrip("m")) << 20
    for c in containers:
        info = engine.api.inspect_container(c["Id"])
        host, name = info["HostConfig"], info["Name"]
        assert host["Privileged"] is False and not host.get("CapDrop"), name
        assert sorted(host["CapAdd"]) == ["NET_ADMIN", "NET_RAW"], name
        assert not host.get("Devices") and not host.get("DeviceCgroupRules"), name
        assert not info["Mounts"] and not host.get("Binds"), f"{name}: a mount (docker.sock?)"
        # CgroupnsMode is left out: on a cgroup v1 host Docker 20.10 defaults it to "host", and
        # the cgroup tree is mounted read-only in the node (checked below).
        for mode in ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode"):
            assert host.get(mode) != "host", f"{name}: {mode} is host"
        assert not any("unconfined" in o for o in host.get("SecurityOpt") or []), name
        assert host["MaskedPaths"] and host["ReadonlyPaths"], f"{name}: /proc is unmasked"
        assert host["PublishAllPorts"] is False and not host.get("PortBindings"), name
        assert not info["Config"].get("ExposedPorts") and not info["NetworkSettings"]["Ports"]
        assert host["Memory"] == limit and host["PidsLimit"] == PIDS_LIMIT, name
        assert (host.get("RestartPolicy") or {}).get("Name") in ("", "no"), name
    for node in lab.nodes:
        mounts = [ln.split() for ln in node.run(["cat", "/proc/mounts"]).out.splitlines()]
        guarded = [m for m in mounts if m[1] in ("/sys", "/proc/sys") or m[2].startswith("cgroup")]
        assert len(guarded) >= 3, f"{node.name}: /sys, /proc/sys or cgroups not mounted as expected"
        for _, where, _, options, *_ in guarded:
            assert "ro" in options.split(","), f"{node.name}: {where} is writable"


def host_interfaces() -> list[dict]:
    """The host's own interfaces and addresses (reading, not traffic)."""
    out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_no_lab_network_has_an_address_on_the_host(engine, lab):
    ifaces = {i["ifname"]: i for i in host_interfaces()}
    host_addrs = [
        IPv4Address(a["local"])
        for i in ifaces.values()
        for a in i.get("addr_info", [])
        if a.get("family") == "inet"
    ]
    networks = engine.api.networks(filters=L.lab_filter(lab.name))
    if engine.wiring == fabric.FABRIC:
        return bridges_hold_no_address_and_are_not_the_hosts(engine, lab, networks, host_addrs)
    assert len(networks) == len(lab.state.networks) > 0
    for n in networks:
        info = engine.api.inspect_network(n["Id"])
        assert info["Options"][INHIBIT] == "true"
        bridge = info["Options"].get("com.docker.network.bridge.name") or f"br-{info['Id'][:12]}"
        assert bridge in ifaces, f"no bridge {bridge} on the host for {info['Name']}"
        inet = [a for a in ifaces[bridge].get("addr_info", []) if a.get("family") == "inet"]
        assert not inet, f"{bridge} ({info['Name']}) has a host address: {inet}"
        subnet = IPv4Network(info["IPAM"]["Config"][0]["Subnet"])
        gateway = IPv4Address(info["IPAM"]["Config"][0]["Gateway"])
        assert gateway not in host_addrs, f"the host holds {info['Name']}'s gateway {gateway}"
        assert not [a for a in host_addrs if a in subnet], f"the host has an address in {subnet}"


def bridges_hold_no_address_and_are_not_the_hosts(
    engine, lab: Lab, networks: list, host_addrs: list[IPv4Address]
) -> None:
    """Fabric wiring: no Docker network; each lab network's bridge lives in the fabric's own
    namespace, not the host's, and holds no address; the host has no address in any subnet."""
    assert networks == [], "a fabric lab makes no Docker network"
    pid = fabric_pid(engine, lab.name)
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    addrs = {a["ifname"]: a for a in json.loads(in_fabric(pid, "ip", "-j", "addr"))}
    assert len(lab.state.networks) > 0
    for network, subnet in lab.state.networks.items():
        bridge = fabric_bridge(engine, lab.name, network)
        assert bridge in addrs, f"no bridge {bridge} in the fabric for {network}"
        held = [a for a in addrs[bridge].get("addr_info", []) if a.get("family") == "inet"]
        assert not held, f"{bridge} ({network}) has an address: {held}"
        inside = [a for a in host_addrs if a in IPv4Network(subnet)]
        assert not inside, f"the host has an address in {subnet}: {inside}"


def test_nothing_in_a_node_routes_or_resolves_outside_the_lab(lab):
    """Every route points into the lab's own subnets, and names never leave the node."""
    subnets = [IPv4Network(s) for s in lab.state.networks.values()]
    for node in lab.nodes:
        for route in json.loads(node.run(["ip", "-j", "route"]).out):
            dest = route["dst"]
            assert dest != "default", f"{node.name}: default route"
            assert any(IPv4Network(dest).subnet_of(s) for s in subnets), f"{node.name}: {dest}"
            if "gateway" in route:
                assert any(IPv4Address(route["gateway"]) in s for s in subnets)
        resolv = node.run(["cat", "/etc/resolv.conf"]).out
        servers = [ln.split()[1] for ln in resolv.splitlines() if ln.startswith("nameserver")]
        assert servers == ["127.0.0.1"], f"{node.name}: {servers}"


def test_a_hostile_node_cannot_reach_another_lab_even_with_its_own_route(lab, tiny):
    """alice in the session lab adds an on-link route to tiny's subnet (she has NET_ADMIN) and
    tries ICMP and TCP to tiny's nodes; tiny's bob listens and captures. Nothing arrives."""
    bob_ip = tiny.address("bob")
    target = tiny.subnet("b")
    alice = lab.node("alice")
    iface = alice.iface("lan1").name
    assert alice.run(["ip", "route", "add", target, "dev", iface]).ok
    listener = tiny.node("bob").start_py("echo.py", 7100, ready="listening")
    try:
        with tiny.capture("bob", "b", f"host {lab.address('alice')}") as seen:
            ping = alice.run(["ping", "-n", "-c2", "-W1", bob_ip])
            tcp = alice.run(f"echo x | nc -w2 {bob_ip} 7100")
        assert not ping.ok and tcp.out.strip() != "x", ping.out + tcp.out
        assert seen.frames == [], f"{len(seen.frames)} frames from the other lab reached bob"
        # the route was really there: the kernel took it (no "Network is unreachable")
        assert "unreachable" not in ping.err.lower()
    finally:
        listener.stop()
        alice.run(["ip", "route", "del", target, "dev", iface])
    assert target not in alice.run(["ip", "route"]).out


def test_participant_code_is_bounded_by_pids_memory_and_time(tiny):
    """What a workshop participant's program meets in a node: the pids and memory limits of the
    container, a time bound from Node.run, and no way to mount, reach the engine or set sysctls."""
    bob = tiny.node("bob")
    forks = bob.run(
        [
            "python3",
            "-c",
            "import subprocess\nps=[]\ntry:\n"
            f"    for _ in range({PIDS_LIMIT + 50}): ps.append(subprocess.Popen(['sleep','30']))\n"
            "except OSError as e: print('refused after', len(ps), e.errno)\n"
            "for p in ps: p.kill()\n",
        ],
        timeout=60,
    )
    assert "refused after" in forks.out, forks.out + forks.err
    assert int(forks.out.split()[2]) < PIDS_LIMIT
    hog = bob.run(["python3", "-c", "b = bytearray(400 << 20); print('allocated')"], timeout=60)
    assert hog.code == 137 and "allocated" not in hog.out, hog  # the cgroup's OOM killer
    slow = bob.run(["sleep", "30"], timeout=1)
    assert slow.code == 124  # coreutils timeout: the run is bounded
    assert not bob.run(["mount", "-t", "tmpfs", "none", "/mnt"]).ok
    assert not bob.run(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]).ok
    assert not bob.run(["test", "-e", "/var/run/docker.sock"]).ok
    assert bob.run(["ping", "-c1", "-W2", tiny.address("alice")]).ok  # and the node still works

"""The foundation on the real Docker Engine: hops, MACs, side-by-side labs, rollback, security."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from hoplab.engine import fabric
from hoplab.engine.client import connect
from hoplab.model import labels as L
from hoplab.runtime.lab import Lab
from tests.conftest import COMPOSE, ROOT, bring_up, unique_lab_name
from tests.test_egress import fabric_pid, hoplab_links, host_links, in_fabric

pytestmark = pytest.mark.docker


def objects(engine, lab: str) -> tuple[list, list]:
    return (
        engine.api.containers(all=True, filters=L.lab_filter(lab)),
        engine.api.networks(filters=L.lab_filter(lab)),
    )


def ping_ttl(lab: Lab, src: str, dst_ip: str) -> int:
    res = lab.node(src).run(["ping", "-n", "-c1", "-W2", dst_ip])
    assert res.ok, res.out + res.err
    return int(re.search(r"ttl=(\d+)", res.out).group(1))


def test_ttl_drops_by_one_per_router(lab):
    assert ping_ttl(lab, "carol", lab.address("srv", "lan2")) == 64  # same LAN
    assert ping_ttl(lab, "carol", lab.address("dave")) == 63  # via r2
    assert ping_ttl(lab, "alice", lab.address("carol")) == 62  # via r1, r2


def test_traceroute_lists_the_router_chain_in_order(lab):
    dave = lab.address("dave")
    res = lab.node("alice").run(["traceroute", "-n", "-q1", "-w1", dave])
    hops = re.findall(r"^\s*\d+\s+(\S+)", res.out, re.M)
    assert hops == [lab.address("r1", "lan1"), lab.address("r2", "core"), dave], res.out


def test_names_resolve_everywhere_including_per_interface_names(lab):
    # The default lab is dual-stack: each name has an A line and an AAAA line.
    names = ["srv-lan3", "dave", "r2-core"]
    v4 = lab.node("alice").run(["getent", "ahostsv4", *names]).out
    assert lab.address("srv", "lan3") in v4 and lab.address("dave") in v4
    assert lab.address("r2", "core") in v4
    v6 = lab.node("alice").run(
        ["sh", "-c", f"for n in {' '.join(names)}; do getent ahostsv6 $n; done"]
    )
    assert {ln.split()[2] for ln in v6.out.splitlines() if len(ln.split()) > 2} == set(names), v6
    assert "::ffff:" not in v6.out  # real AAAA lines, not IPv4 mapped by the resolver
    assert lab.node("dave").run(["ping", "-4", "-c1", "-W2", "alice"]).ok


def test_macs_change_per_hop_while_ip_source_stays(lab):
    srv_ip, alice_ip = lab.address("srv", "lan2"), lab.address("alice")
    bpf = f"icmp and src host {alice_ip}"
    with lab.capture("r1", "lan1", bpf) as lan1, lab.capture("r2", "core", bpf) as core:
        assert lab.node("alice").run(["ping", "-c1", "-W2", srv_ip]).ok
    (f1,) = [f for f in lan1.frames if f.dst_ip == srv_ip]
    (f2,) = [f for f in core.frames if f.dst_ip == srv_ip]
    alice, r1, r2 = lab.node("alice"), lab.node("r1"), lab.node("r2")
    assert (f1.src_mac, f1.dst_mac) == (alice.iface("lan1").mac, r1.iface("lan1").mac)
    assert (f2.src_mac, f2.dst_mac) == (r1.iface("core").mac, r2.iface("core").mac)
    assert f1.src_ip == f2.src_ip == alice_ip
    assert f2.ttl == f1.ttl - 1


def test_multi_homed_server_answers_on_both_addresses(lab):
    srv = lab.node("srv")
    proc = srv.start_py("echo.py", 7000, ready="listening")
    try:
        for net in ("lan2", "lan3"):
            ip = lab.address("srv", net)
            assert lab.node("alice").run(["ping", "-c1", "-W2", ip]).ok
            res = lab.node("alice").run(f"echo hi-{net} | nc -q1 -w2 {ip} 7000")
            assert res.out.strip() == f"hi-{net}", res
    finally:
        proc.stop()


def test_up_again_is_a_no_op(engine, lab):
    from hoplab import lifecycle
    from hoplab.model.load import load

    before = {c["Id"] for c in objects(engine, lab.name)[0]}
    result = lifecycle.up(engine, load(COMPOSE), lab.name, lambda *a: None, lambda m: None)
    assert result.report.action == "unchanged"
    assert {c["Id"] for c in objects(engine, lab.name)[0]} == before


def test_security_baseline_on_every_object(engine, lab):
    containers, networks = objects(engine, lab.name)
    if engine.wiring == fabric.FABRIC:
        containers = fabric_baseline(engine, containers, networks)
    else:
        docker_network_baseline(engine, networks)
    assert len(containers) == 7
    for c in containers:
        info = engine.api.inspect_container(c["Id"])
        host = info["HostConfig"]
        assert host["Privileged"] is False
        assert sorted(host["CapAdd"]) == ["NET_ADMIN", "NET_RAW"]
        assert not host.get("CapDrop") and not host.get("PortBindings")
        assert not info["NetworkSettings"]["Ports"]
        assert c["Labels"][L.NODE] in c["Names"][0]
        forward = host["Sysctls"]["net.ipv4.ip_forward"]
        assert forward == ("1" if c["Labels"][L.ROLE] == "router" else "0")
        if engine.wiring == fabric.FABRIC:  # an empty namespace of its own, wired by hoplab
            assert host["NetworkMode"] == "none", c["Names"]
    # no default route anywhere: nothing outside the lab is routable
    for node in lab.nodes:
        assert "default" not in node.run(["ip", "route"]).out


def docker_network_baseline(engine, networks: list) -> None:
    """Docker wiring: one bridge network per lab network, no IPv4 address on the host's end."""
    assert len(networks) == 4
    for n in networks:
        info = engine.api.inspect_network(n["Id"])
        assert info["Driver"] == "bridge" and info["Internal"] is False
        assert info["Options"]["com.docker.network.bridge.inhibit_ipv4"] == "true"


def fabric_baseline(engine, containers: list, networks: list) -> list:
    """Fabric wiring: no Docker network, no helper left, and one fabric holding the 4 bridges
    with no capability, no network of its own, no port and no forwarding. Returns the nodes."""
    assert networks == [], "a fabric lab makes no Docker network"
    roles = [c["Labels"].get(L.FABRIC) for c in containers]
    assert roles.count(fabric.FABRIC) == 1 and fabric.HELPER_ROLE not in roles, roles
    [fab] = [c for c in containers if c["Labels"].get(L.FABRIC) == fabric.FABRIC]
    info = engine.api.inspect_container(fab["Id"])
    host = info["HostConfig"]
    assert host["Privileged"] is False and host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["NetworkMode"] == "none" and not host.get("PortBindings")
    assert host["Sysctls"]["net.ipv4.ip_forward"] == "0"
    assert len(json.loads(fab["Labels"][L.NETS])) == 4
    return [c for c in containers if L.FABRIC not in c["Labels"]]


def test_two_labs_side_by_side_are_isolated(engine, lab):
    name = unique_lab_name("side")
    try:
        other = bring_up(engine, name)
        mine = set(lab.state.networks.values())
        theirs = set(other.state.networks.values())
        if engine.wiring == fabric.FABRIC:
            assert mine == theirs  # each lab is a world of its own: the file's own subnets
        else:
            assert not mine & theirs  # remapped to free subnets
        # names and routes work inside the other lab
        assert other.node("alice").run(["ping", "-4", "-c1", "-W2", "dave"]).ok
        assert ping_ttl(other, "alice", other.address("carol")) == 62
        # and nothing crosses between the labs (traffic only to the other lab's own nodes)
        targets = [other.address(dst) for dst in ("alice", "r2")]
        if engine.wiring == fabric.FABRIC:  # those are this lab's own: add ones it lacks
            targets = [spare_address(other, "alice", "lan1"), spare_address(other, "r2", "core")]
        for src in ("alice", "r1", "srv"):
            for target in targets:
                res = lab.node(src).run(["ping", "-c1", "-W1", target])
                assert not res.ok, f"{src} reached the other lab at {target}"
        for target in targets:  # the control: the same address answers inside the other lab
            assert other.node("r1").run(["ping", "-c1", "-W2", target]).ok, target
    finally:
        engine.down(name)
    assert objects(engine, name) == ([], [])


def spare_address(lab: Lab, node: str, network: str) -> str:
    """Give the node one more address on network, one that no node of either lab holds (the
    labs share the file's subnets): the last host address of the subnet. Gone with the lab."""
    subnet = IPv4Network(lab.subnet(network))
    spare = str(subnet[-2])
    used = {a for n in lab.state.nodes for a in n.addresses.values()}
    assert spare not in used, spare
    n = lab.node(node)
    res = n.run(["ip", "addr", "add", f"{spare}/{subnet.prefixlen}", "dev", n.iface(network).name])
    assert res.ok, res
    return spare


def test_down_leaves_zero_objects(engine):
    name = unique_lab_name("down")
    before = hoplab_links(host_links())
    bring_up(engine, name)
    containers, networks = objects(engine, name)
    if engine.wiring == fabric.FABRIC:  # no network: the links live in the fabric's namespace
        assert containers and networks == []
        pid = fabric_pid(engine, name)
        assert hoplab_links({x["ifname"] for x in json.loads(in_fabric(pid, "ip", "-j", "link"))})
    else:
        assert containers and networks
    engine.down(name)
    assert objects(engine, name) == ([], [])
    if engine.wiring == fabric.FABRIC:
        assert not Path(f"/proc/{pid}").exists(), "the fabric's namespace is gone"
    assert hoplab_links(host_links()) == before, "nothing of the lab is left on the host"


def _hoplab(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hoplab", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_ctrl_c_during_up_rolls_back_to_zero_objects(engine):
    name = unique_lab_name("int")
    proc = _hoplab("up", "--name", name)
    try:
        deadline = time.monotonic() + 30
        while not engine.api.containers(all=True, filters=L.lab_filter(name)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "up never created a container"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert objects(engine, name) == ([], [])
    finally:  # a failed check must not leave a whole lab behind (it once did, 7 containers)
        proc.kill()
        proc.wait()
        engine.down(name)


def test_name_clash_with_a_stranger_rolls_back_and_spares_it(engine):
    name = unique_lab_name("clash")
    stranger = engine.api.create_container(
        "hoplab/node", name=f"{name}-srv", entrypoint=["true"], network_disabled=True
    )
    try:
        proc = _hoplab("up", "--name", name)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1
        assert f"'{name}-srv' already exists and does not belong to this lab" in err
        assert objects(engine, name) == ([], [])
        assert engine.api.inspect_container(stranger["Id"])["Name"] == f"/{name}-srv"
    finally:
        engine.api.remove_container(stranger["Id"], force=True)


def test_bad_topology_exits_2_and_creates_nothing(engine, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(COMPOSE.read_text().replace("10.77.1.10", "10.99.1.10"))
    name = unique_lab_name("bad")
    proc = _hoplab("up", "-f", str(bad), "--name", name)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "bad.yaml:" in err and "services.alice.networks.lan1.ipv4_address" in err
    assert "outside" in err and "Traceback" not in err
    assert objects(engine, name) == ([], [])


def test_exec_passes_the_exit_code_through(lab):
    proc = _hoplab("exec", "--name", lab.name, "srv", "--", "sh", "-c", "echo out; exit 7")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 7 and out.strip() == "out"


def test_unknown_node_and_bad_usage_are_clear(lab):
    proc = _hoplab("exec", "--name", lab.name, "nobody", "--", "true")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "no node 'nobody'" in err
    proc = _hoplab("up", "--bogus")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in err


def test_unreachable_engine_fails_loudly(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    from hoplab.errors import HoplabError

    with pytest.raises(HoplabError, match="cannot reach the Docker Engine"):
        connect()


def test_shell_runs_an_interactive_shell_over_the_api(lab):
    proc = _hoplab("shell", "--name", lab.name, "dave", stdin=subprocess.PIPE)
    out, err = proc.communicate("hostname\nexit 3\n", timeout=60)
    assert proc.returncode == 3, err
    assert "dave" in out

"""The foundation on the real Docker Engine: hops, MACs, side-by-side labs, rollback, security."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from hoplab.engine.client import connect
from hoplab.model import labels as L
from hoplab.runtime.lab import Lab
from tests.conftest import COMPOSE, ROOT, bring_up, unique_lab_name

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
    assert len(containers) == 7 and len(networks) == 4
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
    for n in networks:
        info = engine.api.inspect_network(n["Id"])
        assert info["Driver"] == "bridge" and info["Internal"] is False
        assert info["Options"]["com.docker.network.bridge.inhibit_ipv4"] == "true"
    # no default route anywhere: nothing outside the lab is routable
    for node in lab.nodes:
        assert "default" not in node.run(["ip", "route"]).out


def test_two_labs_side_by_side_are_isolated(engine, lab):
    name = unique_lab_name("side")
    try:
        other = bring_up(engine, name)
        mine = set(lab.state.networks.values())
        theirs = set(other.state.networks.values())
        assert not mine & theirs  # remapped to free subnets
        # names and routes work inside the remapped lab
        assert other.node("alice").run(["ping", "-4", "-c1", "-W2", "dave"]).ok
        assert ping_ttl(other, "alice", other.address("carol")) == 62
        # and nothing crosses between the labs (traffic only to the other lab's own nodes)
        for src in ("alice", "r1", "srv"):
            for dst in ("alice", "r2"):
                target = other.address(dst)
                res = lab.node(src).run(["ping", "-c1", "-W1", target])
                assert not res.ok, f"{src} reached the other lab's {dst} at {target}"
    finally:
        engine.down(name)
    assert objects(engine, name) == ([], [])


def test_down_leaves_zero_objects(engine):
    name = unique_lab_name("down")
    bring_up(engine, name)
    assert all(objects(engine, name))
    engine.down(name)
    assert objects(engine, name) == ([], [])


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

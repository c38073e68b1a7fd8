"""Impairments declared in the topology file, measured across a router on the real engine.

One lab for the module: alice (lan1) - r1 - bob (lan2, loss 20%) and carol (lan3, rate 4mbit).
Loss is proved by counting datagrams: every datagram sent is either received or counted by the
drop rule of the one interface that impairs it, and the dropped share is within 6 standard
deviations of the declared probability (a chance failure is below 1e-8). Rate is proved by timing
a TCP transfer at the receiver: it can never beat the rate (plus one bucket), and the same
transfer without the limit is far faster. Delay and jitter need netem: where the kernel lacks it,
`up` refuses them with exit 2 and creates nothing, which is what this machine shows.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoplab import lifecycle
from hoplab.engine import impair as engine_impair
from hoplab.engine.engine import Engine
from hoplab.errors import InputError
from hoplab.model import labels as L
from hoplab.model.impair import TAG
from hoplab.model.load import parse
from hoplab.runtime.lab import Lab
from tests.conftest import unique_lab_name

pytestmark = pytest.mark.docker

LOSS, RATE = 0.20, 4_000_000
TOPOLOGY = """
x-hoplab: {name: imp}
services:
  r1:
    x-hoplab: {role: router}
    networks: [lan1, lan2, lan3]
  alice:
    networks: [lan1]
  bob:
    networks: [lan2]
  carol:
    networks: [lan3]
networks:
  lan1:
    ipam: {config: [{subnet: 10.77.1.0/24}]}
  lan2:
    x-hoplab: {impair: {loss: 20%}}
    ipam: {config: [{subnet: 10.77.2.0/24}]}
  lan3:
    x-hoplab: {impair: {rate: 4mbit}}
    ipam: {config: [{subnet: 10.77.3.0/24}]}
"""

# argv: PORT. Counts distinct datagrams until 2 s pass without one (after the first).
UDP_COUNT = r"""
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
s.settimeout(30)
seen = set()
while True:
    try:
        data, _ = s.recvfrom(2048)
    except socket.timeout:
        break
    seen.add(data[:8])
    s.settimeout(2)
print(json.dumps({"received": len(seen)}), flush=True)
"""
# argv: HOST PORT N. Sends N numbered datagrams, paced so that no socket buffer overflows.
# Without netem a host's own egress loss is an iptables OUTPUT drop, which the kernel reports to
# the sender as EPERM: counted as `refused`, so the test sees every datagram's fate.
UDP_SEND = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
refused = 0
for i in range(int(sys.argv[3])):
    try:
        s.sendto(i.to_bytes(8, "big") + b"x" * 92, (sys.argv[1], int(sys.argv[2])))
    except PermissionError:
        refused += 1
    if i % 50 == 49:
        time.sleep(0.005)
print(json.dumps({"refused": refused}))
"""
# argv: PORT. Receives one TCP stream; prints bytes and seconds from first to last byte.
TCP_SINK = r"""
import json, socket, sys, time
srv = socket.socket()
srv.bind(("0.0.0.0", int(sys.argv[1])))
srv.listen(1)
print("ready", flush=True)
c, _ = srv.accept()
total, first, last = 0, None, None
while True:
    data = c.recv(65536)
    if not data:
        break
    now = time.monotonic()
    first = first or now
    total, last = total + len(data), now
print(json.dumps({"bytes": total, "seconds": last - first}), flush=True)
"""
TCP_SEND = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
c.sendall(b"x" * int(sys.argv[3]))
c.close()
"""


@pytest.fixture(scope="module")
def lab(engine: Engine) -> Iterator[Lab]:
    name = unique_lab_name("imp")
    try:
        lifecycle.up(engine, parse(TOPOLOGY, "impair.yaml"), name, lambda *a: None, print)
        yield Lab.attach(engine, name)
    finally:
        engine.down(name)


def drops(lab: Lab, node: str, network: str) -> int:
    """Packets the declared loss rules dropped on node's egress to network, from their counters."""
    iface = lab.node(node).iface(network).name
    total = 0
    for chain in ("FORWARD", "OUTPUT"):
        out = lab.node(node).run(["iptables", "-L", chain, "-v", "-x", "-n"]).out
        for line in out.splitlines():
            words = line.split()
            if TAG in line and iface in words:
                total += int(words[0])
    return total


def udp_count(lab: Lab, src: str, dst: str, dst_net: str, n: int, refused: int = 0) -> int:
    """Datagrams received of n sent; `refused` must match what the sender was told (EPERM)."""
    receiver = lab.node(dst).start(["python3", "-c", UDP_COUNT, "9400"], ready="ready")
    try:
        sent = lab.node(src).run(
            ["python3", "-c", UDP_SEND, lab.address(dst, dst_net), "9400", str(n)]
        )
        assert sent.ok and sent.json()["refused"] == refused, (sent.out, sent.err)
        assert receiver.wait(timeout=40)
        return int(receiver.json()["received"])
    finally:
        receiver.stop()


def goodput(lab: Lab, src: str, dst: str, dst_net: str, size: int) -> tuple[float, dict]:
    sink = lab.node(dst).start(["python3", "-c", TCP_SINK, "9401"], ready="ready")
    try:
        sent = lab.node(src).run(
            ["python3", "-c", TCP_SEND, lab.address(dst, dst_net), "9401", str(size)], timeout=60
        )
        assert sent.ok, sent.err
        assert sink.wait(timeout=30)
        seen = sink.json()
    finally:
        sink.stop()
    assert seen["bytes"] == size, seen
    return seen["bytes"] * 8 / seen["seconds"], seen


def within_six_sigma(dropped: int, n: int, p: float) -> bool:
    return abs(dropped - n * p) <= 6 * math.sqrt(n * p * (1 - p))


def test_loss_in_both_directions_counted_datagram_by_datagram(lab: Lab) -> None:
    n = 2000
    # alice -> bob: dropped by r1 as it forwards onto lan2
    before = drops(lab, "r1", "lan2")
    received = udp_count(lab, "alice", "bob", "lan2", n)
    dropped = drops(lab, "r1", "lan2") - before
    assert received + dropped == n, (received, dropped)  # nothing lost anywhere else
    assert within_six_sigma(dropped, n, LOSS), f"{dropped}/{n} dropped, declared {LOSS:.0%}"
    # bob -> alice: dropped by bob's own egress onto lan2 (the other direction of the link);
    # the kernel tells bob's program of each one (EPERM), and nothing else is lost
    before = drops(lab, "bob", "lan2")
    receiver = lab.node("alice").start(["python3", "-c", UDP_COUNT, "9400"], ready="ready")
    try:
        sent = lab.node("bob").run(
            ["python3", "-c", UDP_SEND, lab.address("alice"), "9400", "2000"]
        )
        assert receiver.wait(timeout=40)
        received = int(receiver.json()["received"])
    finally:
        receiver.stop()
    dropped = drops(lab, "bob", "lan2") - before
    assert sent.json()["refused"] == dropped and received + dropped == n, (received, dropped)
    assert within_six_sigma(dropped, n, LOSS), f"{dropped}/{n} dropped, declared {LOSS:.0%}"
    # an unimpaired segment loses nothing: carol's network has a rate, no loss
    assert udp_count(lab, "alice", "carol", "lan3", 500) == 500


def test_rate_limits_a_timed_transfer(lab: Lab) -> None:
    size = 1_500_000  # 3 s at 4 Mbit/s: the bucket (12.5 kB) is under 1% of it
    limited, seen = goodput(lab, "alice", "carol", "lan3", size)
    # Never faster than the rate (payload is less than the bytes tbf counts), and not starved:
    # the floor is loose because two busy cores may slow the sender, never the bucket.
    assert limited <= RATE * 1.02, f"{limited / 1e6:.2f} Mbit/s through a 4mbit link: {seen}"
    assert limited >= RATE * 0.5, f"{limited / 1e6:.2f} Mbit/s through a 4mbit link: {seen}"
    # The control: the same transfer to r1's own lan1 address crosses no limit.
    free, _ = goodput(lab, "alice", "r1", "lan1", size)
    assert free > 5 * RATE, f"unlimited transfer only {free / 1e6:.1f} Mbit/s"


def test_status_shows_and_impair_changes_a_running_lab(lab: Lab) -> None:
    def hoplab(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "hoplab", *args, "--name", lab.name]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    status = hoplab("status")
    assert "impaired: lan2 r1 egress: loss 20% (iptables statistic)" in status.stdout
    assert "impaired: lan2 bob egress: loss 20% (iptables statistic)" in status.stdout
    assert "impaired: lan3 carol egress: rate 4mbit (tbf)" in status.stdout
    refused = hoplab("impair", "lan2", "--delay", "20ms")
    missing = engine_impair.netem_missing_in(lab.engine.run, lab.node("r1").container)
    if missing:  # this machine: refused before anything changed, naming the flag
        assert refused.returncode == 2, refused.stderr
        assert "--delay" in refused.stderr and "netem" in refused.stderr
    try:
        changed = hoplab("impair", "lan2", "--loss", "50%", "--node", "r1")
        assert changed.returncode == 0, changed.stderr
        assert "lan2 r1: loss 50%" in changed.stdout and "lan2 bob: loss 20%" in changed.stdout
        before = drops(lab, "r1", "lan2")
        received = udp_count(lab, "alice", "bob", "lan2", 1000)
        dropped = drops(lab, "r1", "lan2") - before
        assert received + dropped == 1000 and within_six_sigma(dropped, 1000, 0.5), dropped
        cleared = hoplab("impair", "lan2", "--clear")
        assert cleared.returncode == 0 and "no impairment" in cleared.stderr, cleared.stderr
        assert udp_count(lab, "alice", "bob", "lan2", 500) == 500
    finally:
        # `up` puts the file's impairments back on a running lab
        topo = parse(TOPOLOGY, "impair.yaml")
        lifecycle.up(lab.engine, topo, lab.name, lambda *a: None, lambda m: None)
    assert "lan2 r1 egress: loss 20%" in hoplab("status").stdout


def test_delay_is_refused_without_netem_and_measured_with_it(
    engine: Engine, tmp_path: Path
) -> None:
    """Here (no sch_netem) up refuses with exit 2 and creates nothing; where netem exists the
    declared delay shows in ping round trips (both directions of lan2 delayed: >= 2 x 20 ms)."""
    path = tmp_path / "delay.yaml"
    path.write_text(TOPOLOGY.replace("{loss: 20%}", "{delay: 20ms, jitter: 5ms}"))
    name = unique_lab_name("impd")
    missing = engine.netem_missing("hoplab/node")
    try:
        cmd = [sys.executable, "-m", "hoplab", "up", "-f", str(path), "--name", name]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if not missing:
            assert res.returncode == 0, res.stderr
            lab = Lab.attach(engine, name)
            ping = lab.node("alice").run(["ping", "-c", "5", "-i", "0.2", lab.address("bob")])
            rtts = [float(w[5:]) for w in ping.out.split() if w.startswith("time=")]
            assert len(rtts) == 5 and min(rtts) >= 2 * (20 - 5), ping.out
            return
        assert res.returncode == 2, res.stderr
        line = TOPOLOGY.splitlines().index("    x-hoplab: {impair: {loss: 20%}}") + 1
        assert f"{path}:{line}: networks.lan2.x-hoplab.impair.delay: " in res.stderr
        assert "delay and jitter need netem" in res.stderr
        lab_filter = {"label": [f"{L.LAB}={name}"]}
        assert engine.api.containers(all=True, filters=lab_filter) == []
        assert engine.api.networks(filters=lab_filter) == []
        probes = {"label": [f"{L.LAB}={engine_impair.PROBE_LAB}"]}
        assert engine.api.containers(all=True, filters=probes) == []  # the probe went too
    finally:
        engine.down(name)


def test_the_python_api_changes_and_reads_a_link(lab: Lab) -> None:
    """lab.impair_link is what the pytest plugin's labs offer (hoplab.Lab is this class)."""
    try:
        assert lab.impair_link("lan3", loss="50%", rate="2mbit", node="carol") == []
        now = lab.link_impairments()
        assert now[("carol", "lan3")] == "rate 2mbit (tbf), loss 50% (iptables statistic)"
        assert now[("r1", "lan3")] == "rate 4mbit (tbf)"  # the other direction kept the file's
        with pytest.raises(InputError) as info:
            lab.impair_link("lan3", loss="50")
        assert info.value.exit_code == 2 and info.value.key == "impair.loss"
        lab.impair_link("lan3", node="carol")  # nothing given: cleared
        assert ("carol", "lan3") not in lab.link_impairments()
    finally:
        lab.impair_link("lan3", rate="4mbit")
    assert lab.link_impairments()[("carol", "lan3")] == "rate 4mbit (tbf)"

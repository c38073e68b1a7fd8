"""A project's own image under test: srv runs a FROM scratch image (one static binary, no shell),
built from ownimage/server/Dockerfile, in the default lab's topology (alice -> r1 -> r2 -> srv).

Its first instruction sends one UDP datagram to alice, two routers away, with no retry: it
arrives because hoplab puts every interface, route and /etc/hosts name in place before the
program starts. Then srv echoes datagrams, clean and with every fifth packet dropped on the core
link; UDP does not recover what is lost, so exactly the dropped ones never come back.

The same commands run in CI (see the README's GitHub Actions workflow):
    pytest examples/test_ownimage.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import hoplab
from hoplab.plugin import owner_labels
from hoplab.runtime.lab import Lab

TOPOLOGY = Path(__file__).parent / "ownimage" / "compose.yaml"
PORT = 7000
COUNT = 20

# bob (a hoplab/node host on lan1) sends COUNT datagrams one at a time and counts the echoes.
CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
back = 0
for i in range(int(sys.argv[3])):
    s.sendto(b"seq %d" % i, (sys.argv[1], int(sys.argv[2])))
    try:
        back += s.recv(100) == b"seq %d" % i
    except TimeoutError:
        pass
print(back)
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """One lab for the module (bring-up builds srv's image once, then it is cached by content)."""
    name = f"own{os.getpid() % 100000}"
    with hoplab.up(TOPOLOGY, name=name, labels=owner_labels()) as running:
        yield running


def echoes(lab: Lab) -> int:
    res = lab.node("bob").run(["python3", "-c", CLIENT, "srv", str(PORT), str(COUNT)], timeout=60)
    assert res.returncode == 0, res.stderr
    return int(res.stdout)


def hello_lines(lab: Lab, patience: float = 10.0) -> tuple[list[str], str]:
    """alice's log lines that report srv's hello. `up` returns as soon as srv has started, so
    the datagram may still be crossing the routers (ARP at each hop): wait for it, bounded."""
    deadline = time.monotonic() + patience
    while True:
        log = lab.node("alice").logs() or ""
        got = [line for line in log.splitlines() if "hello at the first instruction" in line]
        if got or time.monotonic() > deadline:
            return got, log
        time.sleep(0.05)


def test_the_first_instruction_reaches_a_host_two_routers_away(lab: Lab) -> None:
    srv_addresses = {lab.address("srv", "lan2"), lab.address("srv", "lan3")}
    got, log = hello_lines(lab)
    assert len(got) == 1, log  # sent once, at start, without any retry
    source = got[0].split(" from ")[1].split(":")[0]
    assert source in srv_addresses, got
    assert got[0].endswith("ttl=62"), got  # 64, less one at r2 and one at r1
    assert "sent hello to alice:9000" in (lab.node("srv").logs() or "")


def test_echo_across_two_routers_clean_then_with_loss(lab: Lab) -> None:
    # Captured from the node's own container: it shares srv's namespace and has tcpdump.
    with lab.capture("srv", "lan2", bpf=f"udp port {PORT}") as cap:
        assert echoes(lab) == COUNT
    assert len(cap.frames) >= 2 * COUNT, cap  # each request and its echo

    with lab.impair("r1", "core", every=5) as loss:
        back = echoes(lab)
        dropped = loss.drops()
    assert dropped == COUNT // 5, loss.mechanism
    assert back == COUNT - COUNT // 5  # each dropped request has no echo, and nothing else is lost


def test_hoplab_capture_works_on_a_node_whose_image_has_no_tcpdump(
    lab: Lab, tmp_path: Path
) -> None:
    """srv's image is FROM scratch (one binary): `hoplab capture` runs tcpdump in srv's sandbox,
    which shares its network namespace, and stops after -c frames by itself."""
    import subprocess
    import sys

    import dpkt

    out = tmp_path / "srv.pcap"
    cmd = [sys.executable, "-m", "hoplab", "capture", "--name", lab.name, "srv:lan2"]
    proc = subprocess.Popen(
        [*cmd, "-c", "4", "-f", f"udp port {PORT}", "-w", str(out)], stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        seen = b""
        while b"listening on" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert b"listening on" in seen, seen
        assert echoes(lab) == COUNT
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    with out.open("rb") as f:
        frames = [dpkt.ethernet.Ethernet(buf) for _, buf in dpkt.pcap.Reader(f)]
    assert len(frames) == 4
    assert all(isinstance(f.data.data, dpkt.udp.UDP) for f in frames)
    assert {f.data.data.dport for f in frames} | {f.data.data.sport for f in frames} >= {PORT}

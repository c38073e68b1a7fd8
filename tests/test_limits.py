"""Limits on every node, each read from inspect data and then attacked from inside a node:
a CPU quota that forking cannot renew, swap equal to memory, and no-new-privileges against the
image's setuid binaries. (Cleaning what a participant wrote between gradings is proven in
tests/test_interrupts.py: a reap with files=True deletes nobody's files.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoplab.engine.bringup import CPU_LIMIT, MEM_LIMIT
from hoplab.model import labels as L
from hoplab.runtime.lab import Lab
from tests.conftest import bring_up, unique_lab_name

pytestmark = pytest.mark.docker

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
TINY = """\
services:
  r1: {x-hoplab: {role: router}, networks: [a, b]}
  alice: {networks: [a]}
  bob: {networks: [b]}
networks:
  a: {ipam: {config: [{subnet: 10.65.1.0/24}]}}
  b: {ipam: {config: [{subnet: 10.65.2.0/24}]}}
"""


@pytest.fixture(scope="module")
def tiny(engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    path = Path(tmp_path_factory.mktemp("limits")) / "tiny.yaml"
    path.write_text(TINY)
    name = unique_lab_name("h12l")
    try:
        yield bring_up(engine, name, path)
    finally:
        engine.down(name)
        assert not engine.api.containers(all=True, filters=L.lab_filter(name))


def test_every_node_has_the_limits_in_its_config(engine, tiny):
    memory = int(MEM_LIMIT.rstrip("m")) << 20
    for c in engine.api.containers(all=True, filters=L.lab_filter(tiny.name)):
        host = engine.api.inspect_container(c["Id"])["HostConfig"]
        assert host["NanoCpus"] == int(CPU_LIMIT * 1e9), c["Names"]
        assert host["Memory"] == memory and host["MemorySwap"] == memory, c["Names"]
        assert "no-new-privileges" in (host.get("SecurityOpt") or []), c["Names"]
    for node in tiny.nodes:
        for pid in ("1", "self"):
            status = node.run(["cat", f"/proc/{pid}/status"]).out
            assert "NoNewPrivs:\t1" in status, f"{node.name} pid {pid}"


def test_a_setuid_binary_gives_nobody_nothing(tiny):
    """The attack no-new-privileges stops: a setuid-root program run by nobody. The image ships
    several (su, mount, passwd, ...); a copy of `id` made setuid root shows the effect plainly."""
    bob = tiny.node("bob")
    made = bob.run("mkdir -p /opt/h12 && cp /usr/bin/id /opt/h12/id && chmod 4755 /opt/h12/id")
    assert made.ok, made
    try:
        assert "rws" in bob.run(["ls", "-l", "/opt/h12/id"]).out  # the bit is really set
        res = bob.run([*NOBODY, "/opt/h12/id", "-u"])
        assert res.ok and res.out.strip() == "65534", res  # euid stays nobody, never 0
        su = bob.run([*NOBODY, "su", "-c", "id -u", "root"], timeout=5)
        assert su.out.strip() != "0", su
    finally:
        bob.run(["rm", "-rf", "/opt/h12"])


def cpu_seconds(node) -> tuple[float, int]:
    """The node's whole cgroup: CPU seconds used and periods throttled so far (cgroup v1)."""
    out = node.run(
        "cat /sys/fs/cgroup/cpuacct/cpuacct.usage /sys/fs/cgroup/cpu/cpu.stat"
    ).out.split()
    return int(out[0]) / 1e9, int(out[out.index("nr_throttled") + 1])


def test_forking_spinners_share_one_cpu_quota(tiny):
    """Four nobody processes spin for 3 s: RLIMIT_CPU would give each its own allowance, but
    the node's quota is for the cgroup, so together they get at most one core, and the kernel
    shows it throttling them."""
    alice = tiny.node("alice")
    spin = "import os\nfor _ in range(3):\n    os.fork()\nwhile True: pass\n"  # 8 processes
    alice.copy_in(spin.encode(), "/tmp/h12-spin.py", mode=0o644)
    used0, throttled0 = cpu_seconds(alice)
    started = time.monotonic()
    alice.run([*NOBODY, "timeout", "-s", "KILL", "3", "python3", "/tmp/h12-spin.py"], timeout=10)
    wall = time.monotonic() - started
    used1, throttled1 = cpu_seconds(alice)
    alice.run(["rm", "-f", "/tmp/h12-spin.py"])
    cores = (used1 - used0) / wall
    assert cores <= CPU_LIMIT * 1.1, f"{cores:.2f} cores used by one node"
    # The kernel's own setting for the whole cgroup, which every fork joins.
    quota = alice.run("cd /sys/fs/cgroup/cpu && cat cpu.cfs_quota_us cpu.cfs_period_us")
    assert [int(x) for x in quota.out.split()] == [int(CPU_LIMIT * 100000), 100000], quota
    if cores >= CPU_LIMIT * 0.9:  # the machine had a core to spare: then the quota is what held
        assert throttled1 > throttled0, f"{cores:.2f} cores and never throttled"
    assert "h12-spin" not in alice.run(["ps", "-eo", "args"]).out


def test_swap_is_no_larger_than_memory(tiny):
    """One and a half times the node's memory limit is more than its memory and less than its
    memory plus a swap of the same size: with no swap beyond memory it is OOM-killed, never
    swapped out."""
    bob = tiny.node("bob")
    size = int(MEM_LIMIT.rstrip("m")) * 3 // 2
    fill = f"b = bytearray({size} << 20); b[::4096] = b'x' * len(b[::4096])"
    hog = bob.run([*NOBODY, "python3", "-c", fill], timeout=60)
    assert hog.code == 137, hog  # the cgroup's OOM killer
    assert bob.run(["ping", "-c1", "-W2", tiny.address("alice")]).ok  # the node still works

"""Hostile participant programs (tests/hostile/): each gets FAIL, leaves nothing running in any
node, and leaves the next grading of the reference solution at full marks. Each is the attack of
a row of issue 12: a server left on the port (EADDRINUSE for the next participant), a process
that changes pid faster than a sweep, a node whose pids limit is full when grading stops.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hoplab import grading
from hoplab.grading.grader import grade
from hoplab.model import labels as L
from hoplab.runtime.net import Lab, left_running

from tests.conftest import ROOT, bring_up, unique_lab_name

pytestmark = pytest.mark.docker

HOSTILE = Path(__file__).parent / "hostile"
REFERENCE = ROOT / "lab" / "grading" / "assignments" / "tcp-echo" / "solution.py"


@pytest.fixture(scope="module")
def own(engine) -> Iterator[Lab]:
    name = unique_lab_name("h12h")
    try:
        yield bring_up(engine, name)
    finally:
        engine.down(name)
        assert not engine.api.containers(all=True, filters=L.lab_filter(name))


@pytest.mark.parametrize("program", ["forking_daemon.py", "respawner.py", "pids_filler.py"])
def test_a_hostile_server_fails_leaves_nothing_and_the_next_grading_is_full_marks(
    engine, own, program
):
    tcp_echo = grading.select("tcp-echo")
    srv = own.node("srv")
    started = engine.api.inspect_container(srv.container)["State"]["StartedAt"]
    hostile = grade(own, tcp_echo, HOSTILE / program)
    assert not hostile.ok, hostile.checks
    assert left_running(engine, own.state) == []
    # Only a full pids limit needs the restart (no exec can start there); the others are
    # killed in place, which leaves the node's other programs and state alone.
    restarted = engine.api.inspect_container(srv.container)["State"]["StartedAt"] != started
    assert restarted == (program == "pids_filler.py")
    pids = srv.run(["cat", "/sys/fs/cgroup/pids/pids.current"])
    assert pids.ok and int(pids.out) < 20, pids  # the node is usable: execs start again
    reference = grade(own, tcp_echo, REFERENCE)
    assert reference.ok, [c for c in reference.checks if c.status.name == "FAIL"]
    assert reference.passed == len(tcp_echo.checks)
    ping = own.node("alice").run(["ping", "-n", "-c1", "-W2", own.address("srv", "lan2")])
    assert ping.ok, ping  # and its routes came back if it had to be restarted

"""Hostile participant programs (tests/hostile/): each gets FAIL, leaves nothing running in any
node, and leaves the next grading of the reference solution at full marks. Each is the attack of
a row of issue 12: a server left on the port (EADDRINUSE for the next participant), a process
that changes pid faster than a sweep, a node whose pids limit is full when grading stops; a
program that reads the grader's secret and forges the replies, a traceroute that prints the
hops without sending a probe, a lossy client that dodges the loss through srv's other address,
a UDP server that answers from another port, one that hides sockets in a child.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoplab import grading
from hoplab.checks import Status
from hoplab.grading import lossy_client, traceroute, udp_service
from hoplab.grading.grader import Grade, grade
from hoplab.grading.sandbox import AS_NOBODY, Fence
from hoplab.model import labels as L
from hoplab.runtime.lab import Lab, left_running
from tests.conftest import ROOT, bring_up, unique_lab_name

pytestmark = pytest.mark.docker

HOSTILE = Path(__file__).parent / "hostile"
REFERENCE = ROOT / "hoplab" / "grading" / "assignments" / "tcp-echo" / "solution.py"


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


def _failed(g: Grade) -> list[str]:
    return [c.name for c in g.checks if c.status is Status.FAIL]


def _then_the_reference_is_full_marks(engine, lab: Lab, assignment: grading.Assignment) -> None:
    assert left_running(engine, lab.state) == []  # nothing of the hostile program runs on
    reference = grade(lab, assignment, assignment.solution)
    assert reference.passed == len(assignment.checks), _failed(reference)
    assert left_running(engine, lab.state) == []


# Each program, and exactly the checks that catch it: the others it passes on purpose (the right
# hop list, the right reply text), so the catch is the evidence from the wire or the kernel.
FOOLERS = {
    # prints the hops from /etc/hosts, sends nothing: the ICMP counters do not move
    "no_probe_printer.py": ("traceroute", [traceroute.CHECKS[3]]),
    # sends to srv's lan3 address: the loss applies to every address of srv, it never resends
    "loss_dodger.py": ("lossy-client", [lossy_client.CHECKS[1], lossy_client.CHECKS[2]]),
    # answers from a fresh socket: not from the port asked, so no reply at all
    "wrong_port_replier.py": ("udp-service", [udp_service.CHECKS[1], udp_service.CHECKS[2]]),
    # 4 sockets in SO_REUSEPORT, 3 of them in a child: counted over all its processes
    "socket_hider.py": ("udp-service", [udp_service.CHECKS[3]]),
}


@pytest.mark.parametrize("program", list(FOOLERS))
def test_a_program_that_fools_the_printout_fails_on_the_evidence(engine, own, program):
    name, catches = FOOLERS[program]
    assignment = grading.select(name)
    hostile = grade(own, assignment, HOSTILE / program)
    assert _failed(hostile) == catches, hostile.checks
    _then_the_reference_is_full_marks(engine, own, assignment)


SPY_PORT = lossy_client.PORT + 96  # where secret_reader.py's spy answers, in srv


def _spied(lab: Lab, fence: Fence) -> Iterator:
    """lossy-client's grading, with the participant's program also running as nobody in srv
    beside the grade server (as a server of theirs is in the other assignments)."""
    srv = lab.node("srv")
    fence.serve(srv, "spy", SPY_PORT, listen=f"udp {SPY_PORT}", name=lossy_client.CHECKS[0])
    yield from lossy_client.grade(lab, fence)


def test_a_secret_reader_beside_the_grade_peer_cannot_forge_the_replies(engine, own):
    """secret_reader.py never reads a reply: it sends each request so that srv gets it once (it
    predicts r1's drops) and prints ACK lines made from the secret, which its spy in srv looks
    for in /proc/*/cmdline, /proc/*/environ and every file under /tmp/hoplab, and, failing that,
    asks the grade server for from srv. The secret is in a root-only file and the server answers
    alice alone, so it prints nothing (before the fix: 4/4 PASS)."""
    lossy = grading.select("lossy-client")
    hostile = grade(own, dataclasses.replace(lossy, grade=_spied), HOSTILE / "secret_reader.py")
    assert _failed(hostile) == [lossy_client.CHECKS[1]], hostile.checks
    printed = next(c for c in hostile.checks if c.name == lossy_client.CHECKS[1])
    assert printed.observed.startswith("0 lines"), printed  # no tag found, none forged
    _then_the_reference_is_full_marks(engine, own, lossy)


def test_a_secret_file_is_roots_alone(own):
    srv = own.node("srv")
    fence = Fence(own, b"", "prog.py")
    try:
        path = fence.secret(srv, "0123456789abcdef")
        assert srv.run(["stat", "-c", "%U %a", path]).out.split() == ["root", "600"]
        assert not srv.run([*AS_NOBODY, "cat", path]).ok  # a participant runs as nobody
        assert srv.run(["cat", path]).out == "0123456789abcdef"
    finally:
        fence.close()
    assert not srv.run(["test", "-e", path]).ok  # the run's folder goes with the fence

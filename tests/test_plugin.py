"""The pytest plugin, run the way a user runs it: pytest in a subprocess on the real engine.

Each run writes what its lab was (name, subnets, labels) to a file, and the test then asks the
engine what is left. A tiny topology (one router, two hosts) keeps every run to a few seconds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from ipaddress import IPv4Network

import pytest

from hoplab import lifecycle
from hoplab.engine import reaping
from hoplab.engine.engine import Engine, LabState
from hoplab.engine.reaping import lab_name_for, process_start
from hoplab.model import labels as L
from hoplab.model.load import parse
from hoplab.plugin import owner_labels
from tests.conftest import unique_lab_name

pytest_plugins = ["pytester"]

TINY = """\
services:
  r: {x-hoplab: {role: router}, networks: [a, b]}
  h1: {networks: [a]}
  h2: {networks: [b]}
networks:
  a: {ipam: {config: [{subnet: 10.5.1.0/24}]}}
  b: {ipam: {config: [{subnet: 10.5.2.0/24}]}}
"""

# Conftest of the runs under test: every test that gets a lab records it, keyed by worker.
RECORD = """\
import json, os
from pathlib import Path

def record(lab):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    out = Path(__file__).parent / "labs" / f"{worker}-{lab.name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"name": lab.name, "networks": lab.state.networks,
                               "labels": lab.state.labels, "pid": os.getpid()}))
"""


def dead_pid() -> int:
    """The pid of a process that has surely exited (and been reaped)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


PID_LABEL, START_LABEL, HOST_LABEL = L.PYTEST_PID, L.PYTEST_START, L.PYTEST_HOST
HOST = socket.gethostname()


def state(labels: dict[str, str], name: str = "x") -> LabState:
    return LabState(name=name, labels=labels)


def is_orphan(lab: LabState) -> bool:
    """What the plugin's reaping decides on this host, with the real process probe."""
    return reaping.is_orphan(lab, HOST, process_start)


# --- ownership, without Docker: the plugin's labels judged against real processes --------------


def test_a_lab_whose_owner_lives_is_never_an_orphan():
    assert not is_orphan(state(owner_labels()))


def test_a_lab_whose_owner_died_is_an_orphan():
    assert is_orphan(state(owner_labels() | {PID_LABEL: str(dead_pid()), START_LABEL: "1"}))


def test_a_reused_pid_does_not_keep_a_dead_run_alive():
    mine = owner_labels()
    assert is_orphan(state(mine | {START_LABEL: str(int(mine[START_LABEL]) - 1)}))


def test_labs_of_other_hosts_and_unlabelled_labs_are_left_alone():
    gone = owner_labels() | {PID_LABEL: str(dead_pid())}
    assert not is_orphan(state(gone | {HOST_LABEL: "some-other-host"}))
    assert not is_orphan(state({L.LAB: "x", L.OWNER: "me"}))
    assert process_start(os.getpid()) == owner_labels()[START_LABEL] != ""


def test_networks_left_without_nodes_are_reaped_by_the_pid_and_host_in_their_name():
    """A run killed between removing its nodes and its networks leaves no pid label behind."""
    nets = {"a": "10.5.1.0/24"}
    dead, me = dead_pid(), os.getpid()
    assert is_orphan(LabState(name=lab_name_for(dead, 0, HOST), networks=nets))
    assert not is_orphan(LabState(name=lab_name_for(me, 0, HOST), networks=nets))
    assert not is_orphan(LabState(name=lab_name_for(dead, 0, "elsewhere"), networks=nets))
    assert not is_orphan(LabState(name=f"ptx{dead}", networks=nets))


# --- real runs ---------------------------------------------------------------------------------


def recorded(pytester: pytest.Pytester) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((pytester.path / "labs").glob("*.json"))]


def leftovers(engine: Engine, pid: int) -> list[str]:
    """Names of every container or network labelled with this pytest pid, or its labs'."""
    found = engine.api.containers(all=True, filters={"label": f"{PID_LABEL}={pid}"})
    return [c["Names"][0] for c in found]


def gone(engine: Engine, lab: str) -> bool:
    return not engine.state(lab).exists


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project that is not hoplab: its own topology file and a recording conftest."""
    pytester.makefile(".yaml", tiny=TINY)
    pytester.makeconftest(RECORD)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--hoplab-topology", "tiny.yaml", *args, timeout=240)


@pytest.mark.docker
def test_the_fixture_brings_one_lab_up_for_the_session_and_down_after(project, engine):
    project.makepyfile(
        """
        from conftest import record

        def test_across_the_router(hoplab):
            record(hoplab)
            res = hoplab.node("h1").run(["ping", "-n", "-c1", "-W2", hoplab.address("h2", "b")])
            assert res.returncode == 0, res.stdout + res.stderr
            assert "ttl=63" in res.stdout

        def test_reuses_the_lab(hoplab):
            record(hoplab)
            assert hoplab.node("h2").run(["hostname"]).stdout.strip() == "h2"
        """
    )
    result = run(project)
    result.assert_outcomes(passed=2)
    (lab,) = recorded(project)  # both tests wrote the same file: one lab for the session
    assert lab["labels"][PID_LABEL] == str(lab["pid"]) != str(os.getpid())
    assert gone(engine, lab["name"]) and leftovers(engine, lab["pid"]) == []


@pytest.mark.docker
def test_xdist_workers_get_labs_of_their_own_and_leave_nothing(project, engine):
    # Each test waits until both workers' labs are recorded, so both labs are up together: a
    # worker that ends early frees its subnets, and the other may then take the same ones
    # (seen once in CI), which says nothing about isolation.
    project.makepyfile(
        "import time\n"
        "from pathlib import Path\n"
        "from conftest import record\n"
        "def both_up():\n"
        "    labs, deadline = Path(__file__).parent / 'labs', time.monotonic() + 120\n"
        "    while len(list(labs.glob('*.json'))) < 2 and time.monotonic() < deadline:\n"
        "        time.sleep(0.1)\n"
        + "".join(f"\ndef test_{i}(hoplab):\n    record(hoplab)\n    both_up()\n" for i in range(4))
    )
    result = run(project, "-n", "2")
    result.assert_outcomes(passed=4)
    labs = {lab["name"]: lab for lab in recorded(project)}
    assert len(labs) == 2, labs
    first, second = labs.values()
    assert first["pid"] != second["pid"]
    for a in first["networks"].values():
        for b in second["networks"].values():
            assert not IPv4Network(a).overlaps(IPv4Network(b)), (a, b)
    for lab in labs.values():
        assert gone(engine, lab["name"]) and leftovers(engine, lab["pid"]) == []


@pytest.mark.docker
def test_a_failing_test_reports_the_lab_state(project, engine):
    project.makepyfile(
        """
        from conftest import record

        def test_server_never_answers(hoplab):
            record(hoplab)
            hoplab.node("h2").start(["sh", "-c", "echo server-said-this; exec sleep 60"],
                                    ready="server-said-this")
            res = hoplab.node("h1").run(["nc", "-z", "-w1", hoplab.address("h2"), "9"])
            assert res.returncode == 0, "nothing listens on port 9"

        def test_passes(hoplab):
            pass
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    (lab,) = recorded(project)
    name, nets = lab["name"], lab["networks"]
    out = result.stdout.str()
    assert out.count(f"hoplab lab {name}") == 1, out  # the failure only
    assert "r (router, running)" in out and "h1 (host, running)" in out
    assert "h2 (host, running) b=" in out
    assert f"{IPv4Network(nets['b'])} via " in out  # h1's real route to h2's network
    assert "h2 pid" in out and "sh -c 'echo server-said-this; exec sleep 60'" in out
    assert "    server-said-this" in out
    assert gone(engine, name)


@pytest.mark.docker
def test_ctrl_c_still_tears_the_lab_down(project, engine):
    project.makepyfile(
        """
        import os, signal
        from conftest import record

        def test_interrupted(hoplab):
            record(hoplab)
            os.kill(os.getpid(), signal.SIGINT)
        """
    )
    result = run(project)
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()
    (lab,) = recorded(project)
    assert gone(engine, lab["name"]) and leftovers(engine, lab["pid"]) == []


@pytest.mark.docker
def test_a_crashed_runs_lab_is_reaped_and_a_live_runs_lab_is_not(project, engine):
    live = unique_lab_name("ptlive")
    project.makepyfile(
        test_crash="""
        import os, signal
        from conftest import record

        def test_killed_outright(hoplab):
            record(hoplab)
            os.kill(os.getpid(), signal.SIGKILL)
        """,
        test_next="""
        def test_next_run(hoplab):
            assert hoplab.node("h1").run(["true"]).returncode == 0
        """,
    )
    crashed = ""
    try:
        # A lab owned by a live process (this one), made the way the plugin makes its labs.
        lifecycle.up(
            engine, parse(TINY, "tiny.yaml"), live, lambda *a: None, lambda m: None, owner_labels()
        )
        run(project, "test_crash.py")  # dies by SIGKILL: no teardown at all
        (lab,) = recorded(project)
        crashed = lab["name"]
        assert engine.state(crashed).running and is_orphan(engine.state(crashed))
        result = run(project, "test_next.py")
        result.assert_outcomes(passed=1)
        assert gone(engine, crashed), "the crashed run's lab was not reaped"
        assert engine.state(live).running, "a live run's lab was touched"
    finally:
        engine.down(live)
        if crashed:
            engine.down(crashed)


@pytest.mark.docker
def test_a_test_of_its_own_topology_gets_a_lab_removed_after_it(project, engine):
    project.makepyfile(
        """
        import json
        from pathlib import Path
        from conftest import record
        from hoplab.engine.client import connect
        from hoplab.engine.engine import Engine

        def test_own_topology(hoplab_lab):
            lab = hoplab_lab("tiny.yaml")  # relative to this file's directory
            record(lab)
            assert [n.name for n in lab.nodes] == ["h1", "h2", "r"]

        def test_gone_after_that_test():
            (rec,) = (Path(__file__).parent / "labs").glob("*.json")
            assert not Engine(connect()).state(json.loads(rec.read_text())["name"]).exists
        """
    )
    result = project.runpytest_subprocess(timeout=240)
    result.assert_outcomes(passed=2)
    (lab,) = recorded(project)
    assert gone(engine, lab["name"]) and leftovers(engine, lab["pid"]) == []


def test_the_plugin_is_inert_for_tests_that_do_not_ask_for_a_lab(pytester, monkeypatch):
    """With the engine unreachable, plain tests still pass; a lab test fails saying why."""
    pytester.makepyfile(
        """
        def test_plain():
            assert 1 + 1 == 2

        def test_wants_a_lab(hoplab):
            pass
        """
    )
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")  # loopback: nothing listens there
    result = pytester.runpytest_subprocess(timeout=120)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*hoplab could not bring up a lab*", "*cannot reach the Docker*"])

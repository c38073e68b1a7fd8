"""--hoplab-reuse: a second pytest session attaches to the kept lab without creating a container,
finds nothing the first one left (a detached program, a route, a link impairment, a scoped
impairment), an edited topology rebuilds it, and --hoplab-reuse=off removes it. A session puts
the lab right as it lets go; after one that died without doing so, the next resets on attach.

Each session is a real pytest process (the attach lock and the reaping of dead runs go by pid);
container creation is counted from the engine's own event stream, not from hoplab's report.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoplab.engine import fabric
from hoplab.engine.engine import Engine
from hoplab.engine.reaping import NAME_RE
from hoplab.model import labels as L
from hoplab.model.compose import check_lab_name
from hoplab.plugin import reuse_mode
from hoplab.runtime import reuse
from hoplab.runtime.lab import Lab

pytest_plugins = ["pytester"]

TOPOLOGY = """\
services:
  r: {x-hoplab: {role: router}, networks: [a, b]}
  h1: {networks: [a]}
  h2: {networks: [b]}
networks:
  a: {ipam: {config: [{subnet: 10.63.1.0/24}]}}
  b: {ipam: {config: [{subnet: 10.63.2.0/24}]}}
"""
BIGGER = TOPOLOGY.replace(  # one host more: the plan's digest changes
    "  h2: {networks: [b]}\n", "  h2: {networks: [b]}\n  h3: {networks: [b]}\n"
)

# The first session leaves behind everything a careless test can; the second records what it sees.
TESTS = """\
import json
from pathlib import Path

OUT = Path(__file__).parent / "seen.json"


def test_leave_a_mess(hoplab):
    h1 = hoplab.node("h1")
    # A detached program: not tracked by the Lab, so stop_all at session end misses it.
    assert h1.run(["sh", "-c", "setsid sleep 777 </dev/null >/dev/null 2>&1 &"]).ok
    assert h1.run(["ip", "route", "add", "10.99.0.0/24", "via", hoplab.address("r", "a")]).ok
    hoplab.impair_link("b", loss="50%")
    imp = hoplab.impair("h2", "b", every=3)
    imp.__enter__()  # never left: the iptables rule stays when the session ends
    assert hoplab.link_impairments()
    assert "sleep 777" in h1.run(["ps", "-eo", "args"]).out


def test_look(hoplab):
    h1 = hoplab.node("h1")
    OUT.write_text(json.dumps({
        "name": hoplab.name,
        "ps": h1.run(["ps", "-eo", "args"]).out,
        "routes": h1.run(["ip", "-4", "route", "show"]).out,
        "impairments": [list(k) + [v] for k, v in hoplab.link_impairments().items()],
        "rules": hoplab.node("h2").run(["iptables", "-S"]).out,
        "nodes": sorted(n.name for n in hoplab.nodes),
    }))


def test_nothing():
    pass
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", compose=TOPOLOGY)
    pytester.makepyfile(test_inner=TESTS)
    return pytester


def session(p: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    res = p.runpytest_subprocess("-p", "no:cacheprovider", "--durations=0", *args, timeout=300)
    seen = p.path / "seen.json"
    out = json.loads(seen.read_text()) if seen.exists() else {}
    seen.unlink(missing_ok=True)
    return res, out


@contextlib.contextmanager
def creations(engine: Engine, name: str) -> Iterator[list[str]]:
    """Containers the engine creates for the lab while the block runs, from its live event
    stream (the daemon keeps only its last 256 events, too few to ask afterwards here)."""
    seen: list[str] = []
    stream = engine.client.events(
        since=int(time.time()),
        filters={"type": "container", "event": "create", "label": f"{L.LAB}={name}"},
        decode=True,
    )

    def watch() -> None:
        with contextlib.suppress(Exception):  # closing the stream ends the loop with an error
            for event in stream:
                seen.append(event["Actor"]["Attributes"].get("name", "?"))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        time.sleep(1.5)  # events of the last instant reach the stream a moment later
        stream.close()
        thread.join(10)


def setup_seconds(res: pytest.RunResult, test: str) -> float:
    """The fixture set-up time pytest's --durations printed for a test (a figure, not asserted)."""
    for line in res.outlines:
        m = re.match(rf"\s*([\d.]+)s setup\s+\S*::{test}\b", line)
        if m:
            return float(m[1])
    return 0.0


@pytest.fixture
def kept(engine: Engine, project: pytest.Pytester) -> Iterator[str]:
    name = reuse.lab_name(project.path, project.path / "compose.yaml")
    try:
        yield name
    finally:
        engine.down(name)
        reuse.lock_path(name).unlink(missing_ok=True)  # test-only names: no session can hold it


@pytest.mark.docker
def test_second_session_attaches_clean_and_an_edit_rebuilds(
    engine: Engine, project: pytest.Pytester, kept: str
) -> None:
    first, _ = session(project, "--hoplab-reuse", "-k", "leave_a_mess")
    first.assert_outcomes(passed=1)
    state = engine.state(kept)
    assert state.running, f"the lab {kept} was not kept up after the session"
    assert L.PYTEST_PID not in state.labels  # never taken for a crashed run's lab

    image = {n.image for n in state.nodes}
    with creations(engine, kept) as made:
        second, seen = session(project, "--hoplab-reuse", "-k", "look")
    second.assert_outcomes(passed=1)
    assert seen["name"] == kept
    if made and {n.image for n in engine.state(kept).nodes} != image:
        # The node image was rebuilt meanwhile (its build context, hosts/, was edited while this
        # ran): rebuilding was right. The premise "nothing changed" holds again from here on.
        with creations(engine, kept) as made:
            second, seen = session(project, "--hoplab-reuse", "-k", "look")
        second.assert_outcomes(passed=1)
    assert made == [], "an unchanged lab was recreated"
    assert "sleep 777" not in seen["ps"], "a program the first session left still runs"
    assert "10.99.0.0/24" not in seen["routes"], "a route a test added is still there"
    assert seen["impairments"] == [], "a link impairment a test made is still there"
    assert "hoplab-impair" not in seen["rules"], "a scoped impairment's rule is still there"
    assert reuse.lock_path(kept).read_text().strip() == reuse.AttachLock.CLEAN
    print(f"reused fixture set-up: {setup_seconds(second, 'test_look'):.2f} s")

    project.makefile(".yaml", compose=BIGGER)
    with creations(engine, kept) as made:
        third, seen = session(project, "--hoplab-reuse", "-k", "look")
    third.assert_outcomes(passed=1)
    assert seen["name"] == kept and seen["nodes"] == ["h1", "h2", "h3", "r"]
    if engine.wiring == fabric.FABRIC:  # the nodes, and the fabric and helper of their wiring
        wiring = sorted(m for m in made if m.startswith(f"{kept}."))
        assert len(wiring) == 2 and wiring[0] == fabric.fabric_container(kept), made
        assert wiring[1].startswith(f"{kept}.wiring-"), made
        made = [m for m in made if m not in wiring]
    assert len(made) == 4, f"an edited topology was not rebuilt whole: created {made}"

    off, _ = session(project, "--hoplab-reuse=off", "-k", "nothing")
    off.assert_outcomes(passed=1)
    assert not engine.state(kept).exists, "--hoplab-reuse=off left the kept lab up"


@pytest.mark.docker
def test_after_a_session_that_died_the_next_one_resets_on_attach(
    engine: Engine, project: pytest.Pytester, kept: str
) -> None:
    first, _ = session(project, "--hoplab-reuse", "-k", "look")  # makes the kept lab
    first.assert_outcomes(passed=1)
    assert reuse.lock_path(kept).read_text().strip() == reuse.AttachLock.CLEAN
    # What a killed session leaves: its pid in the lock file instead of the mark, and its mess.
    reuse.lock_path(kept).write_text("999999\n")
    lab = Lab.attach(engine, kept)
    h1 = lab.node("h1")
    assert h1.run(["sh", "-c", "setsid sleep 778 </dev/null >/dev/null 2>&1 &"]).ok
    assert h1.run(["ip", "route", "add", "10.98.0.0/24", "via", lab.address("r", "a")]).ok
    with creations(engine, kept) as made:
        second, seen = session(project, "--hoplab-reuse", "-k", "look")
    second.assert_outcomes(passed=1)
    assert seen["name"] == kept and made == [], "the lab was not reused"
    assert "sleep 778" not in seen["ps"], "a program the dead session left still runs"
    assert "10.98.0.0/24" not in seen["routes"], "a route the dead session added is still there"


@pytest.mark.docker
def test_a_held_lab_is_neither_taken_nor_removed(
    engine: Engine, project: pytest.Pytester, kept: str
) -> None:
    """While a session holds the kept lab, another session gets a lab of its own, and
    --hoplab-reuse=off leaves the held one up."""
    first, _ = session(project, "--hoplab-reuse", "-k", "nothing")  # no lab asked: none made
    first.assert_outcomes(passed=1)
    assert not engine.state(kept).exists
    lock = reuse.AttachLock(kept)
    (project.path / "compose.yaml").write_text(TOPOLOGY)
    session(project, "--hoplab-reuse", "-k", "look")  # makes the kept lab
    assert engine.state(kept).running
    assert lock.acquire()  # this process now stands for an attached session
    try:
        other, seen = session(project, "--hoplab-reuse", "-k", "look")
        other.assert_outcomes(passed=1)
        assert seen["name"] != kept, "a session took a lab another session holds"
        assert not engine.state(seen["name"]).exists, "the fallback lab was left up"
        off, _ = session(project, "--hoplab-reuse=off", "-k", "nothing")
        off.assert_outcomes(passed=1)
        assert engine.state(kept).running, "--hoplab-reuse=off removed a held lab"
        assert "attached to another session" in off.stdout.str()
    finally:
        lock.release()


def test_reuse_mode_from_the_ini_file_and_the_command_line(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nhoplab_reuse = on\n")
    assert reuse_mode(pytester.parseconfig()) == "on"
    assert reuse_mode(pytester.parseconfig("--hoplab-reuse=off")) == "off"
    pytester.makeini("[pytest]\n")
    assert reuse_mode(pytester.parseconfig()) == "off"
    assert reuse_mode(pytester.parseconfig("--hoplab-reuse")) == "on"
    pytester.makeini("[pytest]\nhoplab_reuse = maybe\n")
    with pytest.raises(pytest.UsageError, match="hoplab_reuse"):
        reuse_mode(pytester.parseconfig())


def test_kept_lab_names_are_stable_valid_and_never_a_crashed_runs(tmp_path: Path) -> None:
    one = reuse.lab_name(tmp_path, tmp_path / "compose.yaml", host="h")
    assert one == reuse.lab_name(tmp_path, tmp_path / "." / "compose.yaml", host="h")
    assert one != reuse.lab_name(tmp_path, tmp_path / "other.yaml", host="h")
    assert one != reuse.lab_name(tmp_path, tmp_path / "compose.yaml", host="elsewhere")
    assert check_lab_name(one) == one
    assert not NAME_RE.match(one)  # the owner-pid reaping reads pt<pid>- names only


def test_the_attach_lock_admits_one_holder_and_frees_on_release(tmp_path: Path) -> None:
    name = f"ptr-test{os.getpid()}"
    first, second = reuse.AttachLock(name), reuse.AttachLock(name)
    try:
        assert first.acquire()
        assert not second.acquire()  # flock: per open file, so this holds within one process too
        first.release()
        assert second.acquire() and not second.left_clean
        second.mark_clean()
        second.release()
        assert first.acquire() and first.left_clean  # the mark reaches the next holder
        first.release()
        assert second.acquire() and not second.left_clean  # and is wiped by taking the lock
    finally:
        first.release()
        second.release()
        reuse.lock_path(name).unlink(missing_ok=True)

"""Guided lessons (`hoplab learn`, `hoplab verify`), on the real engine with real packets.

For every lesson and step: in a fresh lab where nothing was done, the step FAILs with its first
hint; following the step's `--json` commands literally (as a learner types them, without
hoplab's run mark) makes it PASS; and for each step verified from captures, the same commands
with alice's route to srv removed FAIL, so the check reads the wire and not a table.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Iterator
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from hoplab import lessons
from hoplab.cli import main
from hoplab.engine.engine import Engine
from hoplab.lessons.progress import Progress
from hoplab.runtime.lab import Lab
from tests.conftest import bring_up, unique_lab_name

# A server typed into a terminal needs a moment before the next command dials it; a learner
# takes longer than this between two commands.
SETTLE_S = 0.7
STEPS = [
    (lesson.name, n) for lesson in lessons.catalogue() for n in range(1, len(lesson.steps) + 1)
]


def _first_wire_step_from_alice(name: str) -> int | None:
    steps = lessons.select(name).steps
    return next(
        (
            n
            for n, st in enumerate(steps, 1)
            if st.wire and any(c.node == "alice" for c in st.commands)
        ),
        None,
    )


# Every wire step already FAILs with its capture emptied (in the following test); the route
# removal, which costs the earlier steps again, runs once per lesson that has such a step.
FROM_ALICE = [
    (lesson.name, n)
    for lesson in lessons.catalogue()
    if (n := _first_wire_step_from_alice(lesson.name)) is not None
]


@pytest.fixture(scope="module")
def learn_lab(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One default lab for the whole file, and a state directory of its own for progress."""
    name = unique_lab_name("learn")
    old = os.environ.get("HOPLAB_STATE")
    os.environ["HOPLAB_STATE"] = str(tmp_path_factory.mktemp("state"))
    try:
        yield bring_up(engine, name)
    finally:
        engine.down(name)
        if old is None:
            os.environ.pop("HOPLAB_STATE", None)
        else:
            os.environ["HOPLAB_STATE"] = old


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    """Run `hoplab ARGV --json` in this process; (exit code, the JSON it printed). A command
    that prints no JSON failed: what it wrote to stderr is the answer, under "error"."""
    capsys.readouterr()
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {"error": err, "argv": argv}


class Learner:
    """Types commands as a learner does (`hoplab exec`/`shell`: no run mark), and stops the
    ones that keep running when the lesson is over."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.running: list[tuple[str, int]] = []

    def type(self, node: str, command: str, keeps_running: bool) -> tuple[int, str]:
        container = self.lab.node(node).container
        if keeps_running:
            line = f"setsid sh -c {shlex.quote(command)} </dev/null >/dev/null 2>&1 & echo $!"
            code, out, err = self.lab.engine.run(container, ["sh", "-c", line])
            self.running.append((node, int(out.split()[0])))
            time.sleep(SETTLE_S)
            return code, err.decode()
        code, out, err = self.lab.engine.run(container, ["timeout", "30", "sh", "-c", command])
        return code, (out + err).decode()

    def stop(self) -> None:
        while self.running:
            node, pid = self.running.pop()
            container = self.lab.node(node).container
            self.lab.engine.run(container, ["sh", "-c", f"kill -TERM -{pid} 2>/dev/null; true"])


def assert_own_addresses(lab: Lab, text: str) -> None:
    """Every IPv4 address a step names is one of this lab's (a remapped workshop lab shows its
    own), or a wildcard or loopback address."""
    subnets = [ip_network(s) for s in lab.state.networks.values()]
    for found in re.findall(r"\b\d+\.\d+\.\d+\.\d+\b", text):
        addr = ip_address(found)
        assert addr.is_unspecified or addr.is_loopback or any(addr in n for n in subnets), found


def follow(capsys: pytest.CaptureFixture[str], lab: Lab, learner: Learner, name: str, n: int):
    """Show step n (which arms its captures), type its commands; the verify's (code, result)."""
    code, doc = cli(capsys, "learn", name, "--step", str(n), "--name", lab.name)
    assert code == 0 and doc["format"] == 1 and doc["shown"] == n
    step = doc["steps"][n - 1]
    assert_own_addresses(lab, json.dumps(step))
    for c in step["commands"]:
        assert set(c) == {"node", "command", "keeps_running"}
        learner.type(c["node"], c["command"], c["keeps_running"])
    return cli(capsys, "verify", name, "--step", str(n), "--name", lab.name)


def test_content_is_complete_and_has_no_literal_addresses() -> None:
    for lesson in lessons.catalogue():
        assert 3 <= len(lesson.steps) <= 8, lesson.name
        assert lesson.why and lesson.pitfalls
        for step in lesson.steps:
            assert step.commands and step.hints and step.expect
            texts = [step.text, step.expect, *step.hints, *(c.command for c in step.commands)]
            assert not any("10.77." in t or "fd77:" in t for t in texts), (lesson.name, step.title)


def test_progress_survives_a_new_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept in a file keyed by lab name, so `down` and `up` (new containers) leave it."""
    monkeypatch.setenv("HOPLAB_STATE", str(tmp_path))
    p = Progress("somelab")
    assert p.record("mac-per-hop", 1, False) == 1
    assert p.record("mac-per-hop", 1, False) == 2
    p.record("mac-per-hop", 1, True)
    again = Progress("somelab")
    assert again.passed("mac-per-hop") == {1} and again.current("mac-per-hop", 3) == 2
    assert Progress("otherlab").passed("mac-per-hop") == set()


@pytest.mark.docker
def test_nothing_done_fails_with_the_first_hint(
    learn_lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs first on the fresh lab: every step FAILs, and says what to type first."""
    for name, n in STEPS:
        code, doc = cli(capsys, "learn", name, "--step", str(n), "--name", learn_lab.name)
        first_hint = doc["steps"][n - 1]["hints"][0]
        code, result = cli(capsys, "verify", name, "--step", str(n), "--name", learn_lab.name)
        assert (code, result.get("status")) == (1, "FAIL"), (name, n, result)
        assert result["hint"] == first_hint, (name, n, result)
        assert result["expected"] and result["observed"]


@pytest.mark.docker
@pytest.mark.parametrize("name", [lesson.name for lesson in lessons.catalogue()])
def test_following_the_commands_passes_every_step(
    learn_lab: Lab, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Each step PASSes once its commands are typed. A wire step is then shown again, which
    starts its captures afresh: the servers and sockets are all still there, the frames are
    not, and the step FAILs (the check reads the wire, not a table)."""
    lesson = lessons.select(name)
    learner = Learner(learn_lab)
    try:
        for n in range(1, len(lesson.steps) + 1):
            code, result = follow(capsys, learn_lab, learner, name, n)
            assert (code, result.get("status")) == (0, "PASS"), (name, n, result)
            if lesson.steps[n - 1].wire:
                cli(capsys, "learn", name, "--step", str(n), "--name", learn_lab.name)
                code, result = cli(
                    capsys, "verify", name, "--step", str(n), "--name", learn_lab.name
                )
                assert (code, result.get("status")) == (1, "FAIL"), (name, n, "emptied", result)
    finally:
        learner.stop()
    assert Progress(learn_lab.name).passed(name) == set(
        range(1, len(lessons.select(name).steps) + 1)
    )


@pytest.mark.docker
@pytest.mark.parametrize(("name", "n"), FROM_ALICE)
def test_wire_steps_fail_when_the_packets_never_cross(
    learn_lab: Lab, capsys: pytest.CaptureFixture[str], name: str, n: int
) -> None:
    """alice loses her routes to srv's and dave's LANs, IPv4 and IPv6: the same commands, and
    the step FAILs."""
    alice = learn_lab.node("alice")
    nets = [
        (family, subnet)
        for lan in ("lan2", "lan3")
        for family, subnet in (
            ("-4", learn_lab.subnet(lan)),
            ("-6", learn_lab.state.networks6[lan]),
        )
    ]
    routes = [(f, alice.run(["ip", f, "route", "show", net]).out.strip()) for f, net in nets]
    assert all(route for _, route in routes), "alice has routes to lan2 and lan3 to remove"
    learner = Learner(learn_lab)
    try:
        # earlier steps' servers, so that only the wire is missing
        for earlier in range(1, n):
            follow(capsys, learn_lab, learner, name, earlier)
        for family, net in nets:
            assert alice.run(["ip", family, "route", "del", net]).ok
        code, result = follow(capsys, learn_lab, learner, name, n)
        assert (code, result.get("status")) == (1, "FAIL"), (name, n, result)
    finally:
        for family, route in routes:
            alice.run(["ip", family, "route", "replace", *route.split()])
        learner.stop()

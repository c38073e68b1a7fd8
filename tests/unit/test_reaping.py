"""Reaping: the pytest plugin's labs are removed once the run that made them is gone, and never
while it lives, nor on another host. The process probe is injected, so every case is exact."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from hoplab import lifecycle
from hoplab.engine import reaping
from hoplab.engine.reaping import GONE, UNKNOWN, is_orphan, lab_name_for, owner_labels
from hoplab.engine.state import LabState, NodeState
from hoplab.model import labels as L
from tests.unit.fake_engine import FakeEngine

HOST, OTHER = "ci-1", "laptop"
NODE = NodeState("alice", "x-alice", "host", "running", {}, (), "p")


def lab(name: str, labels: dict[str, str], nodes: bool = True) -> LabState:
    return LabState(name, (NODE,) if nodes else (), {"a": "10.0.0.0/24"}, labels=labels)


def probe(table: dict[int, str]):
    return lambda pid: table.get(pid, GONE)


@pytest.mark.parametrize(
    ("labels", "alive", "orphan"),
    [
        (owner_labels(10, "500", HOST), {10: "500"}, False),  # owner still runs
        (owner_labels(10, "500", HOST), {}, True),  # owner gone
        (owner_labels(10, "500", HOST), {10: "900"}, True),  # pid reused by another process
        (owner_labels(10, "500", HOST), {10: UNKNOWN}, False),  # cannot tell: keep it
        (owner_labels(10, "500", OTHER), {}, False),  # another host's run (shared engine)
        ({L.PYTEST_PID: "ten", L.PYTEST_HOST: HOST}, {}, False),  # unreadable: keep it
        ({L.OWNER: "ann"}, {}, False),  # not the plugin's lab at all
    ],
)
def test_labs_with_owner_labels(labels, alive, orphan):
    assert is_orphan(lab("pt10-abcd-0", labels), HOST, probe(alive)) is orphan


def test_lone_networks_are_judged_by_their_lab_name():
    mine = lab_name_for(10, 0, HOST)
    assert is_orphan(lab(mine, {}, nodes=False), HOST, probe({})) is True
    assert is_orphan(lab(mine, {}, nodes=False), HOST, probe({10: "1"})) is False
    theirs = lab_name_for(10, 0, OTHER)
    assert is_orphan(lab(theirs, {}, nodes=False), HOST, probe({})) is False
    assert is_orphan(lab("hoplab", {}, nodes=False), HOST, probe({})) is False
    # Nodes without owner labels are someone's lab, whatever its name says.
    assert is_orphan(lab(mine, {}, nodes=True), HOST, probe({})) is False


def test_process_start_tells_a_live_process_from_a_gone_one():
    assert reaping.process_start(os.getpid()) not in (GONE, UNKNOWN)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert reaping.process_start(child.pid) == GONE


def test_reap_removes_only_orphans_on_the_engine(tiny):
    fake = FakeEngine()
    up = {
        "pt10-x-0": owner_labels(10, "500", HOST),  # dead owner
        "pt11-x-0": owner_labels(11, "600", HOST),  # live owner
        "pt12-x-0": owner_labels(12, "700", OTHER),  # other host
        "someone": {},  # a lab the plugin never made
    }
    for name, labels in up.items():
        lifecycle.up(fake, tiny, name, lambda *a: None, lambda m: None, labels=labels)
    gone = reaping.reap(fake, HOST, probe({11: "600"}))
    assert gone == ["pt10-x-0"]
    assert [s.name for s in fake.labs()] == ["pt11-x-0", "pt12-x-0", "someone"]


def test_the_plugin_labels_its_labs_for_reaping(tmp_path, tiny):
    """The plugin's labels name this live process; its LabManager.reap runs this module's
    decision with the real probe: a dead owner's lab goes, its own and unlabelled ones stay."""
    from hoplab import plugin

    labels = plugin.owner_labels()
    host = socket.gethostname()
    assert labels == owner_labels(os.getpid(), reaping.process_start(os.getpid()), host)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    fake = FakeEngine()
    manager = plugin.LabManager(tmp_path, None, tmp_path)
    manager._engine = fake  # the engine property would reach for Docker
    up = {
        "pt1-x-0": owner_labels(child.pid, "1", host),  # its owner has exited
        "pt2-x-0": labels,  # this process: alive
        "someone": {},
    }
    for name, own in up.items():
        lifecycle.up(fake, tiny, name, lambda *a: None, lambda m: None, labels=own)
    assert manager.reap() == ["pt1-x-0"]
    assert [s.name for s in fake.labs()] == ["pt2-x-0", "someone"]

"""`hoplab workshop up` on the real engine refuses a room that cannot fit at its nodes' memory
limits (issue 26): exit 2, a message that says by how much and why, and nothing created."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hoplab.workshop import room as workshop
from tests.conftest import ROOT, unique_lab_name

pytestmark = pytest.mark.docker


def test_a_room_too_big_for_the_engine_is_refused_before_anything_is_made(engine):
    name = unique_lab_name("cap")
    res = subprocess.run(
        [sys.executable, "-m", "hoplab", "workshop", "up", "--participants", "100"]
        + ["--workshop", name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert res.returncode == 2, res.stderr
        assert "100 new labs of 7 nodes do not fit" in res.stderr, res.stderr
        assert "memory limit" in res.stderr and "--participants" in res.stderr, res.stderr
        assert workshop.room_labs(engine, name) == []
        assert not [s.name for s in engine.labs() if s.name.startswith(name)]
    finally:
        workshop.down(engine, name)

"""A room over two real Docker engines: the host's, and a second dockerd this test starts.

The harness (tests/second_engine.py) says how the second engine is made and kept isolated, and
undoes all of it afterwards. Six labs spread over both engines; the second engine is stopped
midway; the first engine's labs keep passing a check; `workshop down` leaves nothing on either.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import hoplab
import pytest
from hoplab import exercises
from hoplab.checks import Status
from hoplab.engine.client import API_VERSION, connect
from hoplab.engine.image import IMAGE
from hoplab.engine.labs import Engine
from hoplab.exercises import runner
from hoplab.model import labels as L
from hoplab.workshop import room as workshop

from tests.conftest import ROOT, unique_lab_name
from tests.second_engine import SecondEngine

pytestmark = pytest.mark.docker
CHECK = "ttl-and-traceroute"


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[Engine, SecondEngine]]:
    """The host's engine and a second one holding a copy of the node image; all undone after."""
    first = Engine(connect())
    second = SecondEngine(driver=first.client.info()["Driver"])  # the first engine's driver
    try:  # nothing between making its directory and this try can fail
        second.start()
        second.copy_image(first.client, IMAGE)
        yield first, second
    finally:
        left = second.undo()
        assert left == ([], [], False, False), f"the harness left {left}"


def _hoplab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hoplab", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=None if env is None else os.environ | env,
    )


def room_objects(api: docker.APIClient, room: str) -> int:
    containers = api.containers(all=True, filters={"label": [f"{workshop.WORKSHOP}={room}"]})
    labs = {c["Labels"][L.LAB] for c in containers}
    return len(containers) + sum(len(api.networks(filters=L.lab_filter(lab))) for lab in labs)


def passes(engine: Engine, lab: str, artifacts: Path) -> bool:
    running = hoplab.attach(lab, engine=engine)
    (ex,) = exercises.select([CHECK])
    result = runner.run_one(running, ex, artifacts / lab)
    return result.status is Status.PASS


def test_a_room_spreads_over_two_engines_survives_losing_one_and_goes_down_on_both(
    engines, tmp_path
):
    first, second = engines
    name = unique_lab_name("sp")
    listing = tmp_path / "engines.txt"
    # nodes= replaces the CPU estimate, so labs that others run on this engine meanwhile cannot
    # squeeze the room (the estimate itself is unit-tested in tests/unit/test_placement.py)
    listing.write_text(f"local labs=3 nodes=5000\n{second.url} labs=3 nodes=5000\n")
    try:
        res = _hoplab("workshop", "up", "--participants", "6", "--workshop", name,
                      "--engines", str(listing))  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert "6 of 6 labs up" in res.stderr
        e2 = Engine(docker.DockerClient(base_url=second.url, version=API_VERSION, timeout=120))
        on_first = workshop.room_labs(first, name)
        on_second = workshop.room_labs(e2, name)
        assert len(on_second) == 3 and len(on_first) == 3, (on_first, on_second)
        for engine, labs, label in ((first, on_first, "local"), (e2, on_second, second.url)):
            for c in engine.api.containers(all=True, filters=L.lab_filter(labs[0])):
                assert c["Labels"][workshop.ENGINE] == label  # placement recorded on that engine
        assert passes(e2, on_second[0], tmp_path)  # the second engine's labs really route
        # every other command follows the lab to its engine through DOCKER_HOST
        res = _hoplab("exec", "--name", on_second[0], "alice", "--", "hostname",
                      env={"DOCKER_HOST": second.url})  # fmt: skip
        assert res.returncode == 0 and res.stdout.strip() == "alice", res.stdout + res.stderr
        res = _hoplab("exec", "--name", on_second[0], "alice", "--", "true")
        assert res.returncode != 0  # not on the first engine

        res = _hoplab("workshop", "status", "--workshop", name, "--engines", str(listing))
        assert res.returncode == 0, res.stdout + res.stderr
        assert all(lab in res.stdout for lab in on_first + on_second)

        second.stop()  # the machine goes away while the room is up
        res = _hoplab("workshop", "status", "--workshop", name, "--engines", str(listing))
        assert res.returncode == 1 and "unreachable" in res.stdout, res.stdout + res.stderr
        assert all(lab in res.stdout for lab in on_first)
        assert all(passes(first, lab, tmp_path) for lab in on_first)

        res = _hoplab("workshop", "down", "--workshop", name, "--engines", str(listing))
        assert res.returncode == 1 and "not emptied" in res.stderr, res.stderr
        assert "local: 3" in res.stderr and room_objects(first.api, name) == 0

        second.start()  # back: the same down now empties it too
        res = _hoplab("workshop", "down", "--workshop", name, "--engines", str(listing))
        assert res.returncode == 0, res.stderr
        assert room_objects(first.api, name) == 0 and room_objects(e2.api, name) == 0
    finally:
        workshop.down(first, name)
        if second.proc is not None:
            workshop.down(Engine(connect_to(second.url)), name)


def connect_to(url: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=url, version=API_VERSION, timeout=120)

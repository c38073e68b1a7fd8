"""A room over two real Docker engines: the host's, and a second dockerd this test starts.

The harness (tests/second_engine.py) says how the second engine is made and kept isolated, and
undoes all of it afterwards. Six labs spread over both engines; the second engine is stopped
midway; the first engine's labs keep passing a check; `workshop down` leaves nothing on either.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import docker
import pytest

import hoplab
from hoplab import exercises, grading
from hoplab.checks import Status
from hoplab.engine.client import API_VERSION, connect
from hoplab.engine.engine import Engine
from hoplab.engine.engines import reach
from hoplab.engine.image import IMAGE, ensure_image
from hoplab.exercises import runner
from hoplab.model import labels as L
from hoplab.model.load import load
from hoplab.portal import serve
from hoplab.portal.server import SEATS_TTL
from hoplab.resources import hosts_dir
from hoplab.runtime.lab import Lab
from hoplab.workshop import room as workshop
from hoplab.workshop import spread
from hoplab.workshop.placement import EngineLine
from tests.conftest import COMPOSE, ROOT, unique_lab_name
from tests.second_engine import SecondEngine, first_bridge, link_exists
from tests.test_portal import (
    ASSIGNMENT,
    Term,
    call,
    open_terminal,
    run,
    start_portal,
    wait_check,
    ws_connect,
)

pytestmark = pytest.mark.docker
CHECK = "ttl-and-traceroute"
SOLUTION = grading.select(ASSIGNMENT).solution.read_text()


@pytest.fixture(scope="module")
def engines(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Engine, SecondEngine]]:
    """The host's engine and a second one holding a copy of the node image; all undone after.

    The second engine has no bridge to Debian's mirror, so it must never build the image itself:
    the module runs on a snapshot of hosts/ (HOPLAB_HOSTS, for this process and the commands it
    starts), built once on the first engine and copied over by id. Others editing hosts/ on this
    machine meanwhile then cannot make the second engine's copy stale halfway through.
    """
    first = Engine(connect())
    second = SecondEngine(driver=first.client.info()["Driver"])  # the first engine's driver
    bridge = first_bridge(first.client)
    assert link_exists(bridge), f"the first engine's default bridge {bridge} is missing already"
    snapshot = tmp_path_factory.mktemp("hosts") / "hosts"
    shutil.copytree(hosts_dir(), snapshot, symlinks=True)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HOPLAB_HOSTS", str(snapshot))
        try:  # nothing between making its directory and this try can fail
            second.start()
            # A dockerd started with --bridge=none deletes docker0: builds then fail on the first.
            assert link_exists(bridge), f"starting the second engine removed {bridge}"
            built = ensure_image(first.client, snapshot, lambda m: None)
            second.copy_image(first.client, built, tag=IMAGE)
            yield first, second
        finally:
            left = second.undo()
            assert left == ([], [], False, False, False), f"the harness left {left}"
            assert link_exists(bridge), f"the second engine took {bridge} with it"


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
    for c in result.checks:  # shown by pytest when the assert on the outcome fails
        print(f"{lab}: {c.status} {c.name}: expected {c.expected}; observed {c.observed}")
    return result.status is Status.PASS


def ls_rows(out: str, labs: list[str]) -> dict[str, str]:
    """lab -> engine from the table `hoplab ls --engine ...` prints, for the labs named."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip()[1:-1].split("│")]
        if line.startswith("│") and len(cells) == 7 and cells[1] in labs:
            rows[cells[1]] = cells[0]
    return rows


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
        # `hoplab ls` over the same engines: every lab, each on the engine its labels are on
        res = _hoplab("ls", "--engine", "local", "--engine", second.url)
        assert res.returncode == 0, res.stdout + res.stderr
        assert ls_rows(res.stdout, on_first + on_second) == {
            **{lab: "local" for lab in on_first},
            **{lab: second.url for lab in on_second},
        }

        second.stop()  # the machine goes away while the room is up
        res = _hoplab("workshop", "status", "--workshop", name, "--engines", str(listing))
        assert res.returncode == 1 and "unreachable" in res.stdout, res.stdout + res.stderr
        assert all(lab in res.stdout for lab in on_first)
        res = _hoplab("ls", "--engines", str(listing))
        assert res.returncode == 1 and f"engine {second.url}" in res.stderr, res.stderr
        rows = ls_rows(res.stdout, [*on_first, "unreachable"])
        assert rows == {**{lab: "local" for lab in on_first}, "unreachable": second.url}
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


def test_the_portal_follows_each_lab_to_its_engine(engines, tmp_path):
    """One lab on each engine, one portal for both: terminals, checks and resets of the second
    engine's participant run there; when that engine goes, its participant is told (503) and the
    first engine's participant is served as before."""
    first, second = engines
    if second.proc is None:  # the test before stops it midway: started again if it failed there
        second.start()
    e2 = Engine(connect_to(second.url))
    name = unique_lab_name("pe")
    room = workshop.Room(name, workshop.numbered_seats(2, f"{name}-"))
    caps = (EngineLine("local", labs=1, nodes=5000), EngineLine(second.url, labs=1, nodes=5000))
    served = None
    try:
        made = spread.up(reach(["local", second.url]), load(COMPOSE), room, lines=caps)
        assert len(made.report.up) == 2, made.report.outcomes
        near, far = (s.participant for s in room.seats)  # the first engine given takes the first
        (near_lab,) = workshop.room_labs(first, name)
        (far_lab,) = workshop.room_labs(e2, name)
        assert (near_lab, far_lab) == tuple(s.lab for s in room.seats)

        served = start_portal({"local": first, second.url: e2}, name, tmp_path)
        base = served.base
        links = serve.issue(served.portal.tokens, [near, far], base)
        token = {p: u.split("#", 1)[1] for p, u in links.participants.items()}
        instructor = links.instructor.split("#", 1)[1]
        mark = f"far-{os.getpid()}"

        async def terminal(who: str, keys: str, expect: str) -> None:
            tid = await open_terminal(base, token[who], "srv")
            async with (
                aiohttp.ClientSession() as s,
                ws_connect(s, base, f"/ws/terminal/{tid}", token[who]) as ws,
            ):
                term = Term(ws)
                await term.send(keys)
                await term.expect(expect)
            status, _ = await call(base, "DELETE", f"/api/terminals/{tid}", token[who])
            assert status == 200

        async def far_side() -> dict:
            status, me = await call(base, "GET", "/api/me", token[far])
            assert status == 200 and me["lab"] == far_lab, me
            assert len(me["nodes"]) == 7 and {n["state"] for n in me["nodes"]} == {"running"}
            await terminal(
                far, f"echo {mark} > /tmp/mark; sleep 1004 & echo put-$((6*7))\r", "put-42"
            )
            body = {"assignment": ASSIGNMENT, "source": SOLUTION}
            status, started = await call(base, "POST", "/api/check", token[far], body)
            assert status == 202, started
            return await wait_check(base, token[far])

        done = run(far_side())
        # the terminal ran in the far lab's srv on the second engine, and its close killed there
        far_srv = Lab.attach(e2, far_lab).node("srv")
        assert far_srv.run(["cat", "/tmp/mark"]).out.strip() == mark
        assert "sleep 1004" not in far_srv.run(["ps", "-eo", "args"]).out
        assert not Lab.attach(first, near_lab).node("srv").run(["test", "-e", "/tmp/mark"]).ok
        assert "error" not in done and done["result"]["ok"], done  # graded on the second engine
        status, grid = run(call(base, "GET", "/api/room", instructor))
        assert status == 200 and grid["engines"] == ["local", second.url], grid
        rows = {r["participant"]: r for r in grid["participants"]}
        assert (rows[near]["engine"], rows[far]["engine"]) == ("local", second.url)
        assert rows[near]["running"] == rows[far]["running"] == 7

        # a reset rebuilds the far lab where it is, placement label and all
        before = {c["Id"] for c in e2.api.containers(filters=L.lab_filter(far_lab))}
        status, body = run(call(base, "POST", "/api/reset", token[far], {"confirm": far_lab}))
        assert status == 200, body
        after = e2.state(far_lab)
        assert after.running and not {n.container for n in after.nodes} & before
        assert after.labels[workshop.ENGINE] == second.url and after.owner == far
        assert workshop.room_labs(first, name) == [near_lab]  # nothing of it on the first

        # the command line takes the same engines and says where the labs are
        res = _hoplab("workshop", "serve", "--workshop", name, "--issue-only",
                      "--engine", "local", "--engine", second.url,
                      env={"HOPLAB_STATE": str(tmp_path / "cli")})  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert f"labs on local: 1, {second.url}: 1" in res.stderr.replace("\n", ""), res.stderr

        second.stop()  # the far engine goes away while the portal serves
        time.sleep(SEATS_TTL + 0.5)
        status, body = run(call(base, "GET", "/api/me", token[far]))
        assert status == 503 and "cannot be reached" in body["error"], body
        status, me = run(call(base, "GET", "/api/me", token[near]))
        assert status == 200 and me["lab"] == near_lab, me
        run(terminal(near, "hostname; echo near-$((6*7))\r", "near-42"))
        status, grid = run(call(base, "GET", "/api/room", instructor))
        assert status == 200 and second.url in grid["unreachable"], grid
    finally:
        if served:
            served.close()
        if second.proc is None:
            second.start()
        workshop.down(first, name)
        workshop.down(Engine(connect_to(second.url)), name)
        assert room_objects(first.api, name) == 0 and room_objects(e2.api, name) == 0

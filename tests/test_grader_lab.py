"""Grading that a root participant cannot forge (issue 26), replayed from a participant's place.

The participant is root in their own lab: they plant a sitecustomize implant that logs every
python3 the node runs, replace `ss`, and leave a TCP echo server running from a terminal with
`setsid env -i` (no run mark). `hoplab check` grades in a fresh grader lab, so an idle program
FAILs, the reference gets full marks, and nothing of the grader ever runs in the participant's
nodes (the implant logs nothing). In any lab, a submission cannot hand its work to hoplab's own
in-node programs or to the tools its assignment forbids. No grader lab outlives its check.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hoplab import api, grading
from hoplab.errors import HoplabError
from hoplab.grading.grader import grade
from hoplab.model import labels as L
from hoplab.model.load import load
from hoplab.runtime.lab import Lab
from hoplab.workshop.graderlab import Closed, GraderLabs, RoomGraders
from tests import test_portal as tp
from tests.conftest import COMPOSE, ROOT, bring_up, unique_lab_name

pytestmark = pytest.mark.docker

HOSTILE = Path(__file__).parent / "hostile"
ASSIGNMENTS = ROOT / "hoplab" / "grading" / "assignments"
IMPLANT = "import sys\nopen('/tmp/implant.log', 'a').write(' '.join(sys.argv) + '\\n')\n"
FAKE_SS = "#!/bin/sh\necho 'LISTEN 0 128 0.0.0.0:7000 0.0.0.0:*'\n"
# A root echo server with no run mark and SO_REUSEPORT, as typed into a browser terminal.
DAEMON = (
    "import socket,threading\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEPORT,1); s.bind(('0.0.0.0',7000)); s.listen()\n"
    "def echo(c):\n"
    "    with c:\n"
    "        while d:=c.recv(65536): c.sendall(d)\n"
    "while True: threading.Thread(target=echo,args=(s.accept()[0],),daemon=True).start()\n"
)


def _check(lab: Lab, assignment: str, solution: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hoplab", "check", assignment, "--solution", str(solution)]
        + ["--name", lab.name, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _grader_labs(engine) -> list[str]:
    return [s.name for s in engine.labs() if L.GRADER in s.labels]


@pytest.fixture(scope="module")
def implanted(engine) -> Iterator[Lab]:
    """The participant's own lab, where root has been busy."""
    name = unique_lab_name("h26i")
    try:
        lab = bring_up(engine, name)
        srv = lab.node("srv")
        srv.copy_in(DAEMON.encode(), "/root/daemon.py", mode=0o644)
        # The exec's run mark is dropped (env -i) and the daemon leaves the exec's session.
        started = srv.run(["sh", "-c", "setsid -f env -i python3 /root/daemon.py >/dev/null 2>&1"])
        assert started.ok, started
        srv.copy_in(IMPLANT.encode(), "/etc/python3.11/sitecustomize.py", mode=0o644)
        srv.copy_in(FAKE_SS.encode(), "/usr/bin/ss", mode=0o755)
        yield lab
    finally:
        engine.down(name)


def test_an_idle_program_beside_roots_daemon_and_implant_fails_in_the_grader_lab(
    engine, implanted: Lab
) -> None:
    srv = implanted.node("srv")
    assert srv.run(["sh", "-c", "ps -eo args | grep -c '[d]aemon.py'"]).out.strip() == "1"
    srv.run(["rm", "-f", "/tmp/implant.log"])

    res = _check(implanted, "tcp-echo", HOSTILE / "idle_sockets.py")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "grader lab" in res.stderr, res.stderr
    # The grader never ran a program in the participant's nodes: the implant saw nothing.
    assert not srv.run(["test", "-e", "/tmp/implant.log"]).ok
    assert _grader_labs(engine) == []


def test_the_reference_gets_full_marks_from_the_grader_lab_while_the_implant_is_there(
    engine, implanted: Lab
) -> None:
    res = _check(implanted, "tcp-echo", ASSIGNMENTS / "tcp-echo" / "solution.py")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "6/6 checks passed" in res.stderr, res.stderr
    assert _grader_labs(engine) == []


def test_in_place_is_practice_and_says_so(implanted: Lab, tmp_path: Path) -> None:
    res = _check(
        implanted,
        "tcp-echo",
        ASSIGNMENTS / "tcp-echo" / "solution.py",
        "--in-place",
        "--results",
        str(tmp_path / "results.json"),
    )
    assert res.returncode == 2 and "practice" in res.stderr, res.stderr
    assert not (tmp_path / "results.json").exists()


@pytest.fixture(scope="module")
def clean(engine) -> Iterator[Lab]:
    name = unique_lab_name("h26d")
    try:
        yield bring_up(engine, name)
    finally:
        engine.down(name)


@pytest.mark.parametrize(
    ("assignment", "program"),
    [
        ("traceroute", "delegate_traceroute.py"),
        ("tcp-echo", "delegate_echo.py"),
        ("tcp-echo", "delegate_socat.py"),
    ],
)
def test_a_submission_cannot_hand_its_work_to_hoplabs_programs_or_forbidden_tools(
    clean: Lab, assignment: str, program: str
) -> None:
    a = grading.select(assignment)
    g = grade(clean, a, HOSTILE / program)
    assert not g.ok, g.checks
    # Closing the tools to nobody costs the honest program nothing.
    reference = grade(clean, a, ASSIGNMENTS / assignment / "solution.py")
    assert reference.ok, [c for c in reference.checks if c.status.name == "FAIL"]


# --- grader labs that outlive their owner: close() racing a bring-up ---------------------------


def _until(what: Callable[[], object], seconds: float, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def _graders_of(engine, of: str) -> list[str]:
    return engine.labs_labelled(L.GRADER, of)


def test_close_during_a_bring_up_leaves_no_grader_lab_now_or_later(engine) -> None:
    """serve's exit while a check brings up its grader lab: the lab was counted only once its
    bring-up returned, so close() missed it and the whole lab stayed."""
    of = unique_lab_name("h26c")
    labs = GraderLabs(engine, load(COMPOSE), of, workers=1)
    failed: list[BaseException] = []

    def check() -> None:
        try:
            with labs.lab():
                pass
        except BaseException as err:  # noqa: BLE001 - the test reads it below
            failed.append(err)

    worker = threading.Thread(target=check)
    try:
        worker.start()
        _until(lambda: _graders_of(engine, of), 120, "the grader lab's bring-up never began")
        labs.close()
        assert _graders_of(engine, of) == [], "a grader lab outlived close()"
        worker.join(180)
        assert not worker.is_alive()
        assert _graders_of(engine, of) == [], "a grader lab appeared after close()"
        assert len(failed) == 1 and isinstance(failed[0], Closed), failed
        with pytest.raises(Closed), labs.lab():  # a closed GraderLabs starts nothing
            pass
        assert _graders_of(engine, of) == []
    finally:
        worker.join(180)
        for name in _graders_of(engine, of):
            engine.down(name)


@pytest.fixture
def seat(engine) -> Iterator[tuple[str, str]]:
    """A room of one lab, labelled as `workshop up` labels it: (room, lab)."""
    room, name = unique_lab_name("h26r"), unique_lab_name("h26s")
    try:
        api.up(COMPOSE, name=name, labels={L.WORKSHOP: room, L.OWNER: "p1"}, engine=engine)
        yield room, name
    finally:
        engine.down(name)
        for grader in _graders_of(engine, room):
            engine.down(grader)


def test_a_room_closed_while_a_check_starts_its_grader_labs_gets_none(engine, seat) -> None:
    """RoomGraders.close() while a check job is still making that engine's GraderLabs (reading
    the topology): the GraderLabs made after close() was never closed, and its lab stayed."""
    room, lab = seat
    reading, go = threading.Event(), threading.Event()

    def topology(_engine, _lab: str):  # noqa: ANN202 - a Topology, read slowly
        reading.set()
        assert go.wait(60)
        return load(COMPOSE)

    graders = RoomGraders(room, topology, workers=1)
    failed: list[BaseException] = []

    def check() -> None:
        try:
            with graders.lab(engine, lab):
                pass
        except BaseException as err:  # noqa: BLE001 - the test reads it below
            failed.append(err)

    worker = threading.Thread(target=check)
    worker.start()
    assert reading.wait(60)
    graders.close()
    go.set()
    worker.join(180)
    assert not worker.is_alive()
    assert len(failed) == 1 and isinstance(failed[0], Closed), failed
    assert _graders_of(engine, room) == [], "a grader lab appeared after close()"


def test_a_room_taken_down_during_a_grading_keeps_no_warm_grader_lab(engine, seat) -> None:
    """`workshop down` while the portal serves: the grading in flight ends, its warm grader lab
    goes with the room, and the next check is refused instead of bringing one up."""
    room, lab = seat
    graders = RoomGraders(room, lambda _e, _l: load(COMPOSE), workers=1)
    inside, go = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def check() -> None:
        try:
            with graders.lab(engine, lab):
                inside.set()
                assert go.wait(60)
        except BaseException as err:  # noqa: BLE001 - the test reads it below
            failed.append(err)

    worker = threading.Thread(target=check)
    try:
        worker.start()
        assert inside.wait(180), failed
        assert len(_graders_of(engine, room)) == 1
        engine.down(lab)  # the room's last lab
        go.set()
        worker.join(60)
        assert not worker.is_alive() and not failed, failed
        assert _graders_of(engine, room) == [], "a warm grader lab outlived its room"
        with pytest.raises(HoplabError, match="not a lab of workshop"), graders.lab(engine, lab):
            pass
        assert _graders_of(engine, room) == []
    finally:
        go.set()
        worker.join(60)
        graders.close()


def test_serve_stopping_with_checks_in_flight_leaves_no_grader_lab(engine, tmp_path) -> None:
    """serve's exit (serve.stop) while one check brings up its grader lab and another waits in
    the queue: when stop returns, no grader lab is left and no worker is left to make one."""
    tcp_echo = grading.select("tcp-echo")
    body = {"assignment": tcp_echo.name, "source": tcp_echo.solution.read_text()}
    with tp.served_room(engine, tmp_path, "h26v", 3) as room:
        first, *rest = sorted(room.labs)
        status, got = tp.run(
            tp.call(room.served.base, "POST", "/api/check", room.tokens[first], body)
        )
        assert status == 202, got
        _until(lambda: _graders_of(engine, room.name), 120, "no grader lab began")
        for p in rest:  # queued behind the first (2 workers: one starts, one waits)
            status, got = tp.run(
                tp.call(room.served.base, "POST", "/api/check", room.tokens[p], body)
            )
            assert status == 202, got
        room.served.close()
        assert _graders_of(engine, room.name) == [], "a grader lab outlived serve's exit"
        ran = room.served.portal.grades.status(first)
        assert ran is not None and ran["state"] == "done", ran  # ended, not abandoned
        time.sleep(2)
        assert _graders_of(engine, room.name) == [], "a grader lab appeared after serve's exit"

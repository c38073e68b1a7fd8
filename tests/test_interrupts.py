"""Nothing hoplab started keeps running after any end: a Ctrl-C at a chosen moment, a crashed CLI,
or a run that simply left something. Every program carries its run's mark from the exec on, so
it is found in the node's processes even when its pid was never learnt.

The interrupts land at moments defined by events (a given program shows in a node's process
list), not by timers, so each test does the same thing on every run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import docker.errors
import pytest

from hoplab.interrupts import Interrupted
from hoplab.model import labels as L
from hoplab.runtime.lab import Lab, left_running
from tests.conftest import ROOT, bring_up, unique_lab_name
from tests.test_faults import hoplab

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def own(engine) -> Iterator[Lab]:
    """A default lab for this module alone: interrupts must not disturb other tests' labs."""
    name = unique_lab_name("h12i")
    try:
        yield bring_up(engine, name)
    finally:
        engine.down(name)
        assert not engine.api.containers(all=True, filters=L.lab_filter(name))


def left(engine, lab: Lab) -> list[str]:
    return [x.describe() for x in left_running(engine, lab.state)]


def running_in(engine, lab: Lab, nodes: tuple[str, ...], needle: str) -> bool:
    """Whether a program whose command line holds needle runs in one of these nodes: one plain
    `top` each (left_running lists every node twice, and under load one look can take seconds,
    long enough for a short program to be gone before the Ctrl-C is sent)."""
    for node in nodes:
        with contextlib.suppress(docker.errors.APIError):
            top = engine.api.top(lab.state_node(node).container, ps_args="-o pid,args -ww")
            lines = [" ".join(p) for p in top["Processes"] or []]
            # the program itself, not spawn.py, whose argv holds it while it starts it
            if any(needle in ln and "spawn.py" not in ln for ln in lines):
                return True
    return False


def when_running(
    engine,
    lab: Lab,
    needle: str,
    then: Callable[[], None],
    nodes: tuple[str, ...] = (),
    until: Callable[[], bool] = lambda: False,
) -> threading.Thread:
    """Call then() as soon as a program whose command line holds needle runs in the lab (in
    those nodes, else in any), unless until() holds first (the command it would stop is over)."""
    where = nodes or tuple(n.name for n in lab.state.nodes)

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not until():
            if running_in(engine, lab, where, needle):
                then()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def hit_while_running(
    engine, lab: Lab, args: tuple[str, ...], needle: str, nodes: tuple[str, ...], sig: int
) -> tuple[int, str, str]:
    """Run `hoplab *args` and send sig once the program runs; (exit code, stdout, stderr).

    A signal that lands at all is proof enough: wherever it lands the assertions must hold. But
    on a loaded machine the command can end in the moment between the look and the signal (it
    stopped that program itself): that run is not a trial, so it runs again, at most 5 times.
    """
    for _ in range(5):
        proc = hoplab(*args)
        watcher = when_running(
            engine,
            lab,
            needle,
            lambda p=proc: p.send_signal(sig),
            nodes,
            until=lambda p=proc: p.poll() is not None,
        )
        out, err = proc.communicate(timeout=180)
        watcher.join(5)
        if proc.returncode != 0:  # the signal landed (or it failed: the caller's asserts say)
            return proc.returncode, out, err
    pytest.fail(f"`hoplab {' '.join(args)}` ended before {needle} was seen running, 5 times")


@pytest.fixture
def ctrl_c_handled() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in this process, even when it was started with SIGINT
    ignored (a background job): else the in-process Ctrl-C below would never arrive."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_program_whose_pid_was_never_learnt_is_stopped_after_ctrl_c(engine, own, ctrl_c_handled):
    """Ctrl-C lands while Node.start still waits for the program to say it is ready, so the
    orchestrator never got its pid: stop_all still finds it by the run's mark and kills it."""
    srv = own.node("srv")
    main = threading.main_thread().ident
    assert main is not None
    # A real SIGINT, aimed at the main thread so it cuts the exec's blocking read as Ctrl-C does.
    watcher = when_running(
        engine, own, "sleep 31", lambda: signal.pthread_kill(main, signal.SIGINT), ("srv",)
    )
    with pytest.raises(KeyboardInterrupt):  # the timeout only ends it if the watcher never looks
        srv.start(["sh", "-c", "sleep 31"], ready="never printed", timeout=120)
    watcher.join(5)
    assert own.procs == ()  # it never got as far as registering
    stopped = own.stop_all()
    assert any("sleep 31" in s for s in stopped), stopped
    assert left(engine, own) == []


def test_strays_of_a_dead_run_are_reaped_and_live_runs_keep_theirs(engine, own):
    """A run whose process is gone (a crashed CLI) left a server, a background child of a
    foreground command and a participant program; the next run reaps all three, and a program
    of a run that is still alive (this test's own Lab) is left alone."""
    crashed = Lab.attach(engine, own.name)
    crashed.run_id = "gone-host/1/1/crashed"  # what a CLI on another machine, or a dead one, left
    crashed.node("srv").start(["sleep", "301"])
    crashed.node("alice").run("sleep 302 >/dev/null 2>&1 &", timeout=5)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    crashed.node("srv").run([*nobody, "sh", "-c", "sleep 303 >/dev/null 2>&1 & touch /tmp/x"])
    mine = own.node("carol").start(["sleep", "304"])
    try:
        before = left(engine, own)
        assert len([x for x in before if "sleep 30" in x]) == 4, before
        reaped = [x.describe() for x in own.reap(files=True)]
        assert {r.split(" (")[0] for r in reaped} == {
            "srv: sleep 301",
            "alice: sleep 302",
            "srv: sleep 303",
        }, reaped
        assert [x for x in left(engine, own) if "sleep" in x] == [
            next(x for x in before if "sleep 304" in x)
        ]
        assert not own.node("srv").run(["test", "-e", "/tmp/x"]).ok  # nobody's files went too
    finally:
        mine.stop()
    assert left(engine, own) == []


def test_a_respawning_participant_daemon_is_reaped_whatever_it_forks(engine, own):
    """A nobody program that forks a new copy of itself every few ms, so a process list often
    misses it: kill(-1) as nobody takes the whole family at once. Proof that it is gone: the
    log it appends to on every respawn stops growing."""
    bob = own.node("bob")
    spawner = (
        "import os, time\n"
        "os.setsid()\n"
        "while True:\n"
        "    if os.fork():\n"
        "        os._exit(0)\n"
        "    with open('/tmp/h12-respawn.log', 'a') as f:\n"
        "        f.write('.')\n"
        "    time.sleep(0.005)\n"
    )
    bob.copy_in(spawner.encode(), "/tmp/h12-respawn.py", mode=0o644)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    bob.run([*nobody, "sh", "-c", "python3 /tmp/h12-respawn.py >/dev/null 2>&1 &"])

    def size() -> int:
        return int(bob.run(["stat", "-c", "%s", "/tmp/h12-respawn.log"]).out.strip() or 0)

    grown = [size()]
    while len(grown) < 3 or grown[-1] == grown[-3]:  # it really runs and respawns
        time.sleep(0.1)
        grown.append(size())
        assert len(grown) < 100, "the respawner never started"
    reaped = own.reap(files=True)
    assert any("h12-respawn" in x.cmd for x in reaped), reaped
    gone = bob.run("[ ! -e /tmp/h12-respawn.log ] && sleep 0.5 && [ ! -e /tmp/h12-respawn.log ]")
    assert gone.ok, "the respawner survived the reap (its log came back)"
    assert left(engine, own) == []
    bob.run(["rm", "-f", "/tmp/h12-respawn.py"])


# (exercise, a program it starts, where): the moments the issue saw strays at.
MOMENTS = [
    ("one-port-many-clients", "tcp_server.py many", ("srv",)),
    ("bind-scope", "sock_scope.py serve", ("srv",)),
    ("stream-vs-datagram", "sock_stream.py", ("srv",)),
    ("half-close", "tcpdump", ("r1", "r2")),
]


@pytest.mark.parametrize(("exercise", "program", "nodes"), MOMENTS)
def test_ctrl_c_while_an_exercise_program_runs_stops_it_and_says_so(
    engine, own, tmp_path, exercise, program, nodes
):
    args = ("run", "--name", own.name, "--artifacts", str(tmp_path), exercise)
    code, out, err = hit_while_running(engine, own, args, program, nodes, signal.SIGINT)
    assert code == 130 and "Traceback" not in err, out + err
    assert "nothing half-made" not in err and f"stopped exercise {exercise}" in err, err
    # It names what it stopped; the exercise may have stopped that program itself in the ms
    # between the watcher's look and the signal, and then it says that instead.
    assert "program(s) it left running: " in err or "no program of it was" in err, err
    assert left(engine, own) == [], err  # nothing left, without waiting for the next run
    code, out, err = proc_result(hoplab(*args))
    assert code == 0, out + err


def proc_result(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_a_crashed_cli_leaves_strays_that_status_shows_and_the_next_run_reaps(
    engine, own, tmp_path
):
    """SIGKILL, not Ctrl-C: the CLI cannot clean up. `status` names what it left, and the next
    run of the same exercise starts by reaping it and passes (no EADDRINUSE)."""
    args = ("run", "--name", own.name, "--artifacts", str(tmp_path), "one-port-many-clients")
    for _ in range(5):
        code, _, _ = hit_while_running(
            engine, own, args, "tcp_server.py many", ("srv",), signal.SIGKILL
        )
        assert code == -signal.SIGKILL
        if any("tcp_server.py many" in x for x in left(engine, own)):
            break
        # The server ended on its own between the look and the kill (its clients were done):
        # not a trial. Whatever else the killed run left goes before the next one.
        own.reap()
    else:
        pytest.fail("the killed run never left its server running, 5 times")
    code, out, err = proc_result(hoplab("status", "--name", own.name))
    assert code == 0 and "tcp_server.py many" in err and "left behind" in err, out + err
    code, out, err = proc_result(hoplab(*args))
    assert code == 0, out + err
    assert left(engine, own) == []


def test_interrupted_names_what_it_stopped():
    assert "no program of it was still running" in Interrupted([], "exercise x").summary()
    text = Interrupted([f"srv: p{i}" for i in range(10)], "exercise x").summary()
    assert "10 program(s)" in text and "srv: p7" in text and "2 more" in text
    with contextlib.suppress(KeyboardInterrupt):
        raise Interrupted([])  # still a KeyboardInterrupt for every existing handler
    assert os.environ.get("HOPLAB_RUN") is None  # the mark lives in nodes, never in our process


def test_ctrl_c_during_a_grading_stops_the_participant_program_and_says_so(engine, own):
    """Ctrl-C while the participant's server runs (as nobody): exit 130, the message names the
    grading it stopped, nothing runs on, and the next grading of the same program passes.
    In place (practice), so the program runs in this lab where the test can watch it."""
    solution = ROOT / "hoplab" / "grading" / "assignments" / "tcp-echo" / "solution.py"
    args = ("check", "tcp-echo", "--solution", str(solution), "--name", own.name, "--in-place")
    code, out, err = hit_while_running(engine, own, args, "tcp_echo.py", (), signal.SIGINT)
    assert code == 130 and "Traceback" not in err, out + err
    assert "stopped grading of tcp-echo" in err and "nothing half-made" not in err, err
    assert left(engine, own) == [], err
    code, out, err = proc_result(hoplab(*args))
    assert code == 0, out + err


def test_ctrl_c_during_a_grading_in_its_grader_lab_removes_that_lab(engine, own):
    """`hoplab check` grades in a grader lab of its own: Ctrl-C while the program runs there
    exits 130 naming the grading, and the grader lab is gone with everything in it."""
    solution = ROOT / "hoplab" / "grading" / "assignments" / "tcp-echo" / "solution.py"
    proc = hoplab("check", "tcp-echo", "--solution", str(solution), "--name", own.name)
    hit = False
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline and not hit:
        for state in engine.labs():
            if state.labels.get(L.GRADER) == own.name and state.running:
                grader = Lab.attach(engine, state.name)
                if running_in(engine, grader, ("srv",), "tcp_echo.py"):
                    proc.send_signal(signal.SIGINT)
                    hit = True
        time.sleep(0.02)
    out, err = proc.communicate(timeout=180)
    assert hit, out + err
    assert proc.returncode == 130 and "Traceback" not in err, out + err
    assert "stopped grading of tcp-echo" in err, err
    assert [s.name for s in engine.labs() if L.GRADER in s.labels] == []

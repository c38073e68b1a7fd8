"""`hoplab learn --serve`, as a learner runs it: one command, one link, the page and a terminal in
their own lab; Ctrl-C ends the serving and every terminal process with it, and the lab stays.
Bad input exits 2 and makes nothing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from hoplab.engine.engine import Engine
from hoplab.engine.terminal import MARKER
from hoplab.model import labels as L
from tests.conftest import ROOT, run_hoplab, unique_lab_name
from tests.test_portal import Term, call, open_terminal, run, ws_connect

docker = pytest.mark.docker

LINK = re.compile(r"^http://127\.0\.0\.1:(\d+)/p/#(\S+)$")


@docker
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--port", "70000"], "--port 70000"),
        (["ttl-and-traceroute"], "--serve takes no LESSON"),
        (["--step", "2"], "--serve takes no LESSON"),
        (["--name", "Not A Name!"], "--name"),
        (["-f", "no-such-file.yaml"], "no-such-file.yaml"),
    ],
)
def test_bad_input_exits_2_and_makes_nothing(engine: Engine, args: list[str], says: str) -> None:
    before = {s.name for s in engine.labs()}
    name = unique_lab_name("lsbad")
    named = args if "--name" in args else [*args, "--name", name]
    done = run_hoplab("learn", "--serve", *named, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert says in done.stderr, done.stderr
    assert "http://" not in done.stdout
    assert {s.name for s in engine.labs()} <= before


def test_port_needs_serve() -> None:
    done = run_hoplab("learn", "--port", "8000", timeout=60)
    assert done.returncode == 2 and "--port goes with --serve" in done.stderr, done.stderr


def _read_lines(stream, into: list[str]) -> None:  # noqa: ANN001 - a text pipe
    for line in stream:
        into.append(line.rstrip("\n"))


@docker
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_learn_serve_prints_one_link_serves_the_lab_and_ends_cleanly(
    engine: Engine, tmp_path: Path, stop: signal.Signals
) -> None:
    name = unique_lab_name("ls")
    env = os.environ | {"TMPDIR": str(tmp_path)}  # the token's folder is made here
    proc = subprocess.Popen(
        [sys.executable, "-m", "hoplab", "learn", "--serve", "--name", name],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=_read_lines, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_read_lines, args=(proc.stderr, err), daemon=True),
    ]
    for r in readers:
        r.start()
    try:
        deadline = time.monotonic() + 180
        while not out:
            assert proc.poll() is None, f"learn --serve ended: {err}"
            assert time.monotonic() < deadline, f"no link; stderr: {err}"
            time.sleep(0.2)
        found = LINK.match(out[0])
        assert found, out
        base, token = f"http://127.0.0.1:{found.group(1)}", found.group(2)
        state = engine.state(name)
        assert state.running
        srv = next(n for n in state.nodes if n.name == "srv")

        async def go() -> None:
            async with aiohttp.ClientSession() as s, s.get(f"{base}/p/") as page:
                assert page.status == 200
                text = await page.text()
                assert 'id="exercise"' in text and 'id="terminals"' in text
            status, me = await call(base, "GET", "/api/me", token)
            assert status == 200, me
            assert me["lab"] == name and me["participant"] == "learner"
            assert {n["name"] for n in me["nodes"]} == {n.name for n in state.nodes}
            status, listed = await call(base, "GET", "/api/exercises", token)
            assert status == 200 and len(listed) == 20
            assert (await call(base, "GET", "/api/room", token))[0] == 403  # no instructor here
            assert (await call(base, "GET", "/api/me", "x" * 43))[0] == 401
            if stop == signal.SIGTERM:  # once: a reset brings the lab back with no room's labels
                status, body = await call(base, "POST", "/api/reset", token, {"confirm": name})
                assert status == 200 and body["reset"] == name, body
                again = engine.state(name)
                assert again.running and L.WORKSHOP not in again.labels
                assert again.owner == state.owner  # as `hoplab up` labelled it
            tid = await open_terminal(base, token, "srv")
            async with (
                aiohttp.ClientSession() as s,
                ws_connect(s, base, f"/ws/terminal/{tid}", token) as ws,
            ):
                term = Term(ws)
                await term.send("sleep 4242 & hostname; echo ok-$((6*7))\r")
                await term.expect("ok-42")
                assert re.search(r"\nsrv\r\n", term.seen), term.seen

        run(go())
        srv = next(n for n in engine.state(name).nodes if n.name == "srv")  # new after a reset
        running = engine.processes(srv.container, MARKER)
        assert any("sleep 4242" in cmd for *_, cmd in running), running
        proc.send_signal(stop)
        code = proc.wait(timeout=90)
        for r in readers:
            r.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        left_state = engine.state(name)
        left = [
            (n.name, cmd)
            for n in left_state.nodes
            for _pid, _uid, mark, cmd in engine.processes(n.container, MARKER)
            if mark
        ]
        engine.down(name)
    assert code == 0, (code, err)
    links = [line for line in out if "http" in line]
    assert links == [out[0]] and len(out) == 1, out  # exactly one link, nothing else on stdout
    assert left == [], left  # no terminal process left in any node
    assert left_state.running  # the learner's lab stays up
    assert not list(tmp_path.glob("hoplab-learn-*")), "the token's folder outlived serving"
    assert not any("Traceback" in line for line in err), err

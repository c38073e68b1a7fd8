"""`hoplab learn --serve`, as a learner runs it: one command, one link, the page and a terminal in
their own lab; Ctrl-C ends the serving and every terminal process with it, and the lab stays.
Bad input exits 2 and makes nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from hoplab import lifecycle
from hoplab.engine.engine import Engine
from hoplab.engine.terminal import MARKER
from hoplab.lessons import port_opens_on_listen as POL
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
    # Only labs this command could make count: other runs share the engine and make theirs.
    could = {name, lifecycle.lab_name(None, None)}
    assert not ({s.name for s in engine.labs()} - before) & could


def test_port_needs_serve() -> None:
    done = run_hoplab("learn", "--port", "8000", timeout=60)
    assert done.returncode == 2 and "--port goes with --serve" in done.stderr, done.stderr


def _read_lines(stream, into: list[str]) -> None:  # noqa: ANN001 - a text pipe
    for line in stream:
        into.append(line.rstrip("\n"))


class Serving:
    """One `hoplab learn --serve` process, as a learner starts it, its output read as it comes."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hoplab", "learn", "--serve", "--name", name],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=_read_lines, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=_read_lines, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for r in self.readers:
            r.start()

    def link(self) -> tuple[str, str]:
        """(base URL, token) of the one link it prints."""
        deadline = time.monotonic() + 180
        while not self.out:
            assert self.proc.poll() is None, f"learn --serve ended: {self.err}"
            assert time.monotonic() < deadline, f"no link; stderr: {self.err}"
            time.sleep(0.2)
        found = LINK.match(self.out[0])
        assert found, self.out
        return f"http://127.0.0.1:{found.group(1)}", found.group(2)

    def stop(self, how: signal.Signals = signal.SIGINT) -> int:
        self.proc.send_signal(how)
        code = self.proc.wait(timeout=90)
        for r in self.readers:
            r.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@docker
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_learn_serve_prints_one_link_serves_the_lab_and_ends_cleanly(
    engine: Engine, tmp_path: Path, stop: signal.Signals
) -> None:
    name = unique_lab_name("ls")
    env = os.environ | {"TMPDIR": str(tmp_path), "HOPLAB_STATE": str(tmp_path / "state")}
    serving = Serving(name, env)  # the token's folder is made in TMPDIR
    out, err = serving.out, serving.err
    try:
        base, token = serving.link()
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
        code = serving.stop(stop)
    finally:
        serving.kill()
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


@docker
def test_lesson_progress_survives_a_restart_of_learn_serve_and_a_reset(
    engine: Engine, tmp_path: Path
) -> None:
    """A step passed in the page is there again after serving ends and starts again (a new
    link, a new token), and after a reset of the lab; it is kept in the user's state dir,
    readable by them only."""
    name = unique_lab_name("lsp")
    state_dir = tmp_path / "state"
    env = os.environ | {"TMPDIR": str(tmp_path), "HOPLAB_STATE": str(state_dir)}
    lesson = POL.LESSON.name

    async def passed(base: str, token: str) -> list[int]:
        status, listing = await call(base, "GET", "/api/lessons", token)
        assert status == 200, listing
        return next(entry["passed"] for entry in listing if entry["name"] == lesson)

    async def verify(base: str, token: str) -> dict:
        body = {"lesson": lesson, "step": 2}
        status, got = await call(base, "POST", "/api/lessons/verify", token, body)
        assert status == 200, got
        return got

    async def pass_step_2(base: str, token: str) -> None:
        status, doc = await call(base, "POST", "/api/lessons/show", token, {"lesson": lesson})
        assert status == 200, doc
        tid = await open_terminal(base, token, "srv")
        async with (
            aiohttp.ClientSession() as s,
            ws_connect(s, base, f"/ws/terminal/{tid}", token) as ws,
        ):
            term = Term(ws)
            await term.expect(r"root@srv")
            await term.send(POL.SERVER + "\r")  # as the learner types it
            deadline = time.monotonic() + 30
            while (got := await verify(base, token))["status"] != "PASS":  # socat starting
                assert time.monotonic() < deadline, got
                await asyncio.sleep(1)
        assert await passed(base, token) == [2]

    first = Serving(name, env)
    try:
        base, token = first.link()
        assert run(passed(base, token)) == []
        run(pass_step_2(base, token))
        assert first.stop() == 0, first.err
        again = Serving(name, env)
        try:
            base2, token2 = again.link()
            assert token2 != token
            assert (run(call(base2, "GET", "/api/me", token)))[0] == 401  # the old link is gone
            assert run(passed(base2, token2)) == [2]
            status, body = run(call(base2, "POST", "/api/reset", token2, {"confirm": name}))
            assert status == 200, body
            assert run(passed(base2, token2)) == [2]
            # The new nodes have no server: a verify now FAILs, and the pass stays.
            show = {"lesson": lesson, "step": 2}
            assert run(call(base2, "POST", "/api/lessons/show", token2, show))[0] == 200
            got = run(verify(base2, token2))
            assert got["status"] == "FAIL" and got["progress"] == [2], got
            assert again.stop() == 0, again.err
        finally:
            again.kill()
    finally:
        first.kill()
        engine.down(name)
    kept = list(state_dir.rglob("lessons.json"))
    assert len(kept) == 1 and name in str(kept[0]), kept
    assert stat.S_IMODE(kept[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(kept[0].parent.stat().st_mode) == 0o700

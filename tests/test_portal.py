"""The workshop portal, attacked as its threat model says: a participant is hostile to the others.

Pure tests cover tokens and links. The rest bring up a room of two labs on the real engine, serve
the portal on 127.0.0.1 (an ephemeral port, in a thread of this process) and talk to it with
aiohttp's own client: HTTP with tokens, websockets to real TTY execs in the nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from hoplab import grading
from hoplab.engine.engine import Engine
from hoplab.model import labels as L
from hoplab.model.load import load
from hoplab.portal import serve
from hoplab.portal import tokens as T
from hoplab.portal.server import Portal, make_app
from hoplab.portal.terminals import GRACE, MAX_PER_PARTICIPANT
from hoplab.runtime.lab import Lab
from hoplab.workshop import room as workshop
from tests.conftest import COMPOSE, ROOT, unique_lab_name

# --- pure: tokens and links -------------------------------------------------------------------


def test_tokens_are_long_random_hashed_and_private(tmp_path):
    store = T.Tokens(tmp_path)
    token = store.issue("alice")
    assert len(token) >= 43  # 32 bytes in URL-safe base64: 256 bits
    assert store.who(token) == T.Who("alice")
    text = store.path.read_text()
    assert token not in text and "alice" in text  # only the hash is kept
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    for bad in (None, "", token[:-1], token + "x", "x" * 5000):
        assert store.who(bad) is None
    assert T.Tokens(tmp_path).who(token) == T.Who("alice")  # another process reads it back
    assert store.revoke("alice") and store.who(token) is None


def test_state_dir_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("HOPLAB_STATE", str(tmp_path / "s"))
    folder = T.state_dir("room1")
    assert folder == tmp_path / "s" / "workshops" / "room1"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_links_survive_a_restart_and_are_revoked_or_reissued_one_by_one(tmp_path):
    first = serve.issue(T.Tokens(tmp_path), ["a1", "b2"], "http://127.0.0.1:1")
    assert first.instructor and first.instructor.startswith("http://127.0.0.1:1/i/#")
    assert set(first.participants) == {"a1", "b2"}
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    rows = first.path.read_text().splitlines()
    assert rows[0] == "participant,url" and len(rows) == 3
    # A restart (another port, a fresh store object) keeps every link and prints no instructor.
    again = serve.issue(T.Tokens(tmp_path), ["a1", "b2"], "http://127.0.0.1:2")
    assert again.instructor is None
    token = {p: u.split("#")[1] for p, u in first.participants.items()}
    assert {p: u.split("#")[1] for p, u in again.participants.items()} == token
    store = T.Tokens(tmp_path)
    after = serve.issue(store, ["a1", "b2"], "http://h", reissue=("a1",), revoke=("b2",))
    assert store.who(token["a1"]) is None and store.who(token["b2"]) is None
    assert set(after.participants) == {"a1"}
    assert store.who(after.participants["a1"].split("#")[1]) == T.Who("a1")
    with pytest.raises(Exception, match="no participant 'zz'"):
        serve.issue(store, ["a1"], "http://h", revoke=("zz",))


# --- the portal on the real engine --------------------------------------------------------------

docker = pytest.mark.docker


@dataclass
class Served:
    """A portal serving a room from a thread of this process."""

    portal: Portal
    base: str
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    stop: asyncio.Event

    def close(self) -> None:
        """As serve's exit: the web app stops, then its workers and grader labs (serve.stop), so
        no check still queued brings a grader lab up after the room is gone."""
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop.set)
            self.thread.join(30)
        serve.stop(self.portal)


def start_portal(engine: Engine, room: str, folder: Path) -> Served:
    portal = serve.build(engine, room, folder)
    ready = threading.Event()
    box: dict = {}

    def main() -> None:
        async def body() -> None:
            runner = aiohttp.web.AppRunner(make_app(portal), access_log=None)
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            box["base"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
            box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            try:
                await box["stop"].wait()
            finally:
                await runner.cleanup()

        asyncio.run(body())

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(30), "the portal did not start"
    return Served(portal, box["base"], box["loop"], thread, box["stop"])


@dataclass
class Room:
    name: str
    labs: dict[str, Lab]  # participant -> lab
    folder: Path
    served: Served
    tokens: dict[str, str]  # participant (or "instructor") -> token


@contextlib.contextmanager
def served_room(engine: Engine, folder: Path, prefix: str, count: int) -> Iterator[Room]:
    """A room of `count` default labs served by a portal, its links issued; all gone after."""
    name = unique_lab_name(prefix)
    seats = workshop.Room(name, workshop.numbered_seats(count, f"{name}-"))
    served = None
    try:
        report = workshop.up(engine, load(COMPOSE), seats)
        assert len(report.up) == count, report
        served = start_portal(engine, name, folder)
        links = serve.issue(served.portal.tokens, [s.participant for s in seats.seats], served.base)
        tokens = {p: u.split("#", 1)[1] for p, u in links.participants.items()}
        tokens["instructor"] = links.instructor.split("#", 1)[1]
        labs = {s.participant: Lab.attach(engine, s.lab) for s in seats.seats}
        yield Room(name, labs, folder, served, tokens)
    finally:
        try:
            if served:
                served.close()
        finally:  # the room goes even when stopping the portal failed
            workshop.down(engine, name)
        assert workshop.room_labs(engine, name) == []
        assert engine.labs_labelled(L.GRADER, name) == []  # the grader labs went with it


@pytest.fixture(scope="module")
def room(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    with served_room(engine, tmp_path_factory.mktemp("portal-state"), "pt", 2) as served:
        yield served


def run(coro):  # noqa: ANN001, ANN201 - a tiny bridge from sync tests to the async client
    return asyncio.run(coro)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    base: str, method: str, path: str, token: str | None = None, body=None, **kw
) -> tuple[int, object]:
    headers = auth(token) if token else {}
    headers.update(kw.pop("headers", {}))
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, base + path, json=body, headers=headers, **kw) as r,
    ):
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


class Term:
    """One websocket to a terminal: send keys, read until a pattern shows up."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.seen = ws, ""

    async def send(self, keys: str) -> None:
        await self.ws.send_str(json.dumps({"i": keys}))

    async def expect(self, pattern: str, timeout: float = 15) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.seen)
            if found:
                return found
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} never came; saw {self.seen[-500:]!r}"
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"websocket ended ({msg.type}); saw {self.seen[-500:]!r}")
            body = json.loads(msg.data)
            self.seen += body.get("o", "") + body.get("bye", "")


def ws_connect(session: aiohttp.ClientSession, base: str, path: str, token: str, **kw):  # noqa: ANN201
    return session.ws_connect(
        base.replace("http", "ws", 1) + path, protocols=("hoplab", f"tok.{token}"), **kw
    )


async def open_terminal(base: str, token: str, node: str) -> str:
    status, body = await call(base, "POST", "/api/terminals", token, {"node": node})
    assert status == 201, body
    return body["id"]


@docker
def test_a_terminal_runs_in_the_participants_own_node(room):
    a, b = sorted(room.labs)
    base = room.served.base

    async def go() -> None:
        tid = await open_terminal(base, room.tokens[a], "srv")
        async with (
            aiohttp.ClientSession() as s,
            ws_connect(s, base, f"/ws/terminal/{tid}", room.tokens[a]) as ws,
        ):
            term = Term(ws)
            await term.send("hostname; hostname -I; echo done-$((6*7))\r")
            await term.expect("done-42")
            # Both labs call the node srv: its addresses tell whose container answered.
            assert re.search(r"\rsrv\r\n", term.seen), term.seen
            assert room.labs[a].address("srv", "lan2") in term.seen
            assert room.labs[b].address("srv", "lan2") not in term.seen
            # The page's size reaches the TTY: the server resizes before it reads the next keys.
            await ws.send_str(json.dumps({"r": [37, 111]}))
            await term.send("stty size\r")
            await term.expect(r"[\r\n]37 111\r\n")
        status, _ = await call(base, "DELETE", f"/api/terminals/{tid}", room.tokens[a])
        assert status == 200

    run(go())


@docker
def test_a_reload_reattaches_and_closing_kills_what_the_terminal_started(room):
    a = sorted(room.labs)[0]
    base, token = room.served.base, room.tokens[a]
    node = room.labs[a].node("carol")

    async def go() -> None:
        tid = await open_terminal(base, token, "carol")
        async with aiohttp.ClientSession() as s:
            async with ws_connect(s, base, f"/ws/terminal/{tid}", token) as ws:
                term = Term(ws)
                await term.send("export MARK=kept-$((40+2)); sleep 1001 & setsid sleep 1002 &\r")
                await term.send("echo started\r")
                await term.expect("started\r?\n")
            await asyncio.sleep(1)  # the page is gone; the terminal waits for it
            async with ws_connect(s, base, f"/ws/terminal/{tid}", token) as ws:
                term = Term(ws)
                await term.expect("started")  # replayed scrollback
                await term.send("echo $MARK\r")
                await term.expect("kept-42")  # the same shell, its variable still set
        assert "sleep 1001" in node.run(["ps", "-eo", "args"]).out
        status, _ = await call(base, "DELETE", f"/api/terminals/{tid}", token)
        assert status == 200

    run(go())
    left = node.run(["ps", "-eo", "args"]).out
    assert "sleep 1001" not in left and "sleep 1002" not in left, left
    assert GRACE >= 60


def host_view(engine: Engine, container: str) -> str:
    """The node's command lines as the host sees them (docker top): no exec into the node."""
    rows = engine.api.top(container, ps_args="-o pid,args")["Processes"] or []
    return "\n".join(r[1] for r in rows)


# Each leaves the terminal's session and marker: setsid -f with env -i, a double fork whose middle
# process exits (setsid, env -i), nohup with env -i and disown.
ESCAPES = (
    "setsid -f env -i sleep {0}1; (setsid sh -c 'env -i sleep {0}2 &' &); "
    "nohup env -i sleep {0}3 >/dev/null 2>&1 & disown; sleep 0.3; echo es$((1))caped\r"
)


@docker
def test_processes_that_escape_a_terminals_marker_and_session_end_with_it(room, engine):
    b = sorted(room.labs)[1]
    base, token = room.served.base, room.tokens[b]
    node = room.labs[b].node("carol")

    async def escape(tid: str, tag: int, then: str = "") -> None:
        async with (
            aiohttp.ClientSession() as s,
            ws_connect(s, base, f"/ws/terminal/{tid}", token) as ws,
        ):
            term = Term(ws)
            await term.send(ESCAPES.format(tag))
            await term.expect("es1caped\r?\n")
            if then:
                await term.send(then)
                await asyncio.sleep(1)

    async def go() -> None:
        # closed from the page
        tid = await open_terminal(base, token, "carol")
        await escape(tid, 770)
        before = host_view(engine, node.container)
        assert all(f"sleep 770{i}" in before for i in (1, 2, 3)), before
        status, _ = await call(base, "DELETE", f"/api/terminals/{tid}", token)
        assert status == 200
        # the shell exits by itself: its keeper kills what is left below it
        tid = await open_terminal(base, token, "carol")
        await escape(tid, 880, then="exit\r")

    run(go())
    deadline = time.monotonic() + 10
    while True:
        left = host_view(engine, node.container)
        if not re.search(r"sleep (770|880)\d", left) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not re.search(r"sleep (770|880)\d", left), left


@docker
def test_hostile_json_gets_a_400_with_the_headers_and_no_traceback(room, caplog):
    a = sorted(room.labs)[0]
    base, token = room.served.base, room.tokens[a]
    deep = "[" * 100_000 + "]" * 100_000

    async def go() -> list[tuple[int, dict]]:
        got = []
        async with aiohttp.ClientSession() as s:
            for path in ("/api/check", "/api/terminals", "/api/reset"):
                headers = {**auth(token), "Content-Type": "application/json"}
                async with s.post(base + path, data=deep, headers=headers) as r:
                    got.append((r.status, dict(r.headers), await r.text()))
            async with s.get(base + "/no/such/page") as r:
                got.append((r.status, dict(r.headers), await r.text()))
        return got

    with caplog.at_level("DEBUG"):
        answers = run(go())
    for status, _headers, text in answers[:3]:
        assert status == 400 and "nested too deeply" in text, (status, text)
    assert answers[3][0] == 404
    for _, headers, text in answers:
        assert "default-src 'none'" in headers["Content-Security-Policy"], headers
        assert headers["X-Content-Type-Options"] == "nosniff" and "Traceback" not in text
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]


@docker
def test_the_topology_drawing_runs_dot_once_per_lab_version_and_is_rate_limited(room, monkeypatch):
    from hoplab.draw import graph
    from hoplab.portal.drawings import PER_WINDOW, Drawings

    a = sorted(room.labs)[0]
    base, token = room.served.base, room.tokens[a]
    renders = []
    real = graph.render

    def counted(*args, **kw):  # noqa: ANN002, ANN003, ANN202 - a spy on Graphviz's runs
        renders.append(time.monotonic())
        return real(*args, **kw)

    monkeypatch.setattr(graph, "render", counted)
    room.served.portal.drawings = Drawings()  # nothing kept from earlier tests

    async def go() -> list[tuple[int, str]]:
        async with aiohttp.ClientSession() as s:

            async def one() -> tuple[int, str]:
                async with s.get(base + "/api/topology.svg", headers=auth(token)) as r:
                    return r.status, await r.text()

            first = await asyncio.gather(*(one() for _ in range(48)))
            rest = await asyncio.gather(*(one() for _ in range(PER_WINDOW - 48 + 4)))
            return [*first, *rest]

    answers = run(go())
    first, rest = answers[:48], answers[48:]
    assert {status for status, _ in first} == {200} and len({t for _, t in first}) == 1
    assert first[0][1].lstrip().startswith(("<?xml", "<svg"))
    assert len(renders) == 1, renders  # 48 requests in flight, one drawing
    assert [status for status, _ in rest].count(429) == 4, [status for status, _ in rest]


@docker
def test_an_abandoned_terminal_is_ended_after_the_grace_period(room):
    a = sorted(room.labs)[0]
    base, token = room.served.base, room.tokens[a]
    terminals = room.served.portal.terminals
    node = room.labs[a].node("dave")

    async def go() -> str:
        tid = await open_terminal(base, token, "dave")
        async with (
            aiohttp.ClientSession() as s,
            ws_connect(s, base, f"/ws/terminal/{tid}", token) as ws,
        ):
            term = Term(ws)
            await term.send("sleep 1003 & echo bg\r")
            await term.expect("bg\r?\n")
        return tid

    saved = terminals.grace
    terminals.grace = 0.5
    try:
        tid = run(go())
        deadline = time.monotonic() + 20
        while terminals.get(a, tid) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        terminals.grace = saved
    assert terminals.get(a, tid) is None
    deadline = time.monotonic() + 5
    while "sleep 1003" in node.run(["ps", "-eo", "args"]).out:
        assert time.monotonic() < deadline, "the abandoned terminal's process lives on"
        time.sleep(0.2)


@docker
def test_a_participant_reaches_nothing_of_another_or_of_the_instructor(room):
    a, b = sorted(room.labs)
    base = room.served.base
    ta, tb = room.tokens[a], room.tokens[b]

    async def go() -> None:
        tid_b = await open_terminal(base, tb, "srv")
        try:
            # B's terminal id with A's token: not found, by any route.
            assert (await call(base, "DELETE", f"/api/terminals/{tid_b}", ta))[0] == 404
            async with aiohttp.ClientSession() as s:
                for path in (f"/ws/terminal/{tid_b}", f"/ws/watch/{b}/{tid_b}"):
                    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                        async with ws_connect(s, base, path, ta):
                            pass
                    assert info.value.status in (403, 404), path
            # Node names are looked up in A's own lab only: B's containers are no names of A's.
            other = [
                room.labs[b].state_node("srv").container,
                f"{b}/srv",
                "../srv",
                "srv/..",
                "",
                5,
            ]
            for node in other:
                status, _ = await call(base, "POST", "/api/terminals", ta, {"node": node})
                assert status == 404, node
            # The instructor's routes.
            for method, path in (
                ("GET", "/api/room"),
                ("GET", "/api/room/grades.csv"),
                ("GET", "/api/room/results.json"),
                ("POST", f"/api/room/{b}/reset"),
            ):
                status, _ = await call(base, method, path, ta, {} if method == "POST" else None)
                assert status == 403, path
            # What A sees of itself names only A's lab.
            status, me = await call(base, "GET", "/api/me", ta)
            assert status == 200 and me["lab"] == room.labs[a].name
            assert {t["id"] for t in me["terminals"]}.isdisjoint({tid_b})
            assert room.labs[b].name not in json.dumps(me)
            # The instructor has no lab and cannot type into anyone's terminal.
            ti = room.tokens["instructor"]
            assert (await call(base, "POST", "/api/terminals", ti, {"node": "srv"}))[0] == 403
            async with (
                aiohttp.ClientSession() as s,
                ws_connect(s, base, f"/ws/watch/{b}/{tid_b}", ti) as ws,
            ):
                await ws.send_str(json.dumps({"i": "touch /tmp/instructor-typed\r"}))
                await asyncio.sleep(1)
            assert not room.labs[b].node("srv").run(["test", "-e", "/tmp/instructor-typed"]).ok
        finally:
            await call(base, "DELETE", f"/api/terminals/{tid_b}", tb)

    run(go())


@docker
def test_no_wrong_or_revoked_token_gets_in(room):
    base = room.served.base
    a = sorted(room.labs)[0]

    async def go() -> None:
        for token in (None, "", "nope", room.tokens[a][:-2] + "xx"):
            for method, path in (("GET", "/api/me"), ("GET", "/api/room"), ("POST", "/api/check")):
                status, _ = await call(base, method, path, token, {} if method == "POST" else None)
                assert status in (401, 403), (token, path)
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                async with ws_connect(s, base, "/ws/terminal/x", "nope"):
                    pass
            assert info.value.status == 401
        # Revoked by another process (the CLI's --revoke --issue-only): new requests are refused
        # at once, and an open terminal websocket is closed by the reaper (every 5 s).
        tid = await open_terminal(base, room.tokens[a], "bob")
        try:
            async with (
                aiohttp.ClientSession() as s,
                ws_connect(s, base, f"/ws/terminal/{tid}", room.tokens[a]) as ws,
            ):
                term = Term(ws)
                await term.expect(r"root@bob")
                T.Tokens(room.folder).revoke(a)
                try:
                    assert (await call(base, "GET", "/api/me", room.tokens[a]))[0] == 401
                    await term.expect("your link was revoked", timeout=12)
                finally:
                    room.tokens[a] = T.Tokens(room.folder).issue(a)
        finally:
            await call(base, "DELETE", f"/api/terminals/{tid}", room.tokens[a])
        assert (await call(base, "GET", "/api/me", room.tokens[a]))[0] == 200

    run(go())


@docker
def test_csrf_origin_traversal_limits_and_headers(room):
    base = room.served.base
    a = sorted(room.labs)[0]
    token = room.tokens[a]

    async def go() -> None:
        evil = {"Origin": "http://evil.example"}
        # A page of another origin: no websocket, no state change, even with a stolen token.
        tid = await open_terminal(base, token, "alice")
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                async with ws_connect(s, base, f"/ws/terminal/{tid}", token, headers=evil):
                    pass
            assert info.value.status == 403
        status, _ = await call(base, "POST", "/api/terminals", token, {"node": "srv"}, headers=evil)
        assert status == 403
        # A form post (no JSON type) is refused: only scripts of this origin can send JSON here.
        status, _ = await call(
            base,
            "POST",
            "/api/reset",
            token,
            data="confirm=x",
            headers={"Content-Type": "text/plain"},
        )
        assert status == 415
        # Files are an allow-list: no path from the request reaches the disk.
        for path in (
            "/static/../server.py",
            "/static/%2e%2e/server.py",
            "/static/..%2fserver.py",
            "/static/tokens.json",
            "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
        ):
            status, body = await call(base, "GET", path)
            assert status == 404, path
            assert "def " not in str(body)
        status, page = await call(base, "GET", "/p/")
        assert status == 200 and "<script src=" in page and "<script>" not in page
        async with aiohttp.ClientSession() as s, s.get(base + "/p/") as r:
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Frame-Options"] == "DENY"
        for name in ("xterm.min.js", "xterm-addon-fit.min.js", "xterm.min.css", "portal.js"):
            assert (await call(base, "GET", f"/static/{name}"))[0] == 200, name
        # An oversized upload is refused before it is read whole.
        big = {"assignment": "tcp-echo", "source": "#" * (400 * 1024)}
        status, _ = await call(base, "POST", "/api/check", token, big)
        assert status == 413
        # Per-participant terminal limit.
        extra = [tid]
        try:
            while len(extra) < MAX_PER_PARTICIPANT:
                extra.append(await open_terminal(base, token, "alice"))
            status, body = await call(base, "POST", "/api/terminals", token, {"node": "alice"})
            assert status == 429, body
        finally:
            for t in extra:
                await call(base, "DELETE", f"/api/terminals/{t}", token)

    run(go())


async def wait_check(base: str, token: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, run_ = await call(base, "GET", "/api/check", token)
        assert status == 200
        if run_ and run_["state"] == "done":
            return run_
        await asyncio.sleep(0.5)
    raise AssertionError("the check never finished")


ASSIGNMENT = "udp-service"


@docker
def test_a_check_gives_the_same_grade_as_hoplab_check_and_is_rate_limited(room, tmp_path, engine):
    """The check button grades in a grader lab of the room, never in the participant's own
    lab: a sitecustomize implant that root planted there logs every python3 it sees, and it
    sees none of the grader's. The grader lab stays warm for the next check."""
    a = sorted(room.labs)[0]
    base, token = room.served.base, room.tokens[a]
    assignment = grading.select(ASSIGNMENT)
    source = assignment.solution.read_text()
    srv = room.labs[a].node("srv")
    implant = "import sys\nopen('/tmp/implant.log', 'a').write(' '.join(sys.argv) + '\\n')\n"
    srv.copy_in(implant.encode(), "/etc/python3.11/sitecustomize.py", mode=0o644)

    async def go() -> dict:
        status, started = await call(
            base, "POST", "/api/check", token, {"assignment": ASSIGNMENT, "source": source}
        )
        assert status == 202, started
        status, again = await call(
            base, "POST", "/api/check", token, {"assignment": ASSIGNMENT, "source": source}
        )
        assert status == 429, again  # one run at a time per participant
        status, bad = await call(
            base, "POST", "/api/check", token, {"assignment": "../etc", "source": source}
        )
        assert status in (400, 429), bad
        return await wait_check(base, token)

    done = run(go())
    assert "error" not in done, done
    assert not srv.run(["test", "-e", "/tmp/implant.log"]).ok  # no grader python ran here
    srv.run(["rm", "-f", "/etc/python3.11/sitecustomize.py"])
    graders = engine.labs_labelled(L.GRADER, room.name)
    assert len(graders) == 1 and graders[0] not in {lab.name for lab in room.labs.values()}
    portal = done["result"]
    solution = tmp_path / assignment.program
    solution.write_text(source)
    results = tmp_path / "results.json"
    cli = subprocess.run(
        [sys.executable, "-m", "hoplab", "check", ASSIGNMENT, "--solution", str(solution)]
        + ["--name", room.labs[a].name, "--results", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    expected = json.loads(results.read_text())
    assert portal["ok"] and portal["passed"] == portal["total"] == len(assignment.checks)
    assert portal["gradescope"]["score"] == expected["score"]
    assert [(t["name"], t["status"]) for t in portal["gradescope"]["tests"]] == [
        (t["name"], t["status"]) for t in expected["tests"]
    ]
    # The instructor's grid and exports show it.
    ti = room.tokens["instructor"]
    status, grid = run(call(base, "GET", "/api/room", ti))
    row = next(r for r in grid["participants"] if r["participant"] == a)
    assert row["grades"][ASSIGNMENT]["passed"] == len(assignment.checks)
    assert row["running"] == row["nodes"] == 7
    status, text = run(call(base, "GET", "/api/room/grades.csv", ti))
    assert status == 200 and f"{a}," in text and f"{len(assignment.checks)}/" in text
    status, results_json = run(call(base, "GET", "/api/room/results.json", ti))
    assert results_json[a][ASSIGNMENT]["score"] == expected["score"]


@docker
def test_reset_rebuilds_only_the_participants_own_lab(room, engine):
    a, b = sorted(room.labs)
    base, token = room.served.base, room.tokens[a]

    def ids(lab: str) -> set[str]:
        return {
            c["Id"]
            for c in engine.api.containers(all=True, filters={"label": [f"hoplab.lab={lab}"]})
        }

    before_a, before_b = ids(room.labs[a].name), ids(room.labs[b].name)
    status, body = run(call(base, "POST", "/api/reset", token, {"confirm": "yes"}))
    assert status == 400, body  # the confirmation must name the lab
    status, body = run(call(base, "POST", "/api/reset", token, {"confirm": room.labs[a].name}))
    assert status == 200, body
    after_a = ids(room.labs[a].name)
    assert len(after_a) == 7 and not after_a & before_a
    assert ids(room.labs[b].name) == before_b
    state = engine.state(room.labs[a].name)
    assert state.running and state.owner == a and state.labels["hoplab.workshop"] == room.name
    status, _ = run(call(base, "POST", "/api/reset", token, {"confirm": room.labs[a].name}))
    assert status == 429  # one reset every RESET_INTERVAL seconds
    room.labs[a] = Lab.attach(engine, room.labs[a].name)


@docker
def test_tokens_survive_a_restart_of_the_portal(room, engine):
    a = sorted(room.labs)[0]
    again = start_portal(engine, room.name, room.folder)
    try:
        status, me = run(call(again.base, "GET", "/api/me", room.tokens[a]))
        assert status == 200 and me["participant"] == a
        status, _ = run(call(again.base, "GET", "/api/room", room.tokens["instructor"]))
        assert status == 200
    finally:
        again.close()


@docker
def test_serve_on_the_command_line_prints_the_instructor_link_once(room, tmp_path):
    env = dict(os.environ, HOPLAB_STATE=str(tmp_path / "state"))
    links = tmp_path / "links.csv"
    cmd = [sys.executable, "-m", "hoplab", "workshop", "serve", "--workshop", room.name]
    cmd += ["--port", "0", "--links", str(links)]
    first = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = first.stdout.readline()
        assert line.startswith("instructor: http://127.0.0.1:") and "/i/#" in line, line
        deadline = time.monotonic() + 30
        while not links.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert stat.S_IMODE(links.stat().st_mode) == 0o600
    rows = links.read_text().splitlines()
    assert rows[0] == "participant,url" and len(rows) == 3
    second = subprocess.run(
        cmd + ["--issue-only"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 0, second.stderr
    assert "instructor:" not in second.stdout and "shown when issued" in second.stderr

    def tokens(lines: list[str]) -> list[str]:
        return [line.rsplit("#", 1)[1] for line in lines[1:]]

    assert tokens(links.read_text().splitlines()) == tokens(rows)  # the same links as before
    bad = subprocess.run(
        cmd + ["--port", "70000"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--port" in bad.stderr


# --- a real browser ---------------------------------------------------------------------------

# Chromium talks only to loopback: every other host resolves to nothing and goes to a dead proxy,
# and its background services (updates, metrics, sync) are off.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # root in CI; the page is our own
    "--window-size=1400,1700",
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--no-first-run",
    "--no-pings",
    "--dns-prefetch-disable",
]


def shots_dir(tmp_path: Path) -> Path:
    """Screenshots go to tmp_path; HOPLAB_SCREENSHOTS=docs refreshes the README's pictures.

    A test run never dirties the checkout unless asked to."""
    where = os.environ.get("HOPLAB_SCREENSHOTS")
    return (ROOT / where) if where else tmp_path


def chromium():  # noqa: ANN201 - selenium's driver type
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    # An explicit driver path: selenium's manager would otherwise look for one on the internet.
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


@docker
def test_a_browser_opens_a_link_types_into_a_terminal_and_checks(room, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    a = sorted(room.labs)[0]
    lab = Lab.attach(room.served.portal.engine, room.labs[a].name)
    assignment = grading.select(ASSIGNMENT)
    solution = tmp_path / assignment.program
    solution.write_text(assignment.solution.read_text())
    driver = chromium()
    try:
        driver.get(f"{room.served.base}/p/#{room.tokens[a]}")
        wait = WebDriverWait(driver, 30)
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "ready"))
        Select(driver.find_element(By.ID, "node")).select_by_value("srv")
        driver.find_element(By.ID, "open").click()
        rows = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".xterm-rows")))
        wait.until(lambda d: "root@srv" in rows.text)
        driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys(
            "hostname; hostname -I\n"
        )
        address = lab.address("srv", "lan2")
        wait.until(lambda d: address in rows.text)
        assert "\nsrv\n" in rows.text, rows.text
        Select(driver.find_element(By.ID, "assignment")).select_by_value(ASSIGNMENT)
        driver.find_element(By.ID, "upload").send_keys(str(solution))
        wait.until(lambda d: "def " in d.find_element(By.ID, "source").get_attribute("value"))
        time.sleep(5)  # the check test before may have just run: one check per 5 s
        driver.find_element(By.ID, "check").click()  # clears the last result before it returns
        assert not driver.find_elements(By.ID, "verdict")
        verdict = WebDriverWait(driver, 240).until(
            ec.presence_of_element_located((By.ID, "verdict"))
        )
        assert "PASS" in verdict.get_attribute("class"), verdict.text
        assert f"{len(assignment.checks)}/{len(assignment.checks)} checks passed" in verdict.text
        assert len(driver.find_elements(By.CSS_SELECTOR, "#checks tbody tr.PASS")) == len(
            assignment.checks
        )
        shots = shots_dir(tmp_path)
        shots.mkdir(exist_ok=True)
        driver.set_window_size(1400, 2900)  # the whole page: lab, terminal, lesson and result
        driver.save_screenshot(str(shots / "portal.png"))
        driver.set_window_size(1400, 1100)
        # The instructor's page: the grid shows the grade, and the terminal can be watched.
        driver.get(f"{room.served.base}/i/#{room.tokens['instructor']}")
        wait.until(ec.text_to_be_present_in_element((By.ID, "grid"), a))
        wait.until(ec.text_to_be_present_in_element((By.ID, "grid"), f"{len(assignment.checks)}/"))
        driver.find_element(By.XPATH, "//button[text()='watch srv']").click()
        watched = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".xterm-rows")))
        wait.until(lambda d: address in watched.text)
        driver.save_screenshot(str(shots / "portal-instructor.png"))
    finally:
        driver.quit()


@docker
def test_serve_for_a_room_without_labs_is_bad_input_and_creates_nothing(engine, tmp_path):
    env = dict(os.environ, HOPLAB_STATE=str(tmp_path / "state"))
    cmd = [sys.executable, "-m", "hoplab", "workshop", "serve", "--workshop", unique_lab_name("nr")]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert "has no labs" in res.stderr and "hoplab workshop up" in res.stderr
    assert not (tmp_path / "state").exists()
    bad = subprocess.run(
        [*cmd, "--url", "ftp://x"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "--url" in bad.stderr

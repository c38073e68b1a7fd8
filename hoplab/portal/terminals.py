"""Browser terminals: a TTY exec in a node, pumped to websockets, alive across page reloads.

A terminal is kept server-side, keyed by (participant, terminal id), so a reload reattaches to the
same shell and replays what it printed lately. A terminal nobody writes to for GRACE seconds, or
closed by its participant, or whose shell exits, is ended: everything it started in the node is
killed (hoplab.engine.terminal.kill_tree), because Docker itself cannot kill an exec.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import secrets
import socket
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from hoplab.engine import terminal as tty
from hoplab.engine.interface import EngineAPI
from hoplab.portal.lanes import Lanes
from hoplab.portal.messages import objects

GRACE = 90.0  # seconds a detached terminal waits for its page to come back (at least 60)
MAX_PER_PARTICIPANT = 4  # one participant cannot starve the room of execs
SCROLLBACK = 64 * 1024  # characters replayed on reattach
MAX_INPUT = 16 * 1024  # characters per input message: a paste, not a file upload
SHELL = ["sh", "-c", "command -v bash >/dev/null && exec bash -l; exec sh -l"]
SEND_S = 5.0  # seconds a page may take no output before it is cut off (a stalled tab)
# Bytes a second of output per terminal: far more than anyone reads, and what a browser terminal
# draws with ease. Above it the pump waits, so `yes` blocks in the node instead of spending the
# portal's one event loop (shared by the room) on encoding its output.
OUTPUT_RATE = 256 * 1024


async def _send(ws: web.WebSocketResponse, text: str) -> bool:
    """One message to one page; whether it went. A page that reads nothing (a stalled tab, a
    hostile client) holds its sender once the socket's buffers are full, and with it the
    terminal's output and close: so after SEND_S it is cut off (a reload reattaches, with the
    scrollback)."""
    if ws.closed:
        return False
    try:
        await asyncio.wait_for(ws.send_str(text), SEND_S)
        return True
    except TimeoutError:
        _cut(ws)
    except (ConnectionError, RuntimeError):
        pass
    return False


def _cut(ws: web.WebSocketResponse) -> None:
    """Shut the page's connection down under it: a send blocked on it fails at once, where
    closing the transport would wait for buffers that the page never reads."""
    sock = ws.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


async def _let_go(ws: web.WebSocketResponse, why: str) -> None:
    """Tell the page why, then close its websocket; a page that does not take it is cut off.

    The close waits for the page's own handler to see it; when the page's connection goes
    meanwhile, aiohttp cancels that wait. That ends only this page's close, not the caller's
    (a DELETE that would otherwise fail half done, and be retried by the browser into a 404).
    """
    if not await _send(ws, json.dumps({"bye": why})):
        return  # gone already, or cut off
    try:
        await asyncio.wait_for(ws.close(), SEND_S)
    except TimeoutError:
        _cut(ws)
    except (ConnectionError, RuntimeError):
        pass
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the caller itself is being cancelled


class TerminalLimit(Exception):
    """The participant has MAX_PER_PARTICIPANT terminals open already."""


@dataclass(eq=False)
class Terminal:
    id: str
    participant: str
    lab: str
    node: str
    container: str
    engine: EngineAPI | None = None  # the lab's engine (the room may span engines)
    exec_id: str = ""
    pid: int = 0  # the shell's pid on the engine's host (exec_inspect), for the record
    sock: socket.socket | None = None
    created: float = field(default_factory=time.time)
    last_input: float = field(default_factory=time.time)
    scrollback: str = ""
    writer: web.WebSocketResponse | None = None
    watchers: set[web.WebSocketResponse] = field(default_factory=set)
    detached_at: float | None = field(default_factory=time.monotonic)
    ended: bool = False

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node,
            "created": self.created,
            "attached": self.writer is not None,
            "ended": self.ended,
        }


class Terminals:
    """Every open terminal of the room; all Docker work runs on `workers`, never on the loop."""

    def __init__(
        self,
        engine: EngineAPI,
        workers: Executor,
        *,
        grace: float = GRACE,
        limit: int = MAX_PER_PARTICIPANT,
        on_activity: Callable[[str], None] = lambda p: None,
        valid: Callable[[str], bool] = lambda token: True,
    ) -> None:
        self.engine, self.workers, self.grace, self.limit = engine, workers, grace, limit
        self.lanes = Lanes(workers)  # the portal's other Docker calls share these lanes
        self.on_activity = on_activity
        self.valid = valid  # is the token a websocket was opened with still good?
        self._tokens: dict[web.WebSocketResponse, str] = {}
        self._open: dict[tuple[str, str], Terminal] = {}
        self._tasks: set[asyncio.Task] = set()

    async def _io(self, term: Terminal, fn: Callable, *args: Any) -> Any:
        """fn on the workers, in the lane of the terminal's participant."""
        return await self.lanes.run(term.participant, fn, *args)

    def _on(self, term: Terminal) -> EngineAPI:
        return term.engine or self.engine

    def of(self, participant: str) -> list[Terminal]:
        return [t for (p, _), t in self._open.items() if p == participant]

    def get(self, participant: str, tid: str) -> Terminal | None:
        """Only the participant's own terminal: another's id is simply not found."""
        return self._open.get((participant, tid))

    async def open(
        self, participant: str, lab: str, node: str, container: str, engine: EngineAPI | None = None
    ) -> Terminal:
        """A shell in the container, on the lab's own engine (default: the portal's first)."""
        if len(self.of(participant)) >= self.limit:
            raise TerminalLimit(f"{self.limit} terminals are open already: close one first")
        on = engine or self.engine
        term = Terminal(secrets.token_urlsafe(9), participant, lab, node, container, on)
        self._open[(participant, term.id)] = term  # counted at once: parallel opens hit the limit
        try:
            env = {"TERM": "xterm-256color", tty.MARKER: term.id}
            term.exec_id, term.sock, term.pid = await self._io(
                term, on.open_tty, container, tty.kept(SHELL), env
            )
        except BaseException:
            self._open.pop((participant, term.id), None)
            raise
        term.sock.setblocking(False)
        self._spawn(self._pump(term))
        return term

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self, term: Terminal) -> None:
        """Node to browsers: every attached page (and instructor view) gets the same text."""
        loop = asyncio.get_running_loop()
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        assert term.sock is not None, "open() sets the socket before it starts the pump"
        free_at = loop.time()  # when the output sent so far has been paid for at OUTPUT_RATE
        try:
            while True:
                data = await loop.sock_recv(term.sock, 65536)
                if not data:
                    break
                text = decode(data)
                term.scrollback = (term.scrollback + text)[-SCROLLBACK:]
                for ws in [term.writer, *term.watchers]:
                    if ws is not None:
                        await _send(ws, json.dumps({"o": text}))
                free_at = max(free_at, loop.time()) + len(data) / OUTPUT_RATE
                if free_at - loop.time() > 0.05:  # a flood: wait before reading more
                    await asyncio.sleep(free_at - loop.time())
        except OSError:
            pass
        await self.close(term, "the shell exited")

    async def attach(
        self, term: Terminal, ws: web.WebSocketResponse, readonly: bool, token: str = ""
    ) -> None:
        """Serve one websocket until it closes: replay, then input and resizes (unless readonly).

        One page writes at a time: a reload (or a second tab) takes the terminal over and the
        older page is told so. Watchers (the instructor) only read.
        """
        self._tokens[ws] = token
        await _send(ws, json.dumps({"o": term.scrollback, "replay": True}))
        if readonly:
            term.watchers.add(ws)
        else:
            old, term.writer, term.detached_at = term.writer, ws, None
            if old is not None:
                await _let_go(old, "attached in another page")
        loop = asyncio.get_running_loop()
        try:
            async for body in objects(ws):
                if readonly or term.ended or term.writer is not ws:
                    continue
                data = body.get("i")
                if isinstance(data, str) and 0 < len(data) <= MAX_INPUT:
                    term.last_input = time.time()
                    self.on_activity(term.participant)
                    with contextlib.suppress(OSError):
                        if term.sock is not None:
                            await loop.sock_sendall(term.sock, data.encode())
                size = body.get("r")
                if (
                    isinstance(size, list)
                    and len(size) == 2
                    and all(isinstance(v, int) and 1 <= v <= 1000 for v in size)
                ):
                    await self._io(term, self._on(term).resize_tty, term.exec_id, size[0], size[1])
        finally:
            self._tokens.pop(ws, None)
            term.watchers.discard(ws)
            if term.writer is ws:
                term.writer, term.detached_at = None, time.monotonic()

    async def close(self, term: Terminal, why: str = "closed") -> None:
        """End the terminal and kill everything it started in the node; idempotent.

        Its stream is shut first. The engine handles a container's events one at a time, and a
        terminal's exit waits until its output is delivered: a stream left open (the pump paced
        by a flood) held the kill's own exit behind it until the kill overran its deadline (5 s,
        then the node refuses execs for a while), in one close of every flood of four terminals.
        """
        if term.ended:
            return
        term.ended = True
        self._open.pop((term.participant, term.id), None)
        if term.sock is not None:
            with contextlib.suppress(OSError):
                term.sock.shutdown(socket.SHUT_RDWR)  # the pump reads its end and stops
        with contextlib.suppress(Exception):
            await self._io(term, self._on(term).kill_tty, term.container, term.id, term.pid)
        if term.sock is not None:
            with contextlib.suppress(OSError):
                term.sock.close()
        for ws in [term.writer, *term.watchers]:
            if ws is not None:
                await _let_go(ws, why)

    async def close_participant(self, participant: str, why: str) -> None:
        await asyncio.gather(*(self.close(t, why) for t in self.of(participant)))

    async def reap(self, every: float = 5.0) -> None:
        """End terminals whose page has been gone for longer than the grace period, and close
        websockets whose token was revoked meanwhile (new requests are refused at once)."""
        while True:
            await asyncio.sleep(every)
            for ws, token in list(self._tokens.items()):
                if not self.valid(token):
                    await _let_go(ws, "your link was revoked")
            now = time.monotonic()
            for term in list(self._open.values()):
                if term.detached_at is not None and now - term.detached_at > self.grace:
                    await self.close(term, f"no page attached for {self.grace:.0f} s")

    async def close_all(self) -> None:
        await asyncio.gather(
            *(self.close(t, "the portal stopped") for t in list(self._open.values()))
        )
        for task in list(self._tasks):
            task.cancel()

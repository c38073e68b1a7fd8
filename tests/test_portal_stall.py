"""A room that one participant cannot stall (issue 26), attacked from a participant's position.

Root in their own nodes, through the portal's browser terminals, a participant adds a
sitecustomize implant that makes the portal's in-node clean-up (kill_tree) and the grader's reap
hang, then presses check, and opens and closes terminals. The others' pages, the instructor's
grid and the others' checks must go on as if nothing happened. Checks grade in the room's grader
labs, so the implant reaches no check at all, the attacker's own included.
"""

from __future__ import annotations

import asyncio
import base64
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hoplab import grading
from hoplab.engine.engine import Engine
from tests import test_portal as tp

pytestmark = pytest.mark.docker

HOSTILE = Path(__file__).parent / "hostile"


def typed(implant: Path) -> str:
    """What the participant types to append the implant to the node's sitecustomize.py."""
    data = base64.b64encode(implant.read_bytes()).decode()
    return f"echo {data} | base64 -d >> /etc/python3.11/sitecustomize.py; echo im$((1))planted\r"


IMPLANT = typed(HOSTILE / "hang_implant.py")  # the portal's clean-up and the reap hang
TIMED_OUT = re.compile(r"did not (finish within|answer an earlier exec in time)")
NODE = "srv"  # every assignment's grading uses it
P95_MS = {"/api/me": 300.0, "/api/room": 1000.0}  # the grid lists every lab on the engine


@pytest.fixture(scope="module")
def room3(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tp.Room]:
    with tp.served_room(engine, tmp_path_factory.mktemp("stall-state"), "ps", 3) as served:
        yield served


async def implant(base: str, token: str) -> None:
    """Type the implant into a terminal in NODE, as the participant would; leave it open."""
    tid = await tp.open_terminal(base, token, NODE)
    async with (
        aiohttp.ClientSession() as s,
        tp.ws_connect(s, base, f"/ws/terminal/{tid}", token) as ws,
    ):
        term = tp.Term(ws)
        await term.send(IMPLANT)
        await term.expect("im1planted")


def timed_out(done: dict) -> list[str]:
    """The observed values of the run's FAILs that say the node did not answer in time."""
    checks = done.get("result", {}).get("checks", [])
    return [c["observed"] for c in checks if TIMED_OUT.search(c.get("observed", ""))]


def test_implants_that_hang_the_reap_reach_no_check_and_hold_back_nobody(room3):
    attackers, victim = sorted(room3.labs)[:2], sorted(room3.labs)[2]
    base = room3.served.base
    tcp_echo = grading.select("tcp-echo")
    source = tcp_echo.solution.read_text()
    body = {"assignment": tcp_echo.name, "source": source}

    async def go() -> tuple[list[dict], dict, float]:
        await asyncio.gather(*(implant(base, room3.tokens[a]) for a in attackers))
        for a in attackers:
            status, got = await tp.call(base, "POST", "/api/check", room3.tokens[a], body)
            assert status == 202, got
        await asyncio.sleep(0.3)  # the victim's check is queued behind both
        pressed = time.monotonic()
        status, got = await tp.call(base, "POST", "/api/check", room3.tokens[victim], body)
        assert status == 202, got
        mine = await tp.wait_check(base, room3.tokens[victim], timeout=120)
        took = time.monotonic() - pressed
        theirs = [await tp.wait_check(base, room3.tokens[a], timeout=120) for a in attackers]
        return theirs, mine, took

    theirs, mine, took = tp.run(go())
    for who, done in zip([*attackers, victim], [*theirs, mine], strict=True):
        graded = done.get("result", {}).get("seconds")
        print(f"{who}: graded in {graded} s; {done.get('error', '')}")
    print(f"the victim's check: {took:.1f} s from the button to the result")
    assert "error" not in mine, mine
    assert mine["result"]["passed"] == len(tcp_echo.checks), mine["result"]["checks"]
    assert took < 30, f"the victim's check took {took:.1f} s from the button to the result"
    # Checks run in the room's grader labs, which no participant enters: the attackers' implants
    # in their own nodes reach no grading at all, so their reference programs get full marks
    # too. (A grading in a hung node is cut at its deadline: tests/test_deadlines.py.)
    for done in theirs:
        assert "error" not in done, done
        assert done["result"]["passed"] == len(tcp_echo.checks), done["result"]["checks"]
        assert not timed_out(done), done


def test_a_hung_terminal_clean_up_stalls_nobody_else_and_leaves_no_shell(room3, engine):
    attacker, victim = sorted(room3.labs)[0], sorted(room3.labs)[2]
    base = room3.served.base
    node = room3.labs[attacker].node(NODE)

    async def sample(path: str, token: str, stop: asyncio.Event, every: float) -> list[float]:
        took = []
        async with aiohttp.ClientSession() as s:
            while not stop.is_set():
                start = time.monotonic()
                async with s.get(base + path, headers={"Authorization": f"Bearer {token}"}) as r:
                    await r.read()
                    assert r.status == 200, (path, r.status)
                took.append((time.monotonic() - start) * 1000)
                await asyncio.sleep(every)
        return took

    calls: list[tuple[str, float]] = []  # the attacker's own opens and closes, and how long

    async def timed(what: str, coro: Any) -> Any:  # noqa: ANN401 - whatever the call returns
        started = time.monotonic()
        try:
            return await coro
        finally:
            calls.append((what, time.monotonic() - started))

    async def flood() -> int:
        """24 terminals opened and closed, 4 at a time (the per-participant limit)."""
        token, closed = room3.tokens[attacker], 0
        await implant(base, token)  # idempotent: the implant may be there already
        status, mine = await tp.call(base, "GET", "/api/me", token)
        for t in mine["terminals"]:
            await tp.call(base, "DELETE", f"/api/terminals/{t['id']}", token)
        while closed < 24:
            tids = await asyncio.gather(
                *(timed("open", tp.open_terminal(base, token, NODE)) for _ in range(4))
            )
            results = await asyncio.gather(
                *(
                    timed("close", tp.call(base, "DELETE", f"/api/terminals/{tid}", token))
                    for tid in tids
                )
            )
            assert all(status == 200 for status, _ in results), results
            closed += len(tids)
        return closed

    async def go() -> tuple[list[float], list[float], int, float]:
        stop = asyncio.Event()
        me = asyncio.create_task(sample("/api/me", room3.tokens[victim], stop, 0.05))
        grid = asyncio.create_task(sample("/api/room", room3.tokens["instructor"], stop, 0.2))
        started = time.monotonic()
        closed = -1  # the attacker's own flood stalled: their lane, not the others', is the cost
        try:
            closed = await asyncio.wait_for(flood(), 180)
        except TimeoutError:
            pass
        finally:
            stop.set()
        return await me, await grid, closed, time.monotonic() - started

    me, grid, closed, seconds = tp.run(go())
    for name, took in (("/api/me", me), ("/api/room", grid)):
        p95 = statistics.quantiles(took, n=20)[-1]
        print(f"{name}: {len(took)} requests in {seconds:.1f} s, p95 {p95:.0f} ms")
        assert len(took) >= 10, took
        assert p95 < P95_MS[name], f"{name} p95 {p95:.0f} ms while a participant hung their node"
    slowest = sorted(calls, key=lambda c: -c[1])[:5]
    print(f"the attacker's slowest calls: {[(w, round(t, 1)) for w, t in slowest]}")
    if closed != 24:
        # The attacker's own lane stalled once in 15 runs here (cause not found; see the issue's
        # closing note). That is their cost, not the others' (asserted above); end what they
        # still have open, each close bounded, and the shells must still all go.
        print(f"the attacker's own flood stalled after {closed} closes")

        async def end_all() -> None:
            token = room3.tokens[attacker]
            status, mine = await tp.call(base, "GET", "/api/me", token)
            assert status == 200, mine
            for term in mine["terminals"]:
                await asyncio.wait_for(
                    tp.call(base, "DELETE", f"/api/terminals/{term['id']}", token), 60
                )

        tp.run(end_all())
    # Every closed terminal's shell is gone, seen from the host (no exec into the hostile node).
    rows = engine.api.top(node.container, ps_args="-o pid,args")["Processes"] or []
    shells = [r[1] for r in rows if "bash -l" in r[1]]
    assert shells == [], shells

"""The output flood (issue 26), replayed from a participant's position.

A participant runs `yes` in all four of their terminals: two pages read everything as a browser
does, two are a stalled tab that reads nothing. Meanwhile they keep 48 requests in flight to
/api/topology.svg (dot is drawn once per lab version and rate-limited). Each terminal's output
is paced (OUTPUT_RATE), so the flood spends a bounded share of the portal's one event loop.
Another participant's page and terminal must not notice: their /api/me p95 stays under a
generous bound and their terminal still echoes. Then the flooder closes the terminals: every
close answers, its in-node clean-up within its deadline (one that overran would leave the node
refusing execs for a while: a close used to hold the kill behind the terminal's own paced
stream), and nothing the flood started is left in the node (seen from the host).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator

import aiohttp
import pytest

from hoplab.engine.engine import Engine
from hoplab.portal.terminals import OUTPUT_RATE
from tests import test_portal as tp

pytestmark = pytest.mark.docker

NODE = "srv"
FLOOD_S = 10.0  # seconds of flood while the other participant is timed
# Generous: measured 26 to 68 ms at load 5 to 7 and 110 to 440 ms at load 18 to 40, when other
# runs shared the 2 cores (the test's own client shares the portal's process and GIL, and the
# drawing flood makes thousands of refused requests a second).
ME_P95_MS = 1000.0
ECHO_S = 5.0  # the other participant's terminal answers a line within this
CLOSE_S = 30.0  # each of the flooder's closes answers within this


@pytest.fixture(scope="module")
def room2(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tp.Room]:
    with tp.served_room(engine, tmp_path_factory.mktemp("flood-state"), "pf", 2) as served:
        yield served


def test_yes_in_four_terminals_and_a_drawing_flood_slow_nobody_else(room2, engine):
    flooder, victim = sorted(room2.labs)
    base = room2.served.base
    mine, theirs = room2.tokens[flooder], room2.tokens[victim]

    async def go() -> dict:
        async with aiohttp.ClientSession() as s:
            tids = [await tp.open_terminal(base, mine, NODE) for _ in range(4)]
            sockets = [await tp.ws_connect(s, base, f"/ws/terminal/{t}", mine) for t in tids]
            received = [0]

            async def read_all(ws: aiohttp.ClientWebSocketResponse) -> None:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        received[0] += len(msg.data)

            for ws in sockets:
                await ws.send_str('{"i": "yes flood\\r"}')
            flood_started = time.monotonic()
            readers = [asyncio.create_task(read_all(ws)) for ws in sockets[:2]]  # 2 stall

            stop = asyncio.Event()
            drawings: list[int] = []

            async def draw_flood() -> None:
                async def one() -> int:
                    async with s.get(base + "/api/topology.svg", headers=tp.auth(mine)) as r:
                        await r.read()
                        return r.status

                while not stop.is_set():
                    drawings.extend(await asyncio.gather(*(one() for _ in range(48))))

            async def sample() -> list[float]:
                took = []
                while not stop.is_set():
                    started = time.monotonic()
                    async with s.get(base + "/api/me", headers=tp.auth(theirs)) as r:
                        await r.read()
                        assert r.status == 200, r.status
                    took.append((time.monotonic() - started) * 1000)
                    await asyncio.sleep(0.05)
                return took

            vtid = await tp.open_terminal(base, theirs, NODE)
            echoes: list[float] = []
            async with tp.ws_connect(s, base, f"/ws/terminal/{vtid}", theirs) as vws:
                term = tp.Term(vws)
                await asyncio.sleep(1)  # the flood is on
                flood = asyncio.create_task(draw_flood())
                me = asyncio.create_task(sample())
                deadline = time.monotonic() + FLOOD_S
                n = 0
                while time.monotonic() < deadline:
                    n += 1
                    started = time.monotonic()
                    await term.send(f"echo v{n}-$((6*7))\r")
                    await term.expect(f"v{n}-42", timeout=60)
                    echoes.append(time.monotonic() - started)
                    await asyncio.sleep(0.5)
                stop.set()
                flood_s, flood_bytes = time.monotonic() - flood_started, received[0]
                took_me = await me
                await flood
            status, _ = await tp.call(base, "DELETE", f"/api/terminals/{vtid}", theirs)
            assert status == 200

            closes = []
            for tid in tids:
                started = time.monotonic()
                status, body = await asyncio.wait_for(
                    tp.call(base, "DELETE", f"/api/terminals/{tid}", mine), CLOSE_S
                )
                assert status == 200, body
                closes.append(time.monotonic() - started)
            for ws in sockets:  # every page of the flooder is told and let go
                await asyncio.wait_for(ws.close(), CLOSE_S)
            for task in readers:
                await asyncio.wait_for(task, CLOSE_S)
            return {
                "me": took_me,
                "echoes": echoes,
                "closes": closes,
                "received": received[0],
                "rate": flood_bytes / flood_s,
                "drawings": drawings,
            }

    got = tp.run(go())
    me, echoes = got["me"], got["echoes"]
    p95 = statistics.quantiles(me, n=20)[-1]
    print(
        f"flooder: {got['received'] / 1e6:.1f} MB read by 2 pages "
        f"({got['rate'] / 1e6:.2f} MB/s during the flood), "
        f"drawings {got['drawings'].count(200)} drawn, {got['drawings'].count(429)} refused; "
        f"other's /api/me: {len(me)} requests, p95 {p95:.0f} ms, max {max(me):.0f} ms; "
        f"their terminal echoed {len(echoes)} lines, slowest {max(echoes):.2f} s; "
        f"closes {[round(c, 2) for c in got['closes']]} s"
    )
    assert got["received"] > 1_000_000, "the flood did not flood"
    # Each terminal's output is paced at OUTPUT_RATE (JSON adds a third to `flood\r\n`), so the
    # flood costs the portal's shared loop a bounded amount whatever the node prints.
    assert got["rate"] < 2 * 2 * OUTPUT_RATE, f"{got['rate'] / 1e6:.1f} MB/s reached 2 pages"
    assert got["drawings"].count(429) > 0, "the drawings were not rate-limited"
    assert len(me) >= 20, me
    assert p95 < ME_P95_MS, f"the other participant's /api/me p95 {p95:.0f} ms during the flood"
    assert len(echoes) >= 5 and max(echoes) < ECHO_S, echoes
    # No clean-up overran its deadline: the node still takes execs (an overrun refuses them).
    node = room2.labs[flooder].node(NODE)
    res = node.run(["true"], timeout=10)
    assert res.ok, f"the flooder's node refuses execs after the closes: {res}"
    # Nothing the flood started is left in the node: seen from the host's view of it.
    rows = engine.api.top(node.container, ps_args="-o pid,args")["Processes"] or []
    left = [r[1] for r in rows if "yes" in r[1] or "bash -l" in r[1]]
    assert left == [], left

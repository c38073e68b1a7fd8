"""The workshop portal under a room's load: is it still responsive?

One run on the real engine:
- a room of N default labs (20 by default) through hoplab.workshop.room.up;
- the portal served from this process on 127.0.0.1 (an ephemeral port), links issued;
- N terminals open at once, one per participant, each printing a line every 0.2 s to its page;
- N check runs (udp-service, the reference solution) queued at the same moment;
- until the last check is done, page loads as a browser makes them (the page, /api/me and
  /api/assignments) for random participants, 4 at a time, timed to the last byte: p50, p95, max;
- then every check's result;
- then the cost of a check before and after grader labs (issue 26): every participant presses
  check (udp-service, the reference) at the same moment, three times, and each button's seconds
  to its result are timed (median, p95) with the room's check workers (placement.check_workers: 2
  on 2 cores): "before" grades in the participant's own lab (in place, as the portal did
  before grader labs), "after" in the room's warm grader labs (the portal now; the first check
  of each worker brings its lab up), and "cold" in a grader lab made and removed around each
  check (what `hoplab check` does);
- then, with --hung N (2 by default), N participants hang their nodes as root would (a
  sitecustomize implant typed into a terminal makes the portal's terminal clean-up and the
  grader's reap hang), press check and open and close terminals in a loop, while the other
  participants' /api/me is timed (p50, p95, max) and one of them checks the reference solution:
  seconds from the button to the result;
- then the room down, and zero leftovers.

Prints a table and writes JSON (bench-results/portal.json by default). Exit 1 when a check does
not pass, something is left behind, or the page-load p95 is over the --p95 budget (300 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.table import Table

from hoplab import grading
from hoplab.engine.client import connect
from hoplab.engine.engine import Engine
from hoplab.engine.interface import EngineAPI
from hoplab.model import labels as L
from hoplab.model.load import load as load_file
from hoplab.portal import serve
from hoplab.portal.grades import MIN_INTERVAL
from hoplab.portal.server import make_app
from hoplab.resources import default_lab
from hoplab.runtime.lab import Lab
from hoplab.workshop import room as workshop
from hoplab.workshop.graderlab import RoomGraders, grader_lab

ASSIGNMENT = "udp-service"
console = Console(highlight=False)


def start(
    portal: serve.Portal,
) -> tuple[str, asyncio.AbstractEventLoop, asyncio.Event, threading.Thread]:
    box: dict = {}
    ready = threading.Event()

    async def body() -> None:
        runner = web.AppRunner(make_app(portal), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        box["base"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        try:
            await box["stop"].wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(body()), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise SystemExit("the portal did not start")
    return box["base"], box["loop"], box["stop"], thread


def spread_ms(times: list[float]) -> dict:
    """How many samples (seconds), and their p50, p95 and max in milliseconds."""
    return {
        "samples": len(times),
        "p50": round(statistics.median(times) * 1000, 1),
        "p95": round(statistics.quantiles(times, n=20)[18] * 1000, 1),
        "max": round(max(times) * 1000, 1),
    }


async def load_page(s: aiohttp.ClientSession, base: str, token: str) -> float:
    """What a browser does to show the participant's page; seconds to the last byte."""
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"}
    async with s.get(f"{base}/p/") as r:
        await r.read()
        assert r.status == 200, r.status
    for path in ("/api/me", "/api/assignments"):
        async with s.get(base + path, headers=headers) as r:
            await r.read()
            assert r.status == 200, (path, r.status)
    return time.perf_counter() - started


async def under_load(base: str, tokens: dict[str, str], source: str, pause: float) -> dict:
    ws_url = base.replace("http", "ws", 1)
    async with aiohttp.ClientSession() as s:
        sockets, lines = [], [0]
        for token in tokens.values():
            body = {"node": "srv"}
            async with s.post(
                f"{base}/api/terminals", json=body, headers={"Authorization": f"Bearer {token}"}
            ) as r:
                assert r.status == 201, await r.text()
                tid = (await r.json())["id"]
            ws = await s.ws_connect(
                f"{ws_url}/ws/terminal/{tid}", protocols=("hoplab", f"tok.{token}")
            )
            await ws.send_str(json.dumps({"i": "while :; do date +%s.%N; sleep 0.2; done\r"}))
            sockets.append(ws)

        async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    lines[0] += json.loads(msg.data).get("o", "").count("\n")

        drains = [asyncio.create_task(drain(ws)) for ws in sockets]
        await asyncio.sleep(2)  # every terminal printing
        queued_at = time.monotonic()
        for token in tokens.values():
            async with s.post(
                f"{base}/api/check",
                json={"assignment": ASSIGNMENT, "source": source},
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                assert r.status == 202, await r.text()
        times: list[float] = []
        done = asyncio.Event()

        async def sampler() -> None:
            # A few page loads at a time, all along the check runs: the load the room feels.
            while not done.is_set():
                batch = [random.choice(list(tokens.values())) for _ in range(4)]
                times.extend(await asyncio.gather(*(load_page(s, base, t) for t in batch)))
                await asyncio.sleep(pause)

        sampling = asyncio.create_task(sampler())
        results = {}
        while len(results) < len(tokens):
            for participant, token in tokens.items():
                if participant in results:
                    continue
                async with s.get(
                    f"{base}/api/check", headers={"Authorization": f"Bearer {token}"}
                ) as r:
                    run = await r.json()
                if run and run["state"] == "done":
                    results[participant] = run
            await asyncio.sleep(1)
        done.set()
        await sampling
        page_seconds = time.monotonic() - queued_at
        checks_seconds = time.monotonic() - queued_at
        for ws in sockets:
            await ws.close()
        for task in drains:
            task.cancel()
    ok = [p for p, r in results.items() if r.get("result", {}).get("ok")]
    return {
        "page_load_ms": spread_ms(times) | {"measured_over_s": round(page_seconds, 1)},
        "terminals": len(sockets),
        "terminal_lines_seen": lines[0],
        "checks": {
            "queued": len(tokens),
            "passed": len(ok),
            "all_done_s": round(checks_seconds, 1),
            "failed": {
                p: r.get("error") or r["result"]["passed"]
                for p, r in results.items()
                if p not in ok
            },
        },
    }


class InPlace(RoomGraders):
    """Before grader labs: a check graded in the participant's own lab, where they are root."""

    @contextlib.contextmanager
    def lab(self, engine: EngineAPI, participant_lab: str) -> Iterator[Lab]:
        yield Lab.attach(engine, participant_lab)


class Cold(RoomGraders):
    """`hoplab check`'s way: a grader lab brought up for the one check and removed after it."""

    @contextlib.contextmanager
    def lab(self, engine: EngineAPI, participant_lab: str) -> Iterator[Lab]:
        with grader_lab(engine, self.topology(engine, participant_lab), self.room) as lab:
            yield lab


def spread_s(times: list[float]) -> dict:
    """Median and p95 in seconds (the p95 of 20 is between the 19th and the 20th)."""
    return {
        "checks": len(times),
        "median_s": round(statistics.median(times), 1),
        "p95_s": round(statistics.quantiles(times, n=20, method="inclusive")[18], 1),
        "max_s": round(max(times), 1),
    }


async def check_cost(base: str, tokens: dict[str, str], source: str) -> dict:
    """Every participant presses check at once; seconds from each button to its result (the
    server's stamp of the result), and how many passed."""
    body = {"assignment": ASSIGNMENT, "source": source}
    auth = {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}
    load_before = os.getloadavg()[0]
    async with aiohttp.ClientSession() as s:
        pressed: dict[str, float] = {}
        for p in tokens:
            pressed[p] = time.time()
            async with s.post(f"{base}/api/check", json=body, headers=auth[p]) as r:
                assert r.status == 202, await r.text()
        took: dict[str, float] = {}
        runs: dict[str, dict] = {}
        while len(runs) < len(tokens):
            for p in tokens:
                if p in runs:
                    continue
                async with s.get(f"{base}/api/check", headers=auth[p]) as r:
                    run = await r.json()
                if run and run["state"] == "done":
                    runs[p] = run
                    done_at = run.get("result", {}).get("when", time.time())
                    took[p] = done_at - pressed[p]
            await asyncio.sleep(0.5)
    graded = [r["result"]["seconds"] for r in runs.values() if "result" in r]
    return spread_s(list(took.values())) | {
        "passed": sum(bool(r.get("result", {}).get("ok")) for r in runs.values()),
        "all_done_s": round(max(took.values()), 1),
        "grading_alone_median_s": round(statistics.median(graded), 1) if graded else None,
        "errors": sorted({r["error"] for r in runs.values() if "error" in r}),
        "loadavg at start": round(load_before, 1),
        "loadavg at end": round(os.getloadavg()[0], 1),
    }


MODES = ("before: in place", "after: warm grader labs", "cold grader lab (hoplab check)")


def costs(portal: serve.Portal, base: str, tokens: dict[str, str], source: str) -> dict:
    """The three ways of grading, one after the other on the same room, and their ratios."""
    warm, topo = portal.grades.graders, load_topology()
    ways = {
        MODES[0]: InPlace(portal.room, lambda _e, _l: topo, warm.workers),
        MODES[1]: warm,
        MODES[2]: Cold(portal.room, lambda _e, _l: topo, warm.workers),
    }
    out: dict = {}
    try:
        for mode, graders in ways.items():
            portal.grades.graders = graders
            out[mode] = asyncio.run(check_cost(base, tokens, source))
            console.print(f"{mode}: {out[mode]}")
            time.sleep(MIN_INTERVAL)  # a participant's next check may start
    finally:
        portal.grades.graders = warm  # serve.stop closes the warm labs
    before = out[MODES[0]]
    for mode in MODES[1:]:
        for key in ("median_s", "p95_s"):
            ratio = out[mode][key] / before[key] if before[key] else None
            out[mode][f"{key[:-2]} ratio to before"] = round(ratio, 2) if ratio else None
    return out


async def while_hung(base: str, tokens: dict[str, str], source: str, hung: int) -> dict:
    """The others' /api/me and one reference check while `hung` participants hang their nodes."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
    from tests.test_portal_stall import IMPLANT  # the attack, exactly as the test types it

    names = sorted(tokens)
    attackers, others = names[:hung], names[hung:]
    auth = {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}
    body = {"assignment": ASSIGNMENT, "source": source}
    times: list[float] = []
    done = asyncio.Event()
    async with aiohttp.ClientSession() as s:

        async def terminal(p: str) -> str:
            async with s.post(f"{base}/api/terminals", json={"node": "srv"}, headers=auth[p]) as r:
                assert r.status == 201, await r.text()
                return (await r.json())["id"]

        async def close(p: str, tid: str) -> None:
            async with s.delete(f"{base}/api/terminals/{tid}", headers=auth[p]) as r:
                await r.read()

        async def implant(p: str) -> None:
            tid = await terminal(p)
            url = base.replace("http", "ws", 1) + f"/ws/terminal/{tid}"
            async with s.ws_connect(url, protocols=("hoplab", f"tok.{tokens[p]}")) as ws:
                await ws.send_str(json.dumps({"i": IMPLANT}))
                seen = ""
                while "im1planted" not in seen:
                    seen += json.loads((await ws.receive(timeout=30)).data).get("o", "")
            await close(p, tid)  # its clean-up hangs already

        async def churn(p: str) -> None:  # open and close terminals, 4 at a time, until done
            while not done.is_set():
                tids = await asyncio.gather(*(terminal(p) for _ in range(4)))
                await asyncio.gather(*(close(p, t) for t in tids))

        async def sampler() -> None:
            while not done.is_set():
                p = random.choice(others)
                started = time.perf_counter()
                async with s.get(f"{base}/api/me", headers=auth[p]) as r:
                    await r.read()
                times.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)

        async def result(p: str) -> dict:
            while True:
                async with s.get(f"{base}/api/check", headers=auth[p]) as r:
                    run = await r.json()
                if run and run["state"] == "done":
                    return run
                await asyncio.sleep(0.5)

        await asyncio.gather(*(implant(p) for p in attackers))
        sampling = asyncio.create_task(sampler())
        churning = [asyncio.create_task(churn(p)) for p in attackers]
        for p in attackers:
            async with s.post(f"{base}/api/check", json=body, headers=auth[p]) as r:
                assert r.status == 202, await r.text()
        await asyncio.sleep(0.3)
        victim, pressed = others[0], time.monotonic()
        async with s.post(f"{base}/api/check", json=body, headers=auth[victim]) as r:
            assert r.status == 202, await r.text()
        mine = await result(victim)
        check_s = time.monotonic() - pressed
        theirs = await asyncio.gather(*(result(p) for p in attackers))
        done.set()
        await asyncio.gather(sampling, *churning)
    return {
        "hung_participants": hung,
        "others_me_ms": spread_ms(times),
        "reference_check_s": round(check_s, 1),
        "reference_check_ok": bool(mine.get("result", {}).get("ok")),
        "hung_checks_failed": sum(not r.get("result", {}).get("ok") for r in theirs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labs", type=int, default=20, help="participants' labs in the room")
    ap.add_argument("--pause", type=float, default=0.2, help="seconds between 4-page batches")
    ap.add_argument("--p95", type=float, default=300.0, help="budget for the p95 page load, ms")
    ap.add_argument("--out", type=Path, default=Path("bench-results/portal.json"))
    ap.add_argument("--hung", type=int, default=2, help="participants who hang their nodes")
    ap.add_argument("--skip-load", action="store_true", help="no page-load phase")
    ap.add_argument("--skip-cost", action="store_true", help="no check-cost phase")
    args = ap.parse_args()
    engine = Engine(connect())
    name = f"bp{int(time.time()) % 100000}"
    room = workshop.Room(name, workshop.numbered_seats(args.labs, f"{name}-"))
    source = grading.select(ASSIGNMENT).solution.read_text()
    figures: dict = {"labs": args.labs, "other_labs_on_engine": len(engine.labs())}
    stop = thread = loop = portal = None
    try:
        started = time.monotonic()
        report = workshop.up(engine, load_topology(), room)
        figures["room_up_s"] = round(time.monotonic() - started, 1)
        if len(report.up) != args.labs:
            raise SystemExit(f"only {len(report.up)} of {args.labs} labs came up")
        with tempfile.TemporaryDirectory() as state:
            portal = serve.build(engine, name, Path(state))
            base, loop, stop, thread = start(portal)
            links = serve.issue(portal.tokens, [s.participant for s in room.seats], base)
            tokens = {p: u.split("#", 1)[1] for p, u in links.participants.items()}
            if not args.skip_load:
                figures |= asyncio.run(under_load(base, tokens, source, args.pause))
            if not args.skip_cost:
                figures["check_cost"] = costs(portal, base, tokens, source)
            if 0 < args.hung < args.labs:
                figures["hung"] = asyncio.run(while_hung(base, tokens, source, args.hung))
            loop.call_soon_threadsafe(stop.set)
            thread.join(60)
            stop = None
            serve.stop(portal)
            portal = None
    except Exception as err:  # a later phase failed: keep what the earlier ones measured
        figures["failed"] = f"{type(err).__name__}: {err}"
        console.print(f"[red]a phase failed[/]: {figures['failed']}")
    finally:
        if stop is not None and loop is not None:
            loop.call_soon_threadsafe(stop.set)
            thread.join(60)
        if portal is not None:
            serve.stop(portal)  # no check left to bring a grader lab up after the room's down
        started = time.monotonic()
        workshop.down(engine, name)
        figures["room_down_s"] = round(time.monotonic() - started, 1)
        figures["leftovers"] = sum(
            len(engine.api.containers(all=True, filters=L.lab_filter(lab)))
            + len(engine.api.networks(filters=L.lab_filter(lab)))
            for lab in [s.lab for s in room.seats] + engine.labs_labelled(L.GRADER, name)
        )
    show(figures)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    hung = figures.get("hung", {})
    good = "failed" not in figures and (
        (args.skip_load or figures["checks"]["passed"] == args.labs)
        and figures["leftovers"] == 0
        and (args.skip_load or figures["page_load_ms"]["p95"] <= args.p95)
        and (not hung or hung["others_me_ms"]["p95"] <= args.p95)
        and (not hung or (hung["reference_check_ok"] and hung["reference_check_s"] < 30))
        and all(c["passed"] == c["checks"] for c in figures.get("check_cost", {}).values())
    )
    return 0 if good else 1


def load_topology():  # noqa: ANN201 - a Topology
    return load_file(default_lab())


def cost_rows(cost: dict) -> list[tuple[str, object]]:
    """A check's seconds from the button to the result, each way of grading, and the ratios."""
    rows: list[tuple[str, object]] = []
    for mode, c in cost.items():
        ratio = ""
        if "median ratio to before" in c:
            ratio = f"; x{c['median ratio to before']} / x{c['p95 ratio to before']} of before"
        rows.append(
            (
                f"check, {mode}: median / p95 (s)",
                f"{c['median_s']} / {c['p95_s']}{ratio}; {c['passed']} of {c['checks']} passed",
            )
        )
    return rows


def print_table(title: str, rows: list[tuple[str, object]]) -> None:
    """A bench's summary: one row per figure, what it is and its value (None for not measured)."""
    t = Table(title=title, title_justify="left")
    t.add_column("what")
    t.add_column("figure", justify="right")
    for what, value in rows:
        t.add_row(what, str(value))
    console.print(t)


def show(f: dict) -> None:
    page = f.get("page_load_ms", {})
    rows = [
        ("room up (s)", f.get("room_up_s")),
        ("open terminals, each printing 5 lines/s", f.get("terminals")),
        ("terminal lines received", f.get("terminal_lines_seen")),
        ("check runs queued at once", f.get("checks", {}).get("queued")),
        ("page load p50 (ms)", page.get("p50")),
        ("page load p95 (ms)", page.get("p95")),
        ("page load max (ms)", page.get("max")),
        (f"page loads measured (over {page.get('measured_over_s')} s)", page.get("samples")),
        ("checks passed", f.get("checks", {}).get("passed")),
        ("all checks done after (s)", f.get("checks", {}).get("all_done_s")),
        *cost_rows(f.get("check_cost", {})),
        ("participants hanging their nodes", f.get("hung", {}).get("hung_participants")),
        ("  others' /api/me p50 (ms)", f.get("hung", {}).get("others_me_ms", {}).get("p50")),
        ("  others' /api/me p95 (ms)", f.get("hung", {}).get("others_me_ms", {}).get("p95")),
        ("  others' /api/me max (ms)", f.get("hung", {}).get("others_me_ms", {}).get("max")),
        ("  a reference check, button to result (s)", f.get("hung", {}).get("reference_check_s")),
        ("  their own checks failed", f.get("hung", {}).get("hung_checks_failed")),
        ("room down (s)", f.get("room_down_s")),
        ("leftover objects", f.get("leftovers")),
        ("other labs on the engine", f.get("other_labs_on_engine")),
    ]
    print_table(f"portal under a room of {f['labs']} labs", rows)


if __name__ == "__main__":
    sys.exit(main())

"""The portal's wire panel: latency from the wire to the browser, and the room's pages meanwhile.

One run on the real engine:
- a room of N default labs (20 by default) through hoplab.workshop.room.up, its portal served
  from this process on 127.0.0.1, links issued;
- latency at 100 frames/s: one participant's wire watches lan1 (filter `udp port 9`) while alice
  sends bob 100 datagrams a second for --seconds; for each frame, the time from its capture on
  the bridge (the pcap timestamp, the engine host's clock) to its receipt on this process's
  websocket (the same machine's clock): p50, p95, max; frames expected, shown, dropped;
- then alice pings srv 5 times a second in every lab, and /api/me is timed for random
  participants, 4 at a time, to the last byte (p50, p95, max), with no wire open but the first
  one's, idle: the baseline the wires are compared with;
- then every participant watches two segments (lan1 and core, filter `icmp or udp port 9`),
  the pings go on, the first participant's 100 frames/s run again, and /api/me is timed the
  same way, and the wire latency measured again under that load;
- then the room down, and zero leftovers (taps included: they carry the labs' label).

Prints a table and writes JSON (bench-results/wire.json by default). Exit 1 when the wire p95 or
the /api/me p95 is over the --p95 budget (300 ms), a frame is missing, or something is left.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import random
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp
from portal import (  # bench/ is on the path: this script's folder
    load_topology,
    print_table,
    spread_ms,
    start,
)

from hoplab.engine.client import connect
from hoplab.engine.engine import Engine
from hoplab.engine.state import LabState
from hoplab.model import labels as L
from hoplab.portal import serve
from hoplab.portal.renewed import Renewed
from hoplab.portal.server import SEATS_TTL, STATE_TTL
from hoplab.portal.wire import RATE
from hoplab.runtime.lab import Lab
from hoplab.workshop import room as workshop

RATE_FPS = 100
RENEWED, ON_PATH = "renewed", "on the request's path"  # --ab: how the portal reads its state
AB_EVERY = 2.0  # seconds of each, in turn
SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
start = next_at = time.monotonic()
n = 0
while next_at - start < seconds:
    s.sendto(b"w" * 32, (dst, 9))
    n += 1
    next_at += 1 / rate
    time.sleep(max(0.0, next_at - time.monotonic()))
print(n)
"""


def send(lab: Lab, rate: float, seconds: float) -> int:
    """alice -> bob on lan1, `rate` datagrams a second; how many were sent."""
    bob = lab.address("bob", "lan1")
    res = lab.node("alice").run(
        ["python3", "-c", SENDER, bob, str(rate), str(seconds)], timeout=seconds + 30
    )
    if not res.ok:
        raise SystemExit(f"the sender failed: {res}")
    return int(res.out.split()[-1])


def ping(lab: Lab, seconds: float) -> None:
    srv = lab.address("srv", "lan2")
    count = str(int(seconds * 5))
    lab.node("alice").run(["ping", "-4", "-q", "-i", "0.2", "-c", count, srv], timeout=seconds + 30)


class Spans:
    """--profile: where the portal's time goes, from inside its own process.

    Each call on the portal's I/O threads is split into its wait in the pool's queue and its
    run (by function); the event loop's lag is sampled every 50 ms (how late a sleep wakes); and
    the loop's thread is profiled with cProfile, each phase apart. No external profiler."""

    def __init__(self, portal: serve.Portal, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.phase = loop, "setup"
        self.calls: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        self.lag: dict[str, list[float]] = defaultdict(list)
        self.profiles: dict[str, cProfile.Profile] = {}
        pool, submit = portal.io, portal.io.submit

        def timed_submit(fn: Any, *args: Any, **kw: Any) -> Future:
            queued, phase = time.perf_counter(), self.phase

            def run() -> Any:
                began = time.perf_counter()
                try:
                    return fn(*args, **kw)
                finally:
                    name = getattr(fn, "__qualname__", repr(fn))
                    self.calls[(phase, name)].append((began - queued, time.perf_counter() - began))

            return submit(run)

        pool.submit = timed_submit  # type: ignore[method-assign, assignment]
        asyncio.run_coroutine_threadsafe(self._lag(), loop)

    async def _lag(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.05)
            self.lag[self.phase].append(time.perf_counter() - began - 0.05)

    def enter(self, phase: str) -> None:
        """Profile the loop's thread for this phase (the last one's profile stops)."""
        done = threading.Event()
        old, self.phase = self.profiles.get(self.phase), phase
        self.profiles[phase] = prof = cProfile.Profile()

        def swap() -> None:
            if old is not None:
                old.disable()
            prof.enable()
            done.set()

        self.loop.call_soon_threadsafe(swap)
        done.wait(30)

    def report(self) -> dict:
        self.enter("end")
        out: dict = {"pool": {}, "loop_lag_ms": {}, "loop_profile": {}}
        for (phase, name), spans in sorted(self.calls.items()):
            if len(spans) < 2:
                continue
            out["pool"][f"{phase}: {name}"] = {
                "calls": len(spans),
                "queue_ms": spread_ms([w for w, _ in spans]),
                "run_ms": spread_ms([r for _, r in spans]),
            }
        for phase, lags in self.lag.items():
            if len(lags) > 1:
                out["loop_lag_ms"][phase] = spread_ms(lags)
        for phase, prof in self.profiles.items():
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
            out["loop_profile"][phase] = text.getvalue().splitlines()
        return out


class Modes:
    """--ab: the portal's seats and lab states switched every AB_EVERY s between renewed in the
    background (the portal as it is, hoplab.portal.renewed) and read on the request's path (as
    before it: a value older than its TTL is read while the request waits), so that both are
    timed in one run, under the same load."""

    def __init__(self, portal: serve.Portal, loop: asyncio.AbstractEventLoop) -> None:
        self.portal, self.loop, self.current = portal, loop, RENEWED
        old: tuple[Renewed[None, dict[str, str]], Renewed[str, LabState]] = (
            Renewed(SEATS_TTL, SEATS_TTL),  # soft = hard: read when stale, as before
            Renewed(STATE_TTL, STATE_TTL),
        )
        self.kept = {RENEWED: (portal.seat_map, portal.state_cache), ON_PATH: old}

    def set(self, mode: str) -> None:
        def swap() -> None:
            self.portal.seat_map, self.portal.state_cache = self.kept[mode]

        self.current = mode
        self.loop.call_soon_threadsafe(swap)

    async def alternate(self, done: asyncio.Event) -> None:
        while not done.is_set():
            self.set(ON_PATH if self.current == RENEWED else RENEWED)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), AB_EVERY)
        self.set(RENEWED)


class Watcher:
    """One participant's wire: frames received, with the seconds each took from the wire."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.latency: list[float] = []
        self.frames = 0  # of the 100 frames/s stream, while recording
        self.seen = 0  # every frame shown
        self.dropped = 0
        self.recording = False

    async def watch(self, segments: list[str], bpf: str) -> None:
        await self.ws.send_str(json.dumps({"watch": segments, "filter": bpf}))
        while True:
            msg = json.loads((await self.ws.receive(timeout=120)).data)
            if "watching" in msg:
                return
            if "error" in msg or "ended" in msg:
                raise SystemExit(f"the wire refused: {msg}")

    async def drain(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.time()
            body = json.loads(msg.data)
            self.dropped = max(self.dropped, body.get("dropped", 0))
            self.seen += len(body.get("f", []))
            if self.recording:
                for f in body.get("f", []):
                    if f.get("dport") == 9:
                        self.frames += 1
                        self.latency.append(now - f["t"])

    def window(self) -> None:
        self.latency, self.frames, self.recording = [], 0, True


def other_pages(base: str, tokens: list[str], ready, stop, out) -> None:  # noqa: ANN001
    """In a process of its own: the other participants' pages, each watching lan1 and core,
    reading every frame until `stop`; puts what they saw on `out`."""

    async def body() -> dict:
        ws_base = base.replace("http", "ws", 1)
        async with aiohttp.ClientSession() as s:
            wires = [
                Watcher(await s.ws_connect(f"{ws_base}/ws/wire", protocols=("hoplab", f"tok.{t}")))
                for t in tokens
            ]
            started = time.monotonic()
            await asyncio.gather(*(w.watch(["lan1", "core"], "icmp or udp port 9") for w in wires))
            taps_s = round(time.monotonic() - started, 1)
            drains = [asyncio.create_task(w.drain()) for w in wires]
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.2)
            for w in wires:
                await w.ws.close()
            for task in drains:
                task.cancel()
            return {"seen": sum(w.seen for w in wires), "taps_started_s": taps_s}

    out.put(asyncio.run(body()))


async def measure(
    base: str,
    tokens: dict[str, str],
    labs: dict[str, Lab],
    seconds: float,
    spans: Spans | None,
    modes: Modes | None,
) -> dict:
    def enter(phase: str) -> None:
        if spans is not None:
            spans.enter(phase)

    first = sorted(tokens)[0]
    ws_base = base.replace("http", "ws", 1)
    figures: dict = {}
    async with aiohttp.ClientSession() as s:

        async def wire(p: str) -> Watcher:
            ws = await s.ws_connect(f"{ws_base}/ws/wire", protocols=("hoplab", f"tok.{tokens[p]}"))
            return Watcher(ws)

        # 1. one participant, 100 frames/s, nothing else
        mine = await wire(first)
        await mine.watch(["lan1"], "udp port 9")
        drains = [asyncio.create_task(mine.drain())]
        mine.window()
        sent = await asyncio.to_thread(send, labs[first], RATE_FPS, seconds)
        await asyncio.sleep(2)
        figures["alone"] = spread_ms(mine.latency) | {
            "sent": sent,
            "shown": mine.frames,
            "dropped": mine.dropped,
        }

        async def me(token: str) -> float:
            t0 = time.perf_counter()
            async with s.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"}) as r:
                await r.read()
                assert r.status == 200, r.status
            return time.perf_counter() - t0

        async def pages(done: asyncio.Event) -> dict[str, list[float]]:
            """/api/me for random participants, 4 at a time, until done; by mode with --ab."""
            times: dict[str, list[float]] = {RENEWED: [], ON_PATH: []}
            flips = asyncio.create_task(modes.alternate(done)) if modes else None
            while not done.is_set():
                mode = modes.current if modes else RENEWED
                batch = [random.choice(list(tokens.values())) for _ in range(4)]
                times[mode].extend(await asyncio.gather(*(me(t) for t in batch)))
                await asyncio.sleep(0.2)
            if flips:
                await flips
            return times

        def spreads(times: dict[str, list[float]]) -> dict:
            out = spread_ms(times[RENEWED])
            if len(times[ON_PATH]) > 1:
                out[ON_PATH] = spread_ms(times[ON_PATH])
            return out

        # 2. pings in every lab, pages timed, no wire but the first one's (idle): the baseline
        pinging = [
            asyncio.create_task(asyncio.to_thread(ping, labs[p], 2 * seconds + 30)) for p in tokens
        ]
        await asyncio.sleep(3)  # every lab pinging
        enter("baseline")
        done = asyncio.Event()
        sampling = asyncio.create_task(pages(done))
        await asyncio.sleep(seconds)
        done.set()
        figures["baseline_me_ms"] = spreads(await sampling)

        # 3. every participant watching two segments, the 100 frames/s run again, pages timed.
        # The others' pages are another process, as browsers are elsewhere: this process's
        # time goes to the portal, the timed pages and the one wire that is timed.
        others = [tokens[p] for p in sorted(tokens) if p != first]
        spawn = multiprocessing.get_context("spawn")
        ready, stop, out = spawn.Event(), spawn.Event(), spawn.Queue()
        browsers = spawn.Process(target=other_pages, args=(base, others, ready, stop, out))
        browsers.start()
        if not await asyncio.to_thread(ready.wait, 300):
            browsers.kill()
            raise SystemExit("the other participants' wires did not start")
        await asyncio.sleep(3)  # every wire showing
        enter("watching")
        done = asyncio.Event()
        sampling = asyncio.create_task(pages(done))
        mine.window()
        before = mine.dropped
        sent = await asyncio.to_thread(send, labs[first], RATE_FPS, seconds)
        await asyncio.sleep(2)
        done.set()
        enter("after")
        stop.set()
        theirs = await asyncio.to_thread(out.get, True, 120)
        await asyncio.to_thread(browsers.join, 60)
        figures["taps_started_s"] = theirs["taps_started_s"]
        figures["room"] = {
            "watching": len(tokens),
            "taps": 1 + 2 * len(others),
            "wire_ms": spread_ms(mine.latency)
            | {"sent": sent, "shown": mine.frames, "dropped": mine.dropped - before},
            "others_frames": theirs["seen"],
            "me_ms": spreads(await sampling),
        }
        await asyncio.gather(*pinging)
        await mine.ws.close()
        for task in drains:
            task.cancel()
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labs", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of 100 frames/s")
    ap.add_argument("--p95", type=float, default=300.0, help="budget for both p95s, ms")
    ap.add_argument("--out", type=Path, default=Path("bench-results/wire.json"))
    ap.add_argument(
        "--ab",
        action="store_true",
        help="time /api/me with the portal's reads renewed in the background and read on the "
        "request's path (as before), alternating every 2 s in the same run",
    )
    ap.add_argument("--profile", type=Path, help="write where the portal's time goes here (JSON)")
    args = ap.parse_args()
    engine = Engine(connect())
    name = f"bw{int(time.time()) % 100000}"
    room = workshop.Room(name, workshop.numbered_seats(args.labs, f"{name}-"))
    figures: dict = {"labs": args.labs, "other_labs_on_engine": len(engine.labs())}
    figures["rate_bound_fps"] = RATE
    figures["loadavg (1 min) at the start"] = round(os.getloadavg()[0], 1)
    stop = thread = loop = None
    try:
        started = time.monotonic()
        report = workshop.up(engine, load_topology(), room)
        figures["room_up_s"] = round(time.monotonic() - started, 1)
        if len(report.up) != args.labs:
            why = report.error.error if report.error else report.not_up[0].action
            raise SystemExit(f"only {len(report.up)} of {args.labs} labs came up: {why}")
        with tempfile.TemporaryDirectory() as state:
            portal = serve.build(engine, name, Path(state))
            base, loop, stop, thread = start(portal)
            links = serve.issue(portal.tokens, [s.participant for s in room.seats], base)
            tokens = {p: u.split("#", 1)[1] for p, u in links.participants.items()}
            labs = {s.participant: Lab.attach(engine, s.lab) for s in room.seats}
            spans = Spans(portal, loop) if args.profile else None
            modes = Modes(portal, loop) if args.ab else None
            figures |= asyncio.run(measure(base, tokens, labs, args.seconds, spans, modes))
            if spans is not None:
                args.profile.parent.mkdir(parents=True, exist_ok=True)
                args.profile.write_text(json.dumps(spans.report(), indent=1))
            loop.call_soon_threadsafe(stop.set)
            thread.join(60)
            stop = None
    finally:
        if stop is not None and loop is not None and thread is not None:
            loop.call_soon_threadsafe(stop.set)
            thread.join(60)
        started = time.monotonic()
        workshop.down(engine, name)
        figures["room_down_s"] = round(time.monotonic() - started, 1)
        figures["leftovers"] = sum(
            len(engine.api.containers(all=True, filters=L.lab_filter(s.lab)))
            + len(engine.api.networks(filters=L.lab_filter(s.lab)))
            for s in room.seats
        )
    figures["loadavg (1 min) at the end"] = round(os.getloadavg()[0], 1)
    show(figures)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    alone, busy = figures.get("alone", {}), figures.get("room", {})
    good = (
        figures["leftovers"] == 0
        and alone.get("p95", 1e9) <= args.p95
        and busy.get("wire_ms", {}).get("p95", 1e9) <= args.p95
        and busy.get("me_ms", {}).get("p95", 1e9) <= args.p95
        and alone.get("shown") == alone.get("sent")
    )
    return 0 if good else 1


def on_path_rows(base: dict, busy: dict) -> list[tuple[str, object]]:
    """--ab: /api/me when the portal's reads were on the request's path, as before."""
    rows: list[tuple[str, object]] = []
    for what, me in (("no wire but one", base), ("the room watching", busy)):
        if ON_PATH in me:
            m = me[ON_PATH]
            rows.append(
                (
                    f"  /api/me, reads on the request's path, {what}: p50 / p95 / max (ms)",
                    f"{m['p50']} / {m['p95']} / {m['max']} ({m['samples']})",
                )
            )
    return rows


def show(f: dict) -> None:
    alone, busy = f.get("alone", {}), f.get("room", {})
    wire, me = busy.get("wire_ms", {}), busy.get("me_ms", {})
    base = f.get("baseline_me_ms", {})
    rows = [
        ("room up (s)", f.get("room_up_s")),
        (f"one wire at {RATE_FPS} frames/s: wire to websocket p50 (ms)", alone.get("p50")),
        ("  p95 (ms)", alone.get("p95")),
        ("  max (ms)", alone.get("max")),
        (
            "  frames sent / shown / dropped",
            f"{alone.get('sent')} / {alone.get('shown')} / {alone.get('dropped')}",
        ),
        ("/api/me, pings in every lab, no wire but one, p50 (ms)", base.get("p50")),
        ("  p95 (ms)", base.get("p95")),
        ("  max (ms)", base.get("max")),
        ("participants watching (the others: lan1 and core)", busy.get("watching")),
        ("taps running", busy.get("taps")),
        ("all their taps started in (s)", f.get("taps_started_s")),
        (f"  the {RATE_FPS} frames/s wire, p50 (ms)", wire.get("p50")),
        ("  p95 (ms)", wire.get("p95")),
        ("  max (ms)", wire.get("max")),
        (
            "  frames sent / shown / dropped",
            f"{wire.get('sent')} / {wire.get('shown')} / {wire.get('dropped')}",
        ),
        ("  frames the others' wires showed", busy.get("others_frames")),
        ("  /api/me p50 (ms)", me.get("p50")),
        ("  /api/me p95 (ms)", me.get("p95")),
        ("  /api/me max (ms)", me.get("max")),
        ("  /api/me measured", me.get("samples")),
        *on_path_rows(base, me),
        ("room down (s)", f.get("room_down_s")),
        ("leftover objects", f.get("leftovers")),
        ("other labs on the engine", f.get("other_labs_on_engine")),
    ]
    print_table(f"the wire panel, a room of {f['labs']} labs", rows)


if __name__ == "__main__":
    sys.exit(main())

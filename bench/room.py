"""A workshop room under load: twenty default labs at once, every lab checked, all taken down.

What it measures, in one run on the real engine:
- bring-up of the whole room through hoplab.workshop.room.up (the code behind `hoplab workshop up`);
- idle memory per lab (cgroup usage minus inactive page cache, summed over the lab's nodes);
- a quick check set in every lab (ttl-and-traceroute and one-port-many-clients, through
  hoplab.exercises.runner.run_one as `hoplab run` does), a few labs at a time;
- teardown of the room through hoplab.workshop.room.down, and zero leftovers afterwards.

Other labs on the engine are left alone and counted, because they are load the figures carry.
Prints a table and writes JSON (bench-results/room.json by default). Exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

import hoplab
from hoplab import exercises
from hoplab.checks import Status
from hoplab.engine.engine import Engine
from hoplab.exercises import runner
from hoplab.model import labels as L
from hoplab.workshop import room as workshop

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ["ttl-and-traceroute", "one-port-many-clients"]
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def leftovers(engine: Engine, labs: list[str]) -> int:
    """Containers and networks still carrying any of these labs' labels."""
    return sum(
        len(engine.api.containers(all=True, filters=L.lab_filter(lab)))
        + len(engine.api.networks(filters=L.lab_filter(lab)))
        for lab in labs
    )


def check_lab(engine: Engine, lab: str, artifacts: Path) -> dict:
    running = hoplab.attach(lab, engine=engine)
    results = [runner.run_one(running, ex, artifacts / lab) for ex in exercises.select(CHECKS)]
    return {
        "lab": lab,
        "passed": all(r.status is Status.PASS for r in results),
        "exercises": {r.name: str(r.status) for r in results},
        "failed checks": [
            f"{r.name}: {c.name}: expected {c.expected}, observed {c.observed}"
            for r in results
            for c in r.checks
            if c.status is not Status.PASS
        ],
        "seconds": round(sum(r.seconds for r in results), 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=20)
    ap.add_argument("--parallel", type=int, default=workshop.PARALLEL, help="labs up at once")
    ap.add_argument("--check-parallel", type=int, default=4, help="labs checked at once")
    ap.add_argument("--workshop", default=f"room{os.getpid()}", help="the room's name")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "room.json")
    args = ap.parse_args()

    engine = hoplab.from_env()
    topo = hoplab.topology(ROOT / "compose.yaml")
    name = workshop.check_room_name(args.workshop)
    room = workshop.Room(name, workshop.numbered_seats(args.participants, f"{name}-"))
    labs = [s.lab for s in room.seats]
    others = [s for s in engine.labs() if s.name not in labs]
    load_note = {
        "other labs on the engine": len(others),
        "other containers": sum(len(s.nodes) for s in others),
        "loadavg at start": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    console.print(f"room {name}: {len(labs)} labs; load: {load_note}")
    result: dict = {"room": name, "labs": len(labs), "parallel": args.parallel, "load": load_note}
    ok = False
    try:
        t0 = time.perf_counter()
        report = workshop.up(
            engine,
            topo,
            room,
            parallel=args.parallel,
            on_done=lambda o, d, t: console.print(f"  [{d}/{t}] {o.seat.lab} {o.action}"),
            say=lambda m: None,
        )
        result["bring-up s"] = round(time.perf_counter() - t0, 2)
        result["labs up"] = len(report.up)
        if report.error:
            result["error"] = f"{report.error.seat.lab}: {report.error.error}"
        result["lab bring-up s (median)"] = round(
            statistics.median(o.seconds for o in report.outcomes), 2
        )

        per_lab = [sum(engine.memory(lab).values()) / (1 << 20) for lab in report.up]
        if per_lab:
            result["memory per lab MiB (median)"] = round(statistics.median(per_lab), 1)
            result["memory per lab MiB (max)"] = round(max(per_lab), 1)
            result["memory room MiB"] = round(sum(per_lab), 1)

        t1 = time.perf_counter()
        with (
            tempfile.TemporaryDirectory() as tmp,
            ThreadPoolExecutor(args.check_parallel) as threads,
        ):
            checked = list(threads.map(lambda lab: check_lab(engine, lab, Path(tmp)), report.up))
        result["checks s"] = round(time.perf_counter() - t1, 2)
        result["labs passing checks"] = sum(c["passed"] for c in checked)
        result["failures"] = [c for c in checked if not c["passed"]]
        ok = result["labs passing checks"] == len(labs)
    finally:
        t2 = time.perf_counter()
        removed = workshop.down(engine, name)
        result["teardown s"] = round(time.perf_counter() - t2, 2)
        result["labs removed"] = len(removed)
        result["leftover objects"] = leftovers(engine, labs)
        ok = ok and result["leftover objects"] == 0
        result["ok"] = ok
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    table = Table(title=f"workshop room: {len(labs)} default labs", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key not in ("failures", "load"):
            table.add_row(key, str(value))
    console.print(table)
    for failure in result["failures"]:
        console.print(f"[red]{failure['lab']}[/]: {'; '.join(failure['failed checks'])}")
    console.print(f"JSON: {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

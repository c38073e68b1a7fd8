"""A room of twenty default labs on one engine, then the same room over two engines.

Both engines run on this machine (the second is a dockerd started here by the harness in
tests/second_engine.py, and removed afterwards), so they share the same 2 cores: no CPU is added.
What can differ is the engines' own serial work (each daemon allocates networks and endpoints one
at a time) and the labs in flight (`parallel` per engine, so twice as many with two). On separate
machines each engine also brings its own CPUs.

Goes through hoplab.workshop.spread (the code behind `hoplab workshop up --engines`), counts
leftovers on both engines after each `down` (must be zero), prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.second_engine, the harness the test uses too

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from hoplab import api  # noqa: E402
from hoplab.engine import engines as E  # noqa: E402
from hoplab.engine.image import IMAGE  # noqa: E402
from hoplab.model import labels as L  # noqa: E402
from hoplab.workshop import room as R  # noqa: E402
from hoplab.workshop import spread as S  # noqa: E402
from hoplab.workshop.placement import EngineLine  # noqa: E402
from tests.second_engine import SecondEngine  # noqa: E402

console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def leftovers(reached: list[E.Reached], room: str) -> int:
    """Containers of the room and networks of its labs, on every engine."""
    total = 0
    for r in reached:
        found = r.client.api.containers(all=True, filters={"label": [f"{R.WORKSHOP}={room}"]})
        labs = {c["Labels"][L.LAB] for c in found}
        total += len(found) + sum(len(r.client.api.networks(filters=L.lab_filter(x))) for x in labs)
    return total


def one_room(lines: tuple[EngineLine, ...], labs: int, tag: str) -> dict:
    reached = E.reach([line.name for line in lines])
    assert all(r.up for r in reached), [r.error for r in reached]
    topo = api.topology(None)
    room = R.Room(f"bench{tag}", R.numbered_seats(labs, f"be{tag}-"))
    started = time.monotonic()
    try:
        out = S.up(reached, topo, room, lines=lines)
        up_s = time.monotonic() - started
        assert len(out.report.up) == labs, [
            (o.seat.lab, o.action, o.error) for o in out.report.not_up
        ]
        shares = {r.name: len(out.placement.on(r.name)) for r in reached}
    finally:
        started = time.monotonic()
        S.down(reached, room.name)
        down_s = time.monotonic() - started
    return {
        "engines": len(lines),
        "labs": labs,
        "up_s": round(up_s, 1),
        "down_s": round(down_s, 1),
        "shares": shares,
        "leftovers": leftovers(reached, room.name),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "engines.json")
    args = ap.parse_args()
    local = api.from_env().client
    second = SecondEngine(driver=local.info()["Driver"])
    results = []
    try:
        t = time.monotonic()
        second.start()
        second.copy_image(local, IMAGE)
        setup_s = round(time.monotonic() - t, 1)
        half = args.labs // 2
        budget = 7 * args.labs + 400  # this room plus what others run here: figures, not the rule
        results.append(one_room((EngineLine("local", nodes=budget),), args.labs, "1"))
        two = (
            EngineLine("local", labs=args.labs - half, nodes=budget),
            EngineLine(second.url, labs=half, nodes=budget),
        )
        results.append(one_room(two, args.labs, "2"))
    finally:
        left = second.undo()
    table = Table(title=f"{args.labs} default labs: one engine against two on the same machine")
    for col in ("engines", "up (s)", "down (s)", "labs per engine", "leftovers"):
        table.add_column(col)
    for r in results:
        table.add_row(
            str(r["engines"]),
            str(r["up_s"]),
            str(r["down_s"]),
            " / ".join(map(str, r["shares"].values())),
            str(r["leftovers"]),
        )
    console.print(table)
    console.print(
        f"second engine: started and loaded with the node image in {setup_s} s (not in the "
        "figures). Both engines share this machine's 2 cores: no CPU is added, so a difference "
        "comes from two daemons splitting their own serial work and twice the labs in flight "
        "(--parallel is per engine), and from whatever else loads the machine meanwhile."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"setup_s": setup_s, "rooms": results}, indent=2) + "\n")
    ok = left == ([], [], False, False, False) and all(r["leftovers"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

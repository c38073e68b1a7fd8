"""What declared impairments cost: the netem probe `up` makes before creating a lab that impairs
something, putting every impairment of examples/impaired in place (one exec per node, in
parallel), and reading them back for `hoplab status`. Median and spread over --runs.

    .venv/bin/python bench/impair.py [--runs 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from hoplab import lifecycle
from hoplab.engine.client import connect
from hoplab.engine.engine import Engine
from hoplab.model.load import load

FILE = Path(__file__).resolve().parents[1] / "examples" / "impaired" / "compose.yaml"


def timed(fn: Callable[[], object], runs: int) -> dict[str, float]:
    seconds = []
    for _ in range(runs):
        t0 = time.monotonic()
        fn()
        seconds.append(time.monotonic() - t0)
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    engine = Engine(connect())
    topo = load(FILE)
    name = f"benchimp{os.getpid()}"
    figures: dict[str, object] = {"nodes": len(topo.nodes), "impaired": len(topo.impairments())}
    try:
        lifecycle.up(engine, topo, name, lambda *a: None, lambda m: None)
        state = engine.state(name)
        figures["netem_probe"] = timed(lambda: engine.netem_missing("hoplab/node"), args.runs)
        items = list(topo.impairments())
        netem = not engine.netem_missing("hoplab/node")
        figures["apply"] = timed(lambda: engine.apply_impairments(state, items, netem), args.runs)
        figures["show"] = timed(lambda: engine.impairments(state), args.runs)
    finally:
        engine.down(name)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

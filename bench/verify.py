"""`hoplab verify` latency per lesson step on the default lab: the target is p95 <= 1 s.

    .venv/bin/python bench/verify.py --rounds 5

Brings up a default lab of its own (removed at the end, whatever happens), shows each step once
(that arms its captures) and then times, per step and round, (a) the verify itself in this
process: socket tables or capture files read from the nodes, templates filled, the check made;
(b) the whole command as a learner runs it, `hoplab verify LESSON --step N` in a new process,
Python start and the docker-py import included. Nothing was typed, so every step FAILs: the
evidence read is the same either way. Progress goes to a throwaway state directory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import summary  # bench/ is on the path: this script's folder
from hoplab import api, lessons, lifecycle, resources
from hoplab.lessons import run
from hoplab.lessons.names import Names
from hoplab.model.load import load

ROOT = Path(__file__).resolve().parent.parent
HOPLAB = str(Path(sys.executable).with_name("hoplab"))


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "verify.json")
    args = ap.parse_args()
    os.environ["HOPLAB_STATE"] = tempfile.mkdtemp(prefix="hoplab-verify-bench-")
    name = f"vbench{os.getpid()}"
    engine = api.from_env()
    inproc: dict[str, list[float]] = {}
    command: dict[str, list[float]] = {}
    load_avg = [round(os.getloadavg()[0], 2)]
    try:
        lifecycle.up(engine, load(resources.default_lab()), name, lambda *a: None, lambda m: None)
        lab = api.attach(name, engine=engine)
        for lesson in lessons.catalogue():
            for n, _ in enumerate(lesson.steps, 1):
                key = f"{lesson.name} {n}"
                run.start(lab, Names(lab), lesson, n)
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    run.verify(lab, Names(lab), lesson, n, 0)
                    inproc.setdefault(key, []).append(time.perf_counter() - started)
                    started = time.perf_counter()
                    subprocess.run(
                        [HOPLAB, "verify", lesson.name, "--step", str(n), "--name", name],
                        capture_output=True,
                        timeout=60,
                    )
                    command.setdefault(key, []).append(time.perf_counter() - started)
                print(
                    f"{key}: verify {p95(inproc[key]):.3f} s p95, "
                    f"`hoplab verify` {p95(command[key]):.3f} s p95",
                    file=sys.stderr,
                )
                load_avg.append(round(os.getloadavg()[0], 2))
    finally:
        engine.down(name)
    every_in, every_cmd = sum(inproc.values(), []), sum(command.values(), [])
    results = {
        "verify in process, per step (s)": {
            k: summary(v) | {"p95": p95(v)} for k, v in inproc.items()
        },
        "hoplab verify command, per step (s)": {
            k: summary(v) | {"p95": p95(v)} for k, v in command.items()
        },
        "p95 over all steps, in process (s)": p95(every_in),
        "p95 over all steps, command (s)": p95(every_cmd),
        "target p95 (s)": 1.0,
        "loadavg (1 min) at the start and after each step": load_avg,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if "per step" not in k}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

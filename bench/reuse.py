"""The pytest plugin's reuse mode: fixture set-up of a kept default lab, against a cold bring-up.

    .venv/bin/python bench/reuse.py --rounds 5

A throwaway project holds the default lab's compose.yaml and one test that uses the `hoplab`
fixture. One session with --hoplab-reuse brings the lab up and keeps it; then each round runs a
session that attaches to it (reuse), the same without paramiko (see WITHOUT_PARAMIKO), and one
without reuse (a lab of its own, up and down). The figure is the fixture's set-up time as
pytest's --durations prints it: what a CI user waits for before the first test. The kept lab is
removed at the end (--hoplab-reuse=off), whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import summary  # bench/ is on the path: this script's folder
from hoplab import resources

ROOT = Path(__file__).resolve().parent.parent
TEST = """\
def test_lab(hoplab):
    assert hoplab.node("alice").run(["true"]).ok
"""


# An install without paramiko, as hoplab's own dependencies leave it: here the portal extra's
# webssh brings paramiko in, and docker-py then imports its SSH transport (about 0.12 s) in every
# process. A None in sys.modules makes `import paramiko` fail exactly as when it is absent.
WITHOUT_PARAMIKO = (
    "import sys; sys.modules['paramiko'] = None; import pytest; sys.exit(pytest.main())"
)


def session(project: Path, *args: str, paramiko: bool = True) -> float:
    """Run one pytest session in the project; the `hoplab` fixture's set-up seconds."""
    pytest = ["-m", "pytest"] if paramiko else ["-c", WITHOUT_PARAMIKO]
    res = subprocess.run(
        [sys.executable, *pytest, "-q", "-p", "no:cacheprovider", "--durations=0", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if res.returncode != 0:
        raise RuntimeError(f"pytest failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    m = re.search(r"^\s*([\d.]+)s setup\s+\S*::test_lab\b", res.stdout, re.M)
    if not m:
        raise RuntimeError(f"no set-up time in pytest's output:\n{res.stdout[-2000:]}")
    return float(m[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "reuse.json")
    args = ap.parse_args()
    project = Path(tempfile.mkdtemp(prefix="hoplab-reuse-bench-"))
    (project / "compose.yaml").write_text(resources.default_lab().read_text())
    (project / "test_lab.py").write_text(TEST)
    (project / "pytest.ini").write_text("[pytest]\n")  # the project's root: no outer config
    rows: dict[str, list[float]] = {
        "reused set-up": [],
        "reused set-up, without paramiko": [],
        "cold set-up": [],
    }
    load = [round(os.getloadavg()[0], 2)]
    try:
        first = session(project, "--hoplab-reuse")
        print(f"first session (creates the kept lab): {first:.2f} s", file=sys.stderr)
        for i in range(args.rounds):
            rows["reused set-up"].append(session(project, "--hoplab-reuse"))
            rows["reused set-up, without paramiko"].append(
                session(project, "--hoplab-reuse", paramiko=False)
            )
            rows["cold set-up"].append(session(project))
            load.append(round(os.getloadavg()[0], 2))
            print(
                f"round {i + 1}/{args.rounds}: "
                + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items()),
                file=sys.stderr,
            )
    finally:
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hoplab-reuse=off",
             "--collect-only"],
            cwd=project,
            capture_output=True,
            timeout=300,
        )  # fmt: skip
        shutil.rmtree(project, ignore_errors=True)
    results = {k: summary(v) for k, v in rows.items()}
    results["target (reused, s)"] = 0.3
    results["loadavg (1 min) before and after each round"] = load
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

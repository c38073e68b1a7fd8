"""A learner's server left on srv:80 is named, not crashed on (issue 23, item 6).

As a learner does it: `hoplab exec` starts a web server on srv port 80 and leaves it running.
Then the whole catalogue runs through the command line: no traceback, no FAIL; an exercise
that needs the port is ENV naming node, port, program and pid with the fix, and the others
pass. `hoplab status` lists the server (and not Docker's DNS listener on 127.0.0.11). Typing
the fix the hint gives makes the exercise run again.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hoplab.runtime.lab import Lab

LEAVE_SERVER = (
    "setsid python3 -m http.server 80 >/dev/null 2>&1 </dev/null & i=0; "
    "until ss -Hltn 'sport = :80' | grep -q .; do [ $i -ge 200 ] && exit 1; "
    "sleep 0.05; i=$((i+1)); done"
)
SERVER = "python3 -m http.server 80"


def _hoplab(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "hoplab", *args]
    cmd[4:4] = ["--name", lab.name]  # after the subcommand: hoplab CMD --name LAB ...
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.docker
def test_a_server_left_on_srv_80_is_named_not_crashed_on(fresh_lab: Lab, tmp_path: Path) -> None:
    lab = fresh_lab
    left = _hoplab(lab, "exec", "srv", "--", "sh", "-c", LEAVE_SERVER)
    assert left.returncode == 0, left.stderr
    table = lab.node("srv").run(["ss", "-Hltnp", "sport = :80"]).out
    pid = int(re.search(r"pid=(\d+)", table).group(1))  # as the node sees it
    fix = f"hoplab exec --name {lab.name} srv kill {pid}"

    status = _hoplab(lab, "status")
    assert status.returncode == 0, status.stderr
    listed = f"not started by hoplab: srv tcp 0.0.0.0:80: {SERVER} (pid {pid}, root)"
    assert listed in status.stderr, status.stderr
    assert fix in status.stderr
    assert "127.0.0.11" not in status.stderr  # Docker's DNS: in `ss`, but no learner's process
    assert status.stderr.count("not started by hoplab") == 1, status.stderr
    as_json = _hoplab(lab, "status", "--json")  # the same, for scripts
    assert as_json.returncode == 0, as_json.stderr
    (found,) = json.loads(as_json.stdout)["foreign_listeners"]
    assert found == {
        "node": "srv",
        "proto": "tcp",
        "ip": "0.0.0.0",
        "port": 80,
        "pid": pid,
        "cmd": SERVER,
        "user": "root",
        "fix": fix,
    }, found

    out = tmp_path / "run.json"
    run = _hoplab(lab, "run", "--json", str(out), "--artifacts", str(tmp_path / "a"))
    both = run.stdout + run.stderr
    assert "Traceback" not in both, both
    assert run.returncode == 0, both  # nothing FAILs
    results = {e["name"]: e for e in json.loads(out.read_text())["exercises"]}
    assert len(results) == 20
    env = {n for n, e in results.items() if e["status"] == "ENV"}
    assert "one-port-many-clients" in env, both  # its lesson is port 80 on srv
    assert {n for n, e in results.items() if e["status"] == "PASS"} == set(results) - env
    for name in env:
        (check,) = results[name]["checks"]
        assert check["observed"].startswith(f"srv tcp 0.0.0.0:80: {SERVER} (pid {pid}, root)")
        assert f"stop it with `{fix}`" in check["hint"]
        assert "Address already in use" in check["evidence"]  # why it could not run
    rows = [line for line in run.stdout.splitlines() if "one-port-many-clients" in line]
    assert rows and "ENV" in rows[0], run.stdout  # the table says so (its cells fold the rest)

    # the hint, typed as it stands
    killed = subprocess.run(
        [sys.executable, "-m", *fix.split()], capture_output=True, text=True, timeout=60
    )
    assert killed.returncode == 0, killed.stderr
    again = _hoplab(lab, "run", "one-port-many-clients", "--artifacts", str(tmp_path / "b"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 passed, 0 failed, 0 env" in again.stderr
    assert "not started by hoplab" not in _hoplab(lab, "status").stderr

"""Workshop grading on the real engine: every reference solution passes, every untouched starter
fails, and a runaway, a crash or an escaped process is a clear FAIL that leaves the lab working."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hoplab import grading
from hoplab.checks import Status
from hoplab.grading import lossy_client, outputs, sandbox
from hoplab.grading.grader import grade
from hoplab.runtime.lab import Lab
from tests.conftest import ROOT

pytestmark = pytest.mark.docker

ASSIGNMENTS = grading.catalogue()
SPIN = "while True:\n    pass\n"


def _ids(a: grading.Assignment) -> str:
    return a.name


def _program(tmp_path: Path, text: str, name: str = "prog.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _lab_still_works(lab: Lab) -> None:
    """Routed traffic flows and no submitted program (uid nobody) is left in any node."""
    assert lab.node("alice").run(["ping", "-c1", "-W2", lab.address("srv", "lan2")]).ok
    for node in lab.nodes:
        left = node.run(["ps", "-u", "nobody", "-o", "pid=,args="]).out.strip()
        assert not left, f"{node.name}: {left}"
        assert not node.run(["ls", sandbox.grade_dir()]).out.strip(), node.name
    rules = lab.node("r1").run(["iptables", "-S"]).out
    assert "hoplab-impair" not in rules, rules


def test_every_assignment_has_its_files_and_distinct_checks():
    assert len(ASSIGNMENTS) >= 6
    for a in ASSIGNMENTS:
        assert a.starter.is_file() and a.solution.is_file() and a.lesson.is_file(), a.name
        assert "TODO" in a.starter.read_text(), a.name
        assert len(set(a.checks)) == len(a.checks), a.name


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=_ids)
def test_reference_solution_passes(lab, assignment):
    g = grade(lab, assignment, assignment.solution)
    assert g.ok, [(c.name, c.observed) for c in g.checks if c.status is not Status.PASS]
    assert [c.name for c in g.checks] == list(assignment.checks)


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=_ids)
def test_untouched_starter_fails(lab, assignment):
    g = grade(lab, assignment, assignment.starter)
    assert not g.ok
    assert len(g.checks) == len(assignment.checks)  # the total never shrinks
    first = next(c for c in g.checks if c.status is Status.FAIL)
    assert first.hint and first.expected and first.observed, first


def test_runaway_server_is_a_fail_within_the_start_limit(lab, tmp_path):
    a = grading.select("udp-service")
    started = time.monotonic()
    g = grade(lab, a, _program(tmp_path, SPIN))
    assert time.monotonic() - started < sandbox.START_WAIT + 15
    first = g.checks[0]
    assert first.status is Status.FAIL and "not listening" in first.observed, first
    assert all(c.status is Status.FAIL for c in g.checks)
    _lab_still_works(lab)


def test_runaway_client_is_stopped_at_its_limit_and_the_loss_is_undone(lab, tmp_path):
    a = grading.select("lossy-client")
    started = time.monotonic()
    g = grade(lab, a, _program(tmp_path, SPIN))
    assert time.monotonic() - started < lossy_client.LIMIT + 15
    first = g.checks[0]
    assert first.status is Status.FAIL, first
    assert first.observed.startswith(f"still running after {lossy_client.LIMIT:g} s"), first
    assert "endless loop" in first.hint
    _lab_still_works(lab)


def test_crash_is_a_fail_that_shows_the_exception(lab, tmp_path):
    crash = "import sys\nraise RuntimeError('boom ' + sys.argv[1])\n"
    g = grade(lab, grading.select("traceroute"), _program(tmp_path, crash))
    first = g.checks[0]
    assert first.status is Status.FAIL and "RuntimeError: boom" in first.observed, first
    server = grade(lab, grading.select("tcp-echo"), _program(tmp_path, crash, "srv.py"))
    assert "exited before it listened: RuntimeError: boom" in server.checks[0].observed
    _lab_still_works(lab)


def test_a_process_that_escapes_its_session_is_killed(lab, tmp_path):
    escape = (
        "import subprocess\n"
        "subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "print('1 *')\n"
    )
    g = grade(lab, grading.select("traceroute"), _program(tmp_path, escape))
    assert g.checks[0].status is Status.PASS  # it did exit 0 ...
    assert not g.ok  # ... with a wrong answer
    _lab_still_works(lab)  # and its detached child is gone


def test_syntax_error_fails_without_a_lab_run(lab, tmp_path):
    a = grading.select("tcp-echo")
    g = grade(lab, a, _program(tmp_path, "def broken(:\n    pass\n"))
    assert len(g.checks) == len(a.checks)
    assert g.checks[0].status is Status.FAIL and "SyntaxError: line 1" in g.checks[0].observed


def test_junit_and_results_json_are_well_formed(lab, tmp_path):
    failed = grade(lab, grading.select("tcp-echo"), grading.select("tcp-echo").starter)
    passed = grade(lab, grading.select("unix-service"), grading.select("unix-service").solution)
    for g, score in ((failed, 0.0), (passed, float(len(passed.checks)))):
        outputs.write_junit(g, tmp_path / "junit.xml")
        outputs.write_results(g, tmp_path / "results.json")
        suite = ET.parse(tmp_path / "junit.xml").getroot()
        assert suite.tag == "testsuite" and int(suite.get("tests")) == len(g.checks)
        assert int(suite.get("failures")) == len(g.checks) - g.passed
        results = json.loads((tmp_path / "results.json").read_text())
        assert results["score"] == score and results["max_score"] == len(g.checks)
        assert len(results["tests"]) == len(g.checks)
        for t in results["tests"]:
            assert set(t) >= {"name", "score", "max_score", "status", "output"}
            assert t["status"] in ("passed", "failed")
            assert "expected:" in t["output"] and "observed:" in t["output"]
            if t["status"] == "failed":
                assert t["score"] == 0 and "hint:" in t["output"]


def _hoplab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hoplab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_init_check_and_exit_codes(lab, tmp_path):
    res = _hoplab("check", "no-such-assignment", cwd=tmp_path)
    assert res.returncode == 2 and "hoplab assignments" in res.stderr
    res = _hoplab("check", "unix-service", "--name", lab.name, cwd=tmp_path)
    assert res.returncode == 2 and "hoplab check unix-service --init" in res.stderr
    assert _hoplab("check", "unix-service", "--init", cwd=tmp_path).returncode == 0
    assert (tmp_path / "unix_service.py").read_text() == grading.select(
        "unix-service"
    ).starter.read_text()
    res = _hoplab("check", "unix-service", "--init", cwd=tmp_path)
    assert res.returncode == 2 and "never overwrites" in res.stderr
    res = _hoplab("check", "unix-service", "--name", lab.name, cwd=tmp_path)
    assert res.returncode == 1 and "hint:" in res.stdout + res.stderr
    solution = str(grading.select("unix-service").solution)
    args = ["--name", lab.name, "--solution", solution, "--junit", "j.xml", "--results", "r.json"]
    res = _hoplab("check", "unix-service", *args, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads((tmp_path / "r.json").read_text())["score"] == 5.0
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "0"
    res = _hoplab("assignments", cwd=ROOT)
    assert res.returncode == 0 and all(a.name in res.stdout for a in ASSIGNMENTS)

"""hop-limit passes on the default lab (dual-stack) and is ENV, never FAIL, on the same lab without
IPv6; its break-it test (r1 loses its IPv6 route) runs on examples/dualstack in
tests/test_ipv6.py."""

from hoplab.checks import Status
from hoplab.exercises.hop_limit import EXERCISE
from hoplab.exercises.runner import run_one


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_env_on_a_lab_without_ipv6(v4_lab):
    result = run_one(v4_lab, EXERCISE, v4_lab.artifacts)
    assert result.status is Status.ENV, result.checks
    assert "dual-stack" in result.checks[0].hint

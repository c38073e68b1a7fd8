"""no-fragmenting-routers on a lab without IPv6 (the default lab today) is ENV, never FAIL; its
PASS and its break-it test run on the dual-stack lab in tests/test_ipv6.py."""

from hoplab.checks import Status
from hoplab.exercises.no_fragmenting_routers import EXERCISE
from hoplab.exercises.runner import run_one


def test_env_on_a_lab_without_ipv6(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.ENV, result.checks
    assert "dual-stack" in result.checks[0].hint

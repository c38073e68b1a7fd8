"""bind-scope passes on the default lab, and fails when one of srv's addresses is cut off."""

from hoplab.checks import Status
from hoplab.exercises.bind_scope import EXERCISE
from hoplab.exercises.runner import run_one


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_a_router_loses_the_route(fresh_lab):
    # Break: r1 forgets lan3, so alice can no longer reach srv's lan3 address. The cells where
    # lan3 should answer (bound to lan3, bound to 0.0.0.0) then show an error, not "answered".
    r1 = fresh_lab.node("r1")
    assert r1.run(["ip", "route", "del", fresh_lab.subnet("lan3")]).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    failed = {c.name for c in result.checks if c.status is Status.FAIL}
    lan3 = fresh_lab.address("srv", "lan3")
    assert f"bound to {lan3}: reachable only on that address" in failed, result.checks
    assert "bound to 0.0.0.0: reachable on every address" in failed, result.checks

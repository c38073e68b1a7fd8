"""mtu-and-fragmentation passes on the default lab, and fails across a path MTU black hole."""

from hoplab.checks import Status
from hoplab.exercises.mtu_and_fragmentation import EXERCISE
from hoplab.exercises.runner import run_one


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_passes_three_times_in_a_row(lab):
    # The path MTU alice learns must not leak into the next run.
    for _ in range(3):
        result = run_one(lab, EXERCISE, lab.artifacts)
        assert result.status is Status.PASS, result.checks


def test_fails_across_a_pmtu_black_hole(fresh_lab):
    # Break: r2 sends no ICMP at all (a "PMTU black hole"). Fragmentation with DF clear still
    # works, but with DF set the datagram vanishes and alice never learns the path MTU.
    r2 = fresh_lab.node("r2")
    assert r2.run(["iptables", "-I", "OUTPUT", "-p", "icmp", "-j", "DROP"]).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    failed = {c.name for c in result.checks if c.status is Status.FAIL}
    assert failed == {
        "DF set: r2 answers with ICMP fragmentation-needed, MTU 1280",
        "DF set: alice learns the path MTU, and the next send fails with EMSGSIZE",
    }, result.checks

"""ttl-and-traceroute passes on the default lab, and fails when a router is bypassed."""

from hoplab.checks import Status
from hoplab.exercises.runner import run_one
from hoplab.exercises.ttl_and_traceroute import EXERCISE


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_the_path_changes(fresh_lab):
    # Break: r1 loses its route to srv's LAN, so the datagram never arrives and traceroute
    # gets "network unreachable" from r1 instead of reaching srv.
    r1 = fresh_lab.node("r1")
    lan2 = fresh_lab.subnet("lan2")
    assert r1.run(["ip", "route", "del", lan2]).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL

"""errors-by-layer passes on the default lab, and fails when a router answers for the host."""

from hoplab.checks import Status
from hoplab.exercises.errors_by_layer import EXERCISE
from hoplab.exercises.runner import run_one


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_a_router_answers_in_the_hosts_name(fresh_lab):
    # Break: r2 refuses forwarded traffic itself, forging the host's answers: a TCP RST and an
    # ICMP port-unreachable. The errno values look right; who sent them does not.
    r2 = fresh_lab.node("r2")
    for proto, answer in (("tcp", "tcp-reset"), ("udp", "icmp-port-unreachable")):
        rule = ["iptables", "-I", "FORWARD", "-p", proto, "-j", "REJECT", "--reject-with", answer]
        assert r2.run(rule).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    failed = {c.name for c in result.checks if c.status is Status.FAIL}
    assert "closed TCP port: the RST comes from the destination host" in failed
    assert any(name.startswith("closed UDP port") for name in failed)


def test_fails_when_the_router_drops_silently(fresh_lab):
    # Break: r1 drops (instead of answering) what it cannot route, so no ICMP comes back and the
    # missing route only shows as a timeout.
    r1 = fresh_lab.node("r1")
    assert r1.run(["iptables", "-I", "OUTPUT", "-p", "icmp", "-j", "DROP"]).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    failed = [c.name for c in result.checks if c.status is Status.FAIL]
    assert failed == ["no route on r1: ICMP unreachable from the router, not the host"], failed

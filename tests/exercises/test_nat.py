"""nat passes on the default lab and leaves no rule behind; it fails when masquerade is bypassed."""

from hoplab.checks import Status
from hoplab.exercises.nat import EXERCISE
from hoplab.exercises.runner import run_one


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks
    rules = lab.node("r1").run(["iptables", "-t", "nat", "-S", "POSTROUTING"]).out
    assert "MASQUERADE" not in rules  # cleaned up


def test_fails_when_masquerade_is_bypassed(fresh_lab):
    # Break: an ACCEPT at the top of r1's nat POSTROUTING ends the chain for traffic leaving on
    # core, so the MASQUERADE rule the exercise appends is never reached: srv sees the clients'
    # own addresses in the NAT run too.
    r1 = fresh_lab.node("r1")
    core = r1.iface("core").name
    assert r1.run(["iptables", "-t", "nat", "-I", "POSTROUTING", "-o", core, "-j", "ACCEPT"]).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    by_name = {c.name: c.status for c in result.checks}
    assert by_name["without NAT, srv sees each client by its own address"] is Status.PASS
    assert by_name["with masquerade on r1, srv sees both clients as r1"] is Status.FAIL

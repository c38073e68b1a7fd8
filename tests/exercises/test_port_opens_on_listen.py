"""port-opens-on-listen passes on the default lab, and fails when a router answers in the
server's place."""

from hoplab.checks import Status
from hoplab.exercises.port_opens_on_listen import EXERCISE, PORT
from hoplab.exercises.runner import run_one


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_a_router_sends_the_reset(fresh_lab):
    # Break: r2 rejects the SYNs with its own RST, so the client is still refused, but the
    # reset never comes from srv and the port never opens for alice.
    rule = ["-p", "tcp", "--dport", str(PORT), "-j", "REJECT", "--reject-with", "tcp-reset"]
    assert fresh_lab.node("r2").run(["iptables", "-A", "FORWARD", *rule]).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    by_name = {c.name: c.status for c in result.checks}
    assert by_name["connect before bind() is refused"] is Status.PASS
    assert by_name["its RST comes from srv itself, not a router"] is Status.FAIL
    assert result.status is Status.FAIL

"""ephemeral-ports passes on the default lab, and fails when srv:81 is closed by a filter."""

from hoplab.checks import Status
from hoplab.exercises.ephemeral_ports import EXERCISE, OTHER
from hoplab.exercises.runner import run_one


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_the_second_port_is_refused(fresh_lab):
    # Break: srv resets every SYN to :81, so no local port can be shown serving two 4-tuples.
    rule = ["-p", "tcp", "--dport", str(OTHER), "-j", "REJECT", "--reject-with", "tcp-reset"]
    assert fresh_lab.node("srv").run(["iptables", "-A", "INPUT", *rule]).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    by_name = {c.name: c.status for c in result.checks}
    assert by_name["four connections to srv:80 get four distinct local ports"] is Status.PASS
    assert by_name["a connection to srv:81 reuses a local port busy with srv:80"] is Status.FAIL
    assert result.status is Status.FAIL

"""half-close passes on the default lab, and fails when the client's FIN is lost on the way."""

from hoplab.checks import Status
from hoplab.exercises.half_close import EXERCISE, PORT
from hoplab.exercises.runner import run_one


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_the_fin_is_dropped(fresh_lab):
    # Break: r2 drops every segment with FIN set going to the server's port. The request
    # arrives, but the server never reads b'', so it never replies and the client waits in vain.
    r2 = fresh_lab.node("r2")
    rule = ["-p", "tcp", "--dport", str(PORT), "--tcp-flags", "FIN", "FIN", "-j", "DROP"]
    assert r2.run(["iptables", "-I", "FORWARD", *rule]).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    failed = {c.name for c in result.checks if c.status is Status.FAIL}
    assert "the server's recv() returns b'' once the client has shut down its side" in failed
    assert "the client receives the reply on its half-closed socket" in failed

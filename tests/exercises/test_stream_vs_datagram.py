"""stream-vs-datagram passes on the default lab, and fails when a datagram is lost."""

from hoplab.checks import Status
from hoplab.exercises.runner import run_one
from hoplab.exercises.stream_vs_datagram import EXERCISE, PORT


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_a_datagram_is_lost(fresh_lab):
    # Break: srv drops the 200-byte UDP datagram (IP length 20 + 8 + 200 = 228) on the way in.
    # UDP never resends it, so only 100 and 300 arrive; the TCP checks are unaffected.
    rule = ["-p", "udp", "--dport", str(PORT), "-m", "length", "--length", "228", "-j", "DROP"]
    assert fresh_lab.node("srv").run(["iptables", "-A", "INPUT", *rule]).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    failed = [c for c in result.checks if c.status is Status.FAIL]
    assert [c.name for c in failed] == [
        "UDP delivers exactly three datagrams of 100, 200 and 300 bytes"
    ], result.checks
    assert "[100, 300]" in failed[0].observed

"""transport-only-on-end-hosts passes on the default lab, and fails when the router is a proxy."""

from hoplab.checks import Status
from hoplab.exercises.runner import run_one
from hoplab.exercises.transport_only_on_end_hosts import EXERCISE, PORT

RELAY_PORT = 9190


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_the_router_terminates_tcp(fresh_lab):
    # Break: r2 becomes a transparent proxy. A REDIRECT rule hands carol's connection to a relay
    # on r2, which opens its own connection to dave. The bytes still arrive, but now r2's TCP
    # takes the segments, r2 holds sockets, and the two sides carry different connections.
    r2 = fresh_lab.node("r2")
    dave_ip = fresh_lab.address("dave")
    rule = ["-p", "tcp", "--dport", str(PORT), "-j", "REDIRECT", "--to-ports", str(RELAY_PORT)]
    assert r2.run(["iptables", "-t", "nat", "-A", "PREROUTING", *rule]).ok
    r2.start_py("hop_transfer.py", "relay", RELAY_PORT, dave_ip, PORT, 10, ready="listening")
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    by_name = {c.name: c.status for c in result.checks}
    assert by_name["the 1 MB arrives whole"] is Status.PASS  # a proxy delivers the bytes...
    failed = {n for n, s in by_name.items() if s is Status.FAIL}
    assert "r2's TCP saw none of it (TcpInSegs does not move)" in failed  # ...but it is TCP
    assert "the TTL is one lower on the way out" in failed

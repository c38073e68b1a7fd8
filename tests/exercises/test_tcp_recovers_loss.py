"""tcp-recovers-loss passes on the default lab, and fails when loss happens somewhere else too."""

from hoplab.checks import Status
from hoplab.exercises.runner import run_one
from hoplab.exercises.tcp_recovers_loss import EXERCISE, UDP_PORT


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_another_router_also_drops(fresh_lab):
    # Break: r2 silently drops every 3rd datagram of the UDP flow as well, so the gaps srv sees
    # are no longer the ones r1's rule predicts.
    r2 = fresh_lab.node("r2")
    rule = ["iptables", "-I", "FORWARD", "-p", "udp", "--dport", str(UDP_PORT)]
    rule += ["-m", "statistic", "--mode", "nth", "--every", "3", "--packet", "0", "-j", "DROP"]
    assert r2.run(rule).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    failed = [c.name for c in result.checks if c.status is Status.FAIL]
    assert failed == ["UDP: the dropped datagrams are gone, and the gaps are listed"], failed

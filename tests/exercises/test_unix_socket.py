"""unix-socket passes on the default lab, and its capture check fails when srv has traffic."""

import pytest

from hoplab.checks import Status
from hoplab.exercises.hop_limit import address6
from hoplab.exercises.runner import run_one
from hoplab.exercises.unix_socket import EXERCISE, SOCK_DIR


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks
    assert not lab.node("srv").run(["test", "-e", SOCK_DIR]).ok, "the exercise left its dir"


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_fails_when_srv_talks_on_the_network(fresh_lab, family):
    # Break: carol pings srv's lan2 address throughout, so the "no frames" check must see
    # srv's traffic and FAIL; the socket checks are unaffected. run_one stops the pinger.
    # IPv6 too: neighbour discovery is left out of the count, an echo must not be.
    srv = fresh_lab.node("srv")
    srv_ip = srv.address("lan2") if family == "ipv4" else address6(srv, "lan2")
    assert srv_ip, "the default lab is dual-stack"
    fresh_lab.node("carol").start(
        ["ping", "-n", "-i", "0.02", "-w", "30", srv_ip], ready="bytes from"
    )
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    failed = [c.name for c in result.checks if c.status is Status.FAIL]
    assert failed == [
        "no frame from srv or to its addresses on lan2 or lan3 during the exchange"
    ], result.checks

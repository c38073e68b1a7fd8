"""mac-per-hop passes on the default lab, and fails when alice treats srv as on her LAN."""

from hoplab.checks import Status
from hoplab.exercises.mac_per_hop import EXERCISE
from hoplab.exercises.runner import run_one


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_the_far_host_is_treated_as_a_neighbour(fresh_lab):
    # Break: an on-link route makes alice ARP for srv itself instead of handing the packet to
    # r1. Nobody on lan1 answers, so the datagram never leaves and srv lands in alice's
    # neighbour table (FAILED).
    alice = fresh_lab.node("alice")
    srv_ip = fresh_lab.address("srv")
    assert alice.run(["ip", "route", "add", f"{srv_ip}/32", "dev", alice.iface("lan1").name]).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    failed = {c.name for c in result.checks if c.status is Status.FAIL}
    assert "alice's neighbour table holds its router, never the far host" in failed

"""socket-is-address-protocol-port passes on the default lab, and fails when the port is taken."""

from hoplab.checks import Status
from hoplab.exercises.runner import run_one
from hoplab.exercises.socket_is_address_protocol_port import EXERCISE, PORT

HOLD_UDP = (
    "import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
    "s.bind(('0.0.0.0',int(sys.argv[1]))); print('holding',flush=True); s.recv(1)"
)


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_udp_port_is_already_taken(fresh_lab):
    # Break: another program on srv already holds UDP 0.0.0.0:5000, so the exercise's UDP bind
    # gets EADDRINUSE and "TCP and UDP hold the same port" must FAIL.
    fresh_lab.node("srv").start(["python3", "-c", HOLD_UDP, str(PORT)], ready="holding")
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    failed = [c.name for c in result.checks if c.status is Status.FAIL]
    assert failed == ["TCP and UDP hold the same port at the same time"], result.checks

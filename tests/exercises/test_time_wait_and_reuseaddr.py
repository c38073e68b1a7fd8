"""time-wait-and-reuseaddr passes on the default lab, and fails when the server aborts its
connection with a reset instead of closing it."""

from pathlib import Path

from hoplab.checks import Status
from hoplab.exercises.runner import run_one
from hoplab.exercises.time_wait_and_reuseaddr import EXERCISE

SERVER = Path(__file__).resolve().parents[2] / "hosts" / "programs" / "tcp_timewait.py"
LINGER_0 = 'c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\0\\0\\0\\0\\0\\0\\0")'


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_the_server_resets_instead_of_closing(fresh_lab):
    # Break: SO_LINGER 0 makes close() send RST, so no side ever enters TIME_WAIT and the
    # plain rebind does not fail.
    text = SERVER.read_text()
    broken = text.replace('c.sendall(b"bye\\n")', LINGER_0)
    assert broken != text
    fresh_lab.node("srv").copy_in(broken.encode(), "/opt/hoplab/tcp_timewait.py")
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    by_name = {c.name: c.status for c in result.checks}
    assert by_name["the side that closes first holds TIME_WAIT"] is Status.FAIL
    assert by_name["bind() without SO_REUSEADDR fails while TIME_WAIT holds the port"] is (
        Status.FAIL
    )

"""The ten-line test: your own server in one node, a client two routers away, real packets."""

from pathlib import Path


def test_kv_across_two_routers(hoplab):
    srv, alice = hoplab.node("srv"), hoplab.node("alice")
    srv.copy_in(Path(__file__).parent / "kv" / "server.py", "/opt/kv/server.py")
    with srv.start(["python3", "-u", "/opt/kv/server.py", "7071"], ready="listening"):
        res = alice.run(f"printf 'SET a 1\\nGET a\\n' | nc -N -w5 {hoplab.address('srv')} 7071")
    assert res.stdout.splitlines() == ["OK", "VALUE 1"], res

"""The key-value server of kv/ tested across two routers (alice -> r1 -> r2 -> srv), clean and
with every fifth packet dropped on the core link: TCP must still deliver every answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hoplab.runtime.lab import Lab, Node

KV = Path(__file__).parent / "kv"
PORT = 7070
COMMANDS = [f"SET k{i} v{i}" for i in range(10)] + [f"GET k{i}" for i in range(10)] + ["GET nope"]
EXPECTED = ["OK"] * 10 + [f"VALUE v{i}" for i in range(10)] + ["MISSING"]


@pytest.fixture(scope="module")
def alice(hoplab: Lab) -> Iterator[Node]:
    """The server runs in srv for the whole module; the client runs in alice, two routers away."""
    srv, alice = hoplab.node("srv"), hoplab.node("alice")
    srv.copy_in(KV / "server.py", "/opt/kv/server.py")
    alice.copy_in(KV / "client.py", "/opt/kv/client.py")
    with srv.start(["python3", "-u", "/opt/kv/server.py", str(PORT)], ready="listening"):
        yield alice


def ask(hoplab: Lab, alice: Node) -> list[str]:
    res = alice.run(
        ["python3", "/opt/kv/client.py", hoplab.address("srv", "lan2"), str(PORT), *COMMANDS]
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def test_kv_answers_across_two_routers(hoplab: Lab, alice: Node) -> None:
    ping = alice.run(["ping", "-n", "-c1", "-W2", hoplab.address("srv", "lan2")])
    assert "ttl=62" in ping.stdout, ping.stdout  # 64, less one at each router: r1 and r2
    assert ask(hoplab, alice) == EXPECTED


def test_kv_answers_correctly_under_loss(hoplab: Lab, alice: Node) -> None:
    with hoplab.impair("r1", "core", every=5) as loss:
        assert ask(hoplab, alice) == EXPECTED
        assert loss.drops() > 0, f"no packet was dropped ({loss.mechanism})"

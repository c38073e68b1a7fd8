"""Which listeners are foreign (held by no hoplab process), and which of them a failure points at.
Pure: the rows are what the in-node scanner prints."""

from __future__ import annotations

from hoplab.runtime.lab import NOBODY
from hoplab.runtime.listeners import Listener, _foreign, blamed


def _row(inode: str, pid: int, port: int = 80, run: str = "", uid: int = 0, **kw: object) -> dict:
    row = {"inode": inode, "proto": "tcp", "ip": "0.0.0.0", "port": port, "pid": pid}
    return row | {"uid": uid, "run": run, "cmd": f"server {port}"} | kw


def test_only_sockets_no_hoplab_process_holds_are_foreign() -> None:
    rows = [
        _row("socket:[1]", 23),  # the learner's server
        _row("socket:[2]", 40, port=5000, run="host/1/2/abc"),  # hoplab's own exercise server
        _row("socket:[3]", 50, port=7000, uid=NOBODY),  # participant code: reaped, not foreign
        _row("socket:[4]", 61, port=9000),  # held by a parent and its forked child
        _row("socket:[4]", 60, port=9000),
        _row("socket:[5]", 70, port=9100, ip="::", proto="udp"),
    ]
    found = _foreign("srv", rows)
    assert [(f.port, f.pid) for f in found] == [(80, 23), (9000, 60), (9100, 70)]
    assert found[2].endpoint == "[::]:9100"
    assert found[0].describe() == "srv tcp 0.0.0.0:80: server 80 (pid 23, root)"
    assert found[0].fix("lab1") == "hoplab exec --name lab1 srv kill 23"


def test_a_socket_shared_with_a_hoplab_process_is_not_foreign() -> None:
    rows = [_row("socket:[1]", 23), _row("socket:[1]", 24, run="host/1/2/abc")]
    assert _foreign("srv", rows) == []


LEFT = Listener("srv", "tcp", "0.0.0.0", 80, 23, "python3 -m http.server 80", "root")
ADDRS = {"srv": ["10.77.2.100", "fd77:2::64"], "alice": ["10.77.1.10"]}


def test_a_failure_that_names_the_node_and_port_blames_the_listener() -> None:
    bind_failed = "srv: python3 -u /opt/hoplab/tcp_server.py many 10.77.2.100 80 3 did not start"
    assert blamed([LEFT], bind_failed, ADDRS) == [LEFT]
    by_address = "alice: connect [fd77:2::64]:80 got the wrong page"
    assert blamed([LEFT], by_address, ADDRS) == [LEFT]


def test_a_failure_elsewhere_blames_nobody() -> None:
    other_port = "srv: tcp_server.py 10.77.2.100 8080 did not start"
    other_node = "alice: python3 server.py 80 did not start"
    digits_inside = "srv: sha256 80ab... from 10.77.2.80 port 1800"
    for text in (other_port, other_node, digits_inside):
        assert blamed([LEFT], text, ADDRS) == [], text

"""one-port-many-clients passes on the default lab, and fails when a client cannot get through
or when the server answers on the wrong connection."""

from pathlib import Path

from hoplab.checks import Status
from hoplab.exercises.one_port_many_clients import EXERCISE
from hoplab.exercises.runner import run_one

SERVER = Path(__file__).resolve().parents[2] / "hosts" / "programs" / "tcp_server.py"


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks


def test_fails_when_a_router_loses_the_route(fresh_lab):
    # Break: r1 no longer routes to srv's LAN, so alice's two connections never arrive.
    assert fresh_lab.node("r1").run(["ip", "route", "del", fresh_lab.subnet("lan2")]).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    assert result.status is Status.FAIL
    failed = {c.name for c in result.checks if c.status is Status.FAIL}
    assert "accept() gives three distinct peers on one local address" in failed


def test_fails_when_the_server_answers_the_wrong_client(fresh_lab):
    # Break: a server that sends each token to the next connection in the list.
    text = SERVER.read_text()
    wrong = text.replace(
        "c.sendall(token)",
        "conns[(conns.index((c, peer, local)) + 1) % len(conns)][0].sendall(token)",
    )
    assert wrong != text
    fresh_lab.node("srv").copy_in(wrong.encode(), "/opt/hoplab/tcp_server.py")
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    by_name = {c.name: c.status for c in result.checks}
    assert by_name["each client gets back only its own token"] is Status.FAIL


def test_http_fails_when_the_server_answers_everyone_with_one_page(fresh_lab, monkeypatch):
    # Break: a web server that caches the first page and serves it to every user.
    from hoplab.exercises import one_port_many_clients as mod

    wrong = mod.HTTP_SERVER.replace(
        "    def do_GET(self):\n",
        "    cached = None\n    def do_GET(self):\n"
        "        Page.cached = Page.cached or (self.path, self.client_address)\n"
        "        self.path, self.client_address = Page.cached\n",
    )
    assert wrong != mod.HTTP_SERVER
    monkeypatch.setattr(mod, "HTTP_SERVER", wrong)
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    by_name = {c.name: c.status for c in result.checks}
    assert by_name["HTTP on port 80: every user at once gets a page of its own"] is Status.FAIL
    assert by_name["each client gets back only its own token"] is Status.PASS  # only HTTP broke

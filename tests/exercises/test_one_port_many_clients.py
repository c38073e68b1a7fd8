"""one-port-many-clients passes on the default lab (dual-stack: the HTTP users come over IPv4 and
IPv6 to one server), fails when a client cannot get through or when the server answers on the
wrong connection, and on a lab without IPv6 passes its IPv4 checks with the IPv6 half ENV."""

from ipaddress import IPv6Network
from pathlib import Path

from hoplab.checks import Status
from hoplab.exercises.hop_limit import address6
from hoplab.exercises.one_port_many_clients import EXERCISE
from hoplab.exercises.runner import run_one

SERVER = Path(__file__).resolve().parents[2] / "hosts" / "programs" / "tcp_server.py"


HTTP4 = "HTTP on port 80: every user at once gets a page of its own"
HTTP6 = "HTTP on port 80 over IPv6: the same server gives each user its own page"


def test_passes_on_default_lab(lab):
    result = run_one(lab, EXERCISE, lab.artifacts)
    assert result.status is Status.PASS, result.checks
    by_name = {c.name: c for c in result.checks}
    assert by_name[HTTP6].status is Status.PASS  # the IPv6 users were really served
    assert "::ffff:" in by_name[HTTP4].observed  # IPv4 users reached the same [::] socket
    assert by_name[HTTP6].observed.count("got 200") == 3


def test_ipv4_passes_and_ipv6_is_env_on_a_lab_without_ipv6(v4_lab):
    result = run_one(v4_lab, EXERCISE, v4_lab.artifacts)
    assert result.status is Status.ENV, result.checks
    states = {c.name: c.status for c in result.checks}
    assert states.pop(HTTP6) is Status.ENV
    assert set(states.values()) == {Status.PASS}, result.checks  # IPv4 as it always was


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
    assert by_name[HTTP4] is Status.FAIL
    assert by_name[HTTP6] is Status.FAIL  # one server: its IPv6 users get the cached page too
    assert by_name["each client gets back only its own token"] is Status.PASS  # only HTTP broke


def test_http_over_ipv6_fails_when_alice_loses_her_ipv6_route(fresh_lab):
    # Break: alice forgets the way to srv's IPv6 LAN; her IPv6 user never gets a page, while
    # every IPv4 user, alice's included, still does.
    srv6 = address6(fresh_lab.node("srv"), "lan2")
    assert srv6 is not None
    lan2 = IPv6Network(f"{srv6}/64", strict=False)  # the default lab's IPv6 LANs are /64s
    assert fresh_lab.node("alice").run(["ip", "-6", "route", "del", str(lan2)]).ok
    result = run_one(fresh_lab, EXERCISE, fresh_lab.artifacts)
    checks = {c.name: c for c in result.checks}
    assert checks[HTTP6].status is Status.FAIL, result.checks
    assert "alice got" in checks[HTTP6].observed and "unreachable" in checks[HTTP6].observed
    assert checks[HTTP4].status is Status.PASS, result.checks

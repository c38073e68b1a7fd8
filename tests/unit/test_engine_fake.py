"""Impairments, reaping and processes through EngineAPI, on the fake engine: the engine's real
impairment code and the runtime's real reaper run against the fake's node kernels
(tests/unit/fake_kernel.py). The live proofs are tests/test_impair.py and tests/test_reuse.py."""

from __future__ import annotations

import pytest

from hoplab import lifecycle
from hoplab.errors import InputError
from hoplab.model.load import parse
from hoplab.runtime.lab import NOBODY, Lab, left_running
from tests.unit.fake_engine import FakeEngine, Faults

IMPAIRED = """\
services:
  r1: {x-hoplab: {role: router}, networks: [a, b]}
  alice:
    networks:
      a: {x-hoplab: {impair: {rate: 2mbit}}}
  bob: {networks: [b]}
networks:
  a: {ipam: {config: [{subnet: 10.64.1.0/24}]}}
  b:
    x-hoplab: {impair: {loss: 5%}}
    ipam: {config: [{subnet: 10.64.2.0/24}]}
"""
DEAD_RUN = "elsewhere/1/2/dead0000"  # another host's run counts as gone


def _up(fake: FakeEngine, topo, name: str) -> Lab:
    lifecycle.up(fake, topo, name, lambda *a: None, lambda m: None)
    return Lab.attach(fake, name)


def test_the_files_impairments_are_in_the_kernel_after_up_without_netem():
    fake = FakeEngine()
    fake.netem = False
    lab = _up(fake, parse(IMPAIRED, "impaired.yaml"), "fk1")
    assert lab.link_impairments() == {
        ("alice", "a"): "rate 2mbit (tbf)",
        ("r1", "b"): "loss 5% (iptables statistic)",
        ("bob", "b"): "loss 5% (iptables statistic)",
    }
    # the fallback's rules sit on FORWARD and OUTPUT of bob's one interface, tagged
    assert [r.split()[:3] for r in fake.kernel("fk1-bob").rules] == [
        ["-A", "FORWARD", "-o"],
        ["-A", "OUTPUT", "-o"],
    ]


def test_with_netem_the_same_file_goes_to_netem():
    fake = FakeEngine()
    lab = _up(fake, parse(IMPAIRED, "impaired.yaml"), "fk2")
    shown = lab.link_impairments()
    assert set(shown) == {("alice", "a"), ("r1", "b"), ("bob", "b")}
    assert shown[("bob", "b")].startswith("netem ") and '"loss": "5%"' in shown[("bob", "b")]
    assert fake.kernel("fk2-bob").rules == []


def test_changing_a_link_replaces_it_and_none_clears_it(tiny):
    fake = FakeEngine()
    fake.netem = False
    lab = _up(fake, tiny, "fk3")
    assert lab.link_impairments() == {}
    assert lab.impair_link("a", loss="10%", rate="1mbit") == []
    assert lab.link_impairments() == {
        ("r1", "a"): "rate 1mbit (tbf), loss 10% (iptables statistic)",
        ("alice", "a"): "rate 1mbit (tbf), loss 10% (iptables statistic)",
    }
    lab.impair_link("a", loss="1%", node="alice")  # replaces alice's, leaves r1's
    assert lab.link_impairments()[("alice", "a")] == "loss 1% (iptables statistic)"
    assert lab.link_impairments()[("r1", "a")].startswith("rate 1mbit")
    lab.impair_link("a")
    assert lab.link_impairments() == {}


def test_delay_without_netem_is_refused_or_dropped_with_a_warning(tiny):
    fake = FakeEngine()
    fake.netem = False
    lab = _up(fake, tiny, "fk4")
    with pytest.raises(InputError) as err:
        lab.impair_link("b", delay="20ms", loss="5%")
    assert err.value.key == "--delay" and lab.link_impairments() == {}
    warnings = lab.impair_link("b", delay="20ms", loss="5%", allow_unsupported=True)
    assert warnings == ["delay dropped: this kernel has no netem"]
    assert lab.link_impairments()[("bob", "b")] == "loss 5% (iptables statistic)"


def test_a_file_delay_without_netem_refuses_the_lab_before_anything_is_made():
    fake = FakeEngine()
    fake.netem = False
    topo = parse(IMPAIRED.replace("loss: 5%", "delay: 20ms"), "impaired.yaml")
    with pytest.raises(InputError) as err:
        lifecycle.up(fake, topo, "fk5", lambda *a: None, lambda m: None)
    assert err.value.key == "networks.b.x-hoplab.impair.delay"
    assert fake.objects() == ([], [])


def test_reap_kills_strays_and_nobody_and_keeps_live_runs(tiny):
    fake = FakeEngine()
    lab = _up(fake, tiny, "fk6")
    fake.spawn("fk6-alice", 40, 0, DEAD_RUN, "python3 server.py")
    fake.spawn("fk6-alice", 41, 0, lab.run_id, "sleep 100")  # this run's own: alive
    fake.spawn("fk6-bob", 50, NOBODY, "", "python3 submitted.py")
    fake.spawn("fk6-bob", 51, 0, "", "/sbin/docker-init")  # unmarked: never touched
    listed = left_running(fake, lab.state)
    assert sorted((x.node, x.pid, x.user) for x in listed) == [
        ("alice", 40, "root"),
        ("alice", 41, "root"),
        ("bob", 50, "nobody"),
    ]
    reaped = lab.reap()
    assert sorted((x.node, x.pid) for x in reaped) == [("alice", 40), ("bob", 50)]
    assert [p[0] for p in fake.processes("fk6-alice", "HOPLAB_RUN")] == [41]
    assert [p[0] for p in fake.processes("fk6-bob", "HOPLAB_RUN")] == [51]
    assert fake.restarts == []


def test_a_node_no_exec_can_reach_is_restarted_and_loses_every_process(tiny):
    fake = FakeEngine(faults=Faults(exec_refused={"fk7-bob"}))
    lab = _up(fake, tiny, "fk7")
    fake.spawn("fk7-bob", 60, NOBODY, "", ":(){ :|:& };:")
    fake.spawn("fk7-alice", 70, NOBODY, "", "python3 submitted.py")
    reaped = lab.reap()
    assert sorted((x.node, x.pid) for x in reaped) == [("alice", 70), ("bob", 60)]
    assert fake.restarts == ["fk7-bob"]  # alice's exec worked: only bob was restarted
    assert fake.processes("fk7-bob", "HOPLAB_RUN") == []
    assert lab.node("bob").run(["true"]).ok  # execs start again after the restart


def test_stop_all_sweeps_a_node_whose_exec_never_came_back(tiny):
    fake = FakeEngine()
    lab = _up(fake, tiny, "fk8")
    fake.spawn("fk8-alice", 80, 0, lab.run_id, "python3 server.py")
    lab._unfinished.add("alice")  # as Node.run leaves it when Ctrl-C cut an exec short
    assert lab.stop_all() == ["alice: python3 server.py (pid 80, root)"]
    assert fake.processes("fk8-alice", "HOPLAB_RUN") == []


def test_logs_terminals_owners_and_host_rules(tiny):
    fake = FakeEngine()
    lab = _up(fake, tiny, "fk9")
    assert lab.node("alice").logs() is None  # a hoplab/node node has no program log
    fake.logs["fk9-alice"] = "".join(f"line {i}\n" for i in range(300))
    assert lab.node("alice").logs(tail=2) == "line 298\nline 299\n"
    exec_id, sock, _ = fake.open_tty("fk9-alice", ["sh"], {"TERM": "xterm"})
    fake.resize_tty(exec_id, 40, 120)
    assert fake.tty_sizes[exec_id] == (40, 120)
    assert fake.kill_tty("fk9-alice", "t1") == 1
    assert sock.recv(1) == b""  # the far end closed: the shell is gone
    sock.close()
    assert fake.owners("ws") == {}  # labs of no room name no owner
    fake.host_rules = True
    fake.remove_host_rules("hoplab/node:latest")
    assert not fake.host_rules

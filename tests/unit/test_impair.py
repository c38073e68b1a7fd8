"""Impairments from the topology file: parsing, the mechanism each kernel gets, and which
interfaces carry them. Pure (no Docker): the live proof is tests/test_impair.py."""

from __future__ import annotations

import pytest

from hoplab.errors import InputError
from hoplab.model.impair import IFACE, TAG, Impair, commands, mechanism, parse, unsupported
from hoplab.model.load import parse as parse_topology

LAB = """
x-hoplab: {name: t}
services:
  r1:
    x-hoplab: {role: router}
    networks: [lan1, core]
  r2:
    x-hoplab: {role: router}
    networks: [core, lan2]
  alice:
    networks:
      lan1:
        x-hoplab: {impair: {rate: 2mbit}}
  bob:
    networks: [lan2]
networks:
  lan1:
    ipam: {config: [{subnet: 10.77.1.0/24}]}
  core:
    x-hoplab:
      impair: {loss: 5%, rate: 10mbit}
    ipam: {config: [{subnet: 10.77.0.0/24}]}
  lan2:
    ipam: {config: [{subnet: 10.77.2.0/24}]}
"""


def test_values_in_the_files_words() -> None:
    imp = parse({"loss": "5%", "delay": "20ms", "jitter": "500us", "rate": "10mbit"})
    assert imp == Impair(loss=0.05, delay_ms=20.0, jitter_ms=0.5, rate_bit=10_000_000)
    assert imp.describe() == "loss 5% delay 20ms jitter 0.5ms rate 10mbit"
    assert unsupported(imp) == ["delay", "jitter"]
    assert parse({"rate": "1.5 Mbit"}).rate_bit == 1_500_000


@pytest.mark.parametrize(
    ("spec", "key", "fragment"),
    [
        ({"loss": "0%"}, "impair.loss", "invalid loss"),
        ({"loss": "100%"}, "impair.loss", "invalid loss"),
        ({"loss": 5}, "impair.loss", "invalid loss"),  # 5 what? a percentage must say so
        ({"loss": "-1%"}, "impair.loss", "invalid loss"),
        ({"rate": "10mbps"}, "impair.rate", "invalid rate"),  # tc's mbps means megabytes
        ({"rate": "1bit"}, "impair.rate", "invalid rate"),
        ({"rate": "99gbit"}, "impair.rate", "invalid rate"),
        ({"delay": "20"}, "impair.delay", "invalid delay"),
        ({"delay": "1h"}, "impair.delay", "invalid delay"),
        ({"delay": "11s"}, "impair.delay", "invalid delay"),
        ({"jitter": "5ms"}, "impair.jitter", "jitter without delay"),
        ({"latency": "5ms"}, "impair.latency", "unknown impairment"),
        ({}, "impair", "expected a mapping"),
    ],
)
def test_bad_values_name_the_key(spec: dict, key: str, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        parse(spec, source="f.yaml", line=3)
    assert info.value.key == key and fragment in info.value.message
    assert info.value.exit_code == 2 and info.value.hint


def test_without_netem_loss_is_iptables_statistic_and_rate_is_tbf() -> None:
    cmds = commands(Impair(loss=0.05, rate_bit=10_000_000), netem=False)
    tbf = cmds[0]
    assert tbf[:7] == ["tc", "qdisc", "replace", "dev", IFACE, "root", "tbf"]
    assert tbf[tbf.index("rate") + 1] == "10000000bit"
    drops = cmds[1:]
    assert [c[2] for c in drops] == ["FORWARD", "OUTPUT"]  # routed and own packets both count
    for c in drops:
        assert c[c.index("-o") + 1] == IFACE and c[c.index("--probability") + 1] == "0.05"
        assert TAG in c and c[-2:] == ["-j", "DROP"]
    assert mechanism(Impair(loss=0.05, rate_bit=8000), False) == "tbf + iptables statistic"


def test_with_netem_one_qdisc_carries_everything() -> None:
    cmds = commands(parse({"loss": "5%", "delay": "20ms", "jitter": "5ms", "rate": "1mbit"}), True)
    assert cmds == [
        ["tc", "qdisc", "replace", "dev", IFACE, "root", "netem"]
        + ["delay", "20ms", "5ms", "loss", "5%", "rate", "1000000bit"]
    ]


def test_network_impairs_every_egress_and_an_attachment_only_its_own() -> None:
    topo = parse_topology(LAB, "lab.yaml")
    found = {(node, net): imp.describe() for node, net, imp in topo.impairments()}
    assert found == {
        ("r1", "core"): "loss 5% rate 10mbit",  # both directions of the core link
        ("r2", "core"): "loss 5% rate 10mbit",
        ("alice", "lan1"): "rate 2mbit",  # what alice sends onto lan1, not what r1 sends her
    }
    imp = topo.network("core").impair
    assert imp is not None and imp.key == "networks.core.x-hoplab.impair" and imp.line == 21


def test_a_bad_value_in_the_file_names_file_line_and_key() -> None:
    with pytest.raises(InputError) as info:
        parse_topology(LAB.replace("loss: 5%", "loss: 5"), "lab.yaml")
    e = info.value
    assert (e.file, e.line, e.key) == ("lab.yaml", 21, "networks.core.x-hoplab.impair.loss")


def test_status_reads_the_kernel_state_back() -> None:
    from hoplab.engine.impair import read_back

    links = '[{"ifname":"eth1","addr_info":[{"local":"10.77.0.1"}]},'
    links += '{"ifname":"eth0","addr_info":[{"local":"10.77.1.1"}]}]'
    qdiscs = '[{"kind":"tbf","dev":"eth1","root":true,"options":{"rate":1250000}},'
    qdiscs += '{"kind":"noqueue","dev":"eth0","root":true,"options":{}}]'
    rules = (
        "-P FORWARD ACCEPT\n"
        f"-A FORWARD -o eth1 -m statistic --mode random --probability 0.05 "
        f"-m comment --comment {TAG} -j DROP\n"
        f"-A OUTPUT -o eth1 -m statistic --mode random --probability 0.05 "
        f"-m comment --comment {TAG} -j DROP\n"
        "-A OUTPUT -o eth0 -m statistic --mode nth --every 3 -m comment --comment x -j DROP\n"
    )
    found = read_back(
        f"{links}\n@@\n{qdiscs}\n@@\n{rules}", {"core": "10.77.0.1", "lan1": "10.77.1.1"}
    )
    assert found == {"core": "rate 10mbit (tbf), loss 5% (iptables statistic)"}
    assert read_back("garbage", {"core": "10.77.0.1"}) == {}

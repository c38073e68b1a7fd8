"""A lab read back from labels and the engine's lists: both families of a dual-stack node."""

from __future__ import annotations

import json
from ipaddress import IPv4Network, IPv6Network

from rich.console import Console

from hoplab.cli.commands import _status_table
from hoplab.engine.state import json_state, lab_state, taken_from
from hoplab.model import labels as L


def _entries() -> tuple[list[dict], list[dict]]:
    labels = {
        L.LAB: "ds",
        L.NODE: "alice",
        L.ROLE: "host",
        L.PLAN: "d",
        L.ROUTES: "10.77.0.0/16 via 10.77.1.1",
        L.ROUTES6: "fd77::/16 via fd77:1::1",
    }
    nets = {
        "ds-lan1": {"IPAddress": "10.77.1.10", "GlobalIPv6Address": "fd77:1::a"},
        "ds-lan4": {"IPAddress": "10.77.4.10", "GlobalIPv6Address": ""},
    }
    container = {
        "Labels": labels,
        "Names": ["/ds-alice"],
        "State": "running",
        "NetworkSettings": {"Networks": nets},
    }
    networks = [
        {
            "Name": "ds-lan1",
            "Labels": {L.LAB: "ds", L.NETWORK: "lan1"},
            "IPAM": {"Config": [{"Subnet": "10.77.1.0/24"}, {"Subnet": "fd77:1::/64"}]},
        },
        {
            "Name": "ds-lan4",
            "Labels": {L.LAB: "ds", L.NETWORK: "lan4"},
            "IPAM": {"Config": [{"Subnet": "10.77.4.0/24"}]},
        },
    ]
    return [container], networks


def test_a_dual_stack_node_keeps_its_ipv4_fields_and_gains_its_ipv6_half() -> None:
    state = lab_state("ds", *_entries())
    (alice,) = state.nodes
    assert alice.addresses == {"lan1": "10.77.1.10", "lan4": "10.77.4.10"}
    assert alice.routes == ("10.77.0.0/16 via 10.77.1.1",)
    assert alice.addresses6 == {"lan1": "fd77:1::a"}  # lan4 is IPv4 only
    assert alice.routes6 == ("fd77::/16 via fd77:1::1",)
    assert state.networks == {"lan1": "10.77.1.0/24", "lan4": "10.77.4.0/24"}
    assert state.networks6 == {"lan1": "fd77:1::/64"}
    read = json.loads(json_state(state))
    assert read["networks6"] == {"lan1": "fd77:1::/64"}
    assert read["nodes"][0]["routes6"] == ["fd77::/16 via fd77:1::1"]


def test_status_shows_both_families() -> None:
    console = Console(width=200, record=True)
    console.print(_status_table(lab_state("ds", *_entries())))
    text = console.export_text()
    assert "lan1 10.77.1.0/24 fd77:1::/64" in text
    assert "lan1 10.77.1.10 fd77:1::a" in text and "lan4 10.77.4.10" in text
    assert "fd77::/16 -> fd77:1::1" in text and "10.77.0.0/16 -> 10.77.1.1" in text


def test_taken_subnets_come_from_one_network_list_in_both_families_without_the_labs_own():
    def net(lab: str | None, *subnets: str) -> dict:
        return {
            "Labels": {L.LAB: lab} if lab else None,
            "IPAM": {"Config": [{"Subnet": s} for s in subnets]},
        }

    networks = [
        net("mine", "10.77.1.0/24", "fd77:1::/64"),
        net("other", "10.77.2.0/24", "fd77:2::/64"),
        net(None, "172.17.0.0/16"),
        {"Labels": {}, "IPAM": None},  # the host and none networks have no IPAM config
        net(None, "not a subnet"),
    ]
    taken = taken_from(networks, "mine")
    assert taken.v4 == (IPv4Network("10.77.2.0/24"), IPv4Network("172.17.0.0/16"))
    assert taken.v6 == (IPv6Network("fd77:2::/64"),)

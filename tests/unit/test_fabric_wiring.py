"""Fabric wiring's pure parts: which wiring, which engine refuses it, each node's links in the
file's order with Docker-style MACs, and a fabric lab read back from labels alone."""

from __future__ import annotations

import json

import docker.errors
import pytest
import requests

from hoplab.engine import fabric
from hoplab.engine.engine import Engine
from hoplab.engine.state import lab_state
from hoplab.errors import InputError
from hoplab.model import labels as L
from hoplab.model.load import parse
from hoplab.model.plan import build_plan
from hoplab.model.plan6 import build_plan6

DUAL = """\
services:
  r1: {x-hoplab: {role: router}, networks: [a, b]}
  alice: {networks: [a]}
  srv: {networks: [b, a]}
networks:
  a:
    enable_ipv6: true
    ipam: {config: [{subnet: 10.64.1.0/24}, {subnet: "fd64:1::/64"}]}
  b:
    driver_opts: {com.docker.network.driver.mtu: "1280"}
    ipam: {config: [{subnet: 10.64.2.0/24}]}
"""


def plan():
    topo = parse(DUAL, "dual.yaml")
    p = build_plan(topo, "lab1")
    return p.__class__(**{**p.__dict__, "six": build_plan6(topo, p)})


def test_the_wiring_is_docker_unless_asked_and_anything_else_is_an_input_error() -> None:
    assert fabric.wiring_from_env(None) == fabric.wiring_from_env("") == "docker"
    assert fabric.wiring_from_env(" Fabric ") == "fabric"
    with pytest.raises(InputError, match="unknown wiring") as info:
        fabric.wiring_from_env("overlay")
    assert info.value.exit_code == 2 and "docker or fabric" in info.value.hint


def test_a_rootless_engine_is_refused_and_a_rootful_one_is_not() -> None:
    rootless = {"SecurityOptions": ["name=seccomp,profile=default", "name=rootless"]}
    assert "rootless" in fabric.refusal(rootless)
    assert fabric.refusal({"SecurityOptions": ["name=seccomp,profile=default"]}) == ""
    assert fabric.refused("why").exit_code == 2


def test_links_keep_the_files_order_addresses_of_both_families_and_the_mtu() -> None:
    p = plan()
    srv = fabric.links(p, p.node("srv"))
    assert [(x["name"], x["network"]) for x in srv] == [("eth0", "b"), ("eth1", "a")]
    assert srv[0]["mtu"] == 1280 and srv[1]["mtu"] == 0
    assert srv[0]["addrs"] == [f"{p.address('srv', 'b')}/24"]  # b has no IPv6
    assert len(srv[1]["addrs"]) == 2 and srv[1]["addrs"][1].startswith("fd64:1::")
    assert srv[0]["mac"] == fabric.mac_of(p.address("srv", "b"))
    assert fabric.mac_of(p.address("srv", "b")).startswith("02:42:0a:40:02:")
    names = [x["veth"] for n in p.nodes for x in fabric.links(p, n)]
    assert len(set(names)) == len(names) and all(len(n) <= 15 for n in names)
    # b has no IPv6, so alice's routes are IPv4 only: the plan's own, in its words
    alice = p.node("alice")
    assert (
        fabric.routes(p, alice) == [str(r) for r in alice.routes] == ["10.64.2.0/24 via 10.64.1.1"]
    )


def test_a_fabric_lab_is_read_back_from_labels_alone() -> None:
    p = plan()
    node = p.node("srv")
    labels = {L.LAB: "lab1", L.NODE: "srv", L.ROLE: "host", L.PLAN: p.digest}
    labels[L.WIRES] = json.dumps(fabric.links(p, node))
    nodes = [{"Labels": labels, "Names": ["/lab1-srv"], "State": "running"}]
    fab = {L.LAB: "lab1", L.FABRIC: fabric.FABRIC, L.NETS: fabric.networks_label(p)}
    helper = {L.LAB: "lab1", L.FABRIC: fabric.HELPER_ROLE}
    containers = nodes + [
        {"Labels": fab, "Names": ["/lab1.fabric"], "State": "running"},
        {"Labels": helper, "Names": ["/lab1.wiring-abc"], "State": "running"},
    ]
    state = lab_state("lab1", containers, [])
    assert [n.name for n in state.nodes] == ["srv"], "neither the fabric nor the helper is a node"
    assert state.networks == {"a": "10.64.1.0/24", "b": "10.64.2.0/24"}
    assert state.networks6 == {"a": "fd64:1::/64"} and state.mtus == {"b": 1280}
    srv = state.nodes[0]
    assert list(srv.addresses) == ["a", "b"], "sorted by network, as Docker lists them"
    assert srv.addresses["b"] == str(p.address("srv", "b"))
    assert srv.addresses6 == {"a": str(p.six.address("srv", "a"))}
    assert state.labels[L.WIRES], "the first node's labels say how the lab is wired"


def test_the_engine_reads_docker_info_once_for_every_fabric_up() -> None:
    """`up` checks that the engine allows the helper; a room's 20 ups ask the engine once."""
    calls = []

    class Api:
        def info(self) -> dict:
            calls.append(1)
            return {"SecurityOptions": ["name=seccomp,profile=default"]}

    class Client:
        api = Api()

    engine = Engine(Client(), wiring=fabric.FABRIC)  # type: ignore[arg-type]
    assert engine.wiring_refusal == engine.wiring_refusal == ""
    assert calls == [1]


def test_a_stranger_holding_the_fabrics_name_is_named_like_a_stranger_network():
    """A 409 on the fabric's create is a stranger's container with that name: the same clear
    error as a stranger's network, with the mend; any other refusal keeps Docker's reason."""
    response = requests.Response()
    response.status_code = 409
    clash = docker.errors.APIError("Conflict", response, explanation="name in use")
    err = fabric.fabric_error("lab1.fabric", clash)
    assert (
        err.message
        == "a container named 'lab1.fabric' already exists and does not belong to this lab"
    )
    assert err.hint and "--name" in err.hint
    response = requests.Response()
    response.status_code = 500
    other = docker.errors.APIError("Server Error", response, explanation="no space left")
    assert fabric.fabric_error("lab1.fabric", other).message == (
        "cannot start the fabric 'lab1.fabric': no space left"
    )

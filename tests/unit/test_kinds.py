"""The node-kind table: what a router, a host and an own-image node are, asked in one place,
and a role that comes back from the labels as the enum, not a bare string."""

from __future__ import annotations

import pytest

from hoplab import lifecycle
from hoplab.draw import graph
from hoplab.errors import InputError
from hoplab.model.kinds import ExecIn, Kind, kind_of, role_from_label
from hoplab.model.load import parse
from hoplab.model.plan import build_plan
from hoplab.model.topology import Role
from tests.unit.conftest import TINY


def test_kind_of_a_node_from_its_role_and_image():
    assert kind_of(Role.ROUTER) is Kind.ROUTER
    assert kind_of(Role.HOST) is Kind.HOST
    assert kind_of(Role.HOST, own_image=True) is Kind.OWN_IMAGE
    assert kind_of(Role.ROUTER, own_image=True) is Kind.ROUTER  # a router forwards, whatever runs


def test_the_table_says_who_forwards_routes_and_where_exec_goes():
    assert [k.rules.forwards for k in Kind] == [False, True, False]
    assert [k.rules.may_be_via for k in Kind] == [False, True, False]
    assert [k.rules.min_networks for k in Kind] == [1, 2, 1]
    assert [k.rules.exec_in for k in Kind] == [ExecIn.SANDBOX, ExecIn.SANDBOX, ExecIn.APP]


@pytest.mark.parametrize(("kind", "forward"), [(Kind.ROUTER, "1"), (Kind.HOST, "0")])
def test_forwarding_sysctls_in_both_families(kind, forward):
    v4 = kind.sysctls(ipv6=False)
    assert v4["net.ipv4.ip_forward"] == forward
    assert v4["net.ipv6.conf.all.disable_ipv6"] == "1" and not any("forwarding" in k for k in v4)
    v6 = kind.sysctls(ipv6=True)
    assert v6["net.ipv6.conf.all.disable_ipv6"] == v6["net.ipv6.conf.default.disable_ipv6"] == "0"
    assert v6["net.ipv6.conf.all.forwarding"] == v6["net.ipv6.conf.default.forwarding"] == forward
    assert v6["net.ipv6.conf.all.accept_ra"] == "0"


def test_a_role_comes_back_from_the_labels_as_the_enum(fake, tiny):
    lifecycle.up(fake, tiny, "k1", lambda *a: None, lambda m: None)
    nodes = {n.name: n for n in fake.state("k1").nodes}
    assert nodes["r1"].role is Role.ROUTER and nodes["r1"].kind is Kind.ROUTER
    assert nodes["alice"].role is Role.HOST and nodes["alice"].kind is Kind.HOST
    assert role_from_label("router") is Role.ROUTER
    assert role_from_label("") is role_from_label("switch") is Role.HOST  # not hoplab's label


def test_pictures_draw_each_kind_as_the_table_says(tiny):
    pic = graph.from_plan(build_plan(tiny, "k2"))
    mermaid = graph.to_mermaid(pic)
    assert 'node_r1(["r1"])' in mermaid and 'node_alice["alice"]' in mermaid
    dot = graph.to_dot(pic)
    assert Kind.ROUTER.rules.shape.fill in dot and Kind.HOST.rules.shape.fill in dot


def test_a_route_via_a_host_and_a_router_on_one_network_are_refused_by_the_table():
    via_host = TINY.replace(
        "alice: {networks: [a]}",
        "alice: {networks: [a], x-hoplab: {routes: [{to: b, via: bob}]}}",
    ).replace("bob: {networks: [b]}", "bob: {networks: [a, b]}")
    with pytest.raises(InputError, match="not a router on a network of 'alice'"):
        parse(via_host, "via.yaml")
    lonely = TINY.replace("networks: [a, b]}", "networks: [a]}")  # r1 on one network
    with pytest.raises(InputError, match="a router needs at least two networks"):
        parse(lonely, "lonely.yaml")

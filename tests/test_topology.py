"""The loader: every bad input is an InputError naming file, line and key. No Docker here."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address, IPv4Network

import pytest

from hoplab.errors import InputError
from hoplab.model.load import load, parse
from hoplab.model.topology import Role

BASE = """\
x-hoplab: {name: demo}
services:
  r1:
    x-hoplab: {role: router}
    networks:
      a: {ipv4_address: 10.1.1.1}
      b: {ipv4_address: 10.1.2.1}
  h1:
    networks:
      a: {ipv4_address: 10.1.1.10}
  h2:
    networks: [b]
networks:
  a:
    ipam: {config: [{subnet: 10.1.1.0/24}]}
  b:
    ipam: {config: [{subnet: 10.1.2.0/24}]}
"""


def err(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        parse(textwrap.dedent(text), "topo.yaml")
    e = info.value
    assert e.exit_code == 2
    assert str(e).startswith("topo.yaml"), str(e)
    return e


def test_valid_topology_parses_into_frozen_model():
    topo = parse(BASE, "topo.yaml")
    assert topo.name == "demo"
    assert [n.name for n in topo.routers] == ["r1"]
    assert topo.node("h1").attachments[0].address == IPv4Address("10.1.1.10")
    assert topo.node("h2").attachments[0].address is None
    assert topo.network("b").subnet == IPv4Network("10.1.2.0/24")
    assert topo.node("r1").role is Role.ROUTER
    with pytest.raises(AttributeError):
        topo.name = "x"  # type: ignore[misc]


def test_default_compose_file_is_valid():
    topo = load("compose.yaml")
    assert len(topo.routers) >= 2 and len(topo.hosts) >= 5
    assert len([n for n in topo.networks if n.name.startswith("lan")]) >= 3
    assert any(len(h.attachments) == 2 for h in topo.hosts)


def test_malformed_yaml_names_the_line():
    e = err("services:\n  a: [unclosed\n  b: 1\n")
    assert "malformed YAML" in e.message and e.line >= 2


def test_unknown_network():
    e = err(BASE.replace("networks: [b]", "networks: [zz]"))
    assert "unknown network 'zz'" in e.message and e.line == 12
    assert e.key == "services.h2.networks.zz"


def test_address_outside_subnet():
    e = err(BASE.replace("10.1.1.10", "10.9.9.9"))
    assert "outside 10.1.1.0/24" in e.message and e.line == 10
    assert e.key == "services.h1.networks.a.ipv4_address"


def test_duplicate_address():
    e = err(BASE.replace("10.1.1.10", "10.1.1.1"))
    assert "already used by 'r1'" in e.message and e.line == 10


def test_network_or_broadcast_address():
    assert "network or broadcast" in err(BASE.replace("10.1.1.10", "10.1.1.255")).message
    assert "network or broadcast" in err(BASE.replace("10.1.1.10", "10.1.1.0")).message


def test_overlapping_subnets():
    e = err(BASE.replace("10.1.2.0/24", "10.1.0.0/16"))
    assert "overlaps" in e.message and e.key == "networks.b" and e.line == 16


def test_node_with_no_network():
    e = err(BASE.replace("networks: [b]", "networks: []"))
    assert "no network" in e.message and e.line == 12


def test_router_with_one_network():
    text = BASE.replace("      b: {ipv4_address: 10.1.2.1}\n", "")
    e = err(text)
    assert "at least two networks" in e.message and e.key == "services.r1" and e.line == 3


def test_unreachable_host():
    text = BASE + "  c:\n    ipam: {config: [{subnet: 10.1.3.0/24}]}\n"
    text = text.replace("networks: [b]", "networks: [c]")
    e = err(text)
    assert "cannot reach" in e.message and "h2" in e.message and e.line == 11


def test_invalid_names():
    assert "invalid node name" in err(BASE.replace("  h1:", "  'h1;rm -rf':")).message
    assert "invalid network name" in err(BASE.replace("  a:\n    ipam", "  A_b:\n    ipam")).message
    assert "invalid lab name" in err(BASE.replace("name: demo", "name: 'x y'")).message
    assert "invalid node name" in err(BASE.replace("  h1:", "  " + "h" * 40 + ":")).message


def test_unsupported_compose_key_is_named():
    e = err(BASE.replace("  h2:\n", "  h2:\n    ports: ['80:80']\n"))
    assert "'ports' is not supported" in e.message and e.key == "services.h2.ports"
    assert "host ports" in e.hint and e.line == 12


def test_unknown_x_hoplab_key():
    e = err(BASE.replace("{role: router}", "{role: router, colour: red}"))
    assert "'colour' is not supported" in e.message and e.key == "services.r1.x-hoplab.colour"


def test_privileged_and_internal_are_refused_with_reason():
    e = err(BASE.replace("  h2:\n", "  h2:\n    privileged: true\n"))
    assert "privileged" in e.hint
    e = err(BASE.replace("  b:\n    ipam", "  b:\n    internal: true\n    ipam"))
    assert "internal" in e.key


def test_top_level_name_is_the_default_lab_name_and_x_hoplab_wins():
    """Compose v2's project name (issue 11); x-hoplab.name, if given, is more specific."""
    anonymous = BASE.replace("x-hoplab: {name: demo}\n", "")
    assert parse("name: proj\n" + anonymous, "t.yaml").name == "proj"
    assert parse("name: proj\n" + BASE, "t.yaml").name == "demo"
    e = err("name: Bad Name\n" + anonymous)
    assert e.key == "name" and e.line == 1


def test_wrong_types():
    assert "expected a mapping" in err("services: [a, b]\n").message
    assert "expected a mapping" in err(BASE.replace("  h2:\n    networks: [b]", "  h2: 3")).message
    assert "unknown role" in err(BASE.replace("role: router", "role: switch")).message


def test_duplicate_keys():
    e = err(BASE.replace("  h2:\n", "  h1:\n"))
    assert "duplicate key 'h1'" in e.message and e.line == 11


def test_public_or_tiny_subnet():
    assert "private" in err(BASE.replace("10.1.2.0/24", "8.8.8.0/24")).message
    assert "prefix /30" in err(BASE.replace("10.1.2.0/24", "10.1.2.0/30")).message
    assert "host bits" in err(BASE.replace("10.1.2.0/24", "10.1.2.5/24")).hint


def test_subnet_too_small_for_its_nodes():
    extra = "".join(f"  x{i}:\n    networks: [b]\n" for i in range(5))
    text = BASE.replace("10.1.2.0/24", "10.1.2.0/29").replace(
        "networks:\n  a:", extra + "networks:\n  a:"
    )
    e = err(text)
    assert "too small" in e.message and e.key == "networks.b"


def test_yaml_bomb_is_refused_even_under_an_ignored_key():
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        levels.append(
            f"b{i}: &b{i} [" + ", ".join([f"*{'a' if i == 1 else f'b{i - 1}'}"] * 10) + "]"
        )
    bomb = "x-bomb:\n" + "".join(f"  {line}\n" for line in levels)
    e = err(BASE + bomb)
    assert "YAML bomb" in e.message


def test_recursive_alias_is_refused():
    assert "malformed YAML" in err("x-a: &a [*a]\n" + BASE).message


def test_deep_nesting_is_refused():
    assert "malformed YAML" in err("x-a: " + "[" * 5000 + "]" * 5000 + "\n").message


def test_huge_file_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 << 20))
    with pytest.raises(InputError, match="larger than"):
        load(big)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load(tmp_path / "nope.yaml")


def test_explicit_routes_are_checked():
    ok = BASE.replace("  h2:\n", "  h2:\n    x-hoplab: {routes: [{to: a, via: r1}]}\n")
    assert parse(ok).node("h2").routes[0].via == "r1"
    bad = BASE.replace("  h2:\n", "  h2:\n    x-hoplab: {routes: [{to: a, via: h1}]}\n")
    assert "not a router" in err(bad).message
    bad = BASE.replace("  h2:\n", "  h2:\n    x-hoplab: {routes: [{to: nowhere, via: r1}]}\n")
    assert "neither a network name nor a CIDR" in err(bad).message


def test_gateway_is_checked_and_kept_free():
    text = BASE.replace("subnet: 10.1.1.0/24}", "subnet: 10.1.1.0/24, gateway: 10.1.1.10}")
    e = err(text)
    assert "reserved gateway" in e.message and e.line == 10
    text = BASE.replace("subnet: 10.1.1.0/24}", "subnet: 10.1.1.0/24, gateway: 10.1.9.1}")
    assert "not a host address" in err(text).message

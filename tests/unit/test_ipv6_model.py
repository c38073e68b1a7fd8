"""IPv6 in the topology file (Compose's enable_ipv6 and a second ipam entry): what is read and
checked. Pure, no Docker."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest

from hoplab.errors import InputError
from hoplab.model.load import parse

DUAL = """
x-hoplab: {name: six}
services:
  r1:
    x-hoplab: {role: router}
    networks: [lan1, lan2]
  alice:
    networks:
      lan1:
        ipv4_address: 10.61.1.10
        ipv6_address: fd61:1::10
  bob:
    networks: [lan2]
networks:
  lan1:
    enable_ipv6: true
    ipam:
      config:
        - subnet: 10.61.1.0/24
        - subnet: fd61:1::/64
  lan2:
    ipam: {config: [{subnet: 10.61.2.0/24}]}
"""


def refused(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        parse(text, "six.yaml")
    assert info.value.exit_code == 2 and info.value.file == "six.yaml" and info.value.line > 0
    return info.value


def test_a_dual_stack_network_in_compose_syntax() -> None:
    topo = parse(DUAL, "six.yaml")
    assert topo.network("lan1").subnet6 == IPv6Network("fd61:1::/64")
    assert topo.network("lan2").subnet6 is None
    assert topo.node("alice").attachments[0].address6 == IPv6Address("fd61:1::10")


@pytest.mark.parametrize(
    ("old", "new", "key", "fragment"),
    [
        ("fd61:1::/64", "2001:db8::/64", "networks.lan1.ipam.config[1].subnet", "not a unique"),
        ("fd61:1::/64", "fe80::/64", "networks.lan1.ipam.config[1].subnet", "not a unique"),
        ("fd61:1::/64", "fd61:1::1/64", "networks.lan1.ipam.config[1].subnet", "invalid IPv6"),
        ("fd61:1::/64", "fd61::/32", "networks.lan1.ipam.config[1].subnet", "/48 to /120"),
        ("    enable_ipv6: true\n", "", "networks.lan1.ipam.config[1]", "without enable_ipv6"),
        ("enable_ipv6: true", "enable_ipv6: yes please", "networks.lan1.enable_ipv6", "true or"),
        ("fd61:1::10", "fd61:2::10", "services.alice.networks.lan1.ipv6_address", "outside"),
        ("fd61:1::10", "10.61.1.11", "services.alice.networks.lan1.ipv6_address", "invalid IPv6"),
        ("        - subnet: 10.61.1.0/24\n", "", "networks.lan1.ipam.config", "IPv6-only"),
    ],
)
def test_bad_ipv6_names_file_line_and_key(old: str, new: str, key: str, fragment: str) -> None:
    assert old in DUAL
    e = refused(DUAL.replace(old, new))
    assert e.key == key and fragment in e.message, e


def test_an_address_on_a_network_without_ipv6_is_refused() -> None:
    bob = "  bob:\n    networks: [lan2]\n"
    assert bob in DUAL
    e = refused(
        DUAL.replace(bob, "  bob:\n    networks:\n      lan2: {ipv6_address: fd61:1::20}\n")
    )
    assert e.key == "services.bob.networks.lan2.ipv6_address" and "no IPv6 subnet" in e.message

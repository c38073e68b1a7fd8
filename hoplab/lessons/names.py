"""The running lab's own names, for filling a lesson's templates.

`{srv}` is srv's first address (the one its /etc/hosts name gives in IPv4), `{srv@lan3}` its
address on lan3, `{srv@lan3.v6}` its IPv6 address there, `{srv@lan3.hex}` the IPv4 one in
hex, `{srv@lan3.mac}` and `{srv@lan3.iface}` its MAC and interface name there (read from the
node when first asked: names and MACs are not predictable), `{lan2}` a subnet and
`{lab}` the lab's name. Nothing is read before a template asks for it, so showing a step that
names no MAC costs no exec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoplab.errors import HoplabError
from hoplab.runtime.lab import _each_node

if TYPE_CHECKING:
    from hoplab.runtime.lab import Lab


class Where:
    """A node's address on one network; formats as the address, and knows its MAC and iface."""

    def __init__(self, lab: Lab, node: str, network: str) -> None:
        self.lab, self.node, self.network = lab, node, network
        self.address = lab.address(node, network)

    def __format__(self, spec: str) -> str:
        return format(self.address, spec)

    def __str__(self) -> str:
        return self.address

    @property
    def mac(self) -> str:
        return self.lab.node(self.node).iface(self.network).mac

    @property
    def v6(self) -> str:
        """The node's IPv6 address on this network ('' on a lab without IPv6)."""
        return self.lab.state_node(self.node).addresses6.get(self.network, "")

    @property
    def hex(self) -> str:
        """The IPv4 address as 8 hex digits, for a capture filter (arp[24:4] = 0x...)."""
        return "".join(f"{int(part):02x}" for part in self.address.split("."))

    @property
    def iface(self) -> str:
        return self.lab.node(self.node).iface(self.network).name


class Names(dict):
    """A mapping for str.format_map that fills itself from the lab on first use of a key."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab=lab.name)
        self.lab = lab

    def __missing__(self, key: str) -> object:
        node, _, network = key.partition("@")
        state = {n.name: n for n in self.lab.state.nodes}
        if not network and key in self.lab.state.networks:
            value: object = self.lab.subnet(key)
        elif node in state:
            nets = list(state[node].addresses)
            if network and network not in nets:
                raise HoplabError(f"lab {self.lab.name!r}: {node} has no address on {network}")
            value = Where(self.lab, node, network or nets[0])
        else:
            raise HoplabError(
                f"lab {self.lab.name!r} has no node or network {key!r} that this lesson needs",
                hint="lessons are written for the default lab: hoplab up (no -f)",
            )
        self[key] = value
        return value

    def warm(self, *nodes: str) -> None:
        """Read these nodes' interfaces (names, MACs) side by side: one exec each, in parallel,
        instead of one after another when a template first asks for a MAC."""
        _each_node(lambda n: self.lab.node(n).interfaces(), list(nodes))

    def fill(self, template: str) -> str:
        return template.format_map(self)

"""What each kind of node is, in one table: router, host, and own-image (a host whose program
runs in the user's image, beside a hoplab/node sandbox that holds its network namespace).

Callers ask a node's Kind instead of comparing role strings: which forwarding sysctls it is
created with, how many networks it needs, whether a route may name it as `via`, how pictures
draw it, and whether `exec` goes to the sandbox or to the user's container. Pure, like all of
the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hoplab.model.topology import Role


class ExecIn(StrEnum):
    """The container an exec for a node runs in."""

    SANDBOX = "sandbox"  # the hoplab/node container that holds the node's network namespace
    APP = "app"  # the user's container (same namespace), where the node's own program lives


@dataclass(frozen=True)
class Shape:
    """How pictures draw a kind (graphviz and Mermaid)."""

    fill: str
    rounded: bool  # a rounded, bold box that also names its kind
    mermaid: tuple[str, str]  # the brackets around the node's name


@dataclass(frozen=True)
class Rules:
    forwards: bool  # IPv4 ip_forward and IPv6 forwarding on, set when the container is created
    min_networks: int
    may_be_via: bool  # a route's `via` may name it
    shape: Shape
    exec_in: ExecIn


class Kind(StrEnum):
    HOST = "host"
    ROUTER = "router"
    OWN_IMAGE = "own-image"

    @property
    def rules(self) -> Rules:
        return RULES[self]

    def sysctls(self, ipv6: bool) -> dict[str, str]:
        """The sysctls a node of this kind is created with (/proc/sys is read-only later)."""
        forward = "1" if self.rules.forwards else "0"
        out = {"net.ipv4.ip_forward": forward}
        for scope in ("all", "default"):
            out[f"net.ipv6.conf.{scope}.disable_ipv6"] = "0" if ipv6 else "1"
            if ipv6:
                out[f"net.ipv6.conf.{scope}.forwarding"] = forward
                out[f"net.ipv6.conf.{scope}.accept_ra"] = "0"  # routes come from the plan
        return out


_HOST_SHAPE = Shape(fill="#d6e8fa", rounded=False, mermaid=('["', '"]'))
RULES = {
    Kind.ROUTER: Rules(
        forwards=True,
        min_networks=2,
        may_be_via=True,
        shape=Shape(fill="#fde2c4", rounded=True, mermaid=('(["', '"])')),
        exec_in=ExecIn.SANDBOX,
    ),
    Kind.HOST: Rules(
        forwards=False, min_networks=1, may_be_via=False, shape=_HOST_SHAPE, exec_in=ExecIn.SANDBOX
    ),
    Kind.OWN_IMAGE: Rules(
        forwards=False, min_networks=1, may_be_via=False, shape=_HOST_SHAPE, exec_in=ExecIn.APP
    ),
}


def kind_of(role: Role | str, own_image: bool = False) -> Kind:
    """A node's kind from its role and whether it runs a program container of its own. A
    router's rules win: a router with a program still forwards (runtime/lab.py then sends its
    exec to the program container, as for an own-image node)."""
    if role == Role.ROUTER:
        return Kind.ROUTER
    return Kind.OWN_IMAGE if own_image else Kind.HOST


def role_from_label(text: str) -> Role:
    """The role a node's label holds; a label hoplab did not write reads as a host (forwards
    nothing, may be no route's via), never as an error that would hide the rest of the lab."""
    return Role(text) if text in Role._value2member_map_ else Role.HOST

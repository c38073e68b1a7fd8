"""IPv6 in the topology file, in Compose's own syntax: `enable_ipv6: true` and a second ipam
config entry with a ULA subnet (fd00::/8), and `ipv6_address` on an attachment.

Only the file is read and checked here (pure). plan6.py plans the IPv6 half; running it needs
the host-side ip6tables rules (engine/egress6.py), without which `up` refuses the lab.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import AddressValueError, IPv6Address, IPv6Network, NetmaskValueError
from typing import Any

from hoplab.errors import InputError

ULA = IPv6Network("fd00::/8")
SUBNET_HINT = "write a ULA subnet such as fd77:1::/64 (fd00::/8, host bits zero, /48 to /120)"


def is_v6(entry: Any) -> bool:
    """An ipam config entry whose subnet is written as IPv6 (it has a colon)."""
    return isinstance(entry, dict) and ":" in str(entry.get("subnet", ""))


def subnet(value: Any, *, source: str, line: int, key: str) -> IPv6Network:
    try:
        net = IPv6Network(str(value), strict=True)
    except (AddressValueError, NetmaskValueError, ValueError) as err:
        raise InputError(
            f"invalid IPv6 subnet {value!r}: {err}",
            file=source,
            line=line,
            key=key,
            hint=SUBNET_HINT,
        ) from None
    if not net.subnet_of(ULA):
        raise InputError(
            f"IPv6 subnet {net} is not a unique local (ULA) range",
            file=source,
            line=line,
            key=key,
            hint=f"{SUBNET_HINT}: a lab must never use addresses that exist elsewhere",
        )
    if not 48 <= net.prefixlen <= 120:
        raise InputError(
            f"IPv6 subnet {net} has prefix /{net.prefixlen}; hoplab needs /48 to /120",
            file=source,
            line=line,
            key=key,
            hint="a /64 is the usual size of one segment",
        )
    return net


def address(value: Any, *, source: str, line: int, key: str) -> IPv6Address:
    try:
        return IPv6Address(str(value))
    except (AddressValueError, ValueError):
        raise InputError(
            f"invalid IPv6 address {value!r}",
            file=source,
            line=line,
            key=key,
            hint="write it like fd77:1::10",
        ) from None


def network_v6(
    spec: dict[Any, Any],
    config: list[Any],
    *,
    source: str,
    key: str,
    line_of: Callable[[Any, Any], int],
) -> IPv6Network | None:
    """The network's IPv6 subnet from its ipam config and enable_ipv6 (None without IPv6)."""
    entries = [(i, e) for i, e in enumerate(config) if is_v6(e)]
    enabled = spec.get("enable_ipv6", False)
    if not isinstance(enabled, bool):
        raise InputError(
            f"enable_ipv6 must be true or false, got {enabled!r}",
            file=source,
            line=line_of(spec, "enable_ipv6"),
            key=f"{key}.enable_ipv6",
            hint="enable_ipv6: true, with an IPv6 subnet in ipam.config",
        )
    if len(entries) > 1:
        i, _ = entries[1]
        raise InputError(
            "more than one IPv6 subnet",
            file=source,
            line=line_of(config, i),
            key=f"{key}.ipam.config[{i}]",
            hint="give each network one IPv6 subnet",
        )
    if not entries:
        if enabled:
            raise InputError(
                "enable_ipv6 without an IPv6 subnet",
                file=source,
                line=line_of(spec, "enable_ipv6"),
                key=f"{key}.enable_ipv6",
                hint="add  - subnet: fd77:1::/64  to ipam.config",
            )
        return None
    i, entry = entries[0]
    ekey = f"{key}.ipam.config[{i}]"
    if not enabled:
        raise InputError(
            "an IPv6 subnet without enable_ipv6: true",
            file=source,
            line=line_of(config, i),
            key=ekey,
            hint="add  enable_ipv6: true  to the network (as in Compose)",
        )
    extra = set(entry) - {"subnet"}
    if extra:
        k = sorted(map(str, extra))[0]
        raise InputError(
            f"key {k!r} is not supported in an IPv6 ipam entry",
            file=source,
            line=line_of(entry, k),
            key=f"{ekey}.{k}",
            hint="write only  subnet: fd77:1::/64",
        )
    return subnet(
        entry["subnet"], source=source, line=line_of(entry, "subnet"), key=f"{ekey}.subnet"
    )


def check(topo: Any, doc: Any, line_of: Callable[[Any, Any], int]) -> None:
    """Checks across fields for IPv6: subnets apart, addresses inside theirs and unique."""
    src = topo.source
    nets = [n for n in topo.networks if getattr(n, "subnet6", None) is not None]
    for i, a in enumerate(nets):
        for b in nets[i + 1 :]:
            if a.subnet6.overlaps(b.subnet6):
                raise InputError(
                    f"IPv6 subnet {b.subnet6} overlaps {a.subnet6} of network {a.name!r}",
                    file=src,
                    line=b.line,
                    key=f"networks.{b.name}",
                    hint="give every network its own IPv6 subnet",
                )
    by_name = {n.name: n for n in topo.networks}
    used: dict[IPv6Address, str] = {}
    for node in topo.nodes:
        spec = doc["services"][node.name].get("networks")
        for att in node.attachments:
            addr = getattr(att, "address6", None)
            if addr is None or att.network not in by_name:
                continue  # an unknown network is validate's own error
            key = f"services.{node.name}.networks.{att.network}.ipv6_address"
            ln = line_of(spec[att.network], "ipv6_address") if isinstance(spec, dict) else 0
            net6 = getattr(by_name.get(att.network), "subnet6", None)
            if net6 is None:
                raise InputError(
                    f"network {att.network!r} has no IPv6 subnet",
                    file=src,
                    line=ln,
                    key=key,
                    hint="give the network enable_ipv6 and an IPv6 subnet, or drop the address",
                )
            if addr not in net6 or addr == net6.network_address:
                raise InputError(
                    f"address {addr} is outside {net6}",
                    file=src,
                    line=ln,
                    key=key,
                    hint=f"pick a host address inside {net6}",
                )
            if addr in used:
                raise InputError(
                    f"address {addr} is already used by {used[addr]}",
                    file=src,
                    line=ln,
                    key=key,
                    hint="every node needs its own address",
                )
            used[addr] = node.name

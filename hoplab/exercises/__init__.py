"""The catalogue, in teaching order. Each module holds one exercise named after what it teaches."""

from __future__ import annotations

from hoplab.errors import InputError
from hoplab.exercises import (
    bind_scope,
    dual_stack_bind,
    ephemeral_ports,
    errors_by_layer,
    half_close,
    hop_limit,
    mac_per_hop,
    mtu_and_fragmentation,
    nat,
    neighbour_discovery,
    no_fragmenting_routers,
    one_port_many_clients,
    port_opens_on_listen,
    socket_is_address_protocol_port,
    stream_vs_datagram,
    tcp_recovers_loss,
    time_wait_and_reuseaddr,
    transport_only_on_end_hosts,
    ttl_and_traceroute,
    unix_socket,
)
from hoplab.exercises.base import Exercise

# Explicit, in teaching order: the registry is code that tools (and import-linter) can follow.
CATALOGUE: tuple[Exercise, ...] = (
    one_port_many_clients.EXERCISE,
    port_opens_on_listen.EXERCISE,
    socket_is_address_protocol_port.EXERCISE,
    ephemeral_ports.EXERCISE,
    bind_scope.EXERCISE,
    dual_stack_bind.EXERCISE,
    stream_vs_datagram.EXERCISE,
    unix_socket.EXERCISE,
    mac_per_hop.EXERCISE,
    neighbour_discovery.EXERCISE,
    ttl_and_traceroute.EXERCISE,
    hop_limit.EXERCISE,
    transport_only_on_end_hosts.EXERCISE,
    tcp_recovers_loss.EXERCISE,
    errors_by_layer.EXERCISE,
    time_wait_and_reuseaddr.EXERCISE,
    half_close.EXERCISE,
    mtu_and_fragmentation.EXERCISE,
    no_fragmenting_routers.EXERCISE,
    nat.EXERCISE,
)


def catalogue() -> list[Exercise]:
    return list(CATALOGUE)


def select(names: list[str]) -> list[Exercise]:
    """Exercises by name, in the order given; all of them when names is empty."""
    every = {e.name: e for e in catalogue()}
    if not names:
        return list(every.values())
    unknown = [n for n in names if n not in every]
    if unknown:
        raise InputError(
            f"unknown exercise {', '.join(unknown)}",
            key="EXERCISE",
            hint=f"run `hoplab list`; known: {', '.join(every)}",
        )
    return [every[n] for n in names]

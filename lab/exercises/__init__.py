"""The catalogue, in teaching order. Each module holds one exercise named after what it teaches."""

from __future__ import annotations

from importlib import import_module

from hoplab.errors import InputError
from hoplab.exercises.base import Exercise

MODULES = [
    "one_port_many_clients",
    "port_opens_on_listen",
    "socket_is_address_protocol_port",
    "ephemeral_ports",
    "bind_scope",
    "stream_vs_datagram",
    "unix_socket",
    "mac_per_hop",
    "ttl_and_traceroute",
    "transport_only_on_end_hosts",
    "tcp_recovers_loss",
    "errors_by_layer",
    "time_wait_and_reuseaddr",
    "half_close",
    "mtu_and_fragmentation",
    "nat",
]


def catalogue() -> list[Exercise]:
    return [import_module(f"hoplab.exercises.{m}").EXERCISE for m in MODULES]


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

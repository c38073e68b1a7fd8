"""Watching a lab's segments from outside its nodes, where the participant's root cannot reach.

A participant is root in their nodes: a tcpdump there could be replaced, slowed or made to lie.
So a segment is watched on its bridge, by tcpdump in a helper container hoplab starts fresh
from the node image (a file system the participant never touched), with nothing but the
capabilities a capture needs. The helper carries the lab's label (and HELPER, so it is never
read back as a node): `down`, `clean` and the tests' leak check find it like any other object
of the lab. It is removed when its watcher stops, and it removes itself after LIFETIME seconds
if nobody does (a portal that crashed). Its output is pcap on stdout, read through an attach
socket; Docker's log driver is off, so no capture piles up on the engine's disk.

`where` is the one answer to "where can segment X be seen whole": a Docker network's Linux
bridge in the engine host's network namespace, or, for a fabric-wired lab (hoplab.engine.fabric),
the bridge inside the lab's fabric container, whose namespace the tap then joins. It answers
(the network namespace as Docker names it, the interface); nothing else knows.
"""

from __future__ import annotations

import contextlib
import socket
from typing import cast

import docker
import docker.errors
import docker.types

from hoplab.engine.client import explain
from hoplab.engine.image import IMAGE
from hoplab.engine.state import FABRIC_ROLE, fabric_networks
from hoplab.errors import HoplabError
from hoplab.model import labels as L

BRIDGE_NAME = "com.docker.network.bridge.name"
SNAPLEN = 128  # Ethernet, IPv6 and TCP headers with options fit; payloads stay out of the view
LIFETIME = 1800  # seconds a tap lives when nobody stops it
TAP = "wire"  # the HELPER label's value on a tap: "wire:<network>"
# Opening a packet socket needs NET_RAW; tcpdump then drops to its own user (SETUID, SETGID).
TAP_CAPS = ["NET_RAW", "SETUID", "SETGID"]
TAP_CPUS = 0.25  # of a core: a flooded segment costs the machine at most this much capture
TAP_MEMORY = "64m"
TAP_PIDS = 8


def where(api: docker.APIClient, lab: str, network: str) -> tuple[str, str]:
    """(network namespace in Docker's words, interface) where the lab's network is seen whole."""
    found = api.networks(filters={"label": [f"{L.LAB}={lab}", f"{L.NETWORK}={network}"]})
    if found:  # a Docker bridge network: its bridge is in the engine host's namespace
        net = found[0]
        return "host", (net.get("Options") or {}).get(BRIDGE_NAME) or f"br-{net['Id'][:12]}"
    # fabric wiring (hoplab.engine.fabric): the bridge is in the lab's fabric container
    for fabric in api.containers(
        filters={"label": [f"{L.LAB}={lab}", f"{L.FABRIC}={FABRIC_ROLE}"]}
    ):
        bridge = fabric_networks(fabric["Labels"].get(L.NETS, "")).get(network, {}).get("bridge")
        if isinstance(bridge, str) and bridge:
            return f"container:{fabric['Id']}", bridge
    raise HoplabError(f"lab {lab!r} has no network {network!r}")


def tcpdump(iface: str, bpf: str) -> list[str]:
    """pcap to stdout as each frame comes; the filter is one argument after `--`, so no
    option can hide in it (tcpdump's getopt would take `-i eth0` from anywhere before)."""
    argv = ["timeout", "-s", "KILL", str(LIFETIME), "tcpdump", "-i", iface, "-n", "-U"]
    argv += ["--immediate-mode", "-s", str(SNAPLEN), "-w", "-"]
    return argv + (["--", bpf] if bpf else [])


def tap(api: docker.APIClient, lab: str, network: str, bpf: str) -> tuple[str, socket.socket]:
    """Start watching the lab's network: (the tap's id, its stdout and stderr as Docker's
    multiplexed stream on a raw socket, attached before the start so no frame is missed)."""
    netns, iface = where(api, lab, network)
    try:
        helper = api.create_container(
            IMAGE,
            entrypoint=tcpdump(iface, bpf),
            labels={L.LAB: lab, L.HELPER: f"{TAP}:{network}"},
            host_config=api.create_host_config(
                network_mode=netns,
                cap_drop=["ALL"],
                cap_add=TAP_CAPS,
                security_opt=["no-new-privileges"],
                read_only=True,
                mem_limit=TAP_MEMORY,
                nano_cpus=int(TAP_CPUS * 1e9),
                pids_limit=TAP_PIDS,
                log_config=docker.types.LogConfig(type="none"),
                auto_remove=True,
            ),
        )["Id"]
    except docker.errors.APIError as err:
        raise HoplabError(f"cannot start a capture on {network}: {explain(err)}") from None
    try:
        sock = api.attach_socket(helper, params={"stdout": 1, "stderr": 1, "stream": 1})
        api.start(helper)
    except BaseException as err:
        untap(api, lab, helper)
        if isinstance(err, docker.errors.APIError):
            raise HoplabError(f"cannot start a capture on {network}: {explain(err)}") from None
        raise
    return helper, cast(socket.socket, getattr(sock, "_sock", sock))


def untap(api: docker.APIClient, lab: str, helper: str) -> None:
    """Stop and remove a tap of the lab; anything else (another lab's, a node) is left alone."""
    try:
        labels = api.inspect_container(helper)["Config"].get("Labels") or {}
    except docker.errors.NotFound:
        return  # gone already: it ended by itself, or the lab went down
    if labels.get(L.LAB) != lab or not labels.get(L.HELPER, "").startswith(f"{TAP}:"):
        raise HoplabError(f"{helper[:12]} is not a capture of lab {lab!r}")
    with contextlib.suppress(docker.errors.NotFound):
        try:
            api.remove_container(helper, force=True)
        except docker.errors.APIError as err:
            if "already in progress" not in explain(err):  # auto_remove got there first
                raise HoplabError(f"cannot stop capture {helper[:12]}: {explain(err)}") from None

"""Host-side IPv6 rules: a dual-stack lab reaches neither the host nor anything beyond its bridges.

With IPv6 on in nodes, the host's own addresses on every lab bridge answer: the gateway Docker
puts there (fd..::1 style) and the bridge's link-local fe80:: address. Docker's `inhibit_ipv4`
has no IPv6 twin and Docker 20.10 writes no ip6tables rules at all, so these rules are the only
wall. One fixed set in the filter table covers every lab (bridges share egress.BRIDGE_PREFIX):

    FORWARD -i hl+ -m physdev --physdev-is-bridged -j RETURN   frames within one bridge
    FORWARD -i hl+ -j DROP                                     routed out of a lab
    FORWARD -o hl+ -j DROP                                     routed into a lab
    INPUT   -i hl+ -j DROP                                     to the host itself, fe80:: too

The RETURN comes first because br_netfilter hands bridged IPv6 frames to FORWARD as well.
They are put in place, and proved, with the same discipline as the IPv4 rules (egress.apply:
directly as root on the engine's host, else through a helper container); `up` of a lab with
IPv6 refuses when they cannot be, and `clean` removes them.
"""

from __future__ import annotations

import docker

from hoplab.engine import egress
from hoplab.errors import HoplabError

TAG = "hoplab-egress6"
RULES = egress.rules("FORWARD", TAG)


def script() -> str:
    """ip6tables of the backend iptables uses for Docker's rules (nft or legacy), else any."""
    return egress.render(
        RULES,
        ("ip6tables", "ip6tables-nft", "ip6tables-legacy"),
        "no working ip6tables on the engine's host",
    )


def ensure(client: docker.DockerClient, image: str) -> None:
    """Install the IPv6 rules if missing and prove they hold; refuse the IPv6 lab otherwise."""
    code, said = egress.apply(client, image, "install", script())
    if code != 0:
        raise HoplabError(
            f"IPv6 labs are refused here: the ip6tables rules that keep a lab off the host's "
            f"bridge addresses (link-local included) cannot be put in place: {said}",
            hint="run hoplab as root on the engine's host (or with a node image that has "
            "ip6tables), or remove enable_ipv6 and the IPv6 subnets to run the lab over IPv4; "
            "nothing was created",
        )


def installed(client: docker.DockerClient, image: str) -> bool:
    return egress.apply(client, image, "check", script())[0] == 0


def remove(client: docker.DockerClient, image: str) -> None:
    code, said = egress.apply(client, image, "remove", script())
    if code not in (0, 3):  # 3: no ip6tables, so no rules of ours either
        raise HoplabError(f"cannot remove hoplab's IPv6 host rules: {said}")

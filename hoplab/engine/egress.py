"""Host-side rules that keep every lab inside its bridges: no forwarding, no NAT, no host.

Docker installs `FORWARD -i br ! -o br -j ACCEPT` for every bridge network, even with
inhibit_ipv4: a root node that routes through the bridge's MAC gets its packets forwarded out of
the host. Lab networks therefore turn masquerading off (ENABLE_MASQ) and use bridge names with
one prefix (BRIDGE_PREFIX), so one fixed set of rules covers every lab, present and future:

    DOCKER-USER -i hl+ -m physdev --physdev-is-bridged -j RETURN   frames within one bridge
    DOCKER-USER -i hl+ -j DROP                                     routed out of a lab
    DOCKER-USER -o hl+ -j DROP                                     routed into a lab
    INPUT       -i hl+ -j DROP                                     to the host itself

DOCKER-USER runs before Docker's own FORWARD rules and Docker never flushes it. The rules are
applied in the engine's network namespace: directly when hoplab runs as root on the engine's own
host, else from a short-lived helper container with host networking and NET_ADMIN built from the
node image (so a remote engine works too). `up` refuses to start a lab when they cannot be put
in place, and `clean` removes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import threading

import docker
import docker.errors

from hoplab.engine.client import explain
from hoplab.errors import HoplabError
from hoplab.interrupts import sigint_deferred
from hoplab.model import labels as L

BRIDGE_PREFIX = "hl-"
BRIDGE_OPT = "com.docker.network.bridge.name"
ENABLE_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
TAG = "hoplab-egress"
HELPER_LABEL = L.LAB  # a leaked helper is a hoplab object, so `clean` removes it
HELPER_LAB = "hoplab-host-rules"

# The rules are one resource of the host: labs brought up in parallel threads (a workshop room)
# must not interleave one's remove-then-insert with another's check.
_ONE_AT_A_TIME = threading.Lock()
_WILD = f"{BRIDGE_PREFIX}+"


def rules(forward_chain: str, tag: str) -> tuple[tuple[str, str], ...]:
    """The four rules that keep labs in, as (chain, rule) pairs: forwarded traffic is judged in
    forward_chain (DOCKER-USER for IPv4, FORWARD for egress6's ip6tables), traffic to the host in
    INPUT, and every rule carries the comment tag that check and remove look for.

    In order: the RETURN for bridged frames must come before the DROPs.
    """
    mark = f"-m comment --comment {tag}"
    return (
        (forward_chain, f"-i {_WILD} -m physdev --physdev-is-bridged {mark} -j RETURN"),
        (forward_chain, f"-i {_WILD} {mark} -j DROP"),
        (forward_chain, f"-o {_WILD} {mark} -j DROP"),
        ("INPUT", f"-i {_WILD} {mark} -j DROP"),
    )


RULES = rules("DOCKER-USER", TAG)

# POSIX sh, run on the host or in the helper. Uses the backend whose tables hold the chain the
# rules go in (nft or legacy): rules in the other backend would do nothing.
# argv: check | install | remove. Exit 0 ok, 1 rules missing (check), 3 no such chain.
_SCRIPT = """
set -u
IPT=""
for b in BACKENDS; do
  if command -v "$b" >/dev/null 2>&1 && "$b" -w 5 -S PROBE >/dev/null 2>&1; then
    IPT="$b"; break
  fi
done
[ -n "$IPT" ] || { echo "NO_BACKEND"; exit 3; }
# Read each chain once and look for the rules in it: one iptables run per chain, not per rule.
check() {
  RULES_READ || return 1
  RULES_CHECK
}
remove() {
  RULES_REMOVE
}
case "$1" in
  check) check && echo ok || { echo missing; exit 1; } ;;
  install)
    if ! check; then remove; RULES_INSERT; fi
    check && echo "installed with $IPT" || { echo "rules did not hold with $IPT"; exit 1; } ;;
  remove) remove; echo removed ;;
esac
"""


def render(rules: tuple[tuple[str, str], ...], backends: tuple[str, ...], no_backend: str) -> str:
    """The check/install/remove script for one rule set; egress6 renders its ip6tables twin.

    Rules go in at explicit positions in their listed order (1, 2, 3 within each chain), so
    the chain never holds a DROP above the RETURN for bridged frames, not even for a moment.
    """
    chains = list(dict.fromkeys(chain for chain, _ in rules))
    var = {chain: f"c{i}" for i, chain in enumerate(chains)}
    reads = " && ".join(f'{var[c]}=$("$IPT" -w 5 -S {c})' for c in chains)
    checks = " && ".join(
        f"printf '%s\\n' \"${var[chain]}\" | grep -qxF -- '-A {chain} {rule}'"
        for chain, rule in rules
    )
    removes = "; ".join(
        f'while "$IPT" -w 5 -D {chain} {rule} 2>/dev/null; do :; done' for chain, rule in rules
    )
    position: dict[str, int] = {}
    inserts = []
    for chain, rule in rules:
        position[chain] = position.get(chain, 0) + 1
        inserts.append(f'"$IPT" -w 5 -I {chain} {position[chain]} {rule}')
    return (
        _SCRIPT.replace("BACKENDS", " ".join(backends))
        .replace("PROBE", chains[0])
        .replace("NO_BACKEND", no_backend)
        .replace("RULES_READ", f"{{ {reads}; }}")
        .replace("RULES_CHECK", checks)
        .replace("RULES_REMOVE", removes)
        .replace("RULES_INSERT", "; ".join(inserts))
    )


def script() -> str:
    return render(
        RULES,
        ("iptables", "iptables-nft", "iptables-legacy"),
        "no DOCKER-USER chain in any iptables backend",
    )


def bridge_name(docker_name: str) -> str:
    """The host interface name of a lab network: the prefix the rules match, plus a digest of
    the network's unique Docker name (interface names stop at 15 characters)."""
    return BRIDGE_PREFIX + hashlib.sha256(docker_name.encode()).hexdigest()[:12]


def network_options() -> dict[str, str]:
    """Driver options every lab network gets besides its bridge name: no NAT."""
    return {ENABLE_MASQ: "false"}


def _local(client: docker.DockerClient) -> bool:
    """Root on the engine's own host, in its network namespace: then iptables runs directly."""
    if os.geteuid() != 0 or not shutil.which("iptables"):
        return False
    if not str(client.api.base_url).startswith("http+docker://local"):
        return False  # a TCP or SSH engine lives elsewhere
    try:
        return client.api.info().get("Name") == socket.gethostname()
    except docker.errors.APIError:
        return False


def _direct(mode: str, text: str | None = None) -> tuple[int, str]:
    text = text or script()
    try:
        res = subprocess.run(
            ["sh", "-c", text, "egress", mode], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return 1, str(err)
    return res.returncode, (res.stdout + res.stderr).strip()


def _helper(
    client: docker.DockerClient, image: str, mode: str, text: str | None = None
) -> tuple[int, str]:
    """Run the script in a throwaway container on the host's network namespace; always removed."""
    text = text or script()
    api = client.api
    try:
        created = api.create_container(
            image,
            entrypoint=["sh", "-c", text, "egress", mode],
            labels={HELPER_LABEL: HELPER_LAB},
            host_config=api.create_host_config(network_mode="host", cap_add=["NET_ADMIN"]),
        )
    except docker.errors.APIError as err:
        return 1, f"cannot create the host-rules helper: {explain(err)}"
    try:
        api.start(created["Id"])
        code = int(api.wait(created["Id"], timeout=60)["StatusCode"])
        return code, api.logs(created["Id"]).decode(errors="replace").strip()
    except (docker.errors.APIError, OSError) as err:
        return 1, f"the host-rules helper failed: {err}"
    finally:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(created["Id"], force=True)


def apply(
    client: docker.DockerClient, image: str, mode: str, text: str | None = None
) -> tuple[int, str]:
    """Run check, install or remove where the engine's host is; (exit code, what it said).

    `text` is the rules' script (default: these IPv4 rules; egress6 passes its ip6tables one).

    A Ctrl-C waits for it to finish: a cut between removing stale rules and inserting them
    again would leave every lab open. (SIG_IGN is inherited, so iptables ignores it too.)
    """
    with _ONE_AT_A_TIME, sigint_deferred():
        text = text or script()
        if _local(client):
            return _direct(mode, text)
        return _helper(client, image, mode, text)


def ensure(client: docker.DockerClient, image: str) -> None:
    """Install the rules if they are missing and prove they hold; refuse (raise) otherwise.

    Called before any lab network is made: a lab that cannot be kept in never starts.
    """
    code, said = apply(client, image, "install")
    if code != 0:
        raise HoplabError(
            f"cannot put the host rules that keep labs inside in place: {said}",
            hint="hoplab needs root on the engine's host (or a node image with iptables) to "
            "add DROP rules to the DOCKER-USER chain; no lab was started",
        )


def installed(client: docker.DockerClient, image: str) -> bool:
    return apply(client, image, "check")[0] == 0


def remove(client: docker.DockerClient, image: str) -> None:
    code, said = apply(client, image, "remove")
    if code not in (0, 3):  # 3: no Docker chain, so no rules of ours either
        raise HoplabError(f"cannot remove hoplab's host rules: {said}")

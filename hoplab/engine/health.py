"""A running lab's nodes checked against their plan on `up`, and restarted where they differ.

A workshop participant is root in their nodes: they can fill the pids limit (then no exec
starts), delete the planned routes or take an interface down, and the next grading would fail
for it. So `up` of a running lab that matches its plan probes every node with one exec, in
parallel. A node that fails the probe, or where no exec can start, is restarted: that ends every
process in it at once, gives it a fresh network namespace with Docker's addresses, and its
entrypoint puts the routes back. An own-image node's program is restarted after its sandbox, so
it joins the new namespace. Healthy nodes are left alone, programs and all.
"""

from __future__ import annotations

from collections.abc import Callable

import docker
import docker.errors

from hoplab.engine import inside, programs
from hoplab.engine.pods import app_of
from hoplab.engine.reconcile import READY
from hoplab.engine.state import NodeState
from hoplab.errors import HoplabError

# Every planned route (the entrypoint's HOPLAB_ROUTES, which every exec inherits) must be in
# the table with its gateway, and none of Docker's interfaces may be down. Prints what is
# wrong, exits 1.
PROBE = r"""
echo "${HOPLAB_ROUTES:-}" | tr ';' '\n' | while read -r cidr _via gw _rest; do
    [ -n "$cidr" ] || continue
    fam=-4; case "$cidr" in *:*) fam=-6 ;; esac
    ip $fam route show exact "$cidr" | grep -q " via $gw " \
        || { echo "route $cidr via $gw is missing"; exit 1; }
done || exit 1
for path in /sys/class/net/eth*; do  # Docker's; tunl0 and sit0 are down by birth
    [ -e "$path" ] || continue
    [ "$(cat "$path/operstate")" = down ] && { echo "${path##*/} is down"; exit 1; }
done
exit 0
"""


def probe(api: docker.APIClient, node: NodeState) -> str:
    """'' if the node is as its plan made it; else what is wrong with it."""
    try:
        code, out, err = inside.run(api, node.container, ["sh", "-c", PROBE])
    except HoplabError as error:  # the engine could not start the exec at all
        return f"no exec starts in it ({error})"
    if code == 0:
        return ""
    said = (out + err).decode(errors="replace").strip()
    if any(sign in said.lower() for sign in ("fork", "temporarily unavailable", "exec failed")):
        return f"nothing can start in it, its pids limit is likely full ({said[-200:]})"
    return said or f"its probe exited {code}"


def restart(
    api: docker.APIClient, node: NodeState, rewire: Callable[[str], None] | None = None
) -> None:
    """Restart the node and wait for its entrypoint; an own-image node's program follows.
    rewire: wires the restarted node again (fabric wiring: a restart empties its namespace)."""
    programs.restart(api, node.container, READY, rewire=rewire)
    if node.app:
        try:
            api.restart(app_of(node.container), timeout=0)
        except docker.errors.APIError as err:
            raise HoplabError(f"cannot restart {app_of(node.container)}: {err}") from None

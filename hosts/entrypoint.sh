#!/bin/sh
# Node entrypoint: apply the plan hoplab made, say "ready" on stdout, then run the node's program.
# The orchestrator waits for that line through the logs stream, so bring-up needs no exec per node.
#   HOPLAB_ROUTES  "CIDR via IP;CIDR via IP;..."  (empty for a node that only has direct networks;
#                  set by hoplab on every node's own container, the one that holds the namespace)
#   "$@"           the program (Compose's entrypoint + command, or an image's CMD): it becomes the
#                  container's main process (exec), so signals reach it. No program: sleep.
# A user container built FROM hoplab/node joins a namespace whose plan is already in place: it gets
# no HOPLAB_ROUTES, and only runs its program.
set -u
fail() { echo "hoplab-error: $*"; exit 1; }

# Names come from /etc/hosts only, and no lookup waits for a resolver. Set at start, not in the
# image, so that builds FROM hoplab/node can still resolve Debian's mirror in their RUN steps.
sed -i 's/^hosts:.*/hosts: files/' /etc/nsswitch.conf 2>/dev/null || true

if [ -n "${HOPLAB_ROUTES+set}" ]; then
    # Docker's default route points at a bridge gateway that has no address (inhibit_ipv4):
    # drop it, so that nothing outside the lab is ever routed.
    ip route del default 2>/dev/null || true
    # In an IPv6 lab Docker also routes ::/0 via the gateway the host holds: drop that too.
    while ip -6 route del default 2>/dev/null; do :; done

    # Docker points resolv.conf at its embedded DNS, which forwards unknown names outside the lab.
    # Lab names live in /etc/hosts; a resolver that asks anything else is refused at once.
    printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' > /etc/resolv.conf 2>/dev/null || true

    if [ -n "$HOPLAB_ROUTES" ]; then
        echo "$HOPLAB_ROUTES" | tr ';' '\n' | sed -e '/^ *$/d' -e 's/^/route replace /' \
            | ip -batch - 2>&1 || fail "could not apply routes: $HOPLAB_ROUTES"
    fi
    echo "hoplab-ready"
fi

if [ "$#" -gt 0 ]; then
    exec "$@"
fi
exec sleep infinity

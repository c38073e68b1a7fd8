"""Label keys, all of them, in one place. All lab state lives in labels, so a lab is read back
from the engine alone; a key spelled twice would be a lab that cannot be found again."""

LAB = "hoplab.lab"
NODE = "hoplab.node"
NETWORK = "hoplab.network"
ROLE = "hoplab.role"
PLAN = "hoplab.plan"
ROUTES = "hoplab.routes"
ROUTES6 = "hoplab.routes6"  # a dual-stack node's IPv6 routes, for status (not in ROUTES: IPv4 only)
SOURCE = "hoplab.source"
OWNER = "hoplab.owner"
CREATED = "hoplab.created"
WORKSHOP = "hoplab.workshop"  # the room a lab belongs to (every node of a room's labs)
GRADER = "hoplab.grader-for"  # on a grader lab: the lab (or room) whose submissions it grades
# On a helper container of a lab (a segment capture): what it is; never read back as a node.
HELPER = "hoplab.helper"
APP = "hoplab.app"  # on an own-image node's user container: the node whose sandbox it joins
# Fabric wiring (hoplab.engine.fabric): the lab's own bridges live in a container of its own.
FABRIC = "hoplab.fabric"  # "fabric" on the container holding the bridges, "helper" on the wirer
WIRES = "hoplab.wires"  # on a node: JSON list of its links (network, name, MAC, addresses, MTU)
NETS = "hoplab.nets"  # on the fabric: JSON network -> {subnet, subnet6, mtu, bridge}
IMAGE_HASH = "hoplab.image-hash"  # on the node image: the hash of the build context it came from
# The pytest plugin's labs: which test process owns them, so stale ones can be reaped.
PYTEST_PID = "hoplab.pytest-pid"
PYTEST_START = "hoplab.pytest-start"
PYTEST_HOST = "hoplab.pytest-host"


def lab_filter(lab: str | None) -> dict[str, list[str]]:
    """Docker filter for one lab's objects, or for every hoplab object when lab is None."""
    return {"label": [f"{LAB}={lab}" if lab else LAB]}

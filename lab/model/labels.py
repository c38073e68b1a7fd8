"""Label keys. All lab state lives in labels, so a lab is read back from the engine alone."""

LAB = "hoplab.lab"
NODE = "hoplab.node"
NETWORK = "hoplab.network"
ROLE = "hoplab.role"
PLAN = "hoplab.plan"
ROUTES = "hoplab.routes"
SOURCE = "hoplab.source"
OWNER = "hoplab.owner"
CREATED = "hoplab.created"


def lab_filter(lab: str | None) -> dict[str, list[str]]:
    """Docker filter for one lab's objects, or for every hoplab object when lab is None."""
    return {"label": [f"{LAB}={lab}" if lab else LAB]}

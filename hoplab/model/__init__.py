"""The model: a frozen topology, its plan, and the label schema. Pure: no Docker, no I/O
beyond reading the topology file."""

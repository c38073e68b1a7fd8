"""hoplab: a containerized multi-host network lab driven through docker-py."""

__version__ = "0.1.0"

"""Connecting to the Docker Engine, and the one place its errors become hoplab's."""

from __future__ import annotations

import docker
import docker.errors
import requests

from hoplab.errors import HoplabError

API_VERSION = "1.41"


def connect(timeout: int = 120) -> docker.DockerClient:
    """Reach the engine or fail loudly: a lab tool that silently skips is worse than none."""
    try:
        client = docker.DockerClient.from_env(version=API_VERSION, timeout=timeout)
        client.api.ping()
    except (docker.errors.DockerException, requests.RequestException, OSError) as err:
        raise HoplabError(
            f"cannot reach the Docker Engine: {err}",
            hint="start the Docker daemon (systemctl start docker), or set DOCKER_HOST",
        ) from None
    return client


def explain(err: Exception) -> str:
    """A one-line reason from a docker-py error, without the HTTP noise."""
    if isinstance(err, docker.errors.APIError):
        return str(err.explanation or err)
    return str(err)

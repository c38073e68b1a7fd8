"""`hoplab clean` removes every object labelled hoplab.lab and nothing else.

WARNING: clean removes EVERY hoplab lab on the engine, other people's included. This file is named
zz so that it runs last in `make test`; do not run it while anyone else has a lab up on the same
engine. Its strangers are labelled h7.stranger (and some with hoplab look-alike labels) so that the
test can tell them apart and always removes them itself.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import docker.errors
import pytest
from hoplab.model import labels as L

from tests.conftest import ROOT, bring_up, unique_lab_name

pytestmark = pytest.mark.docker

STRANGER = "h7.stranger"
TINY = """\
services:
  r1: {x-hoplab: {role: router}, networks: [a, b]}
  alice: {networks: [a]}
  bob: {networks: [b]}
networks:
  a: {ipam: {config: [{subnet: 10.64.1.0/24}]}}
  b: {ipam: {config: [{subnet: 10.64.2.0/24}]}}
"""


def clean() -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hoplab", "clean"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_clean_removes_only_labelled_objects(engine, tmp_path):
    name = unique_lab_name("h7z")
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    api = engine.api
    strangers: dict[str, list[str]] = {"containers": [], "networks": []}
    try:
        bring_up(engine, name, path)
        # Strangers: no label at all, our own label, and labels that look like hoplab's but lack
        # the one key hoplab owns objects by (hoplab.lab). One stranger joins a stranger network,
        # and one is named like a node of the lab.
        looks_alike = {STRANGER: "1", L.NODE: "alice", L.NETWORK: "a", "hoplab.labx": name}
        for labels in ({STRANGER: "1"}, looks_alike):
            net = api.create_network(f"h7-stranger-{name}-{len(labels)}", labels=labels)
            strangers["networks"].append(net["Id"])
        plain = api.create_network(f"h7-stranger-{name}-plain")
        strangers["networks"].append(plain["Id"])
        for i, labels in enumerate(({STRANGER: "1"}, looks_alike, None)):
            c = api.create_container(
                "hoplab/node",
                name=f"{name}-stranger{i}",
                entrypoint=["true"],
                labels=labels,
                host_config=api.create_host_config(network_mode=f"h7-stranger-{name}-1"),
            )
            strangers["containers"].append(c["Id"])
        before = {
            "containers": {
                i: api.inspect_container(i)["Config"]["Labels"] for i in strangers["containers"]
            },
            "networks": {i: api.inspect_network(i)["Labels"] for i in strangers["networks"]},
        }
        assert api.containers(all=True, filters=L.lab_filter(name))

        proc = clean()
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr

        assert api.containers(all=True, filters=L.lab_filter(None)) == []
        assert api.networks(filters=L.lab_filter(None)) == []
        for cid, labels in before["containers"].items():
            assert api.inspect_container(cid)["Config"]["Labels"] == labels
        for nid, labels in before["networks"].items():
            assert api.inspect_network(nid)["Labels"] == labels
        # a clean with nothing to clean is still a success
        again = clean()
        assert again.returncode == 0 and "removed 0 containers and 0 networks" in again.stderr
    finally:
        engine.down(name)
        for cid in strangers["containers"]:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(cid, force=True)
        for nid in strangers["networks"]:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_network(nid)

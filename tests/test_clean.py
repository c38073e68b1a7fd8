"""`hoplab clean` removes every object labelled hoplab.lab and nothing else; safe anywhere in the
order, and beside other people's labs on the same engine.

clean keeps its real semantics (one `engine.down(None)`: every labelled object). What changes is
the engine it sees: the command runs against a scoped view of the real engine, a unix-socket proxy
that adds this test's scope label to every list filter and refuses every request except the few a
clean makes (ping, version, list, inspect and remove; disconnect), and those only on objects the
test made. Inside that view the test puts a lab's worth of labelled objects beside strangers that
carry the scope label but not hoplab.lab (some with hoplab look-alike labels), so it is clean's own
filter that must spare them. Everyone else's labs are outside the view and cannot be touched.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import docker.errors
import pytest

from hoplab.engine.bringup import INHIBIT
from hoplab.model import labels as L
from tests.conftest import ROOT, unique_lab_name

pytestmark = pytest.mark.docker

SCOPE = "hoplab-test.scope"  # not hoplab's: only this test's proxy and objects use it
STRANGER = "h7.stranger"
LISTS = {"/containers/json", "/networks"}


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class ScopedEngine:
    """The real engine, seen only through the scope label and only for clean's requests."""

    def __init__(self, upstream: str, listen: Path, scope: str) -> None:
        self.upstream, self.listen, self.scope = upstream, listen, scope
        self.allowed: set[str] = set()  # ids of the objects the test made
        self.removed: list[str] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        view = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                view.forward(self)

            do_HEAD = do_POST = do_DELETE = do_PUT = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = socketserver.ThreadingUnixStreamServer(str(listen), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ScopedEngine:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.listen.unlink(missing_ok=True)

    def decide(self, method: str, path: str) -> str:
        """'' if the request may pass; else why it is refused."""
        parts = path.strip("/").split("/")
        if parts and parts[0].startswith("v1."):
            parts = parts[1:]
        route = "/" + "/".join(parts)
        if method in ("GET", "HEAD") and route in ("/_ping", "/version", *LISTS):
            return ""
        target = parts[1] if len(parts) > 1 else ""
        shape = (method, parts[0] if parts else "", len(parts), parts[-1] if parts else "")
        known = shape in {
            ("GET", "networks", 2, target),
            ("DELETE", "networks", 2, target),
            ("DELETE", "containers", 2, target),
            ("POST", "networks", 3, "disconnect"),
        }
        if not known:
            return f"{method} {route}: not a request clean makes"
        if target not in self.allowed:
            return f"{method} {route}: not an object of this test"
        return ""

    def forward(self, req: BaseHTTPRequestHandler) -> None:
        url = urlsplit(req.path)
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        why = self.decide(req.command, url.path)
        if why:
            with self._lock:
                self.refused.append(why)
            self.reply(req, 403, json.dumps({"message": f"scoped view: {why}"}).encode())
            return
        query = parse_qs(url.query)
        if any(url.path.endswith(route) for route in LISTS):
            filters = json.loads(query.get("filters", ["{}"])[0])
            filters.setdefault("label", []).append(f"{SCOPE}={self.scope}")
            query["filters"] = [json.dumps(filters)]
        path = url.path + ("?" + urlencode(query, doseq=True) if query else "")
        conn = _UnixHTTPConnection(self.upstream)
        try:
            headers = {k: v for k, v in req.headers.items() if k.lower() != "connection"}
            conn.request(req.command, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if req.command == "DELETE" and resp.status < 300:
            with self._lock:
                self.removed.append(url.path.rsplit("/", 1)[-1])
        self.reply(req, resp.status, data, resp.getheader("Content-Type"))

    @staticmethod
    def reply(
        req: BaseHTTPRequestHandler, status: int, data: bytes, ctype: str | None = None
    ) -> None:
        req.send_response(status)
        req.send_header("Content-Type", ctype or "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD" and status not in (204, 304):
            req.wfile.write(data)


def upstream_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert host.startswith("unix://"), f"the scoped view needs a unix-socket engine, not {host}"
    return host.removeprefix("unix://")


def clean(docker_host: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hoplab", "clean"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        # The host rules are the host's, not the view's: this test's clean leaves them alone.
        env=os.environ | {"DOCKER_HOST": docker_host, "HOPLAB_KEEP_HOST_RULES": "1"},
    )


@contextlib.contextmanager
def made(api, view: ScopedEngine) -> Iterator[Callable[[str, str], str]]:
    """A recorder of what the test creates (for the view, and removed at the end, whatever)."""
    objs: dict[str, list[str]] = {"containers": [], "networks": []}

    def track(kind: str, oid: str) -> str:
        objs[kind].append(oid)
        view.allowed.add(oid)
        return oid

    try:
        yield track
    finally:
        for cid in objs["containers"]:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(cid, force=True)
        for nid in objs["networks"]:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_network(nid)


def test_clean_removes_only_labelled_objects(engine):
    name = unique_lab_name("h7c")
    api = engine.api
    scoped = {SCOPE: name}
    # The socket path must stay short (unix sockets allow about 100 bytes).
    sock = Path(f"/tmp/hoplab-scope-{os.getpid()}-{name}.sock")
    with ScopedEngine(upstream_socket(), sock, name) as view, made(api, view) as track:

        def network(suffix: str, labels: dict) -> str:
            net = api.create_network(
                f"{name}-{suffix}", driver="bridge", options={INHIBIT: "true"}, labels=labels
            )
            return track("networks", net["Id"])

        def container(suffix: str, labels: dict, net: str, *more: str) -> str:
            c = api.create_container(
                "hoplab/node",
                name=f"{name}-{suffix}",
                entrypoint=["sleep", "300"],
                labels=labels,
                host_config=api.create_host_config(network_mode=net, init=True),
            )
            for other in more:
                api.connect_container_to_network(c["Id"], other)
            api.start(c["Id"])
            return track("containers", c["Id"])

        # A lab (a router on two networks and a host), and another lab's network left alone by
        # a half-finished teardown: clean removes every lab, not one.
        lab = {L.LAB: name} | scoped
        lab_nets = [network(n, lab | {L.NETWORK: n}) for n in ("a", "b")]
        lab_nets.append(network("lone", scoped | {L.LAB: f"{name}-other", L.NETWORK: "lone"}))
        lab_nodes = [
            container("r1", lab | {L.NODE: "r1"}, lab_nets[0], lab_nets[1]),
            container("alice", lab | {L.NODE: "alice"}, lab_nets[0]),
        ]
        # Strangers in the view: our own label, and hoplab look-alikes without hoplab.lab. One
        # stranger is named like a node of the lab.
        looks_alike = scoped | {STRANGER: "1", L.NODE: "alice", L.NETWORK: "a", "hoplab.labx": name}
        stranger_nets = [
            network("stranger-1", scoped | {STRANGER: "1"}),
            network("stranger-2", looks_alike),
        ]
        strangers = [
            container("stranger0", scoped | {STRANGER: "1"}, stranger_nets[0]),
            container("stranger1", looks_alike, stranger_nets[1], stranger_nets[0]),
        ]
        before = {
            "containers": {c: api.inspect_container(c)["Config"]["Labels"] for c in strangers},
            "networks": {n: api.inspect_network(n)["Labels"] for n in stranger_nets},
        }

        proc = clean(f"unix://{sock}")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert "removed 2 containers and 3 networks" in proc.stderr, proc.stderr
        assert view.refused == []
        assert sorted(view.removed) == sorted(lab_nodes + lab_nets)
        in_view = {"label": [L.LAB, f"{SCOPE}={name}"]}
        assert api.containers(all=True, filters=in_view) == []
        assert api.networks(filters=in_view) == []
        for cid, labels in before["containers"].items():
            info = api.inspect_container(cid)
            assert info["Config"]["Labels"] == labels and info["State"]["Running"]
        for nid, labels in before["networks"].items():
            assert api.inspect_network(nid)["Labels"] == labels

        # A clean with nothing to clean is still a success.
        again = clean(f"unix://{sock}")
        assert again.returncode == 0 and "removed 0 containers and 0 networks" in again.stderr


def test_the_scoped_view_refuses_what_clean_never_does(engine):
    """The guard itself: outside objects and other requests are refused, lists are scoped."""
    name = unique_lab_name("h7v")
    sock = Path(f"/tmp/hoplab-scope-{os.getpid()}-{name}.sock")
    with ScopedEngine(upstream_socket(), sock, name) as view:
        client = docker.APIClient(base_url=f"unix://{sock}", version="1.41")
        try:
            assert client.ping()
            assert client.containers(all=True) == []  # the engine's others are out of view
            assert client.networks() == []
            with pytest.raises(docker.errors.APIError, match="not an object of this test"):
                client.remove_network("bridge")
            with pytest.raises(docker.errors.APIError, match="not a request clean makes"):
                client.create_network(f"{name}-x")
        finally:
            client.close()
    assert len(view.refused) == 2 and view.removed == []
    assert engine.api.networks(names=[f"{name}-x"]) == []

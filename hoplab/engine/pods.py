"""Own-image nodes as pods: the user's container joins its node's namespace once the plan is in it.

Every node of a lab, own-image or not, is first a hoplab/node container that holds the network
namespace, applies the plan (interfaces, addresses, routes, /etc/hosts) and reports ready. Only
when its own node and every router of the lab are ready (so every router already forwards) does
an own-image node's user container start, with `network_mode: container:<node>`, while the other
hosts may still be coming up (so a pod adds little to bring-up): its first instruction already sees
the whole plan, even in a `FROM scratch` image with no shell, no `ip` and no Python, and it needs
no capability for it (it gets NET_ADMIN/NET_RAW only when its service asks for them). A default
node with a program (`command:` and the like, no image) is a pod too, its program container
running hoplab/node. exec goes to the program's container; tools its image lacks (tcpdump, ss)
run from the sandbox's side of the same namespace (`inside.exec_target`), and captures and
impairments always do.

User containers start in depends_on order; a healthcheck is that node's readiness, and `up`
returns only when every one has passed. A container that exits during `up`, or never becomes
healthy, is an input error naming the service, with its last log lines; the caller rolls back.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors

from hoplab.engine.client import explain
from hoplab.engine.parallel import parallel
from hoplab.engine.state import Progress
from hoplab.errors import Cancelled, HoplabError, InputError
from hoplab.model import labels as L
from hoplab.model.images import App, start_order
from hoplab.model.plan import NodePlan, Plan

POLL = 0.1  # seconds between health reads: one inspect each, a few ms
LOG_TAIL = 20
NS = 1_000_000_000
T = TypeVar("T")


def app_container(node: NodePlan) -> str:
    """The user container's name: the node's own container keeps the node's name."""
    return app_of(node.container)


def app_of(container: str) -> str:
    return f"{container}-app"


def app_log(api: docker.APIClient, container: str, tail: int = LOG_TAIL) -> str | None:
    """What an own-image node's program printed (its image may have no shell to ask), or None
    for a hoplab/node node. container: the node's own container."""
    try:
        return api.logs(app_of(container), tail=tail).decode(errors="replace")
    except docker.errors.NotFound:
        return None


class _Gates:
    """Which user containers have started and which are healthy, for depends_on to wait on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.started: set[str] = set()
        self.healthy: set[str] = set()
        self.nodes: set[str] = set()  # nodes whose own container reported ready
        self.failed = False

    def node_ready(self, name: str) -> None:
        with self.cond:
            self.nodes.add(name)
            self.cond.notify_all()

    def mark(self, name: str, healthy: bool) -> None:
        with self.cond:
            (self.healthy if healthy else self.started).add(name)
            self.cond.notify_all()

    def fail(self) -> None:
        with self.cond:
            self.failed = True
            self.cond.notify_all()

    def wait(self, node: str, app: App, routers: set[str], apps: set[str]) -> None:
        """Until the node and every router are ready (routed, forwarding), and its depends_on
        holds (a hoplab/node dependency: ready; an own image: started, or healthy)."""

        def met(service: str, condition: str) -> bool:
            if service not in apps:
                return service in self.nodes
            return service in (self.healthy if condition == "service_healthy" else self.started)

        def ready() -> bool:
            return (
                node in self.nodes
                and routers <= self.nodes
                and all(met(d.service, d.condition) for d in app.depends_on)
            )

        with self.cond:
            self.cond.wait_for(lambda: self.failed or ready())
            if self.failed:
                raise _DependencyFailed


class _DependencyFailed(Exception):
    """A container this one depends on failed; that failure is the one reported."""


class PodStart:
    """One lab's user containers, started while the rest of the lab still comes up: each as soon
    as its own node and every router are ready, so a pod adds little to the bring-up time."""

    def __init__(
        self, pods: Pods, plan: Plan, labels: Mapping[str, str], cancel: threading.Event | None
    ) -> None:
        self.pods, self.plan, self.labels, self.cancel = pods, plan, labels, cancel
        self.apps = {n.name: n for n in plan.nodes if n.app is not None}
        self.gates = _Gates()
        self.workers = ThreadPoolExecutor(max_workers=1) if self.apps else None
        self.future: Future[dict[str, float]] | None = None
        self.began = 0.0

    def begin(self, progress: Progress) -> None:
        if self.workers is not None:
            self.began = time.monotonic()
            self.future = self.workers.submit(self._run, progress)

    def node_ready(self, name: str, result: T) -> T:
        """Called as each node's own container reports ready; passes its result through."""
        self.gates.node_ready(name)
        return result

    def finish(self, failed: bool) -> dict[str, float]:
        """Wait for every user container; after a failure of the rest, only let them stop."""
        if self.future is None or self.workers is None:
            return {}
        if failed:
            self.gates.fail()
        try:
            if failed:
                with contextlib.suppress(Exception):
                    self.future.result()
                return {}
            return self.future.result()
        finally:
            self.workers.shutdown(wait=True)

    def _run(self, progress: Progress) -> dict[str, float]:
        """Start in depends_on order, wait for health, then check none has died meanwhile."""
        order = start_order({name: n.app for name, n in self.apps.items() if n.app})
        gates = self.gates

        first: list[BaseException] = []  # the failure that stopped the others

        def one(name: str) -> None:
            try:
                self.pods._one(self.plan, self.apps[name], self.labels, gates, self.cancel)
            except _DependencyFailed:
                raise
            except BaseException as err:
                first.append(err)
                gates.fail()
                raise

        # One worker per container: each waits only on containers before it in `order`.
        try:
            parallel(one, order, "own images", progress, len(order))
        except _DependencyFailed:
            if first:
                raise first[0] from None
            raise
        for name in order:  # whoever died while the others were still starting
            self.pods._check_running(self.plan, self.apps[name])
        return {"own images (start + health)": time.monotonic() - self.began}


class Pods:
    """Starts a lab's user containers; holds no lab state."""

    def __init__(self, api: docker.APIClient, limits: Mapping[str, Any]) -> None:
        self.api, self.limits = api, dict(limits)

    def starter(
        self, plan: Plan, labels: Mapping[str, str], cancel: threading.Event | None
    ) -> PodStart:
        return PodStart(self, plan, labels, cancel)

    def _one(
        self,
        plan: Plan,
        node: NodePlan,
        labels: Mapping[str, str],
        gates: _Gates,
        cancel: threading.Event | None,
    ) -> None:
        app = node.app
        assert app is not None
        routers = {n.name for n in plan.nodes if n.kind.rules.forwards}
        gates.wait(node.name, app, routers, {n.name for n in plan.nodes if n.app})
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"bring-up of {plan.lab} was cancelled")
        name = app_container(node)
        try:
            self.api.create_container(
                app.image_id or app.image,
                name=name,
                command=list(app.command) if app.command is not None else None,
                entrypoint=list(app.entrypoint) if app.entrypoint is not None else None,
                environment=dict(app.environment) or None,
                working_dir=app.working_dir or None,
                user=app.user or None,
                healthcheck=_healthcheck(app),
                labels=dict(labels) | {L.LAB: plan.lab, L.APP: node.name, L.PLAN: plan.digest},
                host_config=self.host_config(node, app),
                detach=True,
            )
        except docker.errors.APIError as err:
            raise HoplabError(f"cannot create container {name!r}: {explain(err)}") from None
        self.api.start(name)
        gates.mark(node.name, healthy=False)
        if app.healthcheck is not None:
            self._wait_healthy(plan, node, gates)
        gates.mark(node.name, healthy=True)

    def host_config(self, node: NodePlan, app: App) -> dict[str, Any]:
        """The user's container: the node's namespace, the node's limits, no added capability
        unless the service asked for NET_ADMIN/NET_RAW, and only read-only binds."""
        return self.api.create_host_config(
            network_mode=f"container:{node.container}",
            cap_add=list(app.caps) or None,
            binds={m.source: {"bind": m.target, "mode": "ro"} for m in app.mounts} or None,
            security_opt=["no-new-privileges"],
            **self.limits,
        )

    def _wait_healthy(self, plan: Plan, node: NodePlan, gates: _Gates) -> None:
        app = node.app
        assert app is not None and app.healthcheck is not None
        h = app.healthcheck
        # Docker itself says "unhealthy" after `retries` failures; this bound is for an engine
        # that never answers at all.
        deadline = time.monotonic() + h.start_period + (h.retries + 2) * (h.interval + h.timeout)
        name = app_container(node)
        while True:
            state = self.api.inspect_container(name)["State"]
            health = state.get("Health") or {}
            status = health.get("Status", "")
            if status == "healthy":
                return
            if not state.get("Running"):
                raise self._exited(plan, node, state)
            if gates.failed:  # the rest of the lab failed, or Ctrl-C: stop waiting at once
                raise _DependencyFailed
            if status == "unhealthy" or time.monotonic() > deadline:
                log = health.get("Log") or [{}]
                last = str(log[-1].get("Output", "")).strip() or f"health status {status!r}"
                raise InputError(
                    f"node {node.name}: the healthcheck never passed ({h.retries} tries): "
                    f"{last[:300]}\n{self._tail(name)}",
                    file=plan.source,
                    line=h.line,
                    key=f"services.{node.name}.healthcheck",
                    hint=f"the test {list(h.test)} must exit 0 once {node.name} is ready",
                )
            time.sleep(POLL)

    def _check_running(self, plan: Plan, node: NodePlan) -> None:
        state = self.api.inspect_container(app_container(node))["State"]
        if not state.get("Running"):
            raise self._exited(plan, node, state)

    def _exited(self, plan: Plan, node: NodePlan, state: dict[str, Any]) -> InputError:
        app = node.app
        assert app is not None
        why = f"exit code {state.get('ExitCode')}" + (
            f", {state['Error']}" if state.get("Error") else ""
        )
        return InputError(
            f"node {node.name}: its container exited during up ({why})\n"
            + self._tail(app_container(node)),
            file=plan.source,
            line=app.line,
            key=f"services.{node.name}",
            hint="a node's program must keep running; its last log lines are above",
        )

    def _tail(self, name: str) -> str:
        try:
            text = self.api.logs(name, tail=LOG_TAIL).decode(errors="replace").rstrip()
        except docker.errors.APIError as err:
            text = f"(no log: {explain(err)})"
        lines = text.splitlines() or ["(empty log)"]
        return f"  last log lines of {name}:\n" + "\n".join(f"    | {line}" for line in lines)


def _healthcheck(app: App) -> dict[str, Any] | None:
    h = app.healthcheck
    if h is None:
        return None
    return {
        "test": list(h.test),
        "interval": max(int(h.interval * NS), 1_000_000),  # Docker's floor is 1 ms
        "timeout": max(int(h.timeout * NS), 1_000_000),
        "retries": h.retries,
        "start_period": int(h.start_period * NS),
    }

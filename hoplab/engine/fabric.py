"""Fabric wiring: hoplab wires each lab itself, below Docker's networking (issue 24).

Docker networks cost a lab most of its bring-up and teardown (libnetwork endpoints, iptables
rules, the per-network lock for moby#42119), give every lab on an engine subnets of its own, and
leave bridges on the host that need firewall rules to keep the lab in. With `HOPLAB_WIRING=fabric`
a lab is wired like containerlab wires its links:

- every node starts with `network_mode: none` (its own empty namespace, lo only);
- one "fabric" container of the lab (hoplab/node, no capability, IPv6 and forwarding off, no
  address anywhere) holds one Linux bridge per lab network, with the network's MTU;
- one short-lived helper container per `up` (hoplab/node with the host's PID namespace, NET_ADMIN,
  SYS_ADMIN and SYS_PTRACE, no network of its own) runs HELPER below: it finds the lab's
  processes by a random per-up token in their environment, adds a veth pair per interface (one
  end on the bridge, the other moved into the node as eth0, eth1, ... in the file's order, with a
  MAC derived from the address as Docker does), then in each node one `ip -batch`: addresses of
  both families, routes, and last an alias on lo that the node's entrypoint waits for.

So a node has no interface that leads to the host: only veths to bridges in a namespace that has
no address and does not forward. Nothing lands on the host: removing the lab's containers removes
their namespaces, and with them every veth and bridge. Each lab is a world of its own, so labs
side by side keep the file's own subnets.

The helper is hoplab's code in a fresh container of the node image that no node can reach (it
has no network). The engine must allow such a container: a rootless engine cannot, and `up` then
says so before anything is created (exit 2).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from ipaddress import IPv4Address
from typing import Any

import docker
import docker.errors

from hoplab.engine.client import explain
from hoplab.engine.state import FABRIC_ROLE, HELPER_ROLE
from hoplab.errors import HoplabError, InputError
from hoplab.model import labels as L
from hoplab.model.plan import NodePlan, Plan

WIRING_ENV = "HOPLAB_WIRING"
DOCKER, FABRIC = "docker", "fabric"
WIRINGS = (DOCKER, FABRIC)
WIRE_ENV = "HOPLAB_WIRE"  # a node's (and the fabric's) token: how the helper finds its process
WIRED = "hoplab-wired"  # the alias the helper sets on a node's lo last; the entrypoint waits for it
HELPER_CAPS = ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]  # veths and setns; ptrace to open a netns
FIND_DEADLINE = 60.0  # seconds the helper waits for every process of the lab to appear
HELPER_WAIT = 150  # seconds the engine waits for the helper, start to exit
# A fabric-wired node's entrypoint: wait until the helper has wired it, then the node image's own
# entrypoint as always (its `route replace` of the same routes changes nothing; it says "ready").
# The alias on lo is the helper's last step; the helper then sends SIGUSR1 to this shell if it
# has its trap in place already (else the shell has not yet looked, and will see the alias), so
# a node starts at once, and the one-second look is only a fallback: polling every node
# many times a second would cost a 200-node lab whole cores while it comes up. A late signal
# (the shell saw the alias itself meanwhile) must not end the node: after the wait USR1 is
# ignored, and stays so across the exec (the node's own `sleep`; what `exec` runs in a node is
# no child of it). Set per container, not in the image, so labs of either wiring run the same
# hoplab/node image.
NODE_WAIT = (
    "w=0; trap 'w=1' USR1; n=0;"
    ' until [ $w = 1 ] || { read -r a < /sys/class/net/lo/ifalias && [ "$a" = WIRED ]; };'
    " do n=$((n + 1)); [ $n -le 150 ] || { echo 'hoplab-error: not wired within 150 s'; exit 1; };"
    " sleep 1 & s=$!; wait $s; done 2>/dev/null; trap '' USR1;"
    # no sleep left behind: it would stay a zombie under the program this shell becomes
    ' [ -z "${s:-}" ] || { kill $s; wait $s; } 2>/dev/null;'
    ' exec /usr/local/bin/hoplab-entrypoint "$@"'
).replace("WIRED", WIRED)
NODE_ENTRYPOINT = ["/bin/sh", "-c", NODE_WAIT, "hoplab-wait"]
FABRIC_SYSCTLS = {  # the fabric holds bridges and nothing else: no address, no forwarding
    "net.ipv4.ip_forward": "0",
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
}

# Runs in the helper container (python3 of the node image, host PID namespace). Input: the env
# HOPLAB_FABRIC_SPEC, JSON {deadline, fabric: {tag|pid}, bridges: [{name, mtu}], stale: [veth],
# nodes: [{name, tag|pid, links: [{name, veth, bridge, mac, mtu, addrs}], routes: [...]}]}.
# One `ip -batch` in the fabric, then one per node, all nodes at once. Any failure: exit 1 with
# the line that failed.
HELPER = r"""
import json, os, subprocess, sys, time
spec = json.loads(os.environ["HOPLAB_FABRIC_SPEC"])
me = str(os.getpid())
t0 = time.monotonic()

def fail(msg):
    print("hoplab-wiring-error: " + msg, flush=True)
    sys.exit(1)

def find(tags, deadline):
    want = {"WIRE_ENV=" + t: t for t in tags}
    found, done = {}, set()
    while True:
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid in done or pid == me:
                continue
            try:
                with open("/proc/" + pid + "/comm") as f:
                    comm = f.read()
                with open("/proc/" + pid + "/environ", "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            if comm.startswith("runc"):  # not yet the container's own program: look again
                continue
            done.add(pid)
            for entry in env:
                tag = want.get(entry.decode(errors="replace"))
                if tag is not None and tag not in found:
                    found[tag] = int(pid)
        if len(found) == len(want):
            return found
        if time.monotonic() > deadline:
            fail("never started: " + ", ".join(sorted(set(want.values()) - set(found))))
        time.sleep(0.02)

def batch(pid, lines, force=False):
    argv = ["nsenter", "-t", str(pid), "-n", "ip"] + (["-force"] if force else []) + ["-batch", "-"]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True), "\n".join(lines) + "\n"

def finish(started, what):
    proc, text = started
    out, _ = proc.communicate(text, timeout=60)
    if proc.returncode != 0 and what:
        fail(what + ": " + out.strip()[-400:])

tags = [x["tag"] for x in [spec["fabric"]] + spec["nodes"] if x.get("tag")]
found = find(tags, time.monotonic() + spec["deadline"]) if tags else {}
t1 = time.monotonic()
pid = lambda x: x.get("pid") or found[x["tag"]]
fabric = pid(spec["fabric"])
if spec["stale"]:  # veths of a restarted node whose old namespace is still being torn down
    finish(batch(fabric, ["link del " + v for v in spec["stale"]], force=True), "")
lines = []
for b in spec["bridges"]:
    mtu = " mtu %d" % b["mtu"] if b["mtu"] else ""
    lines += ["link add %s%s type bridge" % (b["name"], mtu), "link set %s up" % b["name"]]
for node in spec["nodes"]:
    for l in node["links"]:
        mtu = " mtu %d" % l["mtu"] if l["mtu"] else ""
        lines.append("link add %s%s type veth peer name %s address %s%s netns %d"
                     % (l["veth"], mtu, l["name"], l["mac"], mtu, pid(node)))
        lines.append("link set %s master %s up" % (l["veth"], l["bridge"]))
finish(batch(fabric, lines), "the fabric")
t2 = time.monotonic()
running = []
for node in spec["nodes"]:
    lines = ["link set lo up"]
    for l in node["links"]:
        lines.append("link set %s up" % l["name"])
        lines += ["addr add %s dev %s%s" % (a, l["name"], " nodad" if ":" in a else "")
                  for a in l["addrs"]]
    lines += ["route replace " + r for r in node["routes"]]
    lines.append("link set lo alias WIRED")
    running.append((node["name"], batch(pid(node), lines)))
for name, started in running:
    finish(started, "node " + name)
t3 = time.monotonic()

# Wake each node's waiting shell: a child of the node's process found above (or that process),
# named sh, with its USR1 trap in place (a shell without it has not looked yet, and will see
# the alias: a signal before its trap would end it).
def status_of(p):
    try:
        with open("/proc/%d/status" % p) as f:
            return dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
    except (OSError, ValueError):
        return {}

def children_of(p):
    try:
        with open("/proc/%d/task/%d/children" % (p, p)) as f:
            return [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        return []

for node in spec["nodes"]:
    top = pid(node)
    for p in [top] + children_of(top):
        status = status_of(p)
        caught = int(status.get("SigCgt", "0").strip() or "0", 16)
        if status.get("Name", "").strip() == "sh" and caught & (1 << (10 - 1)):
            try:
                os.kill(p, 10)
            except OSError:
                pass
t4 = time.monotonic()
print(json.dumps({"waiting for processes": t1 - t0, "fabric batch": t2 - t1,
                  "node batches": t3 - t2, "waking nodes": t4 - t3}), flush=True)
""".replace("WIRE_ENV", WIRE_ENV).replace("WIRED", WIRED)


def wiring_from_env(value: str | None) -> str:
    """The wiring HOPLAB_WIRING asks for: `docker` (default) or `fabric`; else an input error."""
    raw = (value or DOCKER).strip().lower()
    if raw not in WIRINGS:
        raise InputError(
            f"unknown wiring {value!r}", key=WIRING_ENV, hint="set it to docker or fabric"
        )
    return raw


def refusal(info: dict[str, Any]) -> str:
    """Why this engine cannot run the wiring helper ('' when it can), from `docker info`."""
    options = " ".join(str(o) for o in info.get("SecurityOptions") or [])
    if "name=rootless" in options:
        return (
            "the engine runs rootless, so it cannot start the wiring helper (a container in "
            "the host's PID namespace with NET_ADMIN and SYS_ADMIN)"
        )
    return ""


def refused(why: str) -> InputError:
    return InputError(
        f"this engine cannot wire labs: {why}",
        key=WIRING_ENV,
        hint="use HOPLAB_WIRING=docker (Docker's own networks) on this engine; nothing was created",
    )


def bridge_name(index: int) -> str:
    return f"hb{index}"  # not hl-: hoplab's Docker-network bridges on the host are named so


def veth_name(node_index: int, link_index: int) -> str:
    """The fabric's end of a node's link (at most 15 characters, like every interface name)."""
    return f"hv{node_index}x{link_index}"


def mac_of(address: IPv4Address) -> str:
    """02:42 and the IPv4 address, as Docker derives a MAC: unique in a lab, readable by eye."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


def links(plan: Plan, node: NodePlan) -> list[dict[str, Any]]:
    """The node's links in the file's order: eth0 is its first network, as users see today."""
    index = {n.name: i for i, n in enumerate(plan.networks)}
    me = next(i for i, n in enumerate(plan.nodes) if n.name == node.name)
    out = []
    for i, iface in enumerate(node.interfaces):
        net = plan.network(iface.network)
        addrs = [f"{iface.address}/{net.subnet.prefixlen}"]
        if plan.six is not None:
            six = plan.six.address_or_none(node.name, iface.network)
            subnet6 = plan.six.subnet(iface.network)
            if six is not None and subnet6 is not None:
                addrs.append(f"{six}/{subnet6.prefixlen}")
        out.append(
            {
                "network": iface.network,
                "name": f"eth{i}",
                "veth": veth_name(me, i),
                "bridge": bridge_name(index[iface.network]),
                "mac": mac_of(iface.address),
                "mtu": net.mtu or 0,
                "addrs": addrs,
            }
        )
    return out


def routes(plan: Plan, node: NodePlan) -> list[str]:
    """Both families' routes, in `ip route replace` words."""
    six = [f"{d} via {v}" for n, d, v in plan.six.routes if n == node.name] if plan.six else []
    return [str(r) for r in node.routes] + six


def networks_label(plan: Plan) -> str:
    """The fabric's NETS label: what LabState reads back in place of Docker's networks."""
    out = {}
    for i, net in enumerate(plan.networks):
        subnet6 = plan.six.subnet(net.name) if plan.six else None
        out[net.name] = {
            "subnet": str(net.subnet),
            "subnet6": str(subnet6) if subnet6 else "",
            "mtu": net.mtu or 0,
            "bridge": bridge_name(i),
        }
    return json.dumps(out, sort_keys=True)


def fabric_container(lab: str) -> str:
    return f"{lab}.fabric"  # a dot: no node's container (lab-node) can take this name


def fabric_error(name: str, err: docker.errors.APIError) -> HoplabError:
    """What a refused fabric means for the user. A 409 is a stranger's container holding the
    fabric's name (the fabric counterpart of a stranger's network): named, and never touched."""
    if err.status_code == 409:
        return HoplabError(
            f"a container named {name!r} already exists and does not belong to this lab",
            hint="hoplab never touches objects it did not create: rename or remove it yourself, "
            "or pick another lab name with --name",
        )
    return HoplabError(f"cannot start the fabric {name!r}: {explain(err)}")


class Wiring:
    """One `up`'s fabric: the container holding the bridges, and the helper that wires it all.

    `run` (on a worker of its own) overlaps the nodes' creation: the helper finds each process as
    it starts. `abort` ends the helper at once, so a failed or cancelled bring-up never waits
    for processes that will not come."""

    def __init__(
        self, api: docker.APIClient, plan: Plan, image: str, extra: dict[str, str]
    ) -> None:
        self.api, self.plan, self.image, self.extra = api, plan, image, extra
        self.token = secrets.token_hex(12)
        self._lock = threading.Lock()
        self._aborted = False
        self._helper: str | None = None

    def tag(self, name: str) -> str:
        return f"{self.token}-{name}"

    def node_env(self, node: NodePlan) -> dict[str, str]:
        return {WIRE_ENV: self.tag(node.name)}

    def node_labels(self, node: NodePlan) -> dict[str, str]:
        return {L.WIRES: json.dumps(links(self.plan, node))}

    def spec(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "deadline": FIND_DEADLINE,
            "fabric": {"tag": self.tag(".fabric")},
            "bridges": [
                {"name": bridge_name(i), "mtu": n.mtu or 0} for i, n in enumerate(plan.networks)
            ],
            "stale": [],
            "nodes": [
                {
                    "name": n.name,
                    "tag": self.tag(n.name),
                    "links": links(plan, n),
                    "routes": routes(plan, n),
                }
                for n in plan.nodes
            ],
        }

    def run(self) -> dict[str, float]:
        """Create and start the fabric, then the helper; wait for it. Seconds of each step."""
        t0 = time.monotonic()
        failed: list[BaseException] = []
        started: list[float] = []

        def fabric() -> None:  # beside the helper, which finds the fabric as it starts
            try:
                self.start_fabric()
                started.append(time.monotonic() - t0)
            except BaseException as err:
                failed.append(err)
                self.abort()  # the helper would wait for a fabric that never comes

        beside = threading.Thread(target=fabric, name="fabric", daemon=True)
        beside.start()
        try:
            steps = self.helper(self.spec())
        except BaseException:
            beside.join()
            if failed:  # the fabric's own error is the cause; the helper was only stopped for it
                raise failed[0] from None
            raise
        beside.join()
        if failed:
            raise failed[0]
        return {"fabric start": started[0], "wiring": time.monotonic() - t0} | steps

    def start_fabric(self) -> None:
        name = fabric_container(self.plan.lab)
        api = self.api
        try:
            api.create_container(
                self.image,
                name=name,
                hostname="fabric",
                entrypoint=["sleep", "infinity"],
                environment={WIRE_ENV: self.tag(".fabric")},
                labels=self.extra
                | {
                    L.LAB: self.plan.lab,
                    L.FABRIC: FABRIC_ROLE,
                    L.PLAN: self.plan.digest,
                    L.NETS: networks_label(self.plan),
                },
                host_config=api.create_host_config(
                    network_mode="none",
                    cap_drop=["ALL"],
                    sysctls=FABRIC_SYSCTLS,
                    init=True,
                    mem_limit="32m",
                    pids_limit=16,
                    security_opt=["no-new-privileges"],
                ),
                detach=True,
            )
            api.start(name)
        except docker.errors.APIError as err:
            raise fabric_error(name, err) from None

    def helper(self, spec: dict[str, Any]) -> dict[str, float]:
        with self._lock:
            if self._aborted:
                raise HoplabError("the wiring was stopped")
            self._helper = start_helper(self.api, self.image, self.plan.lab, spec, self.extra)
        return finish_helper(self.api, self._helper)

    def abort(self) -> None:
        """End the helper now (it may wait for nodes that will never start); idempotent."""
        with self._lock:
            self._aborted = True
            helper = self._helper
        if helper is not None:
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_container(helper, force=True)


def start_helper(
    api: docker.APIClient, image: str, lab: str, spec: dict[str, Any], extra: dict[str, str]
) -> str:
    """Create and start the helper; its id. Labelled with the lab, so `down` removes it too."""
    try:
        helper: str = api.create_container(
            image,
            name=f"{lab}.wiring-{secrets.token_hex(3)}",
            entrypoint=["python3", "-I", "-c", HELPER],
            environment={"HOPLAB_FABRIC_SPEC": json.dumps(spec)},
            labels=extra | {L.LAB: lab, L.FABRIC: HELPER_ROLE},
            host_config=api.create_host_config(
                pid_mode="host",
                network_mode="none",
                cap_drop=["ALL"],
                cap_add=HELPER_CAPS,
                security_opt=["apparmor=unconfined", "no-new-privileges"],
            ),
            detach=True,
        )["Id"]
    except docker.errors.APIError as err:
        raise refused(f"it refused the wiring helper: {explain(err)}") from None
    try:
        api.start(helper)
    except docker.errors.APIError as err:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(helper, force=True)
        raise refused(f"it refused to start the wiring helper: {explain(err)}") from None
    return helper


def finish_helper(api: docker.APIClient, helper: str) -> dict[str, float]:
    """Wait for the helper, remove it, and raise with its words if it failed; else the seconds
    of its steps (its last line)."""
    try:
        code = int(api.wait(helper, timeout=HELPER_WAIT)["StatusCode"])
        said = api.logs(helper).decode(errors="replace").strip()
    except docker.errors.NotFound:
        raise HoplabError("the wiring helper was stopped") from None
    except Exception as err:  # noqa: BLE001 - a timeout of the wait is a requests error
        raise HoplabError(f"the wiring helper did not finish: {err}") from None
    finally:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(helper, force=True)
    if code != 0:
        raise HoplabError(
            f"the lab could not be wired: {said[-600:] or f'the helper exited {code}'}",
            hint="nothing of the lab is kept; run `hoplab up` again, or report the line above",
        )
    try:
        steps = json.loads(said.splitlines()[-1])
        return {f"helper: {k}": float(v) for k, v in steps.items()}
    except (ValueError, IndexError, AttributeError):
        return {}


def start_fabric_again(api: docker.APIClient, lab: str) -> bool:
    """Start the lab's fabric if it is stopped (a daemon restart stops every container); True if
    it was, so its bridges, and every node's links, are to be made again."""
    found = api.containers(
        all=True, filters={"label": [f"{L.LAB}={lab}", f"{L.FABRIC}={FABRIC_ROLE}"]}
    )
    if not found:
        raise HoplabError(
            f"lab {lab} has no fabric, so its nodes cannot be wired again",
            hint=f"run `hoplab down` and `hoplab up` for {lab}",
        )
    if found[0]["State"] == "running":
        return False
    try:
        api.start(found[0]["Id"])
    except docker.errors.APIError as err:
        raise HoplabError(f"cannot start the fabric of {lab}: {explain(err)}") from None
    return True


def rewire(api: docker.APIClient, containers: list[str], bridges: bool = False) -> None:
    """Wire restarted nodes again (a restart gives a node a fresh, empty namespace).

    Reads everything from labels: the node's links (WIRES) and routes, and its lab's fabric.
    Containers that are not fabric-wired nodes are left alone (their lab uses Docker networks).
    bridges: the fabric was started again, empty: make its bridges first (its NETS label).
    """
    by_lab: dict[str, list[dict[str, Any]]] = {}
    images: dict[str, str] = {}
    for container in containers:
        info = api.inspect_container(container)
        labels = info["Config"].get("Labels") or {}
        if L.WIRES not in labels:
            continue
        env = dict(e.split("=", 1) for e in info["Config"].get("Env") or [] if "=" in e)
        lab = labels[L.LAB]
        images[lab] = info["Image"]
        by_lab.setdefault(lab, []).append(
            {
                "name": labels.get(L.NODE, container),
                "pid": int(info["State"]["Pid"]),
                "links": json.loads(labels[L.WIRES]),
                "routes": [r for r in env.get("HOPLAB_ROUTES", "").split(";") if r],
            }
        )
    for lab, nodes in by_lab.items():
        found = api.containers(filters={"label": [f"{L.LAB}={lab}", f"{L.FABRIC}={FABRIC_ROLE}"]})
        if not found:
            raise HoplabError(
                f"lab {lab} has no running fabric, so its nodes cannot be wired again",
                hint=f"run `hoplab down` and `hoplab up` for {lab}",
            )
        fabric_pid = int(api.inspect_container(found[0]["Id"])["State"]["Pid"])
        nets = json.loads(found[0]["Labels"].get(L.NETS) or "{}") if bridges else {}
        spec = {
            "deadline": FIND_DEADLINE,
            "fabric": {"pid": fabric_pid},
            "bridges": [{"name": n["bridge"], "mtu": n["mtu"]} for n in nets.values()],
            "stale": [link["veth"] for n in nodes for link in n["links"]],
            "nodes": nodes,
        }
        finish_helper(api, start_helper(api, images[lab], lab, spec, {}))

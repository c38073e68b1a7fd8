"""Link impairments on a running lab's interfaces: put in place, cleared, and read back.

The commands come from hoplab.model.impair (pure); here they run in the nodes, one exec per node
whatever the number of interfaces, all nodes in parallel. Everything but the netem probe reaches
the nodes only through a `Run` (the engine's `run`), so the unit tests' fake engine runs this very
code against its in-memory kernel. The kernel itself is the record: status
reads the qdiscs and tagged iptables rules back, so what it shows is what packets meet, also after
`hoplab impair` changed a link (labels cannot change on a running container).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from typing import Any

import docker
import docker.errors

from hoplab.engine.client import explain
from hoplab.engine.parallel import parallel
from hoplab.engine.state import LabState, NodeState, no_progress
from hoplab.errors import HoplabError, InputError
from hoplab.interrupts import sigint_deferred
from hoplab.model import labels as L
from hoplab.model.impair import (
    IFACE,
    TAG,
    Impair,
    commands,
    needs_netem_message,
    rate_words,
    unsupported,
)

# How this module runs a command in a node: (container, argv) -> (exit code, stdout, stderr).
Run = Callable[[str, list[str]], tuple[int, bytes, bytes]]

PROBE_LAB = "hoplab-netem-probe"  # a leaked probe is a hoplab object, so `clean` removes it

# Runs in the node as root (python3 -c SCRIPT apply JSON). JSON is a list of {address, commands}:
# for each, find the interface holding the address, clear what an earlier declared impairment
# left on it (root qdisc, tagged rules), then run the commands with the interface name put in.
_SCRIPT = r"""
import json, subprocess, sys
mode, items = sys.argv[1], json.loads(sys.argv[2])
def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr.strip()
links = json.loads(run(["ip", "-j", "-4", "addr", "show"])[1] or "[]")
by_addr = {a["local"]: l["ifname"] for l in links for a in l.get("addr_info", [])}
out = {}
for item in items:
    addr = item["address"]
    dev = by_addr.get(addr)
    if dev is None:
        out[addr] = {"error": "no interface holds " + addr}
        continue
    rules = [r for ch in ("FORWARD", "OUTPUT") for r in run(["iptables", "-S", ch])[1].splitlines()
             if "TAG" in r and ("-o " + dev + " ") in r]
    for r in rules:
        run(["iptables", "-D"] + r.split()[1:])
    run(["tc", "qdisc", "del", "dev", dev, "root"])
    errors = []
    for cmd in item["commands"]:
        code, _, err = run([dev if a == "IFACE" else a for a in cmd])
        if code:
            errors.append(" ".join(cmd).replace("IFACE", dev) + ": " + err)
    out[addr] = {"iface": dev, "errors": errors}
print(json.dumps(out))
""".replace("TAG", TAG).replace("IFACE", IFACE)


def netem_missing(client: docker.DockerClient, image: str) -> str:
    """Why the engine's kernel cannot run netem ('' when it can), asked of a throwaway node.

    Asked before a lab that needs delay or jitter is created, so that it is refused with nothing
    made. The probe has no network (only lo) and is always removed."""
    api = client.api
    try:
        created = api.create_container(
            image,
            entrypoint=["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
            labels={L.LAB: PROBE_LAB},
            host_config=api.create_host_config(network_mode="none", cap_add=["NET_ADMIN"]),
        )
    except docker.errors.APIError as err:
        raise HoplabError(f"cannot create the netem probe: {explain(err)}") from None
    try:
        api.start(created["Id"])
        code = int(api.wait(created["Id"], timeout=60)["StatusCode"])
        said = api.logs(created["Id"]).decode(errors="replace").strip()
    except (docker.errors.APIError, OSError) as err:
        raise HoplabError(f"the netem probe failed: {err}") from None
    finally:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(created["Id"], force=True)
    return "" if code == 0 else (said or f"tc exited {code}")


def _node_of(state: LabState, node: str) -> NodeState:
    found = next((n for n in state.nodes if n.name == node), None)
    if found is None:
        raise HoplabError(f"lab {state.name!r} has no node {node!r}")
    return found


def apply(
    run: Run,
    state: LabState,
    items: Iterable[tuple[str, str, Impair | None]],
    netem: bool,
    workers: int = 16,
) -> None:
    """Put each (node, network, impairment) in place, replacing what was declared before;
    None clears the interface. One exec per node; raise if any command failed."""
    per_node: dict[str, list[dict[str, Any]]] = {}
    for node, network, imp in items:
        ns = _node_of(state, node)
        if network not in ns.addresses:
            raise HoplabError(f"{node} has no interface on {network}")
        cmds = commands(imp, netem) if imp is not None else []
        per_node.setdefault(node, []).append({"address": ns.addresses[network], "commands": cmds})

    def one(node: str) -> list[str]:
        ns = _node_of(state, node)
        cmd = ["python3", "-c", _SCRIPT, "apply", json.dumps(per_node[node])]
        code, out, err = run(ns.container, cmd)
        if code:
            return [f"{node}: {err.decode(errors='replace').strip()}"]
        return [
            f"{node}: {e}" for r in json.loads(out or b"{}").values() for e in r.get("errors", [])
        ] + [f"{node}: {r['error']}" for r in json.loads(out or b"{}").values() if "error" in r]

    with sigint_deferred():  # half a link impaired is worse than either state
        failed = parallel(one, sorted(per_node), "impairing links", no_progress, workers)
    errors = [e for per in failed for e in per]
    if errors:
        raise HoplabError("could not impair: " + "; ".join(errors))


def describe(seen: dict[str, Any]) -> str:
    """One interface's impairment as the kernel holds it, in the file's words."""
    parts = []
    opts, kind = seen.get("options", {}), seen.get("qdisc", "")
    if kind == "tbf":
        parts.append(f"rate {rate_words(int(opts.get('rate', 0)) * 8)} (tbf)")
    elif kind == "netem":
        parts.append("netem " + json.dumps(opts, sort_keys=True))
    losses = []  # one rule per chain (FORWARD, OUTPUT), the same probability in both
    for rule in seen.get("rules", []):
        words = rule.split()
        if "--probability" in words:
            loss = f"loss {float(words[words.index('--probability') + 1]) * 100:.3g}%"
            losses += [loss] if loss not in losses else []
    parts += [f"{loss} (iptables statistic)" for loss in losses]
    return ", ".join(parts)


_SHOW = (
    "ip -j -4 addr show; echo @@; tc -j qdisc show; echo @@; "
    "iptables -S FORWARD; iptables -S OUTPUT"
)


def read_back(out: str, addresses: dict[str, str]) -> dict[str, str]:
    """network -> impairment text, from the `_SHOW` output of one node (pure, host side)."""
    parts = out.split("@@")
    if len(parts) != 3:
        return {}
    links, qdiscs, rules = json.loads(parts[0] or "[]"), json.loads(parts[1] or "[]"), parts[2]
    by_addr = {a["local"]: ln["ifname"] for ln in links for a in ln.get("addr_info", [])}
    found = {}
    for network, addr in addresses.items():
        dev = by_addr.get(addr)
        if dev is None:
            continue
        root: dict[str, Any] = next(
            (q for q in qdiscs if q.get("root") and q.get("dev") == dev), {}
        )
        seen = {
            "qdisc": root.get("kind", ""),
            "options": root.get("options", {}),
            "rules": [r for r in rules.splitlines() if TAG in r and f"-o {dev} " in r],
        }
        text = describe(seen)
        if text:
            found[network] = text
    return found


def show(run: Run, state: LabState, workers: int = 16) -> dict[tuple[str, str], str]:
    """(node, network) -> what impairs that interface now, for every impaired interface.

    One plain-shell exec per node (no Python start-up), parsed here: status pays little for it."""
    nodes = [n for n in state.nodes if n.state == "running" and n.addresses]

    def one(ns: NodeState) -> dict[str, str]:
        try:  # a node that stopped meanwhile shows nothing: status must still tell the rest
            code, out, _ = run(ns.container, ["sh", "-c", _SHOW])
            return read_back(out.decode(errors="replace"), ns.addresses) if code == 0 else {}
        except (HoplabError, ValueError):
            return {}

    seen = parallel(one, nodes, "reading impairments", no_progress, workers)
    return {
        (ns.name, network): text
        for ns, per_net in zip(nodes, seen, strict=True)
        for network, text in per_net.items()
    }


def netem_missing_in(run: Run, container: str) -> str:
    """Why netem cannot run in this running node ('' when it can): tried on its lo, undone."""
    add = ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]
    code, _, err = run(container, add)
    if code == 0:
        run(container, ["tc", "qdisc", "del", "dev", "lo", "root"])
        return ""
    return err.decode(errors="replace").strip() or f"tc exited {code}"


def change(
    run: Run,
    state: LabState,
    network: str,
    imp: Impair | None,
    node: str | None = None,
    allow_unsupported: bool = False,
) -> list[str]:
    """Impair (or with None clear) a network of a running lab: every node's egress on it, or only
    `node`'s. Refuses delay/jitter without netem (InputError) unless allowed; returns warnings."""
    if network not in state.networks:
        raise InputError(
            f"lab {state.name!r} has no network {network!r}",
            key="NETWORK",
            hint=f"networks: {', '.join(state.networks)}",
        )
    on_it = [n for n in state.nodes if network in n.addresses and n.state == "running"]
    if node is not None:
        if not any(n.name == node for n in on_it):
            raise InputError(
                f"no running node {node!r} on network {network!r}",
                key="--node",
                hint=f"nodes on it: {', '.join(n.name for n in on_it) or 'none'}",
            )
        on_it = [n for n in on_it if n.name == node]
    if not on_it:
        raise HoplabError(f"no running node on network {network!r}", hint="hoplab up")
    warnings: list[str] = []
    netem = False
    if imp is not None:
        missing = netem_missing_in(run, on_it[0].container)
        netem = not missing
        lacking = unsupported(imp) if missing else []
        if lacking and not allow_unsupported:
            raise InputError(
                needs_netem_message(lacking, missing),
                key=f"--{lacking[0]}",
                hint="leave them out, or pass --allow-unsupported to apply the rest",
            )
        if lacking:
            warnings.append(f"{' and '.join(lacking)} dropped: this kernel has no netem")
            imp = Impair(loss=imp.loss, rate_bit=imp.rate_bit)
        if imp.empty:
            imp = None
    apply(run, state, [(n.name, network, imp) for n in on_it], netem)
    return warnings


class LinkImpairments:
    """EngineAPI's impairment methods for an engine that can run a command in a node (`run`):
    the Docker engine and the unit tests' fake both take them from here, so the fake runs this
    module's code, not a copy of it."""

    workers: int = 16

    def run(self, container: str, cmd: list[str]) -> tuple[int, bytes, bytes]:
        raise NotImplementedError

    def apply_impairments(
        self, state: LabState, items: Iterable[tuple[str, str, Impair | None]], netem: bool
    ) -> None:
        apply(self.run, state, items, netem, self.workers)

    def change_impairment(
        self,
        state: LabState,
        network: str,
        imp: Impair | None,
        node: str | None = None,
        allow_unsupported: bool = False,
    ) -> list[str]:
        return change(self.run, state, network, imp, node, allow_unsupported)

    def impairments(self, state: LabState) -> dict[tuple[str, str], str]:
        return show(self.run, state, self.workers)

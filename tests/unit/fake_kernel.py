"""What the fake engine's nodes answer when hoplab runs its own commands in them: a tiny kernel
per node, for unit tests only.

hoplab drives a node's kernel with a few fixed command shapes: the impairment script
(`python3 -c SCRIPT apply JSON`), the read-back (`sh -c "ip -j addr; tc -j qdisc; iptables -S"`),
the netem probe on lo, and the process scanner (`python3 -c SCAN kill|reap|reap-files RUN...`).
`NodeKernel` keeps what those commands change (root qdiscs, tagged iptables rules, processes) and
answers them in the format the real tools print, so the engine's real impairment code and the
runtime's real reaper run unchanged against it. Anything else is recorded and succeeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hoplab.model.impair import IFACE, TAG
from hoplab.runtime.lab import NOBODY

NO_NETEM = b"Error: Specified qdisc kind is unknown."
SCAN_MODES = ("kill", "reap", "reap-files")


@dataclass
class Process:
    pid: int
    uid: int
    run: str  # the HOPLAB_RUN mark, '' if none
    cmd: str


@dataclass
class NodeKernel:
    """One node's interfaces (address -> name), root qdiscs, iptables rules and processes."""

    ifaces: dict[str, str]
    netem: bool = True
    qdiscs: dict[str, dict] = field(default_factory=dict)  # dev -> {"kind", "options"}
    rules: list[str] = field(default_factory=list)  # as `iptables -S` prints them
    procs: dict[int, Process] = field(default_factory=dict)

    def answer(self, cmd: list[str]) -> tuple[int, bytes, bytes] | None:
        """The reply to one of hoplab's own command shapes; None for any other command."""
        if cmd[:2] == ["python3", "-c"] and len(cmd) >= 5 and cmd[3] == "apply":
            return self._apply(json.loads(cmd[4]))
        if cmd[:2] == ["python3", "-c"] and len(cmd) >= 4 and cmd[3] in SCAN_MODES:
            return self._scan(cmd[3], set(cmd[4:]))
        if cmd[:2] == ["sh", "-c"] and "tc -j qdisc show" in cmd[2]:
            return 0, self._show().encode(), b""
        if cmd[:6] == ["tc", "qdisc", "add", "dev", "lo", "root"] and "netem" in cmd:
            return (0, b"", b"") if self.netem else (2, b"", NO_NETEM)
        if cmd[:6] == ["tc", "qdisc", "del", "dev", "lo", "root"]:
            return 0, b"", b""
        return None

    # --- link impairments ----------------------------------------------------------------------

    def _apply(self, items: list[dict]) -> tuple[int, bytes, bytes]:
        out: dict[str, dict] = {}
        for item in items:
            addr = item["address"]
            dev = self.ifaces.get(addr)
            if dev is None:
                out[addr] = {"error": "no interface holds " + addr}
                continue
            self.rules = [r for r in self.rules if not (TAG in r and f"-o {dev} " in r)]
            self.qdiscs.pop(dev, None)
            errors = []
            for raw in item["commands"]:
                argv = [dev if a == IFACE else a for a in raw]
                said = self._one(argv)
                if said:
                    errors.append(" ".join(argv) + ": " + said)
            out[addr] = {"iface": dev, "errors": errors}
        return 0, json.dumps(out).encode(), b""

    def _one(self, argv: list[str]) -> str:
        """Run one tc or iptables command of model.impair.commands; '' or tc's error."""
        if argv[:3] == ["tc", "qdisc", "replace"] and argv[5] == "root":
            kind, args = argv[6], argv[7:]
            if kind == "netem" and not self.netem:
                return NO_NETEM.decode()
            options: dict[str, object] = {}
            if kind == "tbf":
                options["rate"] = int(args[args.index("rate") + 1].removesuffix("bit")) // 8
            else:
                options = {args[i]: args[i + 1] for i in range(0, len(args) - 1, 2)}
            self.qdiscs[argv[4]] = {"kind": kind, "options": options}
            return ""
        if argv[:2] == ["iptables", "-A"]:
            self.rules.append(" ".join(argv[1:]))
            return ""
        return f"the fake kernel does not know {argv[0]} {argv[1]}"

    def _show(self) -> str:
        links = [
            {"ifname": dev, "addr_info": [{"local": addr}]} for addr, dev in self.ifaces.items()
        ]
        qdiscs = [
            {"kind": q["kind"], "dev": dev, "root": True, "options": q["options"]}
            for dev, q in self.qdiscs.items()
        ]
        rules = ["-P FORWARD ACCEPT", "-P OUTPUT ACCEPT", *self.rules]
        return f"{json.dumps(links)}\n@@\n{json.dumps(qdiscs)}\n@@\n" + "\n".join(rules) + "\n"

    # --- processes -----------------------------------------------------------------------------

    def _scan(self, mode: str, runs: set[str]) -> tuple[int, bytes, bytes]:
        """What the runtime's scanner does: kill the processes marked with one of runs, and with
        reap every process of nobody; print each one killed as a JSON line."""
        hit = [
            p for p in self.procs.values() if p.run in runs or (mode != "kill" and p.uid == NOBODY)
        ]
        for p in hit:
            del self.procs[p.pid]
        lines = [json.dumps({"pid": p.pid, "uid": p.uid, "run": p.run, "cmd": p.cmd}) for p in hit]
        return 0, "".join(line + "\n" for line in lines).encode(), b""

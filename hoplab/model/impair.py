"""Link impairments as the topology file declares them: loss, delay, jitter and rate.

Pure: the values are parsed and checked here, and turned into the tc/iptables commands a node
runs, so the choice of mechanism (netem where the kernel has it, else iptables statistic for loss
and tbf for rate) is tested without Docker. Every impairment acts on what a node sends out of one
interface: on a network it applies to every node on it (both directions of every link), on one
attachment only to what that node sends onto the network (one direction).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hoplab.errors import InputError

KEYS = ("loss", "delay", "jitter", "rate")
TAG = "hoplab-link"  # comment on the iptables rules of declared impairments (not Lab.impair's)
IFACE = "@IFACE@"  # placeholder: interface names are known only inside the node
MAX_DELAY_MS = 10_000.0
MIN_RATE, MAX_RATE = 8_000, 10_000_000_000
_TIME = re.compile(r"^(\d+(?:\.\d+)?)\s*(us|ms|s)$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)$")
_LOSS = re.compile(r"^(\d+(?:\.\d+)?)\s*%$")
_TIME_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_RATE_UNIT = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000}


@dataclass(frozen=True)
class Impair:
    """One impairment; zero means "not set". loss is a fraction (0.05 for 5%)."""

    loss: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_bit: int = 0
    # where the file says it (so a refusal at `up` can still name file, line and key)
    key: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    @property
    def needs_netem(self) -> bool:
        """Delay and jitter exist only in netem; loss and rate have fallbacks."""
        return bool(self.delay_ms or self.jitter_ms)

    @property
    def empty(self) -> bool:
        return not (self.loss or self.delay_ms or self.jitter_ms or self.rate_bit)

    def describe(self) -> str:
        """The impairment in the file's own words, e.g. 'loss 5% rate 10mbit'."""
        parts = []
        if self.loss:
            parts.append(f"loss {self.loss * 100:g}%")
        if self.delay_ms:
            parts.append(f"delay {self.delay_ms:g}ms")
        if self.jitter_ms:
            parts.append(f"jitter {self.jitter_ms:g}ms")
        if self.rate_bit:
            parts.append(f"rate {rate_words(self.rate_bit)}")
        return " ".join(parts) or "none"

    def as_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "delay_ms": self.delay_ms,
            "jitter_ms": self.jitter_ms,
            "rate_bit": self.rate_bit,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Impair:
        return cls(
            loss=float(raw.get("loss", 0)),
            delay_ms=float(raw.get("delay_ms", 0)),
            jitter_ms=float(raw.get("jitter_ms", 0)),
            rate_bit=int(raw.get("rate_bit", 0)),
        )


def rate_words(bits: int) -> str:
    for unit in ("gbit", "mbit", "kbit"):
        if bits % _RATE_UNIT[unit] == 0:
            return f"{bits // _RATE_UNIT[unit]}{unit}"
    return f"{bits}bit"


def _fail(msg: str, source: str, line: int, key: str, hint: str) -> InputError:
    return InputError(msg, file=source, line=line, key=key, hint=hint)


def parse_value(name: str, value: Any, *, source: str = "", line: int = 0, key: str = "") -> float:
    """One setting from text: loss '5%' -> 0.05, delay/jitter '20ms' -> 20.0, rate '10mbit'."""
    key = key or name
    text = value.strip().lower() if isinstance(value, str) else None
    if name == "loss":
        m = _LOSS.match(text or "")
        hint = "write loss as a percentage above 0 and below 100, e.g. loss: 5%"
        if not m or not 0 < float(m.group(1)) < 100:
            raise _fail(f"invalid loss {value!r}", source, line, key, hint)
        return float(m.group(1)) / 100
    if name in ("delay", "jitter"):
        m = _TIME.match(text or "")
        ms = float(m.group(1)) * _TIME_UNIT[m.group(2)] if m else -1.0
        if not 0 < ms <= MAX_DELAY_MS:
            hint = f"write {name} as a time up to 10s with its unit, e.g. {name}: 20ms"
            raise _fail(f"invalid {name} {value!r}", source, line, key, hint)
        return ms
    if name == "rate":
        m = _RATE.match(text or "")
        bits = float(m.group(1)) * _RATE_UNIT[m.group(2)] if m else 0.0
        if not MIN_RATE <= bits <= MAX_RATE:
            hint = "write rate in bit, kbit, mbit or gbit from 8kbit to 10gbit, e.g. rate: 10mbit"
            raise _fail(f"invalid rate {value!r}", source, line, key, hint)
        return int(bits)
    raise _fail(f"unknown impairment {name!r}", source, line, key, f"use {', '.join(KEYS)}")


def parse(
    spec: Any, *, source: str = "", key: str = "impair", lines: Any = None, line: int = 0
) -> Impair:
    """An `impair:` mapping; `lines(k)` gives the line of key k for errors (lined YAML)."""

    def line_of(k: str) -> int:
        return (lines(k) if lines else 0) or line

    hint = "e.g. impair: {loss: 5%, rate: 10mbit} (keys: loss, delay, jitter, rate)"
    if not isinstance(spec, dict) or not spec:
        raise _fail("expected a mapping of impairments", source, line, key, hint)
    values: dict[str, float] = {}
    for k, v in spec.items():
        if k not in KEYS:
            raise _fail(f"unknown impairment {k!r}", source, line_of(str(k)), f"{key}.{k}", hint)
        values[k] = parse_value(k, v, source=source, line=line_of(k), key=f"{key}.{k}")
    if "jitter" in values and "delay" not in values:
        raise _fail(
            "jitter without delay",
            source,
            line_of("jitter"),
            f"{key}.jitter",
            "jitter varies a delay: add delay, e.g. {delay: 20ms, jitter: 5ms}",
        )
    return Impair(
        loss=values.get("loss", 0.0),
        delay_ms=values.get("delay", 0.0),
        jitter_ms=values.get("jitter", 0.0),
        rate_bit=int(values.get("rate", 0)),
        key=key,
        line=line,
    )


def tbf_burst(rate_bit: int) -> int:
    """Bytes tbf may send at once: 10 ms at the rate, and at least a few full frames."""
    return max(rate_bit // 8 // 100, 3 * 1514)


def commands(imp: Impair, netem: bool) -> list[list[str]]:
    """What a node runs to put imp on the interface IFACE, given whether the kernel has netem.

    Loss goes to netem when it exists, else to iptables statistic (random) on FORWARD and OUTPUT,
    so routed and own packets both count. Rate goes to netem's own rate with netem, else tbf.
    Delay and jitter without netem are refused before this point (see `unsupported`)."""
    out: list[list[str]] = []
    if netem and not imp.empty:
        args = []
        if imp.delay_ms:
            args += ["delay", f"{imp.delay_ms:g}ms"]
            if imp.jitter_ms:
                args += [f"{imp.jitter_ms:g}ms"]
        if imp.loss:
            args += ["loss", f"{imp.loss * 100:g}%"]
        if imp.rate_bit:
            args += ["rate", f"{imp.rate_bit}bit"]
        return [["tc", "qdisc", "replace", "dev", IFACE, "root", "netem", *args]]
    if imp.rate_bit:
        out.append(
            ["tc", "qdisc", "replace", "dev", IFACE, "root", "tbf", "rate", f"{imp.rate_bit}bit"]
            + ["burst", str(tbf_burst(imp.rate_bit)), "latency", "100ms"]
        )
    if imp.loss:
        for chain in ("FORWARD", "OUTPUT"):
            out.append(
                ["iptables", "-A", chain, "-o", IFACE, "-m", "statistic", "--mode", "random"]
                + ["--probability", f"{imp.loss:.6g}", "-m", "comment", "--comment", TAG]
                + ["-j", "DROP"]
            )
    return out


def mechanism(imp: Impair, netem: bool) -> str:
    """How the kernel carries imp out, for status and evidence."""
    if imp.empty:
        return "none"
    if netem:
        return "netem"
    parts = (["tbf"] if imp.rate_bit else []) + (["iptables statistic"] if imp.loss else [])
    return " + ".join(parts)


def unsupported(imp: Impair) -> list[str]:
    """The settings of imp that need netem (to name them when the kernel lacks it)."""
    return [k for k, v in (("delay", imp.delay_ms), ("jitter", imp.jitter_ms)) if v]


def needs_netem_message(lacking: list[str], why: str) -> str:
    """The refusal of settings the kernel cannot honour, naming them and the kernel's answer."""
    verb = "need" if len(lacking) > 1 else "needs"
    return f"{' and '.join(lacking)} {verb} netem, which this kernel lacks ({why})"

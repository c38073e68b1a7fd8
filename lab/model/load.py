"""Load a Compose file into the frozen model, rejecting anything hoplab would misread.

Every error names the file, the line and the key, and says how to mend it: a topology is the one
input learners write by hand, so a silent guess here becomes a confusing lab later.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from pathlib import Path
from typing import Any

import yaml
from hoplab.errors import InputError
from hoplab.model.plan import build_plan, forward_path
from hoplab.model.topology import Attachment, Network, Node, Role, RouteSpec, Topology

MAX_FILE_BYTES = 1 << 20
MAX_YAML_NODES = 50_000
MAX_DEPTH = 64  # a topology nests about six levels; deeper is a mistake or an attack
MAX_NODES = 500
MAX_NETWORKS = 250
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,19}$")
LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
NAME_HINT = "use 1-20 lowercase letters and digits, starting with a letter (e.g. 'lan1', 'srv')"
LAB_NAME_HINT = "use 1-30 lowercase letters, digits and '-', starting with a letter (e.g. 'alice')"
NODE_IMAGES = {"hoplab/node", "hoplab/node:latest"}
NODE_CAPS = {"NET_ADMIN", "NET_RAW"}
MTU_OPT = "com.docker.network.driver.mtu"

TOP_KEYS = {"version", "services", "networks", "x-hoplab"}
TOP_X_KEYS = {"name"}
SERVICE_KEYS = {"image", "networks", "x-hoplab", "cap_add", "sysctls"}
SERVICE_X_KEYS = {"role", "routes"}
NETWORK_KEYS = {"driver", "driver_opts", "ipam", "x-hoplab"}
NETWORK_X_KEYS = {"mtu"}
WHY_NOT = {
    "privileged": "nodes never run privileged; they get NET_ADMIN and NET_RAW only",
    "ports": "nothing is published on host ports: a lab cannot be reached from outside",
    "internal": "Docker drops routed traffic on internal networks; hoplab isolates labs itself",
    "network_mode": "every node joins the lab's own networks",
    "name": "docker-compose v1 rejects a top-level 'name'; use x-hoplab: {name: ...}",
}


class _BadKey(Exception):
    """Raised while constructing, so parse_yaml can add the file name."""

    def __init__(self, message: str, line: int, key: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.line, self.key, self.hint = message, line, key, hint


class _Lined:
    """Line numbers of a YAML mapping or sequence and of each of its keys or items."""

    line: int
    lines: dict[Any, int]


class LinedDict(dict, _Lined):
    pass


class LinedList(list, _Lined):
    pass


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document holds once every alias is expanded (memoised, so linear).

    PyYAML shares aliased objects, but any consumer that walks or serialises the result (Compose
    itself, a JSON dump) expands them: a billion-laughs file must be refused here. The culprit is
    named by its top-level key, where the file's author can find it.
    """
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise _BadKey(
                "malformed YAML: an alias refers to the value that contains it",
                node.start_mark.line + 1,
                "",
                "a recursive structure never ends; copy the values instead of aliasing them",
            )
        visiting.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        visiting.discard(key)
        sizes[key] = min(total, MAX_YAML_NODES + 1)
        return sizes[key]

    total = size(root)
    if total > MAX_YAML_NODES:
        line, key, running = root.start_mark.line + 1, "", 1
        if isinstance(root, yaml.MappingNode):
            for k, v in root.value:
                running += size(k) + size(v)
                if running > MAX_YAML_NODES:
                    line, key = (
                        k.start_mark.line + 1,
                        str(k.value) if isinstance(k, yaml.ScalarNode) else "?",
                    )
                    break
        raise _BadKey(
            f"document expands to more than {MAX_YAML_NODES} values (a YAML bomb?)",
            line,
            key,
            "write the values out, or remove the aliases that multiply them",
        )
    return total


class _KeyIndex:
    """The key path each line of the file sits under, so that even a YAML error names a key."""

    def __init__(self) -> None:
        self.starts: list[tuple[int, str]] = []

    def at(self, line: int) -> str:
        found = "(top level)"
        for start, path in self.starts:
            if start > line:
                break
            found = path
        return found


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _prescan(text: str, index: _KeyIndex) -> None:
    """Walk the parser's events once: record where each key starts, refuse deep nesting.

    Events come from a loop, not recursion, so a file of 10,000 '[' cannot exhaust the stack
    here; the composer (which recurses) only ever sees a document of bounded depth.
    """
    # frame: [path, is_mapping, expecting_key, key_or_index]
    stack: list[list[Any]] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            index.starts.append((event.start_mark.line + 1, "(top level)"))
        if isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue
        line = event.start_mark.line + 1
        frame = stack[-1] if stack else None
        if frame is not None and frame[1] and frame[2]:  # a key of a mapping
            frame[2] = False
            value = event.value if isinstance(event, yaml.ScalarEvent) else "?"
            frame[3] = value if value.strip() else repr(value)
            path = _join(frame[0], frame[3])
            index.starts.append((line, path))
        elif frame is not None and frame[1]:  # a value of a mapping
            frame[2] = True
            path = _join(frame[0], frame[3])
        elif frame is not None:  # an item of a sequence
            path = f"{frame[0]}[{frame[3]}]"
            frame[3] += 1
        else:
            path = ""
        if isinstance(event, yaml.CollectionStartEvent):
            is_map = isinstance(event, yaml.MappingStartEvent)
            stack.append([path, is_map, True, None if is_map else 0])
            if len(stack) > MAX_DEPTH:
                raise _BadKey(
                    f"malformed YAML: nesting is deeper than {MAX_DEPTH} levels",
                    line,
                    stack[1][0] or "(top level)",  # the key it hangs from, not 64 indexes
                    "a topology nests a few levels; simplify the file",
                )


def _loader_class() -> type[yaml.SafeLoader]:
    """A SafeLoader that keeps line numbers and refuses YAML bombs before building anything."""

    class Loader(yaml.SafeLoader):
        def construct_document(self, node: yaml.Node) -> Any:
            _expanded_size(node)  # raises _BadKey for a bomb or a recursive alias
            return super().construct_document(node)

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LinedDict:
        loader.flatten_mapping(node)
        out = LinedDict()
        out.line, out.lines = node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise _BadKey("mapping keys must be plain scalars", line, "", "quote the key")
            if key in out:
                raise _BadKey(
                    f"duplicate key {key!r}", line, "", "each key may appear once per mapping"
                )
            out[key] = loader.construct_object(value_node, deep=True)
            out.lines[key] = line
        return out

    def sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LinedList:
        out = LinedList(loader.construct_object(item, deep=True) for item in node.value)
        out.line = node.start_mark.line + 1
        out.lines = {i: item.start_mark.line + 1 for i, item in enumerate(node.value)}
        return out

    Loader.add_constructor("tag:yaml.org,2002:map", mapping)
    Loader.add_constructor("tag:yaml.org,2002:seq", sequence)
    return Loader


def _key_near(text: str, line: int) -> str:
    """The key path at line of a text YAML cannot read as it is: unreadable characters blanked."""
    index = _KeyIndex()
    clean = "".join(c if c.isprintable() or c in "\n\t" else " " for c in text)
    with contextlib.suppress(yaml.YAMLError, _BadKey):
        _prescan(clean, index)
    return index.at(line)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text into LinedDict/LinedList trees, turning every failure into InputError.

    Every error names a line and a key: the key is read from the events seen before the error,
    so even a stray quote says which key it broke.
    """
    index = _KeyIndex()
    try:
        _prescan(text, index)
        return yaml.load(text, Loader=_loader_class())  # noqa: S506 - SafeLoader subclass
    except _BadKey as err:
        raise InputError(
            err.message,
            file=source,
            line=err.line,
            key=err.key or index.at(err.line),
            hint=err.hint,
        ) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        what = ", ".join(p for p in (err.context, err.problem) if p) or str(err)
        raise InputError(
            f"malformed YAML: {what}",
            file=source,
            line=line,
            key=index.at(line),
            hint="check indentation and quoting near this line",
        ) from None
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        raise InputError(
            f"malformed YAML: unprintable character {err.character:#04x}",
            file=source,
            line=line,
            key=_key_near(text, line),
            hint="a topology is plain text; remove control characters",
        ) from None
    except (yaml.YAMLError, RecursionError) as err:
        msg = str(err) if isinstance(err, yaml.YAMLError) else "nesting is too deep"
        line = index.starts[-1][0] if index.starts else 1
        raise InputError(
            f"malformed YAML: {msg}",
            file=source,
            line=line,
            key=index.at(line),
            hint="simplify the file",
        ) from None


@dataclass
class _Ctx:
    """Where we are in the file, so every error can say file, line and key."""

    source: str

    def fail(self, msg: str, line: int, key: str, hint: str = "") -> InputError:
        return InputError(msg, file=self.source, line=line, key=key, hint=hint)


def _line(parent: Any, key: Any) -> int:
    if isinstance(parent, _Lined):
        return parent.lines.get(key, parent.line)
    return 0


def _kind(value: Any) -> str:
    """What a YAML value is, in the file's words rather than Python's."""
    if value is None:
        return "nothing"
    for kind, word in ((bool, "true/false"), (dict, "a mapping"), (list, "a list"), (str, "text")):
        if isinstance(value, kind):
            return word
    return "a number" if isinstance(value, int | float) else type(value).__name__


def _expect(ctx: _Ctx, value: Any, kind: type | tuple, line: int, key: str, what: str) -> None:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ctx.fail(f"expected {what}, got {_kind(value)}", line, key, f"write {key} as {what}")


def _opt(ctx: _Ctx, spec: dict, name: str, kind: type, key: str, what: str) -> Any:
    """An optional field: absent or empty gives kind(); anything else must be of that kind.

    `or {}` would let `x-hoplab: 0` or `cap_add: ""` slip through as if they were absent.
    """
    value = spec.get(name)
    if value is None:
        return kind()
    _expect(ctx, value, kind, _line(spec, name), key, what)
    return value


def _check_keys(ctx: _Ctx, mapping: dict, allowed: set[str], key: str) -> None:
    for k in mapping:
        if k in allowed or (key == "" and isinstance(k, str) and k.startswith("x-")):
            continue
        part = str(k) if str(k).strip() else repr(k)  # an empty key still gets a name
        path = f"{key}.{part}" if key else part
        why = WHY_NOT.get(str(k), "")
        hint = why or f"supported keys here: {', '.join(sorted(allowed))}"
        raise ctx.fail(f"key {k!r} is not supported by hoplab", _line(mapping, k), path, hint)


def _name(ctx: _Ctx, value: Any, line: int, key: str, what: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ctx.fail(f"invalid {what} name {value!r}", line, key, NAME_HINT)
    return value


def check_lab_name(value: Any, *, source: str = "", line: int = 0, key: str = "name") -> str:
    """Lab names become Docker object names and labels, so they are kept short and plain."""
    if not isinstance(value, str) or not LAB_NAME_RE.match(value):
        raise InputError(
            f"invalid lab name {value!r}", file=source, line=line, key=key, hint=LAB_NAME_HINT
        )
    return value


def _subnet(ctx: _Ctx, value: Any, line: int, key: str) -> IPv4Network:
    hint = "write an IPv4 network such as 10.77.1.0/24, private and with host bits zero"
    try:
        net = IPv4Network(str(value), strict=True)
    except (AddressValueError, NetmaskValueError, ValueError) as err:
        raise ctx.fail(f"invalid subnet {value!r}: {err}", line, key, hint) from None
    if not net.is_private or net.is_loopback or net.is_link_local or net.is_multicast:
        raise ctx.fail(f"subnet {net} is not a private range", line, key, hint)
    if net.prefixlen > 29 or net.prefixlen < 8:
        raise ctx.fail(
            f"subnet {net} has prefix /{net.prefixlen}; hoplab needs /8 to /29",
            line,
            key,
            "a /29 holds 5 nodes plus the reserved gateway; a /24 is a good default",
        )
    return net


def _address(ctx: _Ctx, value: Any, line: int, key: str) -> IPv4Address:
    try:
        return IPv4Address(str(value))
    except (AddressValueError, ValueError):
        raise ctx.fail(
            f"invalid IPv4 address {value!r}", line, key, "write it like 10.77.1.10"
        ) from None


def _network(ctx: _Ctx, name: str, spec: Any, line: int) -> Network:
    key = f"networks.{name}"
    if spec is None:
        spec = {}
    _expect(ctx, spec, dict, line, key, "a mapping")
    _check_keys(ctx, spec, NETWORK_KEYS, key)
    driver = spec.get("driver", "bridge")
    if driver != "bridge":
        raise ctx.fail(
            f"driver {driver!r} is not supported",
            _line(spec, "driver"),
            f"{key}.driver",
            "hoplab networks are bridges; remove the driver key",
        )
    mtu: int | None = None
    opts = _opt(ctx, spec, "driver_opts", dict, f"{key}.driver_opts", "a mapping")
    for opt, val in opts.items():
        if opt != MTU_OPT:
            raise ctx.fail(
                f"driver option {opt!r} is not supported",
                _line(opts, opt),
                f"{key}.driver_opts.{opt}",
                f"only {MTU_OPT} is supported",
            )
        mtu = _mtu(ctx, val, _line(opts, opt), f"{key}.driver_opts.{opt}")
    xh = _opt(ctx, spec, "x-hoplab", dict, f"{key}.x-hoplab", "a mapping")
    _check_keys(ctx, xh, NETWORK_X_KEYS, f"{key}.x-hoplab")
    if "mtu" in xh:
        mtu = _mtu(ctx, xh["mtu"], _line(xh, "mtu"), f"{key}.x-hoplab.mtu")

    ipam = spec.get("ipam")
    hint = "add  ipam: {config: [{subnet: 10.77.1.0/24}]}"
    if ipam is None:
        raise ctx.fail("network has no subnet", line, key, hint)
    _expect(ctx, ipam, dict, _line(spec, "ipam"), f"{key}.ipam", "a mapping")
    _check_keys(ctx, ipam, {"config", "driver"}, f"{key}.ipam")
    if ipam.get("driver", "default") != "default":
        raise ctx.fail(
            f"IPAM driver {ipam['driver']!r} is not supported",
            _line(ipam, "driver"),
            f"{key}.ipam.driver",
            "hoplab uses Docker's default IPAM; remove the driver key",
        )
    config = ipam.get("config")
    if not isinstance(config, list) or len(config) != 1 or not isinstance(config[0], dict):
        raise ctx.fail(
            "ipam.config must be a list with exactly one {subnet: ...}",
            _line(ipam, "config"),
            f"{key}.ipam.config",
            hint,
        )
    entry = config[0]
    _check_keys(ctx, entry, {"subnet", "gateway"}, f"{key}.ipam.config[0]")
    if "subnet" not in entry:
        raise ctx.fail("missing subnet", entry.line, f"{key}.ipam.config[0]", hint)
    subnet = _subnet(ctx, entry["subnet"], _line(entry, "subnet"), f"{key}.ipam.config[0].subnet")
    gateway = None
    if "gateway" in entry:
        gkey = f"{key}.ipam.config[0].gateway"
        gateway = _address(ctx, entry["gateway"], _line(entry, "gateway"), gkey)
        if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
            raise ctx.fail(
                f"gateway {gateway} is not a host address of {subnet}",
                _line(entry, "gateway"),
                gkey,
                "Docker reserves it: pick a free host address no node uses",
            )
    return Network(name=name, subnet=subnet, mtu=mtu, line=line, gateway=gateway)


def _mtu(ctx: _Ctx, value: Any, line: int, key: str) -> int:
    try:
        mtu = int(str(value))
    except ValueError:
        mtu = 0
    if not 576 <= mtu <= 9000:
        raise ctx.fail(f"invalid MTU {value!r}", line, key, "use a number from 576 to 9000")
    return mtu


def _attachments(ctx: _Ctx, spec: Any, line: int, key: str) -> tuple[Attachment, ...]:
    if spec is None or spec == [] or spec == {}:
        raise ctx.fail("node has no network", line, key, "attach it: networks: [lan1]")
    if isinstance(spec, list):
        items = [(n, None, _line(spec, i)) for i, n in enumerate(spec)]
    else:
        _expect(ctx, spec, dict, line, key, "a list or mapping of networks")
        items = [(n, v, _line(spec, n)) for n, v in spec.items()]
    seen: set[str] = set()
    out = []
    for net, val, ln in items:
        _name(ctx, net, ln, key, "network")
        if net in seen:
            raise ctx.fail(f"network {net!r} listed twice", ln, f"{key}.{net}")
        seen.add(net)
        address = None
        if val is not None:
            _expect(ctx, val, dict, ln, f"{key}.{net}", "a mapping like {ipv4_address: ...}")
            _check_keys(ctx, val, {"ipv4_address"}, f"{key}.{net}")
            if "ipv4_address" in val:
                address = _address(
                    ctx,
                    val["ipv4_address"],
                    _line(val, "ipv4_address"),
                    f"{key}.{net}.ipv4_address",
                )
        out.append(Attachment(network=net, address=address))
    return tuple(out)


def _routes(ctx: _Ctx, spec: Any, line: int, key: str) -> tuple[RouteSpec, ...]:
    if spec is None:
        return ()
    _expect(ctx, spec, list, line, key, "a list of {to: NET|CIDR, via: ROUTER|IP}")
    out = []
    for i, item in enumerate(spec):
        ln, k = _line(spec, i), f"{key}[{i}]"
        _expect(ctx, item, dict, ln, k, "a mapping {to: NET|CIDR, via: ROUTER|IP}")
        _check_keys(ctx, item, {"to", "via"}, k)
        for field in ("to", "via"):
            if not isinstance(item.get(field), str):
                raise ctx.fail(
                    f"route needs '{field}' as a string",
                    ln,
                    f"{k}.{field}",
                    "e.g. {to: lan3, via: r1} or {to: 10.77.3.0/24, via: 10.77.1.1}",
                )
        out.append(RouteSpec(to=item["to"], via=item["via"], line=ln))
    return tuple(out)


def _service(ctx: _Ctx, name: str, spec: Any, line: int) -> Node:
    key = f"services.{name}"
    _expect(ctx, spec, dict, line, key, "a mapping")
    _check_keys(ctx, spec, SERVICE_KEYS, key)
    if "image" in spec and (not isinstance(spec["image"], str) or spec["image"] not in NODE_IMAGES):
        raise ctx.fail(
            f"image {spec['image']!r} is not supported",
            _line(spec, "image"),
            f"{key}.image",
            "every node runs hoplab/node; write image: hoplab/node",
        )
    caps = _opt(ctx, spec, "cap_add", list, f"{key}.cap_add", "a list")
    for i, cap in enumerate(caps):
        if not isinstance(cap, str) or cap not in NODE_CAPS:
            raise ctx.fail(
                f"capability {cap!r} is not allowed",
                _line(caps, i),
                f"{key}.cap_add",
                "nodes get NET_ADMIN and NET_RAW only",
            )
    sysctls = _opt(ctx, spec, "sysctls", dict, f"{key}.sysctls", "a mapping")
    for s in sysctls:
        if s != "net.ipv4.ip_forward":
            raise ctx.fail(
                f"sysctl {s!r} is not supported",
                _line(sysctls, s),
                f"{key}.sysctls.{s}",
                "only net.ipv4.ip_forward is accepted; hoplab sets it from the role",
            )
    xh = _opt(ctx, spec, "x-hoplab", dict, f"{key}.x-hoplab", "a mapping")
    _check_keys(ctx, xh, SERVICE_X_KEYS, f"{key}.x-hoplab")
    role_value = xh.get("role", "host")
    if role_value not in [r.value for r in Role]:
        raise ctx.fail(
            f"unknown role {role_value!r}",
            _line(xh, "role"),
            f"{key}.x-hoplab.role",
            "role is 'host' (default) or 'router'",
        )
    role = Role(role_value)
    if "net.ipv4.ip_forward" in sysctls:
        forward = str(sysctls["net.ipv4.ip_forward"])
        if forward != ("1" if role is Role.ROUTER else "0"):
            raise ctx.fail(
                f"net.ipv4.ip_forward {forward!r} does not match role {role.value!r}",
                _line(sysctls, "net.ipv4.ip_forward"),
                f"{key}.sysctls.net.ipv4.ip_forward",
                "routers forward (1) and hosts do not (0); set x-hoplab: {role: router} to forward",
            )
    attachments = _attachments(
        ctx, spec.get("networks"), _line(spec, "networks"), f"{key}.networks"
    )
    routes = _routes(ctx, xh.get("routes"), _line(xh, "routes"), f"{key}.x-hoplab.routes")
    return Node(name=name, role=role, attachments=attachments, routes=routes, line=line)


def parse(text: str, source: str = "<string>") -> Topology:
    """Parse and validate topology text; raise InputError on the first problem found."""
    ctx = _Ctx(source)
    doc = parse_yaml(text, source)
    _expect(ctx, doc, dict, 1, "(top level)", "a mapping with 'services' and 'networks'")
    _check_keys(ctx, doc, TOP_KEYS, "")
    xh = _opt(ctx, doc, "x-hoplab", dict, "x-hoplab", "a mapping")
    _check_keys(ctx, xh, TOP_X_KEYS, "x-hoplab")
    name = check_lab_name(
        xh.get("name", "hoplab"), source=source, line=_line(xh, "name"), key="x-hoplab.name"
    )

    nets_spec = _opt(ctx, doc, "networks", dict, "networks", "a mapping")
    if len(nets_spec) > MAX_NETWORKS:
        raise ctx.fail(
            f"{len(nets_spec)} networks; hoplab runs at most {MAX_NETWORKS} in one lab",
            _line(doc, "networks"),
            "networks",
            "split the topology into several labs",
        )
    networks = []
    for net_name, spec in nets_spec.items():
        ln = _line(nets_spec, net_name)
        _name(ctx, net_name, ln, f"networks.{net_name}", "network")
        networks.append(_network(ctx, net_name, spec, ln))

    services = _opt(ctx, doc, "services", dict, "services", "a mapping of nodes")
    if not services:
        raise ctx.fail(
            "no services",
            _line(doc, "services") or 1,
            "services",
            "declare at least one node under services:",
        )
    if len(services) > MAX_NODES:
        raise ctx.fail(
            f"{len(services)} nodes; hoplab runs at most {MAX_NODES} in one lab",
            _line(doc, "services"),
            "services",
            "split the topology into several labs",
        )
    nodes = []
    for node_name, spec in services.items():
        ln = _line(services, node_name)
        _name(ctx, node_name, ln, f"services.{node_name}", "node")
        nodes.append(_service(ctx, node_name, spec, ln))

    topo = Topology(name=name, source=source, networks=tuple(networks), nodes=tuple(nodes))
    _validate(ctx, topo, services)
    return topo


def load(path: str | Path) -> Topology:
    """Read and parse a topology file; size is capped before YAML ever sees it.

    The cap is on bytes read, not on what stat says: /dev/zero or a pipe report size 0.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise InputError(
            f"cannot read topology: {err.strerror}",
            file=str(p),
            line=1,
            key="(file)",
            hint="pass an existing Compose file with -f FILE",
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(
            f"file is larger than {MAX_FILE_BYTES // 1024} KiB",
            file=str(p),
            line=data.count(b"\n", 0, MAX_FILE_BYTES) + 1,
            key="(file)",
            hint="a topology is a few dozen lines; is this the right file?",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise InputError(
            f"file is not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start})",
            file=str(p),
            line=line,
            key=_key_near(data.decode("utf-8", errors="replace"), line),
            hint="save the file as UTF-8",
        ) from None
    return parse(text, str(p))


# --- cross-field checks -------------------------------------------------------------------------


def _validate(ctx: _Ctx, topo: Topology, services: dict) -> None:
    nets = {n.name: n for n in topo.networks}
    for a, b in _pairs(topo.networks):
        if a.subnet.overlaps(b.subnet):
            raise ctx.fail(
                f"subnet {b.subnet} overlaps {a.subnet} of network {a.name!r}",
                b.line,
                f"networks.{b.name}",
                "give every network its own subnet",
            )
    used: dict[tuple[str, IPv4Address], str] = {}
    counts = dict.fromkeys(nets, 0)
    for node in topo.nodes:
        key = f"services.{node.name}.networks"
        node_nets = services[node.name].get("networks")
        for i, att in enumerate(node.attachments):
            ln = _line(node_nets, att.network if isinstance(node_nets, dict) else i)
            if att.network not in nets:
                raise ctx.fail(
                    f"unknown network {att.network!r}",
                    ln,
                    f"{key}.{att.network}",
                    f"declare it under networks:, or use one of: {', '.join(nets) or 'none'}",
                )
            counts[att.network] += 1
            if att.address is None:
                continue
            subnet = nets[att.network].subnet
            akey = f"{key}.{att.network}.ipv4_address"
            if att.address not in subnet:
                raise ctx.fail(
                    f"address {att.address} is outside {subnet}",
                    ln,
                    akey,
                    f"pick an address inside {subnet}",
                )
            if att.address in (subnet.network_address, subnet.broadcast_address):
                raise ctx.fail(
                    f"address {att.address} is the network or broadcast address of {subnet}",
                    ln,
                    akey,
                    "pick a host address",
                )
            if att.address == nets[att.network].gateway:
                raise ctx.fail(
                    f"address {att.address} is the network's reserved gateway",
                    ln,
                    akey,
                    "pick another address, or another gateway in ipam.config",
                )
            other = used.get((att.network, att.address))
            if other:
                raise ctx.fail(
                    f"address {att.address} is already used by {other!r}",
                    ln,
                    akey,
                    "every address on a network must be unique",
                )
            used[(att.network, att.address)] = node.name
        if node.role is Role.ROUTER and len(node.attachments) < 2:
            raise ctx.fail(
                "a router needs at least two networks",
                node.line,
                f"services.{node.name}",
                "attach it to two networks, or make it a host",
            )
    for net in topo.networks:
        if counts[net.name] + 1 > net.subnet.num_addresses - 2:
            raise ctx.fail(
                f"subnet {net.subnet} is too small for {counts[net.name]} nodes and a gateway",
                net.line,
                f"networks.{net.name}",
                "use a larger subnet",
            )
    _check_routes(ctx, topo, nets)
    _check_reachable(ctx, topo)
    _check_route_loops(ctx, topo)


def _pairs(items: tuple) -> list[tuple]:
    return [(a, b) for i, a in enumerate(items) for b in items[i + 1 :]]


def _check_routes(ctx: _Ctx, topo: Topology, nets: dict[str, Network]) -> None:
    for node in topo.nodes:
        key = f"services.{node.name}.x-hoplab.routes"
        for route in node.routes:
            if route.to not in nets:
                try:
                    IPv4Network(route.to, strict=True)
                except ValueError:
                    raise ctx.fail(
                        f"route target {route.to!r} is neither a network name nor a CIDR",
                        route.line,
                        f"{key}.to",
                        f"use one of: {', '.join(nets)}",
                    ) from None
            mine = set(node.networks)
            if route.to in mine:
                raise ctx.fail(
                    f"route to {route.to!r}: {node.name!r} is attached to it",
                    route.line,
                    f"{key}.to",
                    "a node reaches its own networks directly; remove this route",
                )
            if route.via in {n.name for n in topo.nodes}:
                via = topo.node(route.via)
                if via.role is not Role.ROUTER or not mine & set(via.networks):
                    raise ctx.fail(
                        f"route via {route.via!r}: not a router on a network of {node.name!r}",
                        route.line,
                        f"{key}.via",
                        "name a router that shares a network",
                    )
                continue
            try:
                addr = IPv4Address(route.via)
            except ValueError:
                raise ctx.fail(
                    f"route via {route.via!r} is neither a node nor an IPv4 address",
                    route.line,
                    f"{key}.via",
                    "name a router, e.g. via: r1",
                ) from None
            if not any(addr in nets[n].subnet for n in mine):
                raise ctx.fail(
                    f"route via {addr} is not on any network of {node.name!r}",
                    route.line,
                    f"{key}.via",
                    "the next hop must be directly attached",
                )


def _check_reachable(ctx: _Ctx, topo: Topology) -> None:
    """Every node must reach every other: share a network, or be joined through routers."""
    parent = {n.name: n.name for n in topo.networks}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for router in topo.routers:
        first = router.networks[0]
        for other in router.networks[1:]:
            parent[find(other)] = find(first)
    comps = {n.name: {find(net) for net in n.networks} for n in topo.nodes}
    for a, b in _pairs(topo.nodes):
        if not comps[a.name] & comps[b.name]:
            lonely = b if len(b.attachments) <= len(a.attachments) else a
            other = a if lonely is b else b
            raise ctx.fail(
                f"{lonely.role} {lonely.name!r} cannot reach {other.name!r}: "
                "no chain of routers joins their networks",
                lonely.line,
                f"services.{lonely.name}",
                "attach a router to both parts of the topology",
            )


def _check_route_loops(ctx: _Ctx, topo: Topology) -> None:
    """Follow every explicit route through the planned tables: it must not come back around.

    A ring of routers is fine (shortest paths never loop), but explicit routes can send a
    network back and forth between two routers until the TTL runs out.
    """
    if not any(node.routes for node in topo.nodes):
        return
    plan = build_plan(topo)
    subnets = {n.name: n.subnet for n in plan.networks}
    for node in topo.nodes:
        for i, route in enumerate(node.routes):
            dest = subnets.get(route.to) or IPv4Network(route.to)
            hops, loops = forward_path(plan, node.name, dest)
            if loops:
                raise ctx.fail(
                    f"route to {route.to} loops: {' -> '.join(hops)}",
                    route.line,
                    f"services.{node.name}.x-hoplab.routes[{i}]",
                    "each next hop must be closer to the target; fix the routes of "
                    + ", ".join(sorted(set(hops))),
                )

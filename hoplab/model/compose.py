"""The Compose schema hoplab accepts: each key checked on its own, built into the model.

Only what hoplab can honour is accepted (bridges with one subnet, hoplab/node, NET_ADMIN and
NET_RAW); anything else is refused with the key's path and line and how to mend it, never
silently ignored. Checks across fields live in validate.py; YAML itself in lined_yaml.py.
"""

from __future__ import annotations

import re
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from typing import Any

from hoplab.errors import InputError
from hoplab.model import impair as impair_model
from hoplab.model import ipv6
from hoplab.model.images import APP_KEYS, check_depends, is_app, read_app
from hoplab.model.kinds import kind_of
from hoplab.model.lined_yaml import line_of
from hoplab.model.source_file import SourceFile
from hoplab.model.topology import Attachment, Network, Node, Role, RouteSpec, Topology

MAX_NODES = 500
MAX_NETWORKS = 250
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,19}$")
LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
NAME_HINT = "use 1-20 lowercase letters and digits, starting with a letter (e.g. 'lan1', 'srv')"
LAB_NAME_HINT = "use 1-30 lowercase letters, digits and '-', starting with a letter (e.g. 'alice')"
NODE_IMAGES = {"hoplab/node", "hoplab/node:latest"}
NODE_CAPS = {"NET_ADMIN", "NET_RAW"}
MTU_OPT = "com.docker.network.driver.mtu"

TOP_KEYS = {"version", "name", "services", "networks", "x-hoplab"}
TOP_X_KEYS = {"name"}
SERVICE_KEYS = {"image", "networks", "x-hoplab", "cap_add", "sysctls"} | APP_KEYS
SERVICE_X_KEYS = {"role", "routes"}
NETWORK_KEYS = {"driver", "driver_opts", "ipam", "x-hoplab", "enable_ipv6"}
NETWORK_X_KEYS = {"mtu", "impair"}
ATTACHMENT_X_KEYS = {"impair"}
WHY_NOT = {
    "privileged": "nodes never run privileged; they get NET_ADMIN and NET_RAW only",
    "ports": "nothing is published on host ports: a lab cannot be reached from outside",
    "internal": "Docker drops routed traffic on internal networks; hoplab isolates labs itself",
    "network_mode": "every node joins the lab's own networks",
    "devices": "no host device reaches a node, whatever the image",
    "pid": "host namespaces are never shared with a node",
    "ipc": "host namespaces are never shared with a node",
    "userns_mode": "host namespaces are never shared with a node",
}


def _kind(value: Any) -> str:
    """What a YAML value is, in the file's words rather than Python's."""
    if value is None:
        return "nothing"
    for kind, word in ((bool, "true/false"), (dict, "a mapping"), (list, "a list"), (str, "text")):
        if isinstance(value, kind):
            return word
    return "a number" if isinstance(value, int | float) else type(value).__name__


def _expect(
    ctx: SourceFile, value: Any, kind: type | tuple[Any, ...], line: int, key: str, what: str
) -> None:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ctx.fail(f"expected {what}, got {_kind(value)}", line, key, f"write {key} as {what}")


def _opt(ctx: SourceFile, spec: dict[Any, Any], name: str, kind: type, key: str, what: str) -> Any:
    """An optional field: absent or empty gives kind(); anything else must be of that kind.

    `or {}` would let `x-hoplab: 0` or `cap_add: ""` slip through as if they were absent.
    """
    value = spec.get(name)
    if value is None:
        return kind()
    _expect(ctx, value, kind, line_of(spec, name), key, what)
    return value


def _check_keys(ctx: SourceFile, mapping: dict[Any, Any], allowed: set[str], key: str) -> None:
    for k in mapping:
        if k in allowed or (key == "" and isinstance(k, str) and k.startswith("x-")):
            continue
        part = str(k) if str(k).strip() else repr(k)  # an empty key still gets a name
        path = f"{key}.{part}" if key else part
        why = WHY_NOT.get(str(k), "")
        hint = why or f"supported keys here: {', '.join(sorted(allowed))}"
        raise ctx.fail(f"key {k!r} is not supported by hoplab", line_of(mapping, k), path, hint)


def _name(ctx: SourceFile, value: Any, line: int, key: str, what: str) -> str:
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


def _subnet(ctx: SourceFile, value: Any, line: int, key: str) -> IPv4Network:
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


def _address(ctx: SourceFile, value: Any, line: int, key: str) -> IPv4Address:
    try:
        return IPv4Address(str(value))
    except (AddressValueError, ValueError):
        raise ctx.fail(
            f"invalid IPv4 address {value!r}", line, key, "write it like 10.77.1.10"
        ) from None


def _network(ctx: SourceFile, name: str, spec: Any, line: int) -> Network:
    key = f"networks.{name}"
    if spec is None:
        spec = {}
    _expect(ctx, spec, dict, line, key, "a mapping")
    _check_keys(ctx, spec, NETWORK_KEYS, key)
    driver = spec.get("driver", "bridge")
    if driver != "bridge":
        raise ctx.fail(
            f"driver {driver!r} is not supported",
            line_of(spec, "driver"),
            f"{key}.driver",
            "hoplab networks are bridges; remove the driver key",
        )
    mtu: int | None = None
    opts = _opt(ctx, spec, "driver_opts", dict, f"{key}.driver_opts", "a mapping")
    for opt, val in opts.items():
        if opt != MTU_OPT:
            raise ctx.fail(
                f"driver option {opt!r} is not supported",
                line_of(opts, opt),
                f"{key}.driver_opts.{opt}",
                f"only {MTU_OPT} is supported",
            )
        mtu = _mtu(ctx, val, line_of(opts, opt), f"{key}.driver_opts.{opt}")
    xh = _opt(ctx, spec, "x-hoplab", dict, f"{key}.x-hoplab", "a mapping")
    _check_keys(ctx, xh, NETWORK_X_KEYS, f"{key}.x-hoplab")
    if "mtu" in xh:
        mtu = _mtu(ctx, xh["mtu"], line_of(xh, "mtu"), f"{key}.x-hoplab.mtu")
    impair = _impair(ctx, xh, f"{key}.x-hoplab")

    ipam = spec.get("ipam")
    hint = "add  ipam: {config: [{subnet: 10.77.1.0/24}]}"
    if ipam is None:
        raise ctx.fail("network has no subnet", line, key, hint)
    _expect(ctx, ipam, dict, line_of(spec, "ipam"), f"{key}.ipam", "a mapping")
    _check_keys(ctx, ipam, {"config", "driver"}, f"{key}.ipam")
    if ipam.get("driver", "default") != "default":
        raise ctx.fail(
            f"IPAM driver {ipam['driver']!r} is not supported",
            line_of(ipam, "driver"),
            f"{key}.ipam.driver",
            "hoplab uses Docker's default IPAM; remove the driver key",
        )
    config = ipam.get("config")
    subnet6 = None
    if isinstance(config, list):  # an IPv6 entry beside the IPv4 one (Compose's syntax)
        subnet6 = ipv6.network_v6(spec, config, source=ctx.source, key=key, line_of=line_of)
        if subnet6 is not None and len(config) == 1:
            raise ctx.fail(
                "an IPv6-only network is not supported yet",
                line_of(ipam, "config"),
                f"{key}.ipam.config",
                "add an IPv4 entry too:  - subnet: 10.77.1.0/24",
            )
        config = [e for e in config if not ipv6.is_v6(e)]
    if not isinstance(config, list) or len(config) != 1 or not isinstance(config[0], dict):
        raise ctx.fail(
            "ipam.config must be a list with exactly one {subnet: ...}",
            line_of(ipam, "config"),
            f"{key}.ipam.config",
            hint,
        )
    entry: Any = config[0]  # a LinedDict: it knows its line
    _check_keys(ctx, entry, {"subnet", "gateway"}, f"{key}.ipam.config[0]")
    if "subnet" not in entry:
        raise ctx.fail("missing subnet", entry.line, f"{key}.ipam.config[0]", hint)
    subnet = _subnet(ctx, entry["subnet"], line_of(entry, "subnet"), f"{key}.ipam.config[0].subnet")
    gateway = None
    if "gateway" in entry:
        gkey = f"{key}.ipam.config[0].gateway"
        gateway = _address(ctx, entry["gateway"], line_of(entry, "gateway"), gkey)
        if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
            raise ctx.fail(
                f"gateway {gateway} is not a host address of {subnet}",
                line_of(entry, "gateway"),
                gkey,
                "Docker reserves it: pick a free host address no node uses",
            )
    return Network(
        name=name,
        subnet=subnet,
        mtu=mtu,
        line=line,
        gateway=gateway,
        impair=impair,
        subnet6=subnet6,
    )


def _impair(ctx: SourceFile, xh: dict[Any, Any], key: str) -> impair_model.Impair | None:
    """x-hoplab.impair of a network or an attachment (None when absent)."""
    if xh.get("impair") is None:
        return None
    spec = xh["impair"]
    return impair_model.parse(
        spec,
        source=ctx.source,
        key=f"{key}.impair",
        lines=(lambda k: line_of(spec, k)) if isinstance(spec, dict) else None,
        line=line_of(xh, "impair"),
    )


def _mtu(ctx: SourceFile, value: Any, line: int, key: str) -> int:
    try:
        mtu = int(str(value))
    except ValueError:
        mtu = 0
    if not 576 <= mtu <= 9000:
        raise ctx.fail(f"invalid MTU {value!r}", line, key, "use a number from 576 to 9000")
    return mtu


def _attachments(ctx: SourceFile, spec: Any, line: int, key: str) -> tuple[Attachment, ...]:
    if spec is None or spec == [] or spec == {}:
        raise ctx.fail("node has no network", line, key, "attach it: networks: [lan1]")
    if isinstance(spec, list):
        items = [(n, None, line_of(spec, i)) for i, n in enumerate(spec)]
    else:
        _expect(ctx, spec, dict, line, key, "a list or mapping of networks")
        items = [(n, v, line_of(spec, n)) for n, v in spec.items()]
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
            _check_keys(ctx, val, {"ipv4_address", "ipv6_address", "x-hoplab"}, f"{key}.{net}")
            if "ipv4_address" in val:
                address = _address(
                    ctx,
                    val["ipv4_address"],
                    line_of(val, "ipv4_address"),
                    f"{key}.{net}.ipv4_address",
                )
        impair = None
        if val is not None and "x-hoplab" in val:
            xkey = f"{key}.{net}.x-hoplab"
            axh = _opt(ctx, val, "x-hoplab", dict, xkey, "a mapping")
            _check_keys(ctx, axh, ATTACHMENT_X_KEYS, xkey)
            impair = _impair(ctx, axh, xkey)
        address6 = None
        if val is not None and "ipv6_address" in val:
            ln6, k6 = line_of(val, "ipv6_address"), f"{key}.{net}.ipv6_address"
            address6 = ipv6.address(val["ipv6_address"], source=ctx.source, line=ln6, key=k6)
        out.append(Attachment(network=net, address=address, impair=impair, address6=address6))
    return tuple(out)


def _routes(ctx: SourceFile, spec: Any, line: int, key: str) -> tuple[RouteSpec, ...]:
    if spec is None:
        return ()
    _expect(ctx, spec, list, line, key, "a list of {to: NET|CIDR, via: ROUTER|IP}")
    out = []
    for i, item in enumerate(spec):
        ln, k = line_of(spec, i), f"{key}[{i}]"
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


def _service(ctx: SourceFile, name: str, spec: Any, line: int) -> Node:
    key = f"services.{name}"
    _expect(ctx, spec, dict, line, key, "a mapping")
    _check_keys(ctx, spec, SERVICE_KEYS, key)
    own = is_app(spec, NODE_IMAGES)
    caps = _opt(ctx, spec, "cap_add", list, f"{key}.cap_add", "a list")
    for i, cap in enumerate(caps):
        if not isinstance(cap, str) or cap not in NODE_CAPS:
            raise ctx.fail(
                f"capability {cap!r} is not allowed",
                line_of(caps, i),
                f"{key}.cap_add",
                "nodes get NET_ADMIN and NET_RAW only",
            )
    sysctls = _opt(ctx, spec, "sysctls", dict, f"{key}.sysctls", "a mapping")
    for s in sysctls:
        if s != "net.ipv4.ip_forward":
            raise ctx.fail(
                f"sysctl {s!r} is not supported",
                line_of(sysctls, s),
                f"{key}.sysctls.{s}",
                "only net.ipv4.ip_forward is accepted; hoplab sets it from the role",
            )
    xh = _opt(ctx, spec, "x-hoplab", dict, f"{key}.x-hoplab", "a mapping")
    _check_keys(ctx, xh, SERVICE_X_KEYS, f"{key}.x-hoplab")
    role_value = xh.get("role", "host")
    if role_value not in [r.value for r in Role]:
        raise ctx.fail(
            f"unknown role {role_value!r}",
            line_of(xh, "role"),
            f"{key}.x-hoplab.role",
            "role is 'host' (default) or 'router'",
        )
    role = Role(role_value)
    if "net.ipv4.ip_forward" in sysctls:
        forward = str(sysctls["net.ipv4.ip_forward"])
        if forward != kind_of(role, own).sysctls(ipv6=False)["net.ipv4.ip_forward"]:
            raise ctx.fail(
                f"net.ipv4.ip_forward {forward!r} does not match role {role.value!r}",
                line_of(sysctls, "net.ipv4.ip_forward"),
                f"{key}.sysctls.net.ipv4.ip_forward",
                "routers forward (1) and hosts do not (0); set x-hoplab: {role: router} to forward",
            )
    attachments = _attachments(
        ctx, spec.get("networks"), line_of(spec, "networks"), f"{key}.networks"
    )
    routes = _routes(ctx, xh.get("routes"), line_of(xh, "routes"), f"{key}.x-hoplab.routes")
    app = read_app(ctx, name, spec, caps) if own else None
    return Node(name=name, role=role, attachments=attachments, routes=routes, line=line, app=app)


def read(doc: Any, source: str) -> Topology:
    """The topology a parsed Compose document describes, each field checked on its own.

    Checks across fields (overlaps, reachability, routes) are validate.py's job."""
    ctx = SourceFile(source)
    _expect(ctx, doc, dict, 1, "(top level)", "a mapping with 'services' and 'networks'")
    _check_keys(ctx, doc, TOP_KEYS, "")
    xh = _opt(ctx, doc, "x-hoplab", dict, "x-hoplab", "a mapping")
    _check_keys(ctx, xh, TOP_X_KEYS, "x-hoplab")
    # x-hoplab.name wins; else Compose's own top-level name (the project name); else "hoplab".
    where, name_key = (xh, "x-hoplab.name") if "name" in xh else (doc, "name")
    name = check_lab_name(
        where.get("name", "hoplab"), source=source, line=line_of(where, "name"), key=name_key
    )

    nets_spec = _opt(ctx, doc, "networks", dict, "networks", "a mapping")
    if len(nets_spec) > MAX_NETWORKS:
        raise ctx.fail(
            f"{len(nets_spec)} networks; hoplab runs at most {MAX_NETWORKS} in one lab",
            line_of(doc, "networks"),
            "networks",
            "split the topology into several labs",
        )
    networks = []
    for net_name, spec in nets_spec.items():
        ln = line_of(nets_spec, net_name)
        _name(ctx, net_name, ln, f"networks.{net_name}", "network")
        networks.append(_network(ctx, net_name, spec, ln))

    services = _opt(ctx, doc, "services", dict, "services", "a mapping of nodes")
    if not services:
        raise ctx.fail(
            "no services",
            line_of(doc, "services") or 1,
            "services",
            "declare at least one node under services:",
        )
    if len(services) > MAX_NODES:
        raise ctx.fail(
            f"{len(services)} nodes; hoplab runs at most {MAX_NODES} in one lab",
            line_of(doc, "services"),
            "services",
            "split the topology into several labs",
        )
    nodes = []
    for node_name, spec in services.items():
        ln = line_of(services, node_name)
        _name(ctx, node_name, ln, f"services.{node_name}", "node")
        nodes.append(_service(ctx, node_name, spec, ln))

    check_depends(ctx, {n.name: n.app for n in nodes})
    topo = Topology(name=name, source=source, networks=tuple(networks), nodes=tuple(nodes))
    return topo

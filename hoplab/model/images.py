"""Nodes that run a program: the Compose keys of a service that says what its container runs.

A service with `image:` (other than hoplab/node), `build:`, or any key of a program (`command`,
`entrypoint`, `environment`, `working_dir`, `user`, `healthcheck`, `depends_on`, `volumes`)
becomes a pod: hoplab still runs a hoplab/node sandbox that holds the network namespace and applies
the plan, and the program's container (the given image, else hoplab/node itself) joins it once the
plan is in place. So a default node's `command:` runs as Compose users expect, in a container of its
own with exactly the user, environment and folder they gave, while the plan never depends on them.

This module reads those keys into the frozen `App` model, each checked on its own with file, line
and key; depends_on across services is checked by `check_depends`. Paths (build contexts, bind
mounts) are resolved here, against the topology's own folder, because a path that escapes it must
be refused before anything is created.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from hoplab.model.lined_yaml import line_of
from hoplab.model.source_file import SourceFile

T = TypeVar("T")


APP_KEYS = {
    "build",
    "command",
    "entrypoint",
    "environment",
    "working_dir",
    "user",
    "depends_on",
    "healthcheck",
    "volumes",
}
BUILD_KEYS = {"context", "dockerfile"}
HEALTH_KEYS = {"test", "interval", "timeout", "retries", "start_period", "disable"}
CONDITIONS = {"service_started", "service_healthy"}
DEPEND_KEYS = {"condition"}
# Compose's defaults are 30 s apart; hoplab waits on health to return from `up`, so it polls
# sooner. A file that names its own interval gets exactly that.
HEALTH_INTERVAL, HEALTH_TIMEOUT, HEALTH_RETRIES = 0.5, 5.0, 3
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|m|s|us))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class Build:
    context: str  # absolute, symlinks resolved, inside the topology's folder
    dockerfile: str = "Dockerfile"  # relative to the context
    line: int = 0


@dataclass(frozen=True)
class Health:
    test: tuple[str, ...]  # ("CMD", prog, args...) or ("CMD-SHELL", "a shell line")
    interval: float = HEALTH_INTERVAL
    timeout: float = HEALTH_TIMEOUT
    retries: int = HEALTH_RETRIES
    start_period: float = 0.0
    line: int = 0


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: str = "service_started"
    line: int = 0


@dataclass(frozen=True)
class Mount:
    """A read-only bind mount of a file or folder under the topology's own folder."""

    source: str  # absolute, symlinks resolved
    target: str
    line: int = 0


@dataclass(frozen=True)
class App:
    """The user's container of a pod: what Compose says to run, and where it was said."""

    image: str = ""  # a local image name; "" when only build is given
    build: Build | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    user: str = ""
    caps: tuple[str, ...] = ()  # NET_ADMIN/NET_RAW only when cap_add asks for them
    healthcheck: Health | None = None
    depends_on: tuple[Dependency, ...] = ()
    mounts: tuple[Mount, ...] = ()
    line: int = 0  # of the image (or build) key, for errors found while getting the image
    image_id: str = ""  # filled in once the image is found or built (part of the plan digest)


NODE_IMAGE = "hoplab/node"  # what a program runs on when its service names no image


def is_app(spec: dict[Any, Any], node_images: set[str]) -> bool:
    """A service runs a program of its own when it builds, names an image other than hoplab/node,
    or gives any key that says what to run (a default node's `command:`, say)."""
    image = spec.get("image")
    # Anything but a node image's name is an app, so read_app gives a bad value its clear error.
    return bool(APP_KEYS & set(spec)) or (
        image is not None and not (isinstance(image, str) and image in node_images)
    )


def read_app(ctx: SourceFile, name: str, spec: dict[Any, Any], caps: list[str]) -> App:
    """The App of one service; every key checked on its own."""
    key = f"services.{name}"
    image = spec.get("image")
    if image is not None and (not isinstance(image, str) or not image.strip()):
        raise ctx.fail(
            f"image {image!r} is not an image name",
            line_of(spec, "image"),
            f"{key}.image",
            "write image: NAME[:TAG] of an image the engine has, or a build: context",
        )
    build = (
        _build(ctx, spec["build"], line_of(spec, "build"), f"{key}.build")
        if ("build" in spec)
        else None
    )
    line = line_of(spec, "build" if build else "image")
    return App(
        image=image or ("" if build else NODE_IMAGE),
        build=build,
        command=_argv(ctx, spec, "command", key),
        entrypoint=_argv(ctx, spec, "entrypoint", key),
        environment=_environment(ctx, spec, key),
        working_dir=_text(ctx, spec, "working_dir", key),
        user=_text(ctx, spec, "user", key),
        caps=tuple(caps),
        healthcheck=_health(ctx, spec, key),
        depends_on=_depends(ctx, spec, key),
        mounts=_mounts(ctx, spec, key),
        line=line,
    )


def folder_of(ctx: SourceFile) -> Path:
    """The topology's own folder, symlinks resolved: every relative path must stay inside it."""
    source = ctx.source if ctx.source and not ctx.source.startswith("<") else "."
    return Path(os.path.realpath(Path(source).parent))


def _inside(ctx: SourceFile, raw: Any, line: int, key: str, what: str) -> Path:
    """raw as a relative path resolved under the topology's folder; escapes are refused."""
    if not isinstance(raw, str) or not raw.strip():
        raise ctx.fail(f"expected a {what} path, got {raw!r}", line, key, "e.g. ./server")
    folder = folder_of(ctx)
    if os.path.isabs(raw):
        raise ctx.fail(
            f"{what} {raw!r} is an absolute path",
            line,
            key,
            f"use a path relative to the topology's folder {folder}, such as ./server",
        )
    real = Path(os.path.realpath(folder / raw))
    if real != folder and folder not in real.parents:
        raise ctx.fail(
            f"{what} {raw!r} escapes the topology's folder (it resolves to {real})",
            line,
            key,
            f"keep it under {folder}; symlinks that lead out are refused too",
        )
    if not real.exists():
        raise ctx.fail(f"{what} {raw!r} does not exist ({real})", line, key, "check the path")
    return real


def _build(ctx: SourceFile, raw: Any, line: int, key: str) -> Build:
    if isinstance(raw, str):
        raw = {"context": raw}
    if not isinstance(raw, dict):
        raise ctx.fail(f"expected a path or mapping, got {raw!r}", line, key, "build: ./server")
    _known(ctx, raw, BUILD_KEYS, key)
    ctx_line = line_of(raw, "context") or line
    context = _inside(ctx, raw.get("context", "."), ctx_line, f"{key}.context", "build context")
    if not context.is_dir():
        raise ctx.fail(f"build context {context} is not a folder", ctx_line, f"{key}.context")
    dockerfile = raw.get("dockerfile", "Dockerfile")
    dline = line_of(raw, "dockerfile") or line
    if not isinstance(dockerfile, str) or os.path.isabs(dockerfile):
        raise ctx.fail(
            f"dockerfile {dockerfile!r} must be a path relative to the context",
            dline,
            f"{key}.dockerfile",
            "e.g. dockerfile: Dockerfile",
        )
    real = Path(os.path.realpath(context / dockerfile))
    if context not in real.parents or not real.is_file():
        raise ctx.fail(
            f"dockerfile {dockerfile!r} is not a file inside the build context {context}",
            dline,
            f"{key}.dockerfile",
            "put the Dockerfile in the context folder",
        )
    return Build(context=str(context), dockerfile=real.relative_to(context).as_posix(), line=line)


def _known(ctx: SourceFile, mapping: dict[Any, Any], allowed: set[str], key: str) -> None:
    for k in mapping:
        if k not in allowed:
            raise ctx.fail(
                f"key {k!r} is not supported by hoplab",
                line_of(mapping, k),
                f"{key}.{k}",
                f"supported keys here: {', '.join(sorted(allowed))}",
            )


def _argv(ctx: SourceFile, spec: dict[Any, Any], field: str, key: str) -> tuple[str, ...] | None:
    """Compose's two forms: a list of words, or one string that is split like a shell would."""
    value = spec.get(field)
    if value is None:
        return None
    line, k = line_of(spec, field), f"{key}.{field}"
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as err:
            raise ctx.fail(f"cannot split {value!r}: {err}", line, k, "use the list form") from None
    if isinstance(value, list) and all(isinstance(w, str | int | float) for w in value):
        return tuple(str(w) for w in value)
    raise ctx.fail(f"expected a list of words, got {value!r}", line, k, 'e.g. ["/server", "-v"]')


def _text(ctx: SourceFile, spec: dict[Any, Any], field: str, key: str) -> str:
    value = spec.get(field)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ctx.fail(f"expected text, got {value!r}", line_of(spec, field), f"{key}.{field}")
    return str(value)


def _environment(ctx: SourceFile, spec: dict[Any, Any], key: str) -> tuple[tuple[str, str], ...]:
    value = spec.get("environment")
    if value is None:
        return ()
    line, k = line_of(spec, "environment"), f"{key}.environment"
    pairs: list[tuple[str, str, int]] = []
    if isinstance(value, dict):
        for name, v in value.items():
            text = "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            pairs.append((str(name), text, line_of(value, name)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str) or "=" not in item:
                raise ctx.fail(
                    f"expected NAME=value, got {item!r}", line_of(value, i), k, "e.g. - MODE=test"
                )
            name, _, text = item.partition("=")
            pairs.append((name, text, line_of(value, i)))
    else:
        raise ctx.fail(f"expected a mapping or list, got {value!r}", line, k, "e.g. {MODE: test}")
    for name, _, ln in pairs:
        if not _ENV_NAME.match(name):
            raise ctx.fail(f"invalid variable name {name!r}", ln, k, "use letters, digits and _")
    return tuple((n, t) for n, t, _ in pairs)


def duration(ctx: SourceFile, value: Any, line: int, key: str) -> float:
    """Compose durations: "1m30s", "500ms", "2s"; a bare number is seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str) and _DURATION.match(value.strip()):
        return sum(float(n) * _UNIT[u] for n, u in _PART.findall(value))
    raise ctx.fail(f"invalid duration {value!r}", line, key, "write it like 2s, 500ms or 1m30s")


def _health(ctx: SourceFile, spec: dict[Any, Any], key: str) -> Health | None:
    value = spec.get("healthcheck")
    if value is None:
        return None
    line, k = line_of(spec, "healthcheck"), f"{key}.healthcheck"
    if not isinstance(value, dict):
        raise ctx.fail(f"expected a mapping, got {value!r}", line, k, "healthcheck: {test: [...]}")
    _known(ctx, value, HEALTH_KEYS, k)
    if value.get("disable") is True:
        return None
    test = value.get("test")
    tline = line_of(value, "test") or line
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if (
        not isinstance(test, list)
        or len(test) < 2
        or test[0] not in ("CMD", "CMD-SHELL")
        or not all(isinstance(w, str | int) for w in test)
    ):
        raise ctx.fail(
            f"healthcheck test {test!r} is not a CMD form",
            tline,
            f"{k}.test",
            'write test: ["CMD", "/probe", "arg"]: images without a shell need the CMD form',
        )
    retries = value.get("retries", HEALTH_RETRIES)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 1 <= retries <= 100:
        raise ctx.fail(
            f"invalid retries {retries!r}", line_of(value, "retries"), f"{k}.retries", "1 to 100"
        )

    def dur(field: str, default: float) -> float:
        if field not in value:
            return default
        return duration(ctx, value[field], line_of(value, field), f"{k}.{field}")

    return Health(
        test=tuple(str(w) for w in test),
        interval=dur("interval", HEALTH_INTERVAL),
        timeout=dur("timeout", HEALTH_TIMEOUT),
        retries=retries,
        start_period=dur("start_period", 0.0),
        line=line,
    )


def _depends(ctx: SourceFile, spec: dict[Any, Any], key: str) -> tuple[Dependency, ...]:
    value = spec.get("depends_on")
    if value is None:
        return ()
    line, k = line_of(spec, "depends_on"), f"{key}.depends_on"
    out: list[Dependency] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ctx.fail(f"expected a service name, got {item!r}", line_of(value, i), k)
            out.append(Dependency(item, "service_started", line_of(value, i)))
    elif isinstance(value, dict):
        for name, opts in value.items():
            ln = line_of(value, name)
            opts = opts if opts is not None else {}
            if not isinstance(opts, dict):
                raise ctx.fail(
                    f"expected a mapping, got {opts!r}", ln, f"{k}.{name}", "{condition: ...}"
                )
            _known(ctx, opts, DEPEND_KEYS, f"{k}.{name}")
            cond = opts.get("condition", "service_started")
            if cond not in CONDITIONS:
                raise ctx.fail(
                    f"unknown condition {cond!r}",
                    line_of(opts, "condition") or ln,
                    f"{k}.{name}.condition",
                    f"use one of: {', '.join(sorted(CONDITIONS))}",
                )
            out.append(Dependency(str(name), cond, ln))
    else:
        raise ctx.fail(f"expected a list or mapping, got {value!r}", line, k, "depends_on: [db]")
    return tuple(out)


def _mounts(ctx: SourceFile, spec: dict[Any, Any], key: str) -> tuple[Mount, ...]:
    value = spec.get("volumes")
    if value is None:
        return ()
    k = f"{key}.volumes"
    if not isinstance(value, list):
        raise ctx.fail(
            f"expected a list, got {value!r}", line_of(spec, "volumes"), k, '["./a.toml:/a:ro"]'
        )
    out = []
    for i, item in enumerate(value):
        ln, ik = line_of(value, i), f"{k}[{i}]"
        parts = item.split(":") if isinstance(item, str) else []
        if len(parts) != 3 or parts[2] != "ro" or not parts[0].startswith("."):
            raise ctx.fail(
                f"volume {item!r} is not a read-only bind mount of a relative path",
                ln,
                ik,
                "only files under the topology's folder, read-only: ./conf/a.toml:/etc/a.toml:ro"
                " (host paths and named volumes are refused)",
            )
        source = _inside(ctx, parts[0], ln, ik, "volume source")
        if not parts[1].startswith("/") or ".." in parts[1].split("/"):
            raise ctx.fail(f"mount target {parts[1]!r} is not a plain absolute path", ln, ik)
        out.append(Mount(str(source), parts[1], ln))
    return tuple(out)


def check_depends(ctx: SourceFile, apps: dict[str, App | None]) -> None:
    """depends_on names real services, asks for health only where there is a healthcheck, and has
    no cycle (a cycle would leave `up` waiting for ever). apps: every service, in file order."""
    for name, app in apps.items():
        for dep in app.depends_on if app else ():
            k = f"services.{name}.depends_on"
            if dep.service not in apps:
                raise ctx.fail(
                    f"unknown service {dep.service!r}",
                    dep.line,
                    k,
                    f"use one of: {', '.join(apps)}",
                )
            target = apps[dep.service]
            if dep.condition == "service_healthy" and (target is None or not target.healthcheck):
                raise ctx.fail(
                    f"{dep.service!r} has no healthcheck to wait for",
                    dep.line,
                    f"{k}.{dep.service}.condition",
                    f"give {dep.service} a healthcheck, or use condition: service_started",
                )
    path = _cycle(apps)
    if path:
        first = apps[path[0]]
        deps = first.depends_on if first else ()
        line = next(d.line for d in deps if d.service == path[1])
        raise ctx.fail(
            f"depends_on has a cycle: {' -> '.join(path)}",
            line,
            f"services.{path[0]}.depends_on",
            "remove one of these dependencies",
        )


def _cycle(apps: dict[str, App | None]) -> list[str]:
    """The first dependency cycle in file order, as a path that ends where it began; [] if none.

    Depth-first with three colours, so each service is visited once however the graph fans out."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished

    def visit(name: str, path: list[str]) -> list[str]:
        if state.get(name) == 1:
            return path[path.index(name) :] + [name]
        if state.get(name) == 2 or name not in apps:
            return []
        state[name] = 1
        app = apps[name]
        for dep in app.depends_on if app else ():
            found = visit(dep.service, [*path, name])
            if found:
                return found
        state[name] = 2
        return []

    for name in apps:
        found = visit(name, [])
        if found:
            return found
    return []


def start_order(topo_apps: dict[str, App]) -> list[str]:
    """App node names in an order where every dependency comes first (file order otherwise)."""
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done or name not in topo_apps:
            return
        for dep in topo_apps[name].depends_on:
            visit(dep.service)
        done.append(name)

    for name in topo_apps:
        visit(name)
    return done


def with_image_ids(topo: T, ids: dict[str, str]) -> T:
    """The topology with each own-image node's resolved image id, so the plan's digest (and so
    `up`'s decision to keep or rebuild a lab) changes when an image is rebuilt."""
    nodes = tuple(
        replace(n, app=replace(n.app, image_id=ids[n.name])) if n.app and n.name in ids else n
        for n in topo.nodes  # type: ignore[attr-defined]
    )
    return replace(topo, nodes=nodes)  # type: ignore[type-var]

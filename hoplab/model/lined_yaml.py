"""Safe YAML with line numbers: every mapping and list remembers where it came from.

A topology is text a learner writes by hand, so each error must name the line and the key
path it sits under, even when the YAML itself is broken. Bombs (aliases that expand to millions
of values) and deep nesting are refused before anything is built. Knows nothing of Compose.
"""

from __future__ import annotations

import contextlib
from typing import Any

import yaml

from hoplab.errors import InputError

MAX_YAML_NODES = 50_000
MAX_DEPTH = 64  # a topology nests about six levels; deeper is a mistake or an attack


class BadKey(Exception):
    """Raised while constructing, so parse_yaml can add the file name."""

    def __init__(self, message: str, line: int, key: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.line, self.key, self.hint = message, line, key, hint


class _Lined:
    """Line numbers of a YAML mapping or sequence and of each of its keys or items."""

    line: int
    lines: dict[Any, int]


class LinedDict(dict[Any, Any], _Lined):
    pass


class LinedList(list[Any], _Lined):
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
            raise BadKey(
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
        raise BadKey(
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


def _line(event: yaml.Event) -> int:
    """The 1-based line an event starts on (0 if the parser gave no position)."""
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 0


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
            index.starts.append((_line(event), "(top level)"))
        if isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue
        line = _line(event)
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
                raise BadKey(
                    f"malformed YAML: nesting is deeper than {MAX_DEPTH} levels",
                    line,
                    stack[1][0] or "(top level)",  # the key it hangs from, not 64 indexes
                    "a topology nests a few levels; simplify the file",
                )


def _loader_class() -> type[yaml.SafeLoader]:
    """A SafeLoader that keeps line numbers and refuses YAML bombs before building anything."""

    class Loader(yaml.SafeLoader):
        def construct_document(self, node: yaml.Node) -> Any:
            _expanded_size(node)  # raises BadKey for a bomb or a recursive alias
            return super().construct_document(node)

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LinedDict:
        loader.flatten_mapping(node)
        out = LinedDict()
        out.line, out.lines = node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise BadKey("mapping keys must be plain scalars", line, "", "quote the key")
            if key in out:
                raise BadKey(
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


def key_near(text: str, line: int) -> str:
    """The key path at line of a text YAML cannot read as it is: unreadable characters blanked."""
    index = _KeyIndex()
    clean = "".join(c if c.isprintable() or c in "\n\t" else " " for c in text)
    with contextlib.suppress(yaml.YAMLError, BadKey):
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
    except BadKey as err:
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
            key=key_near(text, line),
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


def line_of(parent: Any, key: Any) -> int:
    """The line of key (or item index) in a mapping or list that parse_yaml built; 0 if unknown."""
    if isinstance(parent, _Lined):
        return parent.lines.get(key, parent.line)
    return 0

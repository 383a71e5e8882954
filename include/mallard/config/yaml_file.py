"""Read one source file as YAML that means what it says, and that cannot hang or crash the loader.

PyYAML follows YAML 1.1, where `NO`, `off` and `y` are booleans, `010` is 8 and `1:30` is 90; a
source file is read with YAML 1.2's core schema instead (only true/false are booleans; integers
are decimal, 0o octal or 0x hex; timestamps stay, for dates). A key given twice is an error, not
a silent overwrite. The guards keep a bad file from taking the DAG processor down: a size cap, a
nesting cap (libyaml's composer recurses in C and segfaults near 100,000 levels), and a cap on
what aliases expand to ("billion laughs": 9 aliases of 9 aliases ... of 9 values).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from yaml import events, nodes

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 100
# Values after alias expansion. A file without aliases stays far below it (1 MiB holds ~0.5M values).
MAX_VALUES = 1_000_000

_BASE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _TAG + "merge"
_STR_TAG = _TAG + "str"
_FLOAT = r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution); ints before floats.
_CORE_RESOLVERS = [
    (_TAG + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (_TAG + "int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), "-+0123456789"),
    (_TAG + "float", re.compile(f"^(?:{_FLOAT})$"), "-+.0123456789"),
]
# A block level needs more indentation or a `- `/`? `/`: ` indicator on its line (at most two
# levels per column), a flow level a bracket: together a cheap upper bound of the nesting.
_BLOCK_PREFIX = re.compile(r"^[ \t]*(?:[-?:](?:[ \t]+|$))*", re.MULTILINE)
_OPENERS = (events.MappingStartEvent, events.SequenceStartEvent)
_CLOSERS = (events.MappingEndEvent, events.SequenceEndEvent)
UTF8_FIX = "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 old.yml > new.yml`) or retype the character"


class SourceYamlError(ValueError):
    """The file cannot be read as a source: where (a field path or `(file)`), what, and the fix."""

    def __init__(self, field: str, message: str, fix: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.fix = fix


def _core_int(loader: Any, node: nodes.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    try:
        return int(text, 0) if text.startswith(("0o", "0x")) else int(text, 10)
    except ValueError as error:  # an explicit `!!int` on text that is not a YAML 1.2 integer
        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not an integer", node.start_mark) from error


class SourceYamlLoader(_BASE_LOADER):  # type: ignore[misc, valid-type]
    """libyaml's safe loader with YAML 1.2 scalars, no repeated keys, and bounded aliases.

    `may_alias=False` (the text has no `&`, so no anchors) skips the alias walk.
    """

    def __init__(self, text: str, *, may_alias: bool = True) -> None:
        super().__init__(text)
        self._may_alias = may_alias
        self._root: nodes.Node | None = None

    def get_single_node(self) -> nodes.Node | None:
        node = super().get_single_node()
        self._root = node
        if node is not None and self._may_alias:
            check_node_graph(node)
        return node

    def construct_mapping(self, node: nodes.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, nodes.MappingNode):
            # Fast path (C-speed comprehensions): distinct text keys, all plain strings.
            texts = [key.value for key, _ in node.value]
            plain = all(key.tag == _STR_TAG for key, _ in node.value)
            if not plain or len(set(texts)) != len(texts):
                # The path is searched for only when there is an error to report (merges are common).
                _check_keys(node, self, lambda: _labels_to(self._root, node))
        return super().construct_mapping(node, deep=deep)


SourceYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag.removeprefix(_TAG) not in ("bool", "int", "float")]
    for first, resolvers in _BASE_LOADER.yaml_implicit_resolvers.items()
}
for _tag, _regexp, _first in _CORE_RESOLVERS:
    SourceYamlLoader.add_implicit_resolver(_tag, _regexp, list(_first))
SourceYamlLoader.add_constructor(_TAG + "int", _core_int)


def _field(labels: list[str | int]) -> str:
    text = ""
    for label in labels:
        text += f"[{label}]" if isinstance(label, int) else (f".{label}" if text else label)
    return text or "(file)"


def _check_keys(mapping: nodes.MappingNode, loader: Any, labels: Callable[[], list[str | int]]) -> None:
    first_line: dict[Any, int] = {}
    for key, _ in mapping.value:
        if not isinstance(key, nodes.ScalarNode) or key.tag == _MERGE_TAG:
            continue  # `<<: *defaults` keys are YAML merges; explicit keys override what they bring
        # Text compares as text; `1`, `true`, `1.0` compare as the values a dict would merge.
        identity = ("str", key.value) if key.tag == _STR_TAG else loader.construct_object(key)
        line = key.start_mark.line + 1
        try:
            earlier = first_line.get(identity)
        except TypeError:  # not hashable: the constructor reports it
            continue
        if earlier is not None:
            lines = f"line {line}" if earlier == line else f"lines {earlier} and {line}"
            raise SourceYamlError(
                _field(labels()),
                f"key {key.value!r} appears twice ({lines}); YAML would silently keep only the last one",
                "remove one of them, or merge their values into one",
            )
        first_line[identity] = line


def _children(node: nodes.Node) -> list[tuple[nodes.Node, str | int]]:
    if isinstance(node, nodes.MappingNode):
        return [(c, k.value if isinstance(k, nodes.ScalarNode) else "?") for k, v in node.value for c in (k, v)]
    if isinstance(node, nodes.SequenceNode):
        return list(zip(node.value, range(len(node.value)), strict=True))
    return []


def _labels_to(root: nodes.Node | None, target: nodes.Node) -> list[str | int]:
    """The field path from `root` to `target` (searched only to report an error)."""
    stack: list[tuple[nodes.Node, list[str | int]]] = [(root, [])] if root is not None else []
    seen: set[int] = set()
    while stack:
        node, labels = stack.pop()
        if node is target:
            return labels
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend((child, [*labels, label]) for child, label in _children(node))
    return []


def check_node_graph(root: nodes.Node) -> None:
    """Alias cycles, and the nesting and size that aliases expand to, of a composed document (linear).

    Aliases make the node tree a graph that shares nodes; sizes and heights are memoized per node,
    so a billion-laughs file costs as much as its few composed nodes.
    """
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values after expansion, height)
    on_path: set[int] = set()
    stack: list[list[Any]] = []  # [node, children, next child, values, height, label]

    def field(extra: list[str | int]) -> str:
        return _field([frame[5] for frame in stack[1:]] + extra)

    def grow(frame: list[Any], values: int, height: int, anchor: nodes.Node) -> None:
        frame[3] += values
        frame[4] = max(frame[4], height + 1)
        if frame[3] > MAX_VALUES or len(stack) - 1 + frame[4] > MAX_DEPTH:
            raise SourceYamlError(
                field([]),
                f"its aliases (*name) expand to more than {MAX_VALUES:,} values or {MAX_DEPTH} levels "
                f"(near line {anchor.start_mark.line + 1})",
                "write the values out instead of repeating anchors (&name) through aliases",
            )

    if not isinstance(root, nodes.ScalarNode):
        on_path.add(id(root))
        stack.append([root, _children(root), 0, 1, 1, ""])
    while stack:
        frame = stack[-1]
        node, children, index = frame[0], frame[1], frame[2]
        if index == len(children):
            stack.pop()
            on_path.discard(id(node))
            done[id(node)] = (frame[3], frame[4])
            if stack:
                grow(stack[-1], frame[3], frame[4], node)
            continue
        frame[2] += 1
        child, label = children[index]
        if isinstance(child, nodes.ScalarNode):
            frame[3] += 1
            frame[4] = max(frame[4], 2)
        elif id(child) in done:  # an alias of a value seen before: count it, do not walk it again
            grow(frame, *done[id(child)], child)
        elif id(child) in on_path:
            raise SourceYamlError(
                field([label]),
                f"an alias refers to a value that contains it (the anchor at line {child.start_mark.line + 1})",
                "remove the alias (*name) or point it at another anchor",
            )
        elif len(stack) >= MAX_DEPTH:
            raise SourceYamlError(
                field([label]),
                f"the values nest more than {MAX_DEPTH} levels deep",
                "flatten the structure; a source needs only a few levels",
            )
        else:
            on_path.add(id(child))
            stack.append([child, _children(child), 0, 1, 1, label])


def nesting_bound(text: str) -> int:
    """An upper bound of the document's nesting, computed at C speed (no parsing)."""
    block = max((len(prefix) for prefix in _BLOCK_PREFIX.findall(text)), default=0)
    return 2 * block + 2 + text.count("[") + text.count("{")


def _deepest_nesting(text: str) -> tuple[int, int]:
    """(depth, line) where libyaml's events first nest deeper than MAX_DEPTH, or (max depth, 0)."""
    parser = _BASE_LOADER(text)
    depth = deepest = 0
    try:
        while (event := parser.get_event()) is not None:
            if isinstance(event, _OPENERS):
                depth += 1
                deepest = max(deepest, depth)
                if depth > MAX_DEPTH:
                    return depth, event.start_mark.line + 1
            elif isinstance(event, _CLOSERS):
                depth -= 1
    finally:
        parser.dispose()
    return deepest, 0


def _utf8(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")  # an editor's byte-order mark is harmless
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        byte = raw[error.start : error.start + 1].hex()
        raise SourceYamlError(
            "(file)",
            f"is not UTF-8 text: byte 0x{byte} at line {line}, column {column} (byte offset {error.start})",
            UTF8_FIX,
        ) from error


def _yaml_problem(text: str, error: yaml.YAMLError) -> SourceYamlError:
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        where = f"line {mark.line + 1}, column {mark.column + 1}"
    elif isinstance(getattr(error, "position", None), int):  # a reader error: an offset in the text
        position = error.position  # type: ignore[attr-defined]
        where = f"line {text.count(chr(10), 0, position) + 1}, column {position - text.rfind(chr(10), 0, position)}"
    else:
        where = "unknown position"
    return SourceYamlError("(file)", f"is not valid YAML at {where}: {error}", "fix the YAML syntax")


def read_source_yaml(path: Path) -> Any:
    """The document in `path`, or a SourceYamlError saying where and why it cannot be read."""
    with path.open("rb") as file:
        raw = file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise SourceYamlError(
            "(file)",
            f"is larger than {MAX_FILE_BYTES // 1024 // 1024} MiB ({path.stat().st_size:,} bytes); "
            "a source file holds one source's settings",
            "split its tables or resources over several source files",
        )
    text = _utf8(path, raw)
    try:
        if nesting_bound(text) > MAX_DEPTH:  # only then is it worth parsing twice
            depth, line = _deepest_nesting(text)
            if depth > MAX_DEPTH:
                raise SourceYamlError(
                    "(file)",
                    f"the values nest more than {MAX_DEPTH} levels deep (at line {line})",
                    "flatten the structure; a source needs only a few levels",
                )
        loader = SourceYamlLoader(text, may_alias="&" in text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise _yaml_problem(text, error) from error

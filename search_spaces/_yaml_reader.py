"""Read a search-space YAML file with bounds on what it may cost: its size, how many values it
expands to (aliases counted each time they are used), how deep it nests, and no recursive alias.

The file is read once and parsed once: one pass over the parser's events builds the node tree,
checks the bounds and finds a key written twice, without recursion; PyYAML's safe constructor
then turns the nodes into Python values. A search space is a few kilobytes of a few hundred
values, so each bound is far above any real space and far below what would hang or crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError

MAX_FILE_BYTES = 1 << 20  # 1 MiB
MAX_VALUES = 50_000  # scalars, lists and mappings, an alias counting all it stands for
MAX_DEPTH = 64  # lists and mappings inside one another

# libyaml's parser: about 30x faster than the pure-Python one, and its nesting is iterative
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlRefused(ValueError):
    """The file is over a bound, or writes a key twice. ``key``: the dotted key, or None for the
    whole file; ``rule`` and ``fix`` read as in a SpaceError."""

    def __init__(self, key: str | None, rule: str, fix: str) -> None:
        super().__init__(rule)
        self.key = key
        self.rule = rule
        self.fix = fix


def read_bounded_yaml(path: Path) -> Any:
    """The value a YAML file holds (None when empty), read within the bounds above.

    Raises:
        OSError, UnicodeDecodeError: the file cannot be read as UTF-8 text.
        yaml.YAMLError: the file is not valid YAML.
        YamlRefused: the file is over a bound, or writes a key twice.
    """
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise YamlRefused(
            None,
            f"is larger than {MAX_FILE_BYTES // 1024} KiB; a search space is a few kilobytes",
            "Check that this is the search space you meant.",
        )
    return load_bounded_yaml(data.decode("utf-8"))


def load_bounded_yaml(text: str) -> Any:
    """The value of one YAML document, within the bounds above (see :func:`read_bounded_yaml`)."""
    loader = _Loader(text)
    try:
        node = _compose(loader)
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


@dataclass
class _Open:
    """A list or mapping whose end event has not come yet."""

    node: yaml.SequenceNode | yaml.MappingNode
    path: str  # the dotted key it sits under
    size: int = 1  # values it expands to so far, itself included
    key: yaml.Node | None = None  # a mapping's key waiting for its value
    seen: dict[str, int] = field(default_factory=dict)  # a mapping's keys -> line


def _compose(loader: Any) -> yaml.Node | None:
    """The document's node tree, as PyYAML's composer builds it, with the bounds checked."""
    loader.get_event()  # StreamStartEvent
    if loader.check_event(yaml.StreamEndEvent):
        loader.get_event()
        return None
    document = loader.get_event()  # DocumentStartEvent
    anchors: dict[str, yaml.Node] = {}
    sizes: dict[int, int] = {}  # id of an anchored node -> values it expands to
    stack: list[_Open] = []
    total = 0
    root: yaml.Node | None = None
    while root is None:
        event = loader.get_event()
        if isinstance(event, yaml.AliasEvent):
            node = anchors.get(event.anchor)
            if node is None:
                raise ComposerError(
                    None, None, f"found undefined alias {event.anchor!r}", event.start_mark
                )
            if any(frame.node is node for frame in stack):
                raise YamlRefused(
                    None,
                    f"holds a recursive alias (*{event.anchor} at line "
                    f"{event.start_mark.line + 1} stands for a value that contains it)",
                    "Write the value out instead of referring to itself.",
                )
            size = sizes[id(node)]
            total += size
            if total > MAX_VALUES:
                raise YamlRefused(
                    None,
                    f"expands past {MAX_VALUES:,} values through its aliases (*{event.anchor} "
                    f"at line {event.start_mark.line + 1})",
                    "A search space needs no more than a few hundred values; remove the aliases.",
                )
            root = _attach(stack, node, size)
            continue
        if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            frame = stack.pop()
            frame.node.end_mark = event.end_mark
            sizes[id(frame.node)] = frame.size
            root = _attach(stack, frame.node, frame.size)
            continue
        total += 1
        if total > MAX_VALUES:
            raise YamlRefused(
                None,
                f"holds more than {MAX_VALUES:,} values (at line {event.start_mark.line + 1})",
                "A search space needs no more than a few hundred values.",
            )
        tag = event.tag
        if isinstance(event, yaml.ScalarEvent):
            if tag is None or tag == "!":
                tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            node = yaml.ScalarNode(
                tag, event.value, event.start_mark, event.end_mark, style=event.style
            )
            if event.anchor is not None:
                anchors[event.anchor], sizes[id(node)] = node, 1
            root = _attach(stack, node, 1)
            continue
        kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
        if tag is None or tag == "!":
            tag = loader.resolve(kind, None, event.implicit)
        node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
        if event.anchor is not None:
            anchors[event.anchor] = node
        parent = stack[-1] if stack else None
        path = parent.path if parent else ""
        if parent is not None and parent.key is not None:
            key = str(parent.key.value)
            path = f"{path}.{key}" if path else key
        if len(stack) >= MAX_DEPTH:
            raise YamlRefused(
                path or None,
                f"nests lists and mappings more than {MAX_DEPTH} levels deep (at line "
                f"{event.start_mark.line + 1})",
                "A search space nests a few levels; check the brackets and indentation.",
            )
        stack.append(_Open(node, path))
    loader.get_event()  # DocumentEndEvent
    if not loader.check_event(yaml.StreamEndEvent):
        raise ComposerError(
            "expected a single document in the stream",
            document.start_mark,
            "but found another document",
            loader.get_event().start_mark,
        )
    return root


def _attach(stack: list[_Open], node: yaml.Node, size: int) -> yaml.Node | None:
    """Add a finished node to the open list or mapping; the node itself when it is the root."""
    if not stack:
        return node
    parent = stack[-1]
    parent.size += size
    if isinstance(parent.node, yaml.SequenceNode):
        parent.node.value.append(node)
        return None
    if parent.key is None:
        parent.key = node
        return None
    key_node, parent.key = parent.key, None
    if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
        line = key_node.start_mark.line + 1
        if key_node.value in parent.seen:
            dotted = f"{parent.path}.{key_node.value}" if parent.path else key_node.value
            raise YamlRefused(
                dotted,
                f"is written twice (lines {parent.seen[key_node.value]} and {line}); "
                "only the last would count",
                "Remove one of them.",
            )
        parent.seen[key_node.value] = line
    parent.node.value.append((key_node, node))
    return None

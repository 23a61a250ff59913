"""Reading YAML and JSON that may be hostile: a budget on size, nodes and depth, before anything.

Every YAML or JSON file convtrain reads (configs, `--set` values, sweep and split files, the
records of a run directory, the image cache's manifest) comes through here. A tiny file can
still expand into a huge value (YAML aliases: the "billion laughs"), or nest so deeply that the
first recursive function meeting it overflows the stack. So, before a value is built:
  - the file is read only up to its size limit (a huge file, /dev/zero or a pipe cannot hang
    the read),
  - YAML is composed by a loader that counts every node, an alias counting as all the nodes it
    brings in, and the nesting depth, and refuses past the limits naming the place and the
    anchor; it never materialises an expansion to measure it,
  - JSON is scanned for its nesting depth without recursion before `json.loads`.
docs/safety.md explains the numbers.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from convtrain.errors import ConfigError, ConvtrainError, human_size

MAX_YAML_BYTES = 1 << 20  # the largest shipped config is 3.9 KB; room for a long data.classes
MAX_JSON_BYTES = 64 << 20  # split.json of CALTECH-101 is ~0.4 MB (~40 bytes an image)
MAX_NODES = 100_000  # after alias expansion; the largest shipped config has 256
MAX_DEPTH = 64  # lists and mappings inside each other; the deepest shipped config has 7

_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFDIR: "a folder",
}


def _over(limit: int, size: int) -> str:
    """`size` as a figure visibly above `limit` (1.0 MiB + 1 byte is not "1.0 MiB")."""
    shown = human_size(size)
    return f"{size:,} bytes" if shown == human_size(limit) else shown


# --- bounded reads -------------------------------------------------------------------------


def read_bounded(path: str | Path, limit: int, what: str, pipes: bool = False) -> bytes:
    """At most `limit` bytes of `path`, or ConvtrainError; FileNotFoundError etc. pass through.

    Opened non-blocking, so a named pipe without a writer cannot stall the open; devices and
    (unless `pipes`, for a config given as `<(...)`) pipes are refused: they have no end.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        kind = stat.S_IFMT(mode)
        if not stat.S_ISREG(mode) and not (pipes and stat.S_ISFIFO(mode)):
            raise ConvtrainError(
                f"{path}: expected {what} (a regular file), received {_KINDS.get(kind, 'a special file')}"
            )
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        data = fh.read(limit + 1)
        if len(data) > limit:
            size = os.fstat(fd).st_size if stat.S_ISREG(mode) else 0
            received = _over(limit, size) if size > limit else "more"
            raise ConvtrainError(
                f"{path}: expected {what} of at most {human_size(limit)}, received {received}; "
                f"refusing to read it"
            )
    return data


# --- YAML ----------------------------------------------------------------------------------


class BudgetError(yaml.MarkedYAMLError):
    """Valid YAML, but larger or deeper than convtrain reads."""


def _line(mark: Any) -> int:
    return mark.line + 1


class SafeLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, counting what it composes, refusing duplicate keys.

    Composition (events to a node graph) is where an alias becomes a second reference to the
    anchored node: each anchor's cost (nodes, depth) is recorded once composed, and every alias
    adds its anchor's cost to the running total, so an exponential expansion is refused at the
    first alias that crosses the limit, after work proportional to the file.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.nodes = 0  # composed so far, an alias counting as everything it brings in
        self.depth = 0  # lists and mappings open around the node being composed
        self.deepest = 0  # the deepest level reached inside the node being composed
        self.cost: dict[str, tuple[int, int, int]] = {}  # anchor -> (nodes, levels, line)
        self.open_anchors: dict[str, int] = {}  # anchors still being composed -> line
        self.aliased = False

    def _refuse(self, problem: str, mark: Any) -> None:
        raise BudgetError(problem=f"{problem}; refusing it", problem_mark=mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            self._charge_alias(event.anchor, event.start_mark)
            return super().compose_node(parent, index)
        event = self.peek_event()
        anchor, collection = event.anchor, not self.check_event(yaml.ScalarEvent)
        if anchor in self.cost or anchor in self.open_anchors:
            first = self.cost[anchor][2] if anchor in self.cost else self.open_anchors[anchor]
            raise yaml.composer.ComposerError(
                problem=f"expected each anchor name once, received &{anchor} again (first on "
                f"line {first})",
                problem_mark=event.start_mark,
            )
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self._refuse(
                f"expected a document of at most {MAX_NODES:,} nodes, received more",
                event.start_mark,
            )
        start_nodes, outer_deepest = self.nodes, self.deepest
        if collection:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                self._refuse(
                    f"expected lists and mappings nested at most {MAX_DEPTH} levels deep, "
                    f"received deeper nesting",
                    event.start_mark,
                )
        self.deepest = self.depth  # from here on: the deepest level inside this node
        if anchor is not None:
            self.open_anchors[anchor] = _line(event.start_mark)
        node = super().compose_node(parent, index)
        levels = self.deepest - self.depth + (1 if collection else 0)
        if anchor is not None:
            del self.open_anchors[anchor]
            self.cost[anchor] = (self.nodes - start_nodes + 1, levels, _line(event.start_mark))
        if collection:
            self.depth -= 1
        self.deepest = max(outer_deepest, self.deepest)
        return node

    def _charge_alias(self, anchor: str, mark: Any) -> None:
        if anchor in self.open_anchors:
            self._refuse(
                f"alias *{anchor} is inside its own anchor &{anchor} (line "
                f"{self.open_anchors[anchor]}): expected a value, received a recursive structure",
                mark,
            )
        if anchor not in self.cost:
            return  # PyYAML reports the undefined alias
        nodes, levels, line = self.cost[anchor]
        self.aliased = True
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            self._refuse(
                f"alias *{anchor} expands to {nodes:,} nodes (anchor &{anchor}, line {line}) and "
                f"takes the document past the limit: expected at most {MAX_NODES:,} nodes after "
                f"alias expansion, received more",
                mark,
            )
        if self.depth + levels > MAX_DEPTH:
            self._refuse(
                f"alias *{anchor} (anchor &{anchor}, line {line}) nests {levels} levels here: "
                f"expected lists and mappings nested at most {MAX_DEPTH} levels deep, received "
                f"{self.depth + levels}",
                mark,
            )
        self.deepest = max(self.deepest, self.depth + levels)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:  # int('9' * 5000), a 30th of February
            value = node.value if isinstance(node.value, str) else ""
            shown = value if len(value) <= 40 else value[:40] + "..."
            raise yaml.constructor.ConstructorError(
                problem=f"cannot read the value {shown!r} ({str(exc).split(';')[0]})",
                problem_mark=node.start_mark,
            ) from None


def _construct_mapping(loader: SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *base` merges a mapping; its keys may be overridden here
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


SafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 reads `1e-4` as a string; scientific notation without a dot is a float here.
SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _unshared(value: Any) -> Any:
    """A copy in which every alias is a value of its own (an edit to one use changes only it).

    Recursion is safe: the loader has bounded the depth (and, with aliases, the size).
    """
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshared(v) for v in value]
    return value


def load_yaml(text: str, source: str, locate: bool = True) -> Any:
    """Safe-load YAML within the budget; errors name `source:line:column` (or quote the value)."""
    value = "" if locate else f" in the value {text if len(text) <= 60 else text[:60] + '...'!r}"
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(
            [
                f"expected YAML of at most {human_size(MAX_YAML_BYTES)}, received {_over(MAX_YAML_BYTES, len(text))}"
            ],
            source=source,
        )
    loader = SafeLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark and locate else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if not isinstance(exc, BudgetError):
            problem = f"invalid YAML{value}: {problem}"
        elif not locate:
            problem = f"the value{value.removeprefix(' in the value')}: {problem}"
        raise ConfigError([problem], source=f"{source}{where}") from None
    finally:
        loader.dispose()
    return _unshared(data) if loader.aliased else data


def read_yaml_file(path: str | Path) -> Any:
    """A YAML file's value: at most MAX_YAML_BYTES read, then `load_yaml`."""
    try:
        data = read_bounded(path, MAX_YAML_BYTES, "a YAML file", pipes=True)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(["no such file"], source=str(path)) from None
    except ConvtrainError as exc:
        raise ConfigError([str(exc).removeprefix(f"{path}: ")], source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read the file ({exc})"], source=str(path)) from None
    return load_yaml(text, str(path))


# --- JSON ----------------------------------------------------------------------------------

# A string (skipped whole, escapes included) or a bracket: enough to measure nesting.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def check_json_depth(text: str, source: str) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH, by a scan that cannot recurse."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                pos = match.start()
                line = text.count("\n", 0, pos) + 1
                column = pos - text.rfind("\n", 0, pos)
                raise ConvtrainError(
                    f"{source}: line {line} column {column}: expected JSON nested at most "
                    f"{MAX_DEPTH} levels deep, received deeper nesting; refusing it"
                )
        elif token in "]}":
            depth -= 1


def loads_json(text: str, source: str) -> Any:
    """json.loads within the budget. json.JSONDecodeError passes through for the caller to word."""
    if len(text) > MAX_JSON_BYTES:
        raise ConvtrainError(
            f"{source}: expected JSON of at most {human_size(MAX_JSON_BYTES)}, received "
            f"{_over(MAX_JSON_BYTES, len(text))}; refusing it"
        )
    check_json_depth(text, source)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer of more than 4300 digits
        raise ConvtrainError(f"{source}: cannot read the JSON ({str(exc).split(';')[0]})") from None


def read_json(path: str | Path, limit: int = MAX_JSON_BYTES) -> Any:
    """A JSON file's value within the budget (ConvtrainError past it).

    OSError (FileNotFoundError...), UnicodeDecodeError and json.JSONDecodeError pass through,
    so each reader keeps its own words for a missing or damaged file.
    """
    text = read_bounded(path, limit, "a JSON file").decode("utf-8")
    return loads_json(text, str(path))

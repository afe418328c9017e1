"""YAML bytes -> plain Python data, one value per document, under the loader's safety limits.

We consume the event stream of ruamel.yaml's C parser (`YAML(typ="safe").parse`, libyaml via
ruamel.yaml.clib) and build plain data ourselves instead of using ruamel's composer and
`SafeConstructor`, because:

* the C composer recurses once per nesting level and crashes the interpreter (SIGSEGV) at about
  100,000 levels; the event parser is iterative, and so is this builder (explicit stack);
* `SafeConstructor` produces non-plain types (`datetime`, `bytes`, `set`), builds cyclic data
  from recursive aliases and does not bound alias expansion;
* composing `Node` objects and resolving tags through ruamel's Python resolver costs about 4 s per
  10,000 devices; building straight from events takes about a quarter of that.

Semantics: YAML 1.2 core schema (`yes`/`no`/`on`/`off` are strings; a `%YAML 1.1` directive does
not change that and draws a warning); unquoted timestamps stay strings; merge keys (`<<`) are
supported; only the standard tags str, int, float, bool, null, seq, map and merge are accepted.

Positions are not recorded here: `build_positions` re-parses when a location is first asked for.
"""

from __future__ import annotations

import gc
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from sys import getsizeof, intern
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.parser import Parser as PurePythonParser
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.resolver import implicit_resolvers

from reconciler.diagnostics import Severity

# True when ruamel.yaml.clib (libyaml) parses; the pure-Python parser gives the same events,
# several times slower.
NATIVE_PARSER: bool = YAML(typ="safe").Parser is not PurePythonParser

_TAG_PREFIX = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (
    _TAG_PREFIX + t for t in ("str", "int", "float", "bool", "null")
)
_SEQ, _MAP, _MERGE_TAG, _TIMESTAMP = (_TAG_PREFIX + t for t in ("seq", "map", "merge", "timestamp"))
_SCALAR_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP})
# Python refuses to convert longer decimal strings (sys.get_int_max_str_digits()).
_MAX_INT_DIGITS = 4300


def _plain_resolvers() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    """ruamel's YAML 1.2 implicit-tag regexes, indexed by first character. Timestamps are left
    out on purpose: `2024-01-01` stays a string."""
    wanted = {_BOOL, _INT, _FLOAT, _NULL}
    table: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    for versions, tag, regexp, first in implicit_resolvers:
        if (1, 2) in versions and tag in wanted:
            for char in first or [""]:
                # ruamel's RegExp is a lazy proxy; a compiled pattern is faster to call.
                table.setdefault(char, []).append((tag, re.compile(regexp.pattern, regexp.flags)))
    return table


_RESOLVERS = _plain_resolvers()
_TAG_PATTERNS = {tag: pattern for resolvers in _RESOLVERS.values() for tag, pattern in resolvers}


@dataclass(frozen=True)
class YamlLimits:
    """Per-document limits. Alias policy: anchors and aliases are allowed, but the nodes that
    aliases add (each use counts the full expanded size of what it refers to, merge keys
    included) may not exceed `max(alias_budget_floor, alias_amplification x nodes written)`.
    This bounds the work of everything downstream that walks the data to a small multiple of
    the file size, and stops "billion laughs" at the first alias that breaks the budget."""

    max_scalar_chars: int = 1 << 20  # TTS formatter scripts go up to 40,960 characters
    # Memory: the plain data built from a file may take at most `data_bytes_per_byte` times
    # the file's size (plus `memory_floor`), estimated as it is built (see `_build_document`),
    # and its position index at most `index_bytes_per_byte` times (the index stops there;
    # positions are a best effort). The densest YAML (`[{}, {}, ...]`, `{a: 1, b: 1, ...}`,
    # many one-line documents) would otherwise take 30 to 80 times its size.
    data_bytes_per_byte: int = 12
    index_bytes_per_byte: int = 6
    memory_floor: int = 4 << 20
    # Time: libyaml and the builder take a few microseconds per value, so a file may hold at
    # most this many values (a real manifest has one per 10-15 bytes: 16 MiB is ~1.3 million).
    max_nodes_per_file: int = 2_000_000
    # Open collections; real manifests use fewer than 10. Parsing stops at the first document
    # that goes deeper: libyaml's scanner does work proportional to the flow depth for every
    # token (quadratic: 100,000 nested `[` take half a minute), so we do not read on.
    max_depth: int = 64
    alias_budget_floor: int = 100_000
    alias_amplification: int = 10


@dataclass(frozen=True)
class YamlProblem:
    """A located problem; `line`/`column` are 1-based."""

    code: str
    message: str
    line: int
    column: int
    severity: Severity = "error"


@dataclass
class BuiltYaml:
    documents: list[tuple[int, Any]] = field(default_factory=list)  # (index, data), non-empty
    problems: list[YamlProblem] = field(default_factory=list)
    # Where each document's root node starts (1-based line, column), by document index: a
    # problem about a whole document is located without a position index.
    roots: dict[int, tuple[int, int]] = field(default_factory=dict)


# Estimated bytes (CPython 3.11, 64-bit) charged while building: a Document and its list
# entry; an empty list or dict; an item's place in a list; a key's entry in a dict, plus its
# entry in the duplicate-key index while the mapping is open (refunded when it closes). New
# strings are charged `sys.getsizeof`; mapping keys are interned, so a key repeated in every
# document is paid once.
_DOCUMENT_COST = 200
_LIST_COST = 56
_DICT_COST = 120
_LIST_SLOT_COST = 9
_KEY_COST = 40
_KEY_INDEX_COST = 72


class _Budget:
    """Estimated bytes of what has been built from one file, against its limit."""

    __slots__ = ("limit", "nodes", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.nodes = 0


class _DocumentError(Exception):
    """A problem in one document. `ends_file`: stop parsing (see `YamlLimits.max_depth`)."""

    def __init__(self, code: str, message: str, mark: Any, ends_file: bool = False) -> None:
        super().__init__(message)
        self.problem = YamlProblem(code, message, mark.line + 1, mark.column + 1)
        self.ends_file = ends_file


_OPEN = object()  # an anchor whose collection is still being built (an alias to it is a cycle)
_MERGE = object()  # the key slot of a `<<` entry
_NO_KEY = object()


class _Frame:
    """One collection being built. `key` is `_NO_KEY` while a mapping waits for its next key."""

    __slots__ = ("anchor", "items", "key", "key_lines", "mapping", "mark", "merges")

    def __init__(self, mark: Any, anchor: str | None, is_mapping: bool) -> None:
        self.mark = mark
        self.anchor = anchor
        self.items: list[Any] | None = None if is_mapping else []
        self.mapping: dict[Any, Any] | None = {} if is_mapping else None
        self.key: Any = _NO_KEY
        self.key_lines: dict[Any, int] = {}
        self.merges: list[dict[Any, Any]] = []


def _events(source: bytes) -> Iterator[Any]:
    return iter(YAML(typ="safe").parse(source))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building creates containers and nothing cyclic; the cyclic collector would rescan the
    growing result over and over (about 2x slower for the position index of a big file)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def syntax_problem(error: YAMLError, source: bytes) -> YamlProblem:
    """A readable, located message for a ruamel/libyaml error (no repr noise, no values)."""
    if isinstance(error, ReaderError):
        # libyaml reports a byte offset; columns count characters (a BOM is not one).
        offset = min(max(int(error.position), 0), len(source))
        line_start = source.rfind(b"\n", 0, offset) + 1
        prefix = source[line_start:offset].decode("utf-8", "replace").lstrip("\ufeff")
        line = source.count(b"\n", 0, offset) + 1
        return YamlProblem(
            "yaml-syntax", f"YAML syntax error: {error.reason}", line, len(prefix) + 1
        )
    if isinstance(error, MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        problem = error.problem or "invalid YAML"
        context = error.context
        if context and error.context_mark is not None and error.context_mark is not mark:
            context_mark = error.context_mark
            where = f"line {context_mark.line + 1}, column {context_mark.column + 1}"
            if context.endswith("first occurrence"):  # the C composer's duplicate-anchor error
                problem, context = "duplicate anchor", f"first defined at {where}"
            else:
                context = f"{context} started at {where}"
        message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return YamlProblem("yaml-syntax", message, line, column)
    return YamlProblem("yaml-syntax", f"YAML syntax error: {type(error).__name__}", 1, 1)


def build_documents(source: bytes, limits: YamlLimits) -> BuiltYaml:
    """Parse `source` (already checked to be UTF-8 without NUL bytes). A problem inside one
    document drops that document and parsing resumes at the next one; a syntax error ends the
    file (libyaml cannot resume), keeping the documents before it."""
    result = BuiltYaml()
    events = _events(source)
    budget = _Budget(limits.data_bytes_per_byte * len(source) + limits.memory_floor)
    with _gc_paused():
        _build_all(events, source, limits, result, budget)
    return result


def _build_all(
    events: Iterator[Any], source: bytes, limits: YamlLimits, result: BuiltYaml, budget: _Budget
) -> None:
    index = -1
    try:
        for event in events:
            if type(event) is not DocumentStartEvent:
                continue
            index += 1
            if getattr(event, "version", None) not in (None, (1, 2)):
                result.problems.append(
                    YamlProblem(
                        "yaml-version",
                        "%YAML directive ignored: documents are read with YAML 1.2 rules "
                        "(yes/no/on/off are strings)",
                        event.start_mark.line + 1,
                        event.start_mark.column + 1,
                        "warning",
                    )
                )
            try:
                data, root_mark = _build_document(events, limits, budget)
            except _DocumentError as error:
                result.problems.append(error.problem)
                if error.ends_file:
                    return
                too_deep = _skip_document(events, limits.max_depth)
                if too_deep is not None:
                    result.problems.append(too_deep)
                    return
                continue
            if root_mark is not None:
                result.roots[index] = (root_mark.line + 1, root_mark.column + 1)
            if data is not None:
                result.documents.append((index, data))
    except YAMLError as error:
        result.problems.append(syntax_problem(error, source))


def _skip_document(events: Iterator[Any], max_depth: int) -> YamlProblem | None:
    """Consume the rest of a document; a problem if it nests too deep (then stop the file)."""
    depth = 0
    for event in events:
        kind = type(event)
        if kind is MappingStartEvent or kind is SequenceStartEvent:
            depth += 1
            if depth > max_depth:
                return _too_deep(event, max_depth).problem
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            depth -= 1
        elif kind is DocumentEndEvent:
            return None
    return None


def _too_deep(event: Any, max_depth: int) -> _DocumentError:
    return _DocumentError(
        "yaml-too-deep",
        f"collections nested more than {max_depth} levels deep",
        event.start_mark,
        ends_file=True,
    )


def _build_document(events: Iterator[Any], limits: YamlLimits, memory: _Budget) -> Any:
    """Consume events up to DocumentEndEvent; return the document's value and where its root
    node starts."""
    root = _Frame(None, None, is_mapping=False)
    root_mark: Any = None
    used = memory.used + _DOCUMENT_COST
    limit = memory.limit
    max_written = limits.max_nodes_per_file - memory.nodes
    stack = [root]
    frame = root
    anchors: dict[str, tuple[Any, int]] = {}
    sizes = [0]  # expanded node count of each open collection, parallel to `stack`
    written = 0
    alias_added = 0
    max_scalar, max_depth = limits.max_scalar_chars, limits.max_depth
    for event in events:
        kind = type(event)
        if kind is ScalarEvent:
            written += 1
            if root_mark is None:
                root_mark = event.start_mark
            text = event.value
            # Fast path for the common case: an untagged string that no resolver could claim.
            is_key = frame.items is None and frame.key is _NO_KEY
            if (
                event.tag is None
                and len(text) <= max_scalar
                and (not event.implicit[0] or (text[:1] not in _RESOLVERS and text != "<<"))
            ):
                value = text
            else:
                value = _scalar(event, max_scalar, is_key)
            if frame.items is not None:
                frame.items.append(value)
                used += _LIST_SLOT_COST
            else:
                if is_key:
                    used += _KEY_COST + _KEY_INDEX_COST
                    if type(value) is str:
                        value = intern(value)
                _add(frame, value, event.start_mark)
            sizes[-1] += 1
            # One-character strings and small ints are shared objects, and so are interned
            # keys seen before.
            if len(text) > 1 and not (is_key and value is not text):
                used += getsizeof(value)
            if used > limit:
                raise _too_dense(event, memory)
            if written > max_written:
                raise _too_many(event, limits)
            if event.anchor is not None:
                anchors[event.anchor] = (value, 1)
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            written += 1
            if root_mark is None:
                root_mark = event.start_mark
            if len(stack) > max_depth:
                raise _too_deep(event, max_depth)
            _check_tag(event, _MAP if kind is MappingStartEvent else _SEQ)
            frame = _Frame(event.start_mark, event.anchor, kind is MappingStartEvent)
            if event.anchor is not None:
                anchors[event.anchor] = (_OPEN, 0)
            stack.append(frame)
            sizes.append(1)
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            closed = stack.pop()
            size = sizes.pop()
            value = _finish(closed)
            frame = stack[-1]
            if closed.items is not None:
                used += _LIST_COST
            else:
                used += _DICT_COST - _KEY_INDEX_COST * len(closed.key_lines)
            used += _LIST_SLOT_COST if frame.items is not None else _KEY_COST + _KEY_INDEX_COST
            if used > limit:
                raise _too_dense(event, memory)
            if written > max_written:
                raise _too_many(event, limits)
            _add(frame, value, closed.mark)
            sizes[-1] += size
            if closed.anchor is not None:
                anchors[closed.anchor] = (value, size)
        elif kind is AliasEvent:
            if root_mark is None:
                root_mark = event.start_mark
            target = anchors.get(event.anchor)
            if target is None:
                raise _DocumentError(
                    "yaml-alias", f"alias *{event.anchor} has no anchor before it", event.start_mark
                )
            value, size = target
            if value is _OPEN:
                raise _DocumentError(
                    "yaml-alias",
                    f"alias *{event.anchor} refers to a collection that contains it",
                    event.start_mark,
                )
            alias_added += size
            budget = max(limits.alias_budget_floor, limits.alias_amplification * written)
            if alias_added > budget:
                raise _DocumentError(
                    "yaml-alias-bomb",
                    f"aliases expand this document by more than {budget:,} nodes "
                    f"(at most max({limits.alias_budget_floor:,}, "
                    f"{limits.alias_amplification} x the nodes written) are allowed)",
                    event.start_mark,
                )
            _add(frame, value, event.start_mark)
            sizes[-1] += size
            used += _LIST_SLOT_COST if frame.items is not None else _KEY_COST + _KEY_INDEX_COST
            if used > limit:
                raise _too_dense(event, memory)
        elif kind is DocumentEndEvent:
            memory.used = used
            memory.nodes += written
            return (root.items[0] if root.items else None), root_mark
    return None, root_mark  # pragma: no cover - libyaml always ends a document


def _too_many(event: Any, limits: YamlLimits) -> _DocumentError:
    return _DocumentError(
        "yaml-too-many-values",
        f"this file holds more than {limits.max_nodes_per_file:,} YAML values: split it",
        event.start_mark,
        ends_file=True,
    )


def _too_dense(event: Any, budget: _Budget) -> _DocumentError:
    return _DocumentError(
        "yaml-too-dense",
        f"the data in this file would take more than {budget.limit:,} bytes of memory (about "
        "12 times the file's size): no manifest is this dense (it holds very many tiny "
        "values, collections or documents)",
        event.start_mark,
        ends_file=True,
    )


def _check_tag(event: Any, default: str) -> None:
    tag = event.tag
    if tag is not None and tag not in ("!", default):
        raise _DocumentError("yaml-tag", _unsupported_tag(tag), event.start_mark)


def _unsupported_tag(tag: str) -> str:
    shown = "!!" + tag[len(_TAG_PREFIX) :] if tag.startswith(_TAG_PREFIX) else tag
    return (
        f"unsupported YAML tag {shown}: only standard data "
        "(!!str, !!int, !!float, !!bool, !!null, !!seq, !!map) is allowed"
    )


def _scalar(event: Any, max_chars: int, is_key: bool) -> Any:
    text: str = event.value
    if len(text) > max_chars:
        raise _DocumentError(
            "yaml-scalar-too-large",
            f"value of {len(text):,} characters exceeds the limit of {max_chars:,}",
            event.start_mark,
        )
    tag = event.tag
    if tag is None:
        if not event.implicit[0]:
            return text  # quoted or block scalar
        for resolved, pattern in _RESOLVERS.get(text[:1], ()):
            if pattern.match(text):
                return _convert(resolved, text, event)
        if is_key and text == "<<":
            return _MERGE
        return text
    if tag in ("!", _STR, _TIMESTAMP):
        return text
    if tag == _MERGE_TAG and is_key:
        return _MERGE
    if tag in _SCALAR_TAGS:
        if not _TAG_PATTERNS[tag].match(text):
            raise _DocumentError(
                "yaml-tag", f"value is not a valid !!{tag[len(_TAG_PREFIX) :]}", event.start_mark
            )
        return _convert(tag, text, event)
    raise _DocumentError("yaml-tag", _unsupported_tag(tag), event.start_mark)


def _convert(tag: str, text: str, event: Any) -> Any:
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return text.lower() == "true"
    digits = text.replace("_", "")
    sign = -1 if digits[:1] == "-" else 1
    digits = digits.lstrip("+-")
    if tag == _FLOAT:
        lowered = digits.lower()
        if lowered == ".inf":
            return sign * math.inf
        if lowered == ".nan":
            return math.nan
        return sign * float(digits)
    if len(digits) > _MAX_INT_DIGITS:
        raise _DocumentError(
            "yaml-number-too-large",
            f"integer of {len(digits):,} digits exceeds the limit of {_MAX_INT_DIGITS:,}",
            event.start_mark,
        )
    base = {"0x": 16, "0o": 8, "0b": 2}.get(digits[:2], 10)
    try:
        return sign * int(digits[2:] if base != 10 else digits, base)
    except ValueError:  # e.g. a lone sign: not a number after all
        return text


def _add(frame: _Frame, value: Any, mark: Any) -> None:
    if frame.items is not None:
        frame.items.append(value)
        return
    mapping = frame.mapping
    assert mapping is not None
    if frame.key is _NO_KEY:
        if isinstance(value, list | dict):
            raise _DocumentError(
                "yaml-complex-key", "mapping keys must be scalars, not collections", mark
            )
        if value in frame.key_lines:
            name = "<<" if value is _MERGE else str(value)
            if len(name) > 80:
                name = name[:77] + "..."
            raise _DocumentError(
                "duplicate-key",
                f'duplicate key "{name}" (first defined at line {frame.key_lines[value]})',
                mark,
            )
        frame.key_lines[value] = mark.line + 1
        frame.key = value
        return
    if frame.key is _MERGE:
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(source, dict) for source in sources):
            raise _DocumentError(
                "yaml-merge", "a merge key (<<) needs a mapping or a list of mappings", mark
            )
        frame.merges.extend(sources)
    else:
        mapping[frame.key] = value
    frame.key = _NO_KEY


def _finish(frame: _Frame) -> Any:
    if frame.items is not None:
        return frame.items
    mapping = frame.mapping
    assert mapping is not None
    if frame.key is not _NO_KEY:  # pragma: no cover - libyaml pairs every key with a value
        mapping[frame.key] = None
    if not frame.merges:
        return mapping
    # Explicit keys win over merged ones; in `<<: [*a, *b]` the earlier mapping wins.
    merged: dict[Any, Any] = {}
    for source in reversed(frame.merges):
        merged.update(source)
    merged.update(mapping)
    return merged


# ---------------------------------------------------------------------------------------------
# Positions, built lazily on the first `locate` of a file.


class NodePosition:
    """Where a node starts (1-based), and its children for navigation."""

    __slots__ = ("column", "entries", "items", "line", "merges")

    def __init__(self, line: int, column: int) -> None:
        self.line = line
        self.column = column
        # key text -> (position of the key, node of the value)
        self.entries: dict[str, tuple[tuple[int, int], NodePosition]] | None = None
        self.items: list[NodePosition] | None = None
        self.merges: list[NodePosition] = []


# Estimated bytes per indexed node: a NodePosition, its place in the parent (a list slot, or a
# dict entry with the key text and two position tuples).
_POSITION_COST = 250


def build_positions(
    source: bytes, max_depth: int, max_bytes: int | None = None
) -> list[NodePosition | None]:
    """One root `NodePosition` per document (by document index, empty ones included), from the
    same event stream `build_documents` reads, so indexes match. Stops quietly at a syntax
    error: positions are a best effort for locating problems found elsewhere."""
    roots: list[NodePosition | None] = []
    max_nodes = None if max_bytes is None else max_bytes // _POSITION_COST
    with _gc_paused(), suppress(YAMLError):
        _index_positions(source, roots, max_depth, max_nodes)
    return roots


def _index_positions(
    source: bytes, roots: list[NodePosition | None], max_depth: int, max_nodes: int | None
) -> None:
    """Index up to `max_nodes` nodes (then stop: later nodes are located at their nearest
    indexed ancestor)."""
    remaining = max_nodes if max_nodes is not None else -1
    stack: list[NodePosition] = []
    pending_key: list[tuple[str | None, tuple[int, int]] | None] = []
    anchors: dict[str, NodePosition] = {}
    for event in _events(source):
        kind = type(event)
        if kind is DocumentStartEvent:
            roots.append(None)
            stack, pending_key, anchors = [], [], {}
            continue
        if kind is MappingEndEvent or kind is SequenceEndEvent:
            node = stack.pop()
            pending_key.pop()
            _attach_position(roots, stack, pending_key, node)
            continue
        if kind not in (ScalarEvent, AliasEvent, MappingStartEvent, SequenceStartEvent):
            continue
        mark = event.start_mark
        remaining -= 1
        if remaining == 0:
            return
        if kind is AliasEvent:
            node = anchors.get(event.anchor) or NodePosition(mark.line + 1, mark.column + 1)
            if stack and pending_key[-1] is None and stack[-1].entries is not None:
                pending_key[-1] = (None, (mark.line + 1, mark.column + 1))
                continue
            _attach_position(roots, stack, pending_key, node)
            continue
        node = NodePosition(mark.line + 1, mark.column + 1)
        if event.anchor is not None:
            anchors[event.anchor] = node
        if kind is ScalarEvent:
            if stack and stack[-1].entries is not None and pending_key[-1] is None:
                pending_key[-1] = (event.value, (node.line, node.column))
                continue
            _attach_position(roots, stack, pending_key, node)
            continue
        if len(stack) >= max_depth:
            return  # `build_documents` stopped here too
        if kind is MappingStartEvent:
            node.entries = {}
        else:
            node.items = []
        stack.append(node)
        pending_key.append(None)


def _attach_position(
    roots: list[NodePosition | None],
    stack: list[NodePosition],
    pending_key: list[tuple[str | None, tuple[int, int]] | None],
    node: NodePosition,
) -> None:
    if not stack:
        if roots:
            roots[-1] = node
        return
    parent = stack[-1]
    if parent.items is not None:
        parent.items.append(node)
        return
    if parent.entries is None:  # pragma: no cover - a parent is always a collection
        return
    key = pending_key[-1]
    pending_key[-1] = None
    if key is None:  # a collection used as a key just closed; its value comes next
        pending_key[-1] = (None, (node.line, node.column))
        return
    text, key_position = key
    if text == "<<":
        parent.merges.extend(node.items if node.items is not None else [node])
    elif text is not None:
        parent.entries.setdefault(text, (key_position, node))


def locate_in(root: NodePosition | None, path: Sequence[str | int]) -> tuple[int, int]:
    """Position of the node at `path` (the key, for a mapping entry), or of its nearest
    existing ancestor."""
    if root is None:
        return (1, 1)
    node = root
    position = (root.line, root.column)
    for part in path:
        if node.items is not None and isinstance(part, int) and not isinstance(part, bool):
            if not -len(node.items) <= part < len(node.items):
                break
            node = node.items[part]
            position = (node.line, node.column)
            continue
        entry = _find_entry(node, _key_text(part))
        if entry is None:
            break
        position, node = entry
    return position


def _key_text(part: str | int) -> str:
    if isinstance(part, bool):
        return "true" if part else "false"
    return str(part)


def _find_entry(node: NodePosition, key: str) -> tuple[tuple[int, int], NodePosition] | None:
    """Own keys first, then merged mappings in precedence order (iterative: merge chains can be
    long in hostile input)."""
    todo = [node]
    seen: set[int] = set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.entries is not None and key in current.entries:
            return current.entries[key]
        todo.extend(reversed(current.merges))
    return None

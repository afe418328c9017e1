"""The subset of the IoT Hub query language the registry and reconciler use.

    SELECT * | SELECT COUNT() [AS alias]
    FROM devices | devices.modules
    [WHERE condition]

Conditions compare twin paths (deviceId, status, capabilities.iotEdge, tags.*,
properties.desired.*, properties.reported.*, any other twin field) with literals using
`= != <> < > <= >=`, `IN [...]`, `NIN [...]` (or `NOT IN`; parentheses work too),
`IS_DEFINED(path)`, `AND`, `OR`, `NOT` and
parentheses. As in the hub, a comparison with an undefined path or between different types is
undefined, and only rows whose condition is true are returned.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.emulator.iothub import errors

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op><>|!=|<=|>=|=|<|>|\(|\)|\[|\]|,|\*)
    | (?P<name>[A-Za-z_$][A-Za-z0-9_$\-]*(?:\.[A-Za-z_$][A-Za-z0-9_$\-]*)*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = frozenset(
    {"select", "from", "where", "and", "or", "not", "in", "nin", "count", "as", "is_defined"}
    | {"true", "false", "null"}
)
_MISSING = object()
MAX_QUERY_LENGTH = 8192

Row = dict[str, Any]
Condition = Callable[[Row], bool | None]


@dataclass(frozen=True)
class Query:
    source: str  # "devices" or "devices.modules"
    count_alias: str | None  # SELECT COUNT() [AS alias]; None for SELECT *
    condition: Condition | None


@dataclass(frozen=True)
class _Token:
    kind: str  # num, str, op, name, kw, end
    text: str
    value: Any = None


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _syntax(f"unexpected character {text[position:].lstrip()[:1]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        raw = match.group(kind)
        if kind == "num":
            number = float(raw)
            value: Any = int(raw) if number.is_integer() and "." not in raw else number
            tokens.append(_Token("num", raw, value))
        elif kind == "str":
            body = raw[1:-1]
            value = re.sub(r"\\(.)", r"\1", body)
            tokens.append(_Token("str", raw, value))
        elif kind == "name" and raw.lower() in _KEYWORDS:
            tokens.append(_Token("kw", raw.lower()))
        else:
            tokens.append(_Token(kind, raw))
    tokens.append(_Token("end", ""))
    return tokens


def _syntax(text: str) -> errors.IotHubError:
    return errors.argument_invalid(f"Syntax error: {text}")


def _lookup(row: Row, path: tuple[str, ...]) -> Any:
    value: Any = row
    for part in path:
        if not isinstance(value, dict):
            return _MISSING
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "other"


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<>": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    ">": lambda a, b: bool(a > b),
    "<=": lambda a, b: bool(a <= b),
    ">=": lambda a, b: bool(a >= b),
}


def _compare(op: str, left: Any, right: Any) -> bool | None:
    if left is _MISSING or right is _MISSING:
        return None
    kind = _kind(left)
    if kind != _kind(right) or kind == "other":
        return None
    if op not in ("=", "!=", "<>") and kind not in ("number", "string"):
        return None
    return _COMPARE[op](left, right)


Operand = Callable[[Row], Any]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, kind: str, text: str | None = None) -> _Token:
        token = self.take()
        if token.kind != kind or (text is not None and token.text != text):
            shown = token.text or "end of query"
            raise _syntax(f"expected {text or kind} but found {shown!r}")
        return token

    def accept(self, kind: str, text: str) -> bool:
        token = self.peek()
        if token.kind == kind and token.text == text:
            self.index += 1
            return True
        return False

    def query(self) -> Query:
        self.expect("kw", "select")
        count_alias: str | None = None
        if self.accept("op", "*"):
            pass
        elif self.accept("kw", "count"):
            self.expect("op", "(")
            self.expect("op", ")")
            count_alias = "$1"
            if self.accept("kw", "as"):
                count_alias = self.expect("name").text
        else:
            raise _syntax("only SELECT * and SELECT COUNT() are supported")
        self.expect("kw", "from")
        source = self.expect("name").text
        if source.lower() not in ("devices", "devices.modules"):
            raise _syntax(f"unknown collection {source!r}")
        condition: Condition | None = None
        if self.accept("kw", "where"):
            condition = self.disjunction()
        if self.peek().kind != "end":
            raise _syntax(f"unexpected {self.peek().text!r}")
        return Query(source.lower(), count_alias, condition)

    def disjunction(self) -> Condition:
        parts = [self.conjunction()]
        while self.accept("kw", "or"):
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]

        def any_true(row: Row) -> bool | None:
            result: bool | None = False
            for part in parts:
                value = part(row)
                if value:
                    return True
                if value is None:
                    result = None
            return result

        return any_true

    def conjunction(self) -> Condition:
        parts = [self.negation()]
        while self.accept("kw", "and"):
            parts.append(self.negation())
        if len(parts) == 1:
            return parts[0]

        def all_true(row: Row) -> bool | None:
            result: bool | None = True
            for part in parts:
                value = part(row)
                if value is False:
                    return False
                if value is None:
                    result = None
            return result

        return all_true

    def negation(self) -> Condition:
        if self.accept("kw", "not"):
            inner = self.negation()

            def negated(row: Row) -> bool | None:
                value = inner(row)
                return None if value is None else not value

            return negated
        return self.primary()

    def primary(self) -> Condition:
        if self.accept("op", "("):
            inner = self.disjunction()
            self.expect("op", ")")
            return inner
        if self.accept("kw", "is_defined"):
            self.expect("op", "(")
            path = self.path()
            self.expect("op", ")")
            return lambda row: _lookup(row, path) is not _MISSING
        left = self.operand()
        token = self.take()
        negate = False
        if token.kind == "kw" and token.text == "not":
            negate = True
            token = self.take()
        if token.kind == "kw" and token.text == "nin" and not negate:
            negate = True
            token = _Token("kw", "in")
        if token.kind == "kw" and token.text == "in":
            # The hub writes lists in brackets; parentheses are accepted as in SQL.
            closing = "]" if self.accept("op", "[") else ")"
            if closing == ")":
                self.expect("op", "(")
            values = [self.literal()]
            while self.accept("op", ","):
                values.append(self.literal())
            self.expect("op", closing)

            def member(row: Row) -> bool | None:
                value = left(row)
                if value is _MISSING:
                    return None
                found = any(_compare("=", value, option) for option in values)
                return not found if negate else found

            return member
        if negate or token.kind != "op" or token.text not in _COMPARE:
            raise _syntax(f"expected a comparison but found {token.text or 'end of query'!r}")
        right = self.operand()
        op = token.text
        return lambda row: _compare(op, left(row), right(row))

    def path(self) -> tuple[str, ...]:
        token = self.expect("name")
        return tuple(token.text.split("."))

    def literal(self) -> Any:
        token = self.take()
        if token.kind in ("num", "str"):
            return token.value
        if token.kind == "kw" and token.text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[token.text]
        raise _syntax(f"expected a constant but found {token.text or 'end of query'!r}")

    def operand(self) -> Operand:
        token = self.peek()
        if token.kind == "name":
            path = self.path()
            return lambda row: _lookup(row, path)
        value = self.literal()
        return lambda row: value


def parse(text: str) -> Query:
    if len(text) > MAX_QUERY_LENGTH:
        raise errors.argument_invalid("the query is too long")
    try:
        return _Parser(text).query()
    except RecursionError:
        raise _syntax("the query is nested too deeply") from None

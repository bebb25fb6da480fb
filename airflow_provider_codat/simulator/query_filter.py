"""Codat's query language: parse once per request, then filter and sort records.

Grammar (recursive descent)::

    expr      := and_expr ( "||" and_expr )*
    and_expr  := primary ( "&&" primary )*
    primary   := "{" expr "}" | condition
    condition := path op value          op: = != ~ > >= < <=

A value runs up to the next ``&&``, ``||`` or ``}``. Values compare as dates when both sides look like
ISO dates, as numbers when both are numeric, as booleans against ``true``/``false``, else as strings.
``~`` (contains) works on strings only; the ordering operators on numbers and dates only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_codat.simulator.clock import date_ticks

MAX_QUERY_LENGTH = 2048
MALFORMED = "Error parsing query - Malformed query."

_PATH_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*(!=|>=|<=|=|~|>|<)")
_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?$")


class QueryError(ValueError):
    """A query Codat would reject with 400."""

    def __init__(self, detail: str = MALFORMED) -> None:
        super().__init__(detail)


@dataclass(frozen=True)
class Condition:
    path: tuple[str, ...]
    op: str
    value: str

    def __call__(self, record: dict) -> bool:
        field = resolve(record, self.path)
        return compare(field, self.op, self.value)


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Predicate, ...]

    def __call__(self, record: dict) -> bool:
        return all(part(record) for part in self.parts)


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Predicate, ...]

    def __call__(self, record: dict) -> bool:
        return any(part(record) for part in self.parts)


Predicate = Condition | AllOf | AnyOf


def resolve(record: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if not isinstance(record, dict):
            return None
        record = record.get(name)
    return record


def _strip_quotes(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def compare(field: Any, op: str, raw: str) -> bool:
    """Compare a record's field with a query value; raise :class:`QueryError` for an impossible pair.

    :param field: the record's value.
    :param op: the operator.
    :param raw: the query's value text.
    """
    if field is None or isinstance(field, list | dict):
        # Codat cannot query nulls or arrays: such a record never matches, except for "not equal".
        return op == "!="
    if isinstance(field, bool):
        lowered = raw.lower()
        if lowered not in ("true", "false") or op not in ("=", "!="):
            raise QueryError()
        return (field == (lowered == "true")) == (op == "=")
    if isinstance(field, int | float):
        if not _NUMBER_RE.match(raw):
            raise QueryError()
        return _ordered(field, op, float(raw))
    text = str(field)
    left_ticks = date_ticks(text)
    right_ticks = date_ticks(raw) if left_ticks is not None else None
    if left_ticks is not None and right_ticks is not None:
        return _ordered(left_ticks, op, right_ticks)
    if op == "~":
        return raw.lower() in text.lower()
    if op == "=":
        return text == raw
    if op == "!=":
        return text != raw
    raise QueryError()


def _ordered(left: float, op: str, right: float) -> bool:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    raise QueryError()  # "~" on a number or a date


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self, token: str) -> bool:
        self._skip()
        return self.text.startswith(token, self.pos)

    def parse(self) -> Predicate:
        node = self._expr()
        self._skip()
        if self.pos != len(self.text):
            raise QueryError()
        return node

    def _expr(self) -> Predicate:
        return self._chain("||", self._and_expr, AnyOf)

    def _and_expr(self) -> Predicate:
        return self._chain("&&", self._primary, AllOf)

    def _chain(
        self, operator: str, operand: Callable[[], Predicate], combine: Callable[[tuple], Predicate]
    ) -> Predicate:
        """``operand ( operator operand )*``: one operand as it is, several combined."""
        parts = [operand()]
        while self._peek(operator):
            self.pos += len(operator)
            parts.append(operand())
        return parts[0] if len(parts) == 1 else combine(tuple(parts))

    def _primary(self) -> Predicate:
        if self._peek("{"):
            self.pos += 1
            node = self._expr()
            if not self._peek("}"):
                raise QueryError()
            self.pos += 1
            return node
        return self._condition()

    def _condition(self) -> Condition:
        match = _PATH_RE.match(self.text, self.pos)
        if match is None:
            raise QueryError()
        self.pos = match.end()
        end = len(self.text)
        for stop in ("&&", "||", "}"):
            found = self.text.find(stop, self.pos)
            if found != -1:
                end = min(end, found)
        value = _strip_quotes(self.text[self.pos : end].strip())
        if not value:
            raise QueryError()
        self.pos = end
        return Condition(tuple(match.group(1).split(".")), match.group(2), value)


def parse_query(text: str | None) -> Predicate | None:
    """Parse a query string; ``None`` or blank means no filter.

    :param text: the decoded ``query`` parameter.
    :raises QueryError: malformed, or 2,048 characters or more.
    """
    if text is None or not text.strip():
        return None
    if len(text) >= MAX_QUERY_LENGTH:
        raise QueryError("Error parsing query - Query exceeds the maximum length of 2048 characters.")
    return _Parser(text).parse()


def _sort_key(value: Any) -> tuple:
    if value is None or isinstance(value, list | dict):
        return (3, 0)
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, value)
    text = str(value)
    ticks = date_ticks(text)
    if ticks is not None:
        return (1, ticks)
    return (2, text.lower())


def parse_order_by(text: str | None) -> Callable[[list[dict]], list[dict]] | None:
    """Parse ``orderBy`` (``field`` or ``-field``, dotted paths allowed) into a sorting function.

    :param text: the ``orderBy`` parameter.
    :raises QueryError: not a field path.
    """
    if text is None or not text.strip():
        return None
    text = text.strip()
    descending = text.startswith("-")
    name = text.lstrip("-").strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*", name):
        raise QueryError("Error parsing orderBy - Malformed orderBy.")
    path = tuple(name.split("."))

    def sort(records: list[dict]) -> list[dict]:
        return sorted(records, key=lambda record: _sort_key(resolve(record, path)), reverse=descending)

    return sort


def apply(records: list[dict], query: str | None, order_by: str | None) -> list[dict]:
    """Filter then sort; parsing errors surface before any record is read.

    :param records: the records.
    :param query: the ``query`` parameter.
    :param order_by: the ``orderBy`` parameter.
    """
    predicate = parse_query(query)
    sorter = parse_order_by(order_by)
    selected = records if predicate is None else [record for record in records if predicate(record)]
    return sorter(selected) if sorter else list(selected)

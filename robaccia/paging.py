"""Keyset paging: pages of a table by any column, at any depth, in constant time.

A list request says ``?limit=``, ``?sort=column`` (``-column`` descending)
and, after the first page, ``?after=`` or ``?before=`` with a cursor from a
``next`` or ``prev`` link. The page is the rows after (or before) the
cursor's row in the sort order, ties broken by the primary key, nulls last;
no OFFSET, so a deep page costs what the first one does::

    >>> from sqlalchemy import Column, Integer, MetaData, String, Table
    >>> t = Table('people', MetaData(), Column('id', Integer, primary_key=True),
    ...           Column('name', String(50)))
    >>> q = PageQuery.parse({'sort': '-name', 'limit': '2'}, t, page_size=50, max_page_size=500)
    >>> q.limit, q.column.name, q.descending, q.cursor
    (2, 'name', True, None)
    >>> c = Cursor(key=7, position=10, is_null=False, value='Ada')
    >>> Cursor.decode(c.encode(), t.c.id, t.c.name) == c
    True

A cursor holds the key of the row it points at, its position (for "rows
51-100") and the start of its sort value. The sort value is read from the
row itself when the next page is asked for (so a float that the database
rounds, or a long text, compares exactly), and the copy in the cursor is used
only if that row is gone. Text is sorted by its first :data:`SORT_PREFIX`
characters (then by key): MariaDB sorts long values by a prefix anyway, and a
cursor stays small whatever the data.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import and_, cast, func, literal, or_, select
from sqlalchemy import types as sqltypes
from sqlalchemy.schema import Column, Table

from robaccia.errors import BadRequest, NotFound
from robaccia.fields import Invalid, describe
from robaccia.renderers import json_default

__all__ = ["Cursor", "Page", "PageQuery", "SORT_PREFIX"]

#: Characters of a text value that sorting (and a cursor) uses.
SORT_PREFIX = 200
#: The longest cursor accepted (a cursor robaccia makes is far shorter).
MAX_CURSOR = 2000
Narrow = Callable[[Any], Any]


def sort_key(column: Column[Any]) -> Any:
    """The expression a column sorts by (the same in ORDER BY and in the cursor's comparison)."""
    ctype = column.type
    if isinstance(ctype, sqltypes.Enum):
        # NOTE: enums sort by their label on every database: MariaDB orders an
        # ENUM by declaration index but compares it with a string as text.
        return cast(column, sqltypes.String())
    if isinstance(ctype, sqltypes.String) and (ctype.length is None or ctype.length > SORT_PREFIX):
        return func.substr(column, 1, SORT_PREFIX)
    return column


def _bounded(value: Any, column: Column[Any]) -> Any:
    if isinstance(value, str) and sort_key(column) is not column and not isinstance(
            column.type, sqltypes.Enum):
        return value[:SORT_PREFIX]
    return value


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: a row's key, its position, and its sort value (or null)."""

    key: Any
    position: int
    is_null: bool = False
    value: Any = None

    def encode(self) -> str:
        raw = json.dumps([self.key, self.position, self.is_null, self.value], default=json_default,
                         separators=(",", ":"), ensure_ascii=True)
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, pk: Column[Any], column: Column[Any]) -> Cursor:
        """Read a cursor; anything that is not one robaccia made is a 404 (no such page)."""
        try:
            if len(text) > MAX_CURSOR:
                raise ValueError("too long")
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            key, position, is_null, value = json.loads(raw)
            if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < 2**53:
                raise ValueError("position")
            if not isinstance(is_null, bool) or isinstance(key, (list, dict)) or isinstance(value, (list, dict)):
                raise ValueError("shape")
            for text in (key, value):
                if isinstance(text, str):
                    text.encode("utf-8")  # a lone surrogate is no character: UnicodeEncodeError
            fields = {f.name: f for f in describe(pk.table)}
            key = fields[pk.name].convert(key)
            if not is_null and column is not pk:
                value = fields[column.name].convert(value)
            return cls(key, position, is_null, None if is_null else value)
        except (ValueError, TypeError, KeyError, RecursionError, binascii.Error, Invalid,
                UnicodeError, OverflowError):
            # NOTE: 404, not 400: the address names a page this list never gave out,
            # and no cursor's shape can be told from the outside (it is opaque).
            raise NotFound("No page starts at that cursor: use the next and prev links a "
                           "page gives.") from None


@dataclass(frozen=True)
class PageQuery:
    """What a list request asks for."""

    table: Table
    limit: int
    sort: str  # as sent ("" for the default)
    column: Column[Any]
    descending: bool
    cursor: Cursor | None = None
    backwards: bool = False
    limit_sent: str = ""  # ?limit= as sent, kept in the next and previous links

    @property
    def pk(self) -> Column[Any]:
        return next(iter(self.table.primary_key.columns))

    @property
    def plain(self) -> bool:
        """Sorted by the key, ascending: the statements that can be prepared once."""
        return self.column is self.pk and not self.descending

    @classmethod
    def parse(cls, query: Mapping[str, str], table: Table, *, page_size: int,
              max_page_size: int) -> PageQuery:
        """Read ``limit``, ``sort``, ``after`` and ``before``; a bad one is a 400."""
        pk = next(iter(table.primary_key.columns))
        limit = page_size
        text = query.get("limit")
        if text is not None:
            if not text.isdigit() or not text.isascii() or not 0 < int(text) <= max_page_size:
                raise BadRequest(f"limit must be a whole number from 1 to {max_page_size}.")
            limit = int(text)
        sort = query.get("sort")
        if sort is not None and sort in ("", "-"):
            raise BadRequest("sort must name a column (prefix - for descending).")
        sort = sort or ""
        descending = sort.startswith("-")
        name = sort[1:] if descending else (sort or pk.name)
        column = table.columns.get(name) if name.isascii() else None
        if column is None:
            raise BadRequest(f"sort must name a column: {', '.join(table.columns.keys())} "
                             "(prefix - for descending).")
        # NOTE: after wins over before when both are sent (as the document says).
        after, before = query.get("after"), query.get("before")
        if after is not None:
            before = None
        token = after if after is not None else before
        cursor = Cursor.decode(token, pk, column) if token is not None else None
        return cls(table, limit, sort, column, descending, cursor, before is not None, text or "")

    def statement(self, narrow: Narrow | None = None) -> Any:
        """The SELECT for this page: ``limit + 1`` rows, to know whether there are more."""
        pk, column = self.pk, self.column
        forward_desc = self.descending != self.backwards
        stmt: Any = select(self.table)
        if column is pk:
            stmt = stmt.order_by(pk.desc() if forward_desc else pk.asc())
        else:
            key = sort_key(column)
            nulls_last = column.is_(None)
            stmt = stmt.order_by(nulls_last.desc() if self.backwards else nulls_last,
                                 key.desc() if forward_desc else key.asc(),
                                 pk.desc() if forward_desc else pk.asc())
        cursor = self.cursor
        if cursor is not None:
            stmt = stmt.where(self._after(cursor, forward_desc, narrow))
        stmt = stmt.limit(self.limit + 1)
        return narrow(stmt) if narrow is not None else stmt

    def _after(self, cursor: Cursor, forward_desc: bool, narrow: Narrow | None) -> Any:
        pk, column = self.pk, self.column
        greater = operator.lt if forward_desc else operator.gt
        if column is pk:
            return greater(pk, cursor.key)
        if cursor.is_null:
            if self.backwards:  # walking back: every non-null row, and the nulls before this key
                return or_(column.is_not(None), and_(column.is_(None), greater(pk, cursor.key)))
            return and_(column.is_(None), greater(pk, cursor.key))
        key = sort_key(column)
        value = cursor.value
        stored = select(key).where(pk == cursor.key)
        stored = narrow(stored) if narrow is not None else stored
        # NOTE: compare with the row's own value, as the database holds it (a
        # single-precision float, a long text): the cursor's copy only stands
        # in when that row is gone.
        bound = func.coalesce(stored.scalar_subquery(),
                              literal(value.name if isinstance(value, enum.Enum) else value, key.type))
        after = or_(greater(key, bound), and_(key == bound, greater(pk, cursor.key)))
        if self.backwards:
            return and_(column.is_not(None), after)
        return or_(column.is_(None), after)

    def cursor_for(self, row: Mapping[str, Any], position: int) -> str:
        """The cursor of a row at a position."""
        value = row[self.column.name]
        return Cursor(row[self.pk.name], position, value is None,
                      None if self.column is self.pk else _bounded(value, self.column)).encode()

    def page(self, rows: Sequence[dict[str, Any]], base: str) -> Page:
        """Cut the rows read into a page, with links to the next and previous ones."""
        more = len(rows) > self.limit
        data = list(rows[: self.limit])
        if self.backwards:
            data.reverse()
        cursor = self.cursor
        if cursor is None:
            start = 1
        elif self.backwards:
            start = max(1, cursor.position - len(data))
        else:
            start = cursor.position + 1
        has_next = more if not self.backwards else True
        has_prev = cursor is not None if not self.backwards else more
        extra = {k: v for k, v in (("sort", self.sort), ("limit", self.limit_sent)) if v}
        next_url = prev_url = None
        if data and has_next:
            next_url = base + "?" + urlencode({**extra, "after": self.cursor_for(data[-1], start + len(data) - 1)})
        if data and has_prev:
            prev_url = base + "?" + urlencode({**extra, "before": self.cursor_for(data[0], start)})
        return Page(data, next_url, prev_url, start if data else 0, start + len(data) - 1 if data else 0)


@dataclass(frozen=True)
class Page:
    """A page of rows and the links around it; ``start``-``end`` are their positions (1-based)."""

    data: list[dict[str, Any]]
    next_url: str | None
    prev_url: str | None
    start: int
    end: int

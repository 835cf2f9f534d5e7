"""The table gateway: every statement a model collection runs, and the hook they pass.

:class:`TableGateway` holds one table on one engine. :meth:`TableGateway.rows`
gives a :class:`Rows`, the only way a collection reaches its rows: every
statement it builds (a row, a page, a count, an insert, an update or delete
that checks a precondition) passes through the ``narrow`` function first, so
a collection's ``query`` hook cannot be bypassed by a handler that forgets
it::

    >>> from sqlalchemy import Column, Integer, MetaData, String, Table
    >>> from robaccia.database import make_engine
    >>> meta = MetaData()
    >>> notes = Table('notes', meta, Column('id', Integer, primary_key=True), Column('owner', String(20)))
    >>> engine = make_engine('sqlite://')
    >>> meta.create_all(engine)
    >>> gateway = TableGateway(notes, engine)
    >>> gateway.rows().insert({'owner': 'ada'})
    {'id': 1, 'owner': 'ada'}
    >>> mine = gateway.rows(lambda statement: statement.where(notes.c.owner == 'grace'))
    >>> print(mine.get(1))
    None

Statements of a request that need several run on one connection, in one
transaction for writes. With no hook, the row, page and insert statements are
compiled once and run through :mod:`robaccia.prepared` where that path is
allowed; with a hook they are built per request (SQLAlchemy caches their
compilation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update

from robaccia.conditional import etag_of, strong_match
from robaccia.database import connection
from robaccia.errors import NotFound, RobacciaError
from robaccia.fields import describe
from robaccia.prepared import Prepared, fast_path_allowed

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.schema import Table

    from robaccia.paging import PageQuery

__all__ = ["Changed", "MAX_PREPARED_INSERTS", "Rows", "TableGateway"]

#: Compiled INSERTs kept per gateway (one per set of columns a create sends).
MAX_PREPARED_INSERTS = 64
Narrow = Callable[[Any], Any]


class Changed(RobacciaError):
    """A conditional write found the row changed since the client read it."""

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__("The row changed.")
        self.row = row


class TableGateway:
    """All SQL of one table on one engine.

    :param fast: allow the prepared-statement path (when the engine allows it too).
    """

    def __init__(self, table: Table, engine: Engine, *, fast: bool = True) -> None:
        self.table = table
        self.engine = engine
        self.pk = next(iter(table.primary_key.columns))
        fields = describe(table)
        self.comparable = [table.columns[f.name] for f in fields if f.comparable and not f.primary_key]
        # PERF: reads run in autocommit mode on PostgreSQL: one round trip, no
        # BEGIN/ROLLBACK (SQLite reads open no transaction anyway, and MariaDB
        # would pay a SET).
        autocommit = engine.dialect.name == "postgresql"
        self.reader = engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit else engine
        self.returning = bool(getattr(engine.dialect, "insert_returning", False))
        self.fast = fast and fast_path_allowed(engine)
        pk = self.pk
        self._one = select(table).where(pk == bindparam("pk"))
        if self.fast:
            self._q_one = Prepared(engine, self._one, autocommit=autocommit)
            self._q_first = Prepared(engine, select(table).order_by(pk).limit(bindparam("limit")),
                                     autocommit=autocommit)
            self._q_after = Prepared(engine, select(table).where(pk > bindparam("cursor"))
                                     .order_by(pk).limit(bindparam("limit")), autocommit=autocommit)
        self._inserts: dict[tuple[tuple[str, ...], bool], Prepared] = {}
        self._plain = Rows(self, None)

    def rows(self, narrow: Narrow | None = None) -> Rows:
        """The rows as one request may see them: every statement passes ``narrow``."""
        return self._plain if narrow is None else Rows(self, narrow)

    def inserter(self, keys: tuple[str, ...], whole: bool = True) -> Prepared:
        """The INSERT for one set of columns, compiled on first use.

        It returns the row (``whole``) or just the key where the database
        has RETURNING; otherwise the driver's lastrowid tells the key.
        """
        prepared = self._inserts.get((keys, whole))
        if prepared is None:
            columns = self.table.columns
            stmt: Any = insert(self.table).values({k: bindparam(k, type_=columns[k].type) for k in keys})
            if self.returning and whole:
                stmt = stmt.returning(*columns)
            elif self.returning and self.engine.dialect.name == "postgresql":
                stmt = stmt.returning(self.pk)  # NOTE: psycopg has no lastrowid
            if len(self._inserts) >= MAX_PREPARED_INSERTS:
                # NOTE: bodies choose the column sets; never let them grow this without bound
                self._inserts.clear()
            prepared = self._inserts[(keys, whole)] = Prepared(self.engine, stmt)
        return prepared


class Rows:
    """A table's rows as one request sees them (through its ``narrow`` hook)."""

    __slots__ = ("gateway", "narrow", "_fast")

    def __init__(self, gateway: TableGateway, narrow: Narrow | None) -> None:
        self.gateway = gateway
        self.narrow = narrow
        self._fast = gateway.fast and narrow is None

    def _n(self, statement: Any) -> Any:
        return self.narrow(statement) if self.narrow is not None else statement

    def _one(self, pk: Any) -> Any:
        return self._n(select(self.gateway.table).where(self.gateway.pk == pk))

    def get(self, pk: Any) -> dict[str, Any] | None:
        """Return the row with this key, or None."""
        if self._fast:
            return self.gateway._q_one.first({"pk": pk})
        with connection(self.gateway.reader) as conn:
            row = conn.execute(self._one(pk)).first()
        return None if row is None else row._asdict()

    def page(self, query: PageQuery) -> list[dict[str, Any]]:
        """Return the rows of a page (``limit + 1`` of them when there are more)."""
        gateway = self.gateway
        if self._fast and query.plain and not query.backwards:
            if query.cursor is None:
                return gateway._q_first.all({"limit": query.limit + 1})
            return gateway._q_after.all({"cursor": query.cursor.key, "limit": query.limit + 1})
        with connection(gateway.reader) as conn:
            return [r._asdict() for r in conn.execute(query.statement(self.narrow))]

    def count(self, limit: int | None = None) -> int:
        """Count the rows (up to ``limit``: a bounded count stays cheap on big tables)."""
        inner = self._n(select(self.gateway.pk))
        if limit is not None:
            inner = inner.limit(limit)
        with connection(self.gateway.reader) as conn:
            return int(conn.execute(select(func.count()).select_from(inner.subquery())).scalar_one())

    def insert(self, values: dict[str, Any], *, whole: bool = True) -> dict[str, Any]:
        """Insert a row and return it as stored (defaults and key included).

        ``whole=False`` returns only its key (``{primary: key}``), which the
        database can tell without reading the row back.
        """
        gateway = self.gateway
        pk = gateway.pk.name
        if self._fast and (gateway.returning or not whole):
            # PERF: one INSERT per set of columns, compiled once (RETURNING the
            # row where the database can; else the driver's lastrowid).
            outcome = gateway.inserter(tuple(sorted(values)), whole).execute(values)
            if outcome.rows:
                return outcome.rows[0]
            key = values[pk] if pk in values else outcome.lastrowid
            return {pk: key}
        with connection(gateway.engine, begin=True) as conn:
            stmt: Any = insert(gateway.table).values(values)
            if gateway.returning:
                return conn.execute(stmt.returning(*gateway.table.columns)).one()._asdict()
            inserted = conn.execute(stmt).inserted_primary_key
            key = inserted[0] if inserted else values.get(pk)
            if not whole:
                return {pk: key}
            row = conn.execute(select(gateway.table).where(gateway.pk == key)).first()
            return row._asdict() if row is not None else dict(values, **{pk: key})

    def _guard(self, conn: Any, pk: Any, precondition: str | None) -> Any:
        """The WHERE clause of a write: the key, and the row as read if it is conditional."""
        gateway = self.gateway
        where = gateway.pk == pk
        if precondition is None:
            return where
        current = conn.execute(self._one(pk)).first()
        if current is None:
            raise NotFound()
        row = current._asdict()
        if not strong_match(precondition, etag_of(row)):
            raise Changed(row)
        # NOTE: compare every comparable column with what was just read, in the
        # statement itself: a writer that got in between makes it miss.
        return and_(where, *[c.is_not_distinct_from(row[c.name]) for c in gateway.comparable])

    def _missed(self, conn: Any, pk: Any) -> Changed | NotFound:
        current = conn.execute(self._one(pk)).first()
        return NotFound() if current is None else Changed(current._asdict())

    def update_if(self, pk: Any, values: dict[str, Any], precondition: str | None) -> dict[str, Any]:
        """Update a row (if it still matches ``precondition``) and return it.

        :raises NotFound: no such row (for this request).
        :raises Changed: the row no longer matches the precondition.
        """
        gateway = self.gateway
        with connection(gateway.engine, begin=True) as conn:
            where = self._guard(conn, pk, precondition)
            if values:
                done = conn.execute(self._n(update(gateway.table).where(where).values(values))).rowcount
            else:
                done = len(conn.execute(self._n(select(gateway.pk).where(where))).all())
            if not done:
                raise self._missed(conn, pk)
            row = conn.execute(self._one(pk)).first()
            if row is None:  # the change moved it out of this request's view
                raise NotFound()
            return row._asdict()

    def delete_if(self, pk: Any, precondition: str | None) -> None:
        """Delete a row (if it still matches ``precondition``).

        :raises NotFound: no such row (for this request).
        :raises Changed: the row no longer matches the precondition.
        """
        gateway = self.gateway
        with connection(gateway.engine, begin=True) as conn:
            where = self._guard(conn, pk, precondition)
            if not conn.execute(self._n(delete(gateway.table).where(where))).rowcount:
                raise self._missed(conn, pk)

    def taken(self, values: dict[str, Any], pk: Any) -> dict[str, str]:
        """Name the unique columns whose new value another row already has."""
        gateway = self.gateway
        errors: dict[str, str] = {}
        with connection(gateway.reader) as conn:
            for column in gateway.table.columns:
                unique = column.unique or (column.primary_key and column.name in values)
                if unique and values.get(column.name) is not None:
                    query = select(column).where(column == values[column.name])
                    if pk is not None:
                        query = query.where(gateway.pk != pk)
                    if conn.execute(query.limit(1)).first() is not None:
                        errors[column.name] = "This value is already taken."
        return errors

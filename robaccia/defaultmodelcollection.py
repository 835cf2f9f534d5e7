"""DefaultModelCollection: list, show, create, edit and delete a SQLAlchemy table.

The handlers a subclass defines are the URIs it serves (remove one to stop
serving it); each that returns ``None`` gets the default behaviour for its name:

=========================  =================================================
``GET /v/`` list           a page of rows (keyset paging, ``?after=``, ``?sort=``)
``GET /v/1`` retrieve      the row, with an ETag (404 if absent, 304 if unchanged)
``GET /v/;new_form``       the empty form
``GET /v/1;edit_form``     the form with the row and its ETag
``POST /v/`` create        validate, insert, 303 to the member (JSON: 201 + row)
``PUT /v/1`` update        validate, update, 303 to the member (JSON: 200 + row)
``DELETE /v/1`` delete     delete, 303 to the collection (JSON: 204)
=========================  =================================================

HTML forms send PUT and DELETE as POST with a ``_method`` field::

    >>> from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine
    >>> from robaccia.renderers import render
    >>> from robaccia.parsers import form_parser
    >>> from robaccia.testing import call, make_environ
    >>> meta = MetaData()
    >>> notes = Table('notes', meta, Column('id', Integer, primary_key=True),
    ...               Column('text', String(100), nullable=False))
    >>> engine = create_engine('sqlite://')
    >>> meta.create_all(engine)
    >>> class Notes(DefaultModelCollection):
    ...     def create(self, environ, start_response):
    ...         pass  # None: the default behaviour
    >>> app = Notes('json', render, form_parser, notes, engine=engine)
    >>> def env(method, id=None, **kw):
    ...     return make_environ(method, **kw, **{'wsgiorg.routing_args': ((), {'view': 'notes', 'id': id})})
    >>> status, headers, body = call(app, environ=env('POST', json={'text': 'hello'}))
    >>> status, dict(headers)['Location'], body
    ('201 Created', '/notes/1', b'{"id": 1, "text": "hello"}')
    >>> import json
    >>> json.loads(call(app, environ=env('POST', json={'text': None}))[2])['errors']
    {'text': 'This field is required.'}

Every write is one transaction, rolled back on any error. Unique and
foreign-key violations are 409; invalid values 422 (HTML forms are shown
again with the messages beside their fields). ``If-Match`` (or the edit
form's ``_etag`` field) makes an update or delete conditional, checked in the
statement's WHERE clause so that two concurrent writers cannot both win.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from sqlalchemy import and_, bindparam, cast, delete, insert, literal, or_, select, true, update
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sqltypes

from robaccia.defaultcollection import DefaultCollection, template_name
from robaccia.errors import (
    BadRequest,
    Conflict,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    NotModified,
    PreconditionFailed,
    SeeOther,
    ServiceUnavailable,
    UnprocessableEntity,
)
from robaccia.fields import Field, Invalid, describe, validate
from robaccia.parsers import DEFAULT_LIMITS, FORM, MULTIPART, Limits, parse_body
from robaccia.prepared import Prepared
from robaccia.renderers import json_default

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.schema import Table

__all__ = ["DefaultModelCollection", "collection_path", "flash"]

_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
#: Compiled INSERTs kept per collection (one per set of columns a create sends).
MAX_PREPARED_INSERTS = 64
_OVERRIDES = ("PUT", "DELETE")


def flash(environ: WSGIEnvironment, message: str) -> None:
    """Queue a message for the next page the browser shows."""
    environ.setdefault("robaccia.flash_out", []).append(message)


def collection_path(environ: WSGIEnvironment) -> str:
    """Return the absolute path of the collection this request addressed."""
    script = environ.get("SCRIPT_NAME", "")
    noun = environ.get("robaccia.noun")
    id = environ.get("robaccia.id")
    if noun and script.endswith(";" + noun):
        script = script[: -len(noun) - 1]
    if id and script.endswith(id):
        script = script[: -len(id)]
    if not script.strip("/"):
        view = environ.get("wsgiorg.routing_args", ((), {}))[1].get("view")
        script = f"/{view}/" if view else "/"
    return script if script.endswith("/") else script + "/"


def make_etag(row: dict[str, Any]) -> str:
    """Return a strong ETag for a row's values."""
    digest = hashlib.blake2b(repr(tuple(row.values())).encode(), digest_size=12)
    return '"' + digest.hexdigest() + '"'


def etag_matches(header: str, etag: str) -> bool:
    """Tell whether an If-Match / If-None-Match header names this ETag."""
    header = header.strip()
    if header == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


class DefaultModelCollection(DefaultCollection):
    """A collection over one SQLAlchemy ``Table``.

    :param ext: ``"html"`` or ``"json"``.
    :param renderer: the renderer (:func:`robaccia.render`).
    :param parser: the parser for bodies sent without a Content-Type.
    :param table: the table; its first primary-key column addresses members.
    :param engine: the SQLAlchemy engine.
    :param page_size: rows per list page (``?limit=`` may ask for up to ``max_page_size``).
    :param limits: body limits (else the project's, else the defaults).
    """

    def __init__(
        self,
        ext: str,
        renderer: Callable[..., Iterable[bytes]],
        parser: Callable[..., dict[str, Any]] | None,
        table: Table | None,
        engine: Engine | None = None,
        *,
        page_size: int = 50,
        max_page_size: int = 500,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(ext, renderer)
        self.parser = parser
        self.table = table
        self.engine = engine
        self.page_size = page_size
        self.max_page_size = max_page_size
        self.limits = limits
        if table is not None:
            self._prepare(table)

    # --- construction: everything per table is built once ------------------

    def _prepare(self, table: Table) -> None:
        self._table = table
        self.fields: list[Field] = describe(table)
        self.columns = {c.name: c for c in table.columns}
        pks = list(table.primary_key.columns)
        if not pks:
            raise ValueError(f"Table {table.name!r} has no primary key")
        self.pk = pks[0]
        self.primary = self.pk.name
        self.pk_field = next(f for f in self.fields if f.name == self.primary)
        self.title = table.name.replace("_", " ").capitalize()
        self.item = _singular(self.title)
        pk = self.pk
        self._one = select(table).where(pk == bindparam("pk"))
        self._first = select(table).order_by(pk).limit(bindparam("limit"))
        self._after = select(table).where(pk > bindparam("cursor")).order_by(pk).limit(bindparam("limit"))
        self._int_pk = isinstance(pk.type, sqltypes.Integer)
        self._inserts: dict[tuple[str, ...], Prepared] = {}
        if self.engine is not None:
            engine = self.engine
            # PERF: reads run in autocommit mode on PostgreSQL: one round trip,
            # no BEGIN/ROLLBACK (psycopg switches it with no statement; SQLite
            # reads open no transaction anyway, and MariaDB would pay a SET).
            autocommit = engine.dialect.name == "postgresql"
            self._reader = engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit else engine
            self._q_one = Prepared(engine, self._one, autocommit=autocommit)
            self._q_first = Prepared(engine, self._first, autocommit=autocommit)
            self._q_after = Prepared(engine, self._after, autocommit=autocommit)
            # NOTE: an INSERT that reports the new key: RETURNING where the
            # driver has no lastrowid (PostgreSQL).
            self._returning = engine.dialect.name == "postgresql"

    def _engine(self) -> Engine:
        """The engine, which every database handler needs."""
        if self.engine is None:
            raise RuntimeError("DefaultModelCollection needs engine= to reach the database")
        return self.engine

    def _read(self) -> Connection:
        self._engine()
        return self._reader.connect()

    def _inserter(self, keys: tuple[str, ...]) -> Prepared:
        """The INSERT for one set of columns, compiled on first use."""
        prepared = self._inserts.get(keys)
        if prepared is None:
            engine = self._engine()
            stmt = insert(self._table).values({k: bindparam(k, type_=self.columns[k].type) for k in keys})
            if self._returning:
                stmt = stmt.returning(self.pk)
            if len(self._inserts) >= MAX_PREPARED_INSERTS:
                # NOTE: bodies choose the column sets; never let them grow this without bound
                self._inserts.clear()
            prepared = self._inserts[keys] = Prepared(engine, stmt)
        return prepared

    def _write(self) -> Any:
        return self._engine().begin()

    # --- request plumbing ---------------------------------------------------

    def respond(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        environ["robaccia.ext"] = self.ext
        method = environ.get("REQUEST_METHOD", "GET")
        if method in _UNSAFE:
            limits = self.limits or environ.get("robaccia.limits") or DEFAULT_LIMITS
            values = dict(parse_body(environ, self.parser, limits))
            is_form = environ.get("robaccia.form_type") in (FORM, MULTIPART)
            override = values.pop("_method", None) if is_form else None
            # NOTE: the override is taken only from a POSTed form body and only
            # to PUT or DELETE; anything else leaves the method alone.
            if method == "POST" and isinstance(override, str) and override.upper() in _OVERRIDES:
                environ["robaccia.original_method"] = method
                environ["REQUEST_METHOD"] = override.upper()
            environ["robaccia.values"] = values
        # PERF: a plain try, not a context manager: this runs on every request.
        try:
            return super(DefaultCollection, self).respond(environ, start_response)
        except sa_exc.IntegrityError as exc:
            raise Conflict("That change conflicts with existing data: a value that must be "
                           "unique is taken, or a referenced row does not exist.") from exc
        except sa_exc.DataError as exc:
            raise UnprocessableEntity({}, "A value does not fit its column.") from exc
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                sa_exc.DisconnectionError) as exc:
            if "no such table" in str(exc) or "doesn't exist" in str(exc):
                raise
            raise ServiceUnavailable("The database is not reachable right now.") from exc

    def finish(
        self, environ: WSGIEnvironment, start_response: StartResponse, name: str, result: Any
    ) -> Any:
        if result is not None:
            return super().finish(environ, start_response, name, result)
        if self.table is None:
            raise NotFound()
        action = getattr(self, "_default_" + name, None)
        if action is not None:
            return action(environ, start_response)
        method = environ.get("REQUEST_METHOD")
        if method in ("GET", "HEAD"):
            vars = {"id": environ.get("robaccia.id")}
            if environ.get("robaccia.id"):
                row = self._fetch(environ)
                vars.update(self._member_vars(row, make_etag(row)))
            return self._render(environ, start_response, name, vars)
        raise MethodNotAllowed(["GET", "HEAD", "OPTIONS"])

    def _render(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        name: str,
        vars: dict[str, Any],
        status: str = "200 OK",
        headers: list[tuple[str, str]] | None = None,
    ) -> Any:
        if self.ext == "html":
            vars.setdefault("primary", self.primary)
            vars.setdefault("fields", self.fields)
            vars.setdefault("title", self.title)
            vars.setdefault("item", self.item)
            base = collection_path(environ)
            vars.setdefault("collection_url", base)
            vars.setdefault("member_url", lambda pk: base + _quote_id(pk))
            vars.setdefault("message", "")
        template = template_name(environ, name, self.ext)
        return self.renderer(environ, start_response, template, vars, headers, status)

    def _member_url(self, environ: WSGIEnvironment, pk: Any) -> str:
        return collection_path(environ) + _quote_id(pk)

    # --- ids and rows ---------------------------------------------------------

    def _pk_value(self, raw: str) -> Any:
        """Convert an id from the URL; an id that cannot exist is a 404."""
        if self._int_pk:
            if not raw.isdigit() or not raw.isascii() or len(raw) > 19:
                raise NotFound()
        try:
            return self.pk_field.convert(raw)
        except Invalid:
            raise NotFound() from None

    def _fetch(self, environ: WSGIEnvironment) -> dict[str, Any]:
        pk = self._pk_value(environ["robaccia.id"])
        self._engine()
        row = self._q_one.first({"pk": pk})
        if row is None:
            raise NotFound()
        return row

    def _member_vars(self, row: dict[str, Any], etag: str) -> dict[str, Any]:
        """The template variables of a member: the row itself for JSON."""
        if self.ext == "json":
            return row
        return {"row": row, "primary": self.primary, "etag": etag}

    # --- the defaults ---------------------------------------------------------

    def _default_retrieve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        row = self._fetch(environ)
        etag = make_etag(row)
        inm = environ.get("HTTP_IF_NONE_MATCH")
        if inm and etag_matches(inm, etag):
            raise NotModified(headers=[("ETag", etag)])
        vars = self._member_vars(row, etag)
        return self._render(environ, start_response, "retrieve", vars, headers=[("ETag", etag)])

    def _default_get_edit_form(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        row = self._fetch(environ)
        etag = make_etag(row)
        vars = {"row": row, "primary": self.primary, "etag": etag, "errors": {}}
        return self._render(environ, start_response, "get_edit_form", vars, headers=[("ETag", etag)])

    def _default_get_new_form(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        vars = {"row": {}, "primary": self.primary, "errors": {}, "data": [],
                "meta": list(self.columns)}
        return self._render(environ, start_response, "get_new_form", vars)

    def _default_list(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        page = self._page(environ)
        if self.ext == "json":
            vars: dict[str, Any] = {"data": page["data"], "next": page["next_url"],
                                    "prev": page["prev_url"]}
        else:
            vars = dict(page, primary=self.primary, meta=list(self.columns))
        links = [f'<{page[k]}>; rel="{rel}"' for k, rel in (("next_url", "next"), ("prev_url", "prev"))
                 if page[k]]
        headers = [("Link", ", ".join(links))] if links else None
        return self._render(environ, start_response, "list", vars, headers=headers)

    def _default_create(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        values = environ.get("robaccia.values", {})
        is_form = environ.get("robaccia.form_type") in (FORM, MULTIPART)
        clean, errors = validate(self.fields, values, creating=True, form=is_form)
        if errors:
            return self._invalid(environ, start_response, "get_new_form", values, errors, 422)
        try:
            # PERF: one INSERT per set of columns, compiled once and run on the
            # pool's connection (robaccia.prepared).
            keys = tuple(sorted(clean))
            outcome = self._inserter(keys).execute(clean)
            if outcome.rows:
                pk = outcome.rows[0][self.primary]
            elif self.primary in clean:
                pk = clean[self.primary]
            else:
                pk = outcome.lastrowid
            if self.ext == "json":
                row = self._q_one.first({"pk": pk}) or dict(clean, **{self.primary: pk})
        except sa_exc.IntegrityError:
            return self._integrity(environ, start_response, "get_new_form", values, clean, None)
        location = self._member_url(environ, pk)
        if self.ext == "json":
            headers = [("Location", location), ("ETag", make_etag(row))]
            return self._render(environ, start_response, "create", row, "201 Created", headers)
        flash(environ, f"{self.item} {pk} was created.")
        return SeeOther(location)(environ, start_response)

    def _precondition(self, environ: WSGIEnvironment) -> str | None:
        header = environ.get("HTTP_IF_MATCH")
        if header is None:
            etag = environ.get("robaccia.values", {}).get("_etag")
            header = etag if isinstance(etag, str) and etag else None
        return header

    def _guarded(self, conn: Connection, environ: WSGIEnvironment, pk: Any) -> Any:
        """Return the WHERE clause for a write, checking any precondition."""
        where = self.pk == pk
        precondition = self._precondition(environ)
        if precondition is None:
            return where
        current = conn.execute(self._one, {"pk": pk}).first()
        if current is None:
            raise NotFound()
        row = current._asdict()
        if not etag_matches(precondition, make_etag(row)):
            raise _Changed(row)
        # NOTE: compare every comparable column with what was just read, in
        # the statement itself: a writer that got in between makes it miss.
        checks = [self.columns[f.name].is_not_distinct_from(row[f.name])
                  for f in self.fields if f.comparable and not f.primary_key]
        return and_(where, *checks)

    def _default_update(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        pk = self._pk_value(environ["robaccia.id"])
        values = environ.get("robaccia.values", {})
        is_form = environ.get("robaccia.form_type") in (FORM, MULTIPART)
        clean, errors = validate(self.fields, values, creating=False, form=is_form)
        if errors:
            shown = dict(values, **{self.primary: environ["robaccia.id"]})
            return self._invalid(environ, start_response, "get_edit_form", shown, errors, 422)
        try:
            with self._write() as conn:
                where = self._guarded(conn, environ, pk)
                if clean:
                    done = conn.execute(update(self._table).where(where).values(clean)).rowcount
                else:
                    done = len(conn.execute(select(self.pk).where(where)).all())
                if not done:
                    current = conn.execute(self._one, {"pk": pk}).first()
                    if current is None:
                        raise NotFound()
                    raise _Changed(current._asdict())
                row = conn.execute(self._one, {"pk": pk}).first()._asdict()  # type: ignore[union-attr]
        except _Changed as changed:
            return self._conflict(environ, start_response, changed.row)
        except sa_exc.IntegrityError:
            shown = dict(values, **{self.primary: environ["robaccia.id"]})
            return self._integrity(environ, start_response, "get_edit_form", shown, clean, pk)
        if self.ext == "json":
            return self._render(environ, start_response, "update", row, "200 OK",
                                [("ETag", make_etag(row))])
        flash(environ, f"{self.item} {row[self.primary]} was saved.")
        return SeeOther(self._member_url(environ, row[self.primary]))(environ, start_response)

    def _default_delete(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        pk = self._pk_value(environ["robaccia.id"])
        try:
            with self._write() as conn:
                where = self._guarded(conn, environ, pk)
                if not conn.execute(delete(self._table).where(where)).rowcount:
                    current = conn.execute(self._one, {"pk": pk}).first()
                    if current is None:
                        raise NotFound()
                    raise _Changed(current._asdict())
        except _Changed as changed:
            return self._conflict(environ, start_response, changed.row)
        if self.ext == "json":
            start_response("204 No Content", [])
            return []
        flash(environ, f"{self.item} {environ['robaccia.id']} was deleted.")
        return SeeOther(collection_path(environ))(environ, start_response)

    # --- failures shown to people --------------------------------------------

    def _invalid(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        form: str,
        values: dict[str, Any],
        errors: dict[str, str],
        code: int,
        message: str = "Please correct the fields marked below.",
    ) -> Any:
        if self.ext == "json":
            if code == 409:
                raise Conflict(message, errors=errors)
            raise UnprocessableEntity(errors)
        vars = {"row": values, "errors": errors, "primary": self.primary,
                "etag": values.get("_etag"), "message": message}
        status = "422 Unprocessable Content" if code == 422 else "409 Conflict"
        return self._render(environ, start_response, form, vars, status)

    def _integrity(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        form: str,
        values: dict[str, Any],
        clean: dict[str, Any],
        pk: Any,
    ) -> Any:
        """Explain a unique violation field by field, where the table can tell."""
        errors: dict[str, str] = {}
        with self._read() as conn:
            for column in self.table.columns:  # type: ignore[union-attr]
                unique = column.unique or (column.primary_key and column.name in clean)
                if unique and clean.get(column.name) is not None:
                    query = select(column).where(column == clean[column.name])
                    if pk is not None:
                        query = query.where(self.pk != pk)
                    if conn.execute(query.limit(1)).first() is not None:
                        errors[column.name] = "This value is already taken."
        message = ("Another row already has this value." if errors else
                   "That change conflicts with existing data (a referenced row may be missing).")
        return self._invalid(environ, start_response, form, values, errors, 409, message)

    def _conflict(self, environ: WSGIEnvironment, start_response: StartResponse,
                  row: dict[str, Any]) -> Any:
        etag = make_etag(row)
        if self.ext == "json" or environ.get("HTTP_IF_MATCH") is not None:
            raise PreconditionFailed(headers=[("ETag", etag)])
        vars = {"row": row, "errors": {}, "primary": self.primary, "etag": etag,
                "message": "Someone else changed this row while you were editing it. "
                           "These are the current values; make your change again."}
        return self._render(environ, start_response, "get_edit_form", vars, "409 Conflict",
                            [("ETag", etag)])

    # --- paging -------------------------------------------------------------

    def _page(self, environ: WSGIEnvironment) -> dict[str, Any]:
        try:
            query = dict(parse_qsl(environ.get("QUERY_STRING", ""), max_num_fields=20))
        except ValueError:
            raise BadRequest("Too many query parameters.") from None
        limit = self.page_size
        if "limit" in query:
            text = query["limit"]
            if not text.isdigit() or not text.isascii() or not 0 < int(text) <= self.max_page_size:
                raise BadRequest(f"limit must be a whole number from 1 to {self.max_page_size}.")
            limit = int(text)
        sort = query.get("sort") or self.primary
        desc = sort.startswith("-")
        column = self.columns.get(sort[1:] if desc else sort)
        if column is None:
            raise BadRequest(f"sort must name a column: {', '.join(self.columns)} (prefix - for descending).")
        after, before = query.get("after"), query.get("before")
        plain = column is self.pk and not desc
        base = collection_path(environ)

        self._engine()
        if plain and before is None:
            if after is None:
                rows = self._q_first.all({"limit": limit + 1})
            else:
                cursor = self._cursor_pk(after)
                rows = self._q_after.all({"cursor": cursor, "limit": limit + 1})
            backwards = False
        else:
            cursor_text = before if before is not None else after
            backwards = before is not None
            stmt = self._sorted(column, desc, cursor_text, backwards)
            with self._read() as conn:
                rows = [r._asdict() for r in conn.execute(stmt.limit(limit + 1))]
        more = len(rows) > limit
        data = rows[:limit]
        if backwards:
            data = data[::-1]
        extra = {k: v for k, v in (("sort", query.get("sort")), ("limit", query.get("limit"))) if v}
        has_next = more if not backwards else True
        has_prev = (after is not None) if not backwards else more
        next_url = prev_url = None
        if data and has_next:
            next_url = base + "?" + urlencode({**extra, "after": self._cursor(data[-1], column, plain)})
        if data and has_prev:
            prev_url = base + "?" + urlencode({**extra, "before": self._cursor(data[0], column, plain)})
        return {"data": data, "next_url": next_url, "prev_url": prev_url,
                "sort": query.get("sort") or "", "limit": limit}

    def _cursor_pk(self, text: str) -> Any:
        try:
            return self.pk_field.convert(text)
        except Invalid:
            raise BadRequest("The page cursor is not valid.") from None

    def _cursor(self, row: dict[str, Any], column: Any, plain: bool) -> str:
        if plain or column is self.pk:
            # NOTE: _sorted reads a bare key for any sort on the key (-id too).
            return str(row[self.primary])
        value = row[column.name]
        raw = json.dumps([value is None, value, row[self.primary]], default=json_default)
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _sorted(self, column: Any, desc: bool, cursor: str | None, backwards: bool) -> Any:
        pk = self.pk
        forward_desc = desc != backwards
        # NOTE: enums sort by their label on every database: MariaDB orders an
        # ENUM by declaration index but compares it with a string as text.
        sort_col = cast(column, sqltypes.String()) if isinstance(column.type, sqltypes.Enum) else column
        order_col = sort_col.desc() if forward_desc else sort_col.asc()
        order_pk = pk.desc() if forward_desc else pk.asc()
        nulls_last = column.is_(None)
        stmt: Any = select(self._table)
        if column is pk:
            stmt = stmt.order_by(order_pk)
        else:
            stmt = stmt.order_by(nulls_last.desc() if backwards else nulls_last, order_col, order_pk)
        if cursor is None:
            return stmt
        if column is pk:
            value = self._cursor_pk(cursor)
            return stmt.where(pk < value if forward_desc else pk > value)
        is_null, value, key = self._decode_cursor(cursor, column)
        if not is_null:
            # NOTE: bound with the column's type: a bare True/False cannot be compared with < or >.
            value = literal(value.name if isinstance(value, enum.Enum) else value, sort_col.type)
        greater = (lambda a, b: a < b) if forward_desc else (lambda a, b: a > b)
        if backwards:
            # walking back towards the start: nulls (last going forward) come first
            if is_null:
                cond = or_(column.is_not(None), and_(column.is_(None), greater(pk, key)))
            else:
                cond = and_(column.is_not(None), or_(greater(sort_col, value),
                                                     and_(sort_col == value, greater(pk, key))))
        elif is_null:
            cond = and_(column.is_(None), greater(pk, key))
        else:
            cond = or_(column.is_(None), greater(sort_col, value),
                       and_(sort_col == value, greater(pk, key)))
        return stmt.where(cond if cond is not None else true())

    def _decode_cursor(self, text: str, column: Any) -> tuple[bool, Any, Any]:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            is_null, value, key = json.loads(raw)
            field = next(f for f in self.fields if f.name == column.name)
            converted = None if is_null else field.convert(value)
            return bool(is_null), converted, self.pk_field.convert(key)
        except (ValueError, TypeError, binascii.Error, Invalid, StopIteration):
            raise BadRequest("The page cursor is not valid.") from None


def _quote_id(pk: Any) -> str:
    """Percent-encode a key for a URL path (most keys need nothing)."""
    text = str(pk)
    if text.isalnum() and text.isascii():
        return text
    return quote(text, safe="-._~")


def _singular(title: str) -> str:
    """Guess the singular of an English table name, for page titles."""
    if title.endswith("ies") and len(title) > 4:
        return title[:-3] + "y"
    if title.endswith("s") and not title.endswith("ss") and len(title) > 2:
        return title[:-1]
    return title


class _Changed(HTTPException):
    """Internal: the row changed since the client read it."""

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__("changed")
        self.row = row

"""Tests for robaccia.defaultmodelcollection on SQLite, PostgreSQL and MariaDB.

The ``db`` fixture (conftest.py) runs each database test on all three; the
HTML tests also run with both template engines, using the generic templates
in tests/input/templates/<engine>/fred/.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json as jsonlib
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from conftest import Recorder, unique
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Time,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Engine
from support import read_page

import robaccia
from robaccia import DefaultModelCollection, find_parser, find_renderer, render
from robaccia.parsers import Limits, form_parser, json_parser
from robaccia.renderers import Templates
from robaccia.request import Request
from robaccia.testing import call, make_environ

# --- the collection under test ------------------------------------------------------------


class Fred(DefaultModelCollection):
    """Every handler, each asking for the default behaviour."""

    def list(self, environ: Any, start_response: Any) -> None:
        pass

    def create(self, environ: Any, start_response: Any) -> None:
        pass

    def retrieve(self, environ: Any, start_response: Any) -> None:
        pass

    def update(self, environ: Any, start_response: Any) -> None:
        pass

    def delete(self, environ: Any, start_response: Any) -> None:
        pass

    def get_new_form(self, environ: Any, start_response: Any) -> None:
        pass

    def get_edit_form(self, environ: Any, start_response: Any) -> None:
        pass


@dataclass
class Response:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def code(self) -> int:
        return int(self.status.split()[0])

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(found) <= 1, f"{name} sent twice"
        return found[0] if found else None

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    def page(self) -> Any:
        return read_page(self.body)


class Client:
    """Calls a collection the way the dispatcher would for /fred/[id][;noun]."""

    def __init__(self, app: Any, templates: Templates | None = None, view: str = "fred") -> None:
        self.app = app
        self.templates = templates
        self.view = view

    def __call__(self, method: str, id: str | None = None, noun: str | None = None,
                 body: Any = None, *, json: Any = None, headers: dict[str, str] | None = None,
                 query: str = "", **extra: Any) -> Response:
        path = f"/{self.view}/{id or ''}" + (f";{noun}" if noun else "")
        routing = {"view": self.view, "id": id, "noun": noun}
        environ = make_environ(method, path, body, json=json, headers=headers, query=query,
                               **{"wsgiorg.routing_args": ((), routing)}, **extra)
        if self.templates is not None:
            Request.of(environ).templates = self.templates
        return Response(*call(self.app, environ=environ))

    def follow(self, url: str, **kw: Any) -> Response:
        """GET an absolute path this collection gave out (Location, next, prev)."""
        parts = urlsplit(url)
        prefix = f"/{self.view}/"
        assert parts.path.startswith(prefix) and not parts.netloc, url
        id, _, noun = parts.path[len(prefix):].partition(";")
        return self("GET", unquote(id) or None, noun or None, query=parts.query, **kw)


def form_of(page: Any) -> dict[str, str]:
    """What a browser submits for a rendered form: unchecked boxes are left out."""
    values = {}
    for name, attrs in page.inputs.items():
        if attrs.get("type") == "checkbox":
            if "checked" in attrs:
                values[name] = attrs.get("value") or "on"
        else:
            values[name] = attrs.get("value") or ""
    return values


def count(db: Engine, table: Table) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def rows(db: Engine, table: Table) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return [r._asdict() for r in conn.execute(select(table).order_by(table.c.id))]


def seed(db: Engine, table: Table, values: list[dict[str, Any]]) -> None:
    with db.begin() as conn:
        conn.execute(insert(table), values)


# --- tables and apps ------------------------------------------------------------------------


def people_columns() -> list[Column[Any]]:
    return [
        Column("id", Integer, primary_key=True),
        Column("name", String(50), nullable=False, unique=True),
        Column("nickname", String(30)),
        Column("age", Integer),
        Column("active", Boolean, nullable=False, default=False),
    ]


@pytest.fixture
def people(make_table: Any) -> Table:
    return make_table("people", *people_columns())


@pytest.fixture
def api(people: Table, db: Engine) -> Client:
    """The JSON collection over people."""
    return Client(Fred("json", render, json_parser, people, engine=db))


@pytest.fixture
def site(people: Table, db: Engine, templates: Templates) -> Client:
    """The HTML collection over people, with one template engine."""
    return Client(Fred("html", render, form_parser, people, engine=db), templates)


def create(api: Client, **values: Any) -> dict[str, Any]:
    response = api("POST", json=values)
    assert response.code == 201, response.body
    return response.json()  # type: ignore[no-any-return]


def test_creates_with_any_set_of_columns(db: Engine, make_table: Any) -> None:
    """Each create sends its own subset of columns: every row is stored as sent,
    and the compiled statements kept for them stay bounded."""
    from robaccia.gateway import MAX_PREPARED_INSERTS

    names = [f"c{i}" for i in range(8)]
    wide = make_table("wide", Column("id", Integer, primary_key=True),
                      *[Column(n, Integer) for n in names])
    collection = Fred("json", render, json_parser, wide, engine=db)
    api = Client(collection)
    sent = []
    for mask in range(1, MAX_PREPARED_INSERTS + 40):
        values = {n: mask * 10 + i for i, n in enumerate(names) if mask >> i & 1}
        row = create(api, **values)
        sent.append((row["id"], values))
    gateway = next(iter(collection._gateways.values()))
    assert 0 < len(gateway._inserts) <= MAX_PREPARED_INSERTS or not gateway.fast
    for id, values in sent:
        stored = api("GET", str(id)).json()
        assert stored == {"id": id, **{n: values.get(n) for n in names}}


# --- the 2007 tests ------------------------------------------------------------------------------


def test_create(db: Engine, make_table: Any, recorder: Recorder) -> None:
    fred = make_table("fred", Column("id", Integer(), primary_key=True), Column("description", String(250)))
    app = Client(Fred("html", recorder, robaccia.form_parser, fred, engine=db))

    # 1: create, with CONTENT_LENGTH an int
    r = app("POST", body={"description": "First Post!"}, CONTENT_LENGTH=len("description=First+Post%21"))
    assert r.code == 303
    assert r.header("Location") == "/fred/1"
    assert recorder.calls == []
    # 2
    r = app("GET", "1")
    assert r.code == 200
    assert recorder.last["template"] == "fred/retrieve.html"
    assert recorder.last["vars"]["primary"] == "id"
    assert recorder.last["vars"]["row"] == {"id": 1, "description": "First Post!"}
    # 3
    assert app("POST", body={"description": "Second Post!"}).code == 303
    # 4
    r = app("GET")
    assert r.code == 200
    assert recorder.last["template"] == "fred/list.html"
    assert len(recorder.last["vars"]["data"]) == 2
    # 5
    r = app("DELETE", "1")
    assert r.code == 303
    assert r.header("Location") == "/fred/"
    # 6
    assert app("GET").code == 200
    assert recorder.last["template"] == "fred/list.html"
    assert len(recorder.last["vars"]["data"]) == 1
    # 7
    calls = len(recorder.calls)
    assert app("GET", "1").code == 404
    assert len(recorder.calls) == calls
    # 8
    assert app("GET", "2").code == 200
    assert recorder.last["template"] == "fred/retrieve.html"
    assert recorder.last["vars"]["primary"] == "id"
    assert recorder.last["vars"]["row"] == {"id": 2, "description": "Second Post!"}


class AnswersItself(DefaultModelCollection):
    """The 2007 TestFormEncoded collection: handlers answer 200 themselves."""

    def __init__(self) -> None:
        super().__init__("html", find_renderer("html"), find_parser("html"), None)

    def _ok(self, name: str, environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [name.encode(), b" ", jsonlib.dumps(Request.of(environ).values).encode()]

    def list(self, environ: Any, start_response: Any) -> list[bytes]:
        return self._ok("list", environ, start_response)

    def delete(self, environ: Any, start_response: Any) -> list[bytes]:
        return self._ok("delete", environ, start_response)

    def update(self, environ: Any, start_response: Any) -> list[bytes]:
        return self._ok("update", environ, start_response)

    def get_new_form(self, environ: Any, start_response: Any) -> list[bytes]:
        return self._ok("get_new_form", environ, start_response)


def _form_post(body: bytes, content_length: Any) -> dict[str, Any]:
    environ = make_environ("POST", "/blog/", body, content_type="application/x-www-form-urlencoded",
                           **{"wsgiorg.routing_args": ((), {"id": "1"})})
    environ["CONTENT_LENGTH"] = content_length
    return environ


def test_form_url_encoded() -> None:
    body = b"_method=DELETE&data=some stuff"
    status, _, out = call(AnswersItself(), environ=_form_post(body, len(body)))
    assert status == "200 OK"
    assert out == b'delete {"data": "some stuff"}'  # _method never reaches the handler's values


def test_form_url_encoded_content_length() -> None:
    body = b"_method=PUT&data=some stuff"
    status, _, out = call(AnswersItself(), environ=_form_post(body, str(len(body))))
    assert status == "200 OK"
    assert out == b'update {"data": "some stuff"}'


def test_no_table_and_a_handler_returning_none_is_404() -> None:
    class NoTable(DefaultModelCollection):
        def retrieve(self, environ: Any, start_response: Any) -> None:
            pass

    status, _, _ = call(NoTable("html", render, form_parser, None),
                        environ=make_environ("GET", "/x/1", **{"wsgiorg.routing_args": ((), {"id": "1"})}))
    assert status == "404 Not Found"


# --- JSON CRUD -------------------------------------------------------------------------------------


def test_json_round_trip(api: Client, people: Table, db: Engine) -> None:
    r = api("POST", json={"name": "Ada", "nickname": "Countess", "age": 36, "active": True})
    assert r.status == "201 Created"
    assert r.header("Content-Type") == "application/json"
    row = r.json()
    assert row == {"id": row["id"], "name": "Ada", "nickname": "Countess", "age": 36, "active": True}
    assert r.header("Location") == f"/fred/{row['id']}"
    created_etag = r.header("ETag")
    assert created_etag

    r = api.follow(r.header("Location"))
    assert r.status == "200 OK"
    assert r.json() == row
    assert r.header("ETag") == created_etag

    r = api("PUT", str(row["id"]), json={"age": 37})
    assert r.status == "200 OK"
    assert r.json() == dict(row, age=37)
    assert r.header("ETag") not in (None, created_etag)
    assert api("GET", str(row["id"])).json()["age"] == 37

    r = api("GET")
    assert r.status == "200 OK"
    assert r.json() == {"data": [dict(row, age=37)], "next": None, "prev": None}

    r = api("DELETE", str(row["id"]))
    assert r.status == "204 No Content"
    assert r.body == b""
    r = api("GET", str(row["id"]))
    assert r.status == "404 Not Found"
    assert r.header("Content-Type") == "application/problem+json"
    assert count(db, people) == 0


def test_location_is_an_absolute_path_to_the_new_member(api: Client) -> None:
    for n in range(1, 4):
        r = api("POST", json={"name": f"p{n}"})
        assert r.header("Location") == f"/fred/{r.json()['id']}"
    assert r.header("Location") == "/fred/3"


@pytest.mark.parametrize("bad", ["abc", "99999999999999999999", "1.5", "3000000000", "-1", "1e3",
                                 "\uff11", " 1", "0x1"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "EDIT"])
def test_id_that_cannot_be_a_key_is_404(api: Client, people: Table, db: Engine, bad: str,
                                        method: str) -> None:
    create(api, name="Ada")
    if method == "EDIT":
        r = api("GET", bad, "edit_form")
    else:
        r = api(method, bad, json={"name": "Eve"} if method == "PUT" else None)
    assert r.status == "404 Not Found"
    assert r.header("Content-Type") == "application/problem+json"
    assert rows(db, people)[0]["name"] == "Ada"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_absent_row_is_404(api: Client, method: str) -> None:
    create(api, name="Ada")
    r = api(method, "2", json={"name": "Eve"} if method == "PUT" else None)
    assert r.status == "404 Not Found"


# --- HTML CRUD, filled in the way a browser would -------------------------------------------------------


def test_html_round_trip(site: Client, people: Table, db: Engine) -> None:
    r = site("GET", noun="new_form")
    assert r.status == "200 OK"
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    form = r.page()
    assert set(form.inputs) == {"name", "nickname", "age", "active"}  # no id: it is autoincrement
    assert form.inputs["name"]["maxlength"] == "50"

    values = form_of(form)
    values.update(name="Ada <Lovelace>", nickname="Countess", age="36", active="on")
    r = site("POST", body=values)
    assert r.status == "303 See Other"
    location = r.header("Location")
    assert location and location.startswith("/fred/")
    id = location.rsplit("/", 1)[1]

    r = site.follow(location)
    assert r.status == "200 OK"
    shown = r.page()
    assert shown.ids["v-name"] == "Ada <Lovelace>"
    assert b"<Lovelace>" not in r.body  # escaped
    assert shown.ids["v-age"] == "36"
    assert shown.ids["v-active"] == "Yes"
    assert shown.ids["etag"] == r.header("ETag")

    r = site.follow(shown.links["edit"])
    assert r.status == "200 OK"
    edit = r.page()
    assert edit.inputs["_etag"]["value"] == r.header("ETag")
    assert edit.inputs["_method"]["value"] == "PUT"
    assert edit.inputs["name"]["value"] == "Ada <Lovelace>"
    assert "checked" in edit.inputs["active"]
    values = form_of(edit)
    values.update(age="37")
    del values["active"]  # untick the box
    r = site("POST", id, body=values)
    assert r.status == "303 See Other"
    assert r.header("Location") == location
    assert rows(db, people) == [{"id": int(id), "name": "Ada <Lovelace>", "nickname": "Countess",
                                 "age": 37, "active": False}]

    r = site("GET")
    assert r.status == "200 OK"
    assert f"row-{id}" in r.page().ids

    r = site("POST", id, body={"_method": "DELETE"})
    assert r.status == "303 See Other"
    assert r.header("Location") == "/fred/"
    assert site("GET", id).status == "404 Not Found"
    assert count(db, people) == 0


def test_real_put_and_delete_from_html(site: Client, people: Table, db: Engine) -> None:
    assert site("POST", body={"name": "Ada"}).code == 303
    id = str(rows(db, people)[0]["id"])
    r = site("PUT", id, body={"name": "Grace"})
    assert r.code == 303 and r.header("Location") == f"/fred/{id}"
    assert rows(db, people)[0]["name"] == "Grace"
    r = site("DELETE", id)
    assert r.code == 303 and r.header("Location") == "/fred/"
    assert count(db, people) == 0


def test_default_vars_for_forms(people: Table, db: Engine, recorder: Recorder) -> None:
    app = Client(Fred("html", recorder, form_parser, people, engine=db))
    app("POST", body={"name": "Ada"})
    app("GET", noun="new_form")
    assert recorder.last["template"] == "fred/get_new_form.html"
    assert recorder.last["vars"]["row"] == {}
    assert recorder.last["vars"]["errors"] == {}
    assert recorder.last["vars"]["primary"] == "id"
    r = app("GET", "1", "edit_form")
    assert recorder.last["template"] == "fred/get_edit_form.html"
    assert recorder.last["vars"]["row"]["name"] == "Ada"
    assert recorder.last["vars"]["etag"] == r.header("ETag")


def test_handlers_not_defined_are_not_served(people: Table, db: Engine) -> None:
    class ReadOnly(DefaultModelCollection):
        def list(self, environ: Any, start_response: Any) -> None:
            pass

        def retrieve(self, environ: Any, start_response: Any) -> None:
            pass

    api = Client(ReadOnly("json", render, json_parser, people, engine=db))
    r = api("POST", json={"name": "Ada"})
    assert r.code == 405
    assert r.header("Allow") == "GET, HEAD, OPTIONS"
    assert api("DELETE", "1").code == 405
    assert count(db, people) == 0
    assert api("GET").json()["data"] == []


def test_handler_that_returns_a_value_replaces_the_default(people: Table, db: Engine) -> None:
    class Custom(Fred):
        def retrieve(self, environ: Any, start_response: Any) -> dict[str, Any]:
            return {"custom": environ["robaccia.request"].id}

    api = Client(Custom("json", render, json_parser, people, engine=db))
    create(api, name="Ada")
    assert api("GET", "1").json() == {"custom": "1"}


# --- _method --------------------------------------------------------------------------------------------


def test_method_override_only_on_post(site: Client, people: Table, db: Engine) -> None:
    site("POST", body={"name": "Ada"})
    id = str(rows(db, people)[0]["id"])
    r = site("PUT", id, body={"_method": "DELETE", "name": "Grace"})
    assert r.code == 303 and r.header("Location") == f"/fred/{id}"  # it was an update
    assert rows(db, people)[0]["name"] == "Grace"


def test_method_override_only_from_a_form_body(api: Client, people: Table, db: Engine) -> None:
    row = create(api, name="Ada")
    r = api("POST", str(row["id"]), json={"_method": "DELETE"})
    assert r.code == 405  # members take no POST: the JSON field is not an override
    assert count(db, people) == 1
    r = api("POST", json={"_method": "PUT", "name": "Eve"})
    assert r.code == 422  # a JSON body keeps the field, and it is not a column
    assert r.json()["errors"] == {"_method": "Unknown field."}
    assert count(db, people) == 1


@pytest.mark.parametrize("override", ["GET", "PATCH", "POST", "HEAD", "OPTIONS", "TRACE", "CONNECT", "x"])
def test_method_override_only_to_put_or_delete(site: Client, people: Table, db: Engine,
                                               override: str) -> None:
    site("POST", body={"name": "Ada"})
    id = str(rows(db, people)[0]["id"])
    r = site("POST", id, body={"_method": override, "name": "Eve"})
    assert r.code == 405
    assert rows(db, people)[0]["name"] == "Ada"
    # on the collection the field is ignored: a plain create
    r = site("POST", body={"_method": override, "name": "Eve"})
    assert r.code == 303
    assert [row["name"] for row in rows(db, people)] == ["Ada", "Eve"]


def test_method_override_from_a_multipart_form(site: Client, people: Table, db: Engine) -> None:
    site("POST", body={"name": "Ada"})
    id = str(rows(db, people)[0]["id"])
    boundary = "b0undary"
    parts = [("_method", "PUT"), ("name", "Grace"), ("nickname", "")]
    body = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                   for k, v in parts) + f"--{boundary}--\r\n"
    r = site("POST", id, body=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert r.code == 303
    assert rows(db, people)[0]["name"] == "Grace"


def test_method_field_is_removed_before_values_reach_the_table(people: Table, db: Engine) -> None:
    seen = []

    class Watching(Fred):
        def update(self, environ: Any, start_response: Any) -> None:
            seen.append(dict(Request.of(environ).values))

    site = Client(Watching("html", render, form_parser, people, engine=db))
    site("POST", body={"name": "Ada"})
    id = str(rows(db, people)[0]["id"])
    assert site("POST", id, body={"_method": "PUT", "name": "Grace"}).code == 303
    assert seen == [{"name": "Grace"}]
    assert rows(db, people)[0]["name"] == "Grace"


# --- only columns are written ---------------------------------------------------------------------------


def test_unknown_keys_ignored_from_forms(site: Client, people: Table, db: Engine) -> None:
    r = site("POST", body={"name": "Ada", "bogus": "1", "_csrf": "token"})
    assert r.code == 303
    assert rows(db, people)[0]["name"] == "Ada"


def test_unknown_keys_refused_from_json(api: Client, people: Table, db: Engine) -> None:
    r = api("POST", json={"name": "Ada", "bogus": 1})
    assert r.status == "422 Unprocessable Content"
    assert r.header("Content-Type") == "application/problem+json"
    assert r.json()["errors"] == {"bogus": "Unknown field."}
    assert count(db, people) == 0
    row = create(api, name="Ada")
    r = api("PUT", str(row["id"]), json={"name": "Eve", "owner": "root"})
    assert r.code == 422
    assert rows(db, people)[0]["name"] == "Ada"


def test_autoincrement_key_is_never_written(api: Client, people: Table, db: Engine) -> None:
    """The schema says the server sets id (readOnly, not in the request bodies): a JSON body
    that sets it is told so, as for any field it may not send, and nothing is written."""
    r = api("POST", json={"id": 500, "name": "Ada"})
    assert r.code == 422
    assert r.json()["errors"] == {"id": "The server sets this field: leave it out."}
    assert rows(db, people) == []
    r = api("POST", json={"name": "Ada"})
    assert r.code == 201
    id = r.json()["id"]
    r = api("PUT", str(id), json={"id": 77, "name": "Grace"})
    assert r.code == 422 and r.json()["errors"] == {"id": "The server sets this field: leave it out."}
    assert api("PUT", str(id), json={"name": "Grace"}).code == 200
    assert [(row["id"], row["name"]) for row in rows(db, people)] == [(id, "Grace")]


# --- validation ---------------------------------------------------------------------------------------------


def test_required_field_json(api: Client, people: Table, db: Engine) -> None:
    for body in ({}, {"name": None}, {"name": ""}, {"age": 3}):
        r = api("POST", json=body)
        assert r.status == "422 Unprocessable Content"
        assert r.header("Content-Type") == "application/problem+json"
        assert r.json()["errors"]["name"] == "This field is required."
    assert count(db, people) == 0


def test_invalid_create_shows_the_form_again(site: Client, people: Table, db: Engine) -> None:
    r = site("POST", body={"name": "Ada <b>", "nickname": "x" * 31, "age": "thirty", "active": "on"})
    assert r.status == "422 Unprocessable Content"
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    page = r.page()
    assert page.ids["error-age"] == "Enter a whole number."
    assert page.ids["error-nickname"] == "Use at most 30 characters."
    assert "error-name" not in page.ids
    # what the user typed is still there, so they only fix the mistakes
    assert page.inputs["name"]["value"] == "Ada <b>"
    assert page.inputs["age"]["value"] == "thirty"
    assert page.inputs["nickname"]["value"] == "x" * 31
    assert "checked" in page.inputs["active"]
    assert b"<b>" not in r.body
    assert count(db, people) == 0


def test_missing_required_field_html(site: Client, people: Table, db: Engine) -> None:
    r = site("POST", body={"name": " ", "age": "3"})
    assert r.code == 422
    page = r.page()
    assert page.ids["error-name"] == "This field is required."
    assert page.inputs["age"]["value"] == "3"
    assert count(db, people) == 0


def test_invalid_update_shows_the_edit_form_again(site: Client, people: Table, db: Engine) -> None:
    site("POST", body={"name": "Ada", "age": "36"})
    id = str(rows(db, people)[0]["id"])
    edit = site("GET", id, "edit_form").page()
    values = dict(form_of(edit), age="old", name="")
    r = site("POST", id, body=values)
    assert r.status == "422 Unprocessable Content"
    page = r.page()
    assert page.ids["error-age"] == "Enter a whole number."
    assert page.ids["error-name"] == "This field is required."
    assert page.inputs["age"]["value"] == "old"
    assert page.inputs["_etag"]["value"] == edit.inputs["_etag"]["value"]
    assert page.inputs["_method"]["value"] == "PUT"
    assert rows(db, people)[0]["age"] == 36 and rows(db, people)[0]["name"] == "Ada"


def test_invalid_json_update_changes_nothing(api: Client, people: Table, db: Engine) -> None:
    row = create(api, name="Ada", age=36)
    r = api("PUT", str(row["id"]), json={"name": "Grace", "age": "old"})
    assert r.code == 422
    assert r.json()["errors"] == {"age": "Send a whole number."}
    assert rows(db, people) == [row]


def test_blank_form_field_clears_a_nullable_column(site: Client, people: Table, db: Engine) -> None:
    site("POST", body={"name": "Ada", "nickname": "Countess", "age": "36"})
    id = str(rows(db, people)[0]["id"])
    values = dict(form_of(site("GET", id, "edit_form").page()), nickname="", age="")
    assert site("POST", id, body=values).code == 303
    row = rows(db, people)[0]
    assert row["nickname"] is None and row["age"] is None


def test_unchecked_checkbox_is_false(site: Client, people: Table, db: Engine) -> None:
    site("POST", body={"name": "Ada", "active": "on"})
    row = rows(db, people)[0]
    assert row["active"] is True
    assert site("POST", str(row["id"]), body={"_method": "PUT", "name": "Ada"}).code == 303
    assert rows(db, people)[0]["active"] is False
    site("POST", body={"name": "Eve"})  # never ticked
    assert rows(db, people)[1]["active"] is False


def test_json_update_leaves_missing_columns_alone(api: Client, people: Table, db: Engine) -> None:
    row = create(api, name="Ada", active=True, nickname="Countess")
    assert api("PUT", str(row["id"]), json={"age": 1}).code == 200
    assert rows(db, people) == [dict(row, age=1)]


# --- column types, on every database ---------------------------------------------------------------------


class Colour(enum.Enum):
    red = 1
    green = 2
    blue = 3


@pytest.fixture
def kinds(make_table: Any) -> Table:
    return make_table(
        "kinds",
        Column("id", Integer, primary_key=True),
        Column("n", Integer),
        Column("f", Float),
        Column("price", Numeric(8, 2)),
        Column("code", String(5)),
        Column("body", Text),
        Column("flag", Boolean, nullable=False, default=False),
        Column("day", Date),
        Column("at", DateTime),
        Column("clock", Time),
        Column("size", Enum("S", "M", "L", name=unique("size"))),
        Column("colour", Enum(Colour, name=unique("colour"))),
    )


KIND_VALUES = {"n": 42, "f": 2.5, "price": "12.30", "code": "abcde", "body": "long " * 300,
               "flag": True, "day": "2024-02-29", "at": "2024-02-29T13:45:10Z", "clock": "07:30:15",
               "size": "M", "colour": "green"}


def test_form_values_are_converted_per_column(kinds: Table, db: Engine, templates: Templates) -> None:
    site = Client(Fred("html", render, form_parser, kinds, engine=db), templates)
    form = {k: str(v) for k, v in KIND_VALUES.items()}
    form["flag"] = "on"
    r = site("POST", body=form)
    assert r.code == 303, r.body
    (row,) = rows(db, kinds)
    assert row == {"id": row["id"], "n": 42, "f": 2.5, "price": decimal.Decimal("12.30"),
                   "code": "abcde", "body": "long " * 300, "flag": True,
                   "day": datetime.date(2024, 2, 29), "at": datetime.datetime(2024, 2, 29, 13, 45, 10),
                   "clock": datetime.time(7, 30, 15), "size": "M", "colour": Colour.green}
    # and the edit form shows each value the way its input takes it
    edit = site("GET", str(row["id"]), "edit_form").page()
    assert edit.inputs["day"]["value"] == "2024-02-29"
    assert edit.inputs["at"]["value"] == "2024-02-29T13:45:10"
    assert edit.inputs["clock"]["value"] == "07:30:15"
    assert edit.inputs["price"]["value"] == "12.30"
    assert edit.inputs["size"]["value"] == "M"
    assert edit.inputs["colour"]["value"] == "green"
    assert "checked" in edit.inputs["flag"]
    # submitting the edit form unchanged changes nothing
    before = rows(db, kinds)
    assert site("POST", str(row["id"]), body=form_of(edit)).code == 303
    assert rows(db, kinds) == before


def test_json_values_are_converted_per_column(kinds: Table, db: Engine) -> None:
    api = Client(Fred("json", render, json_parser, kinds, engine=db))
    r = api("POST", json=KIND_VALUES)
    assert r.code == 201, r.body
    assert r.json() == dict(KIND_VALUES, id=r.json()["id"])
    assert api.follow(r.header("Location")).json() == r.json()


def test_conditional_update_compares_every_column_type(kinds: Table, db: Engine) -> None:
    api = Client(Fred("json", render, json_parser, kinds, engine=db))
    r = api("POST", json=KIND_VALUES)
    id, etag = str(r.json()["id"]), r.header("ETag")
    r = api("PUT", id, json={"n": 43}, headers={"If-Match": etag})
    assert r.code == 200, r.body
    assert r.json()["n"] == 43
    r = api("DELETE", id, headers={"If-Match": r.header("ETag")})
    assert r.code == 204
    assert count(db, kinds) == 0


def test_invalid_values_never_reach_the_database(kinds: Table, db: Engine) -> None:
    api = Client(Fred("json", render, json_parser, kinds, engine=db))
    bad = {"n": "x", "f": "nan", "price": "1.234", "code": "toolong", "flag": "maybe",
           "day": "2023-02-29", "at": "later", "clock": "25:61", "size": "XL", "colour": "Colour.red"}
    r = api("POST", json=bad)
    assert r.code == 422
    assert set(r.json()["errors"]) == set(bad)
    r = api("POST", json={"price": "1234567.8"})  # more digits than NUMERIC(8, 2) holds
    assert r.code == 422
    assert set(r.json()["errors"]) == {"price"}
    assert count(db, kinds) == 0


# --- conflicts ------------------------------------------------------------------------------------------------


def test_unique_violation_json_is_409_and_writes_nothing(api: Client, people: Table, db: Engine) -> None:
    ada = create(api, name="Ada")
    r = api("POST", json={"name": "Ada", "age": 3})
    assert r.status == "409 Conflict"
    assert r.header("Content-Type") == "application/problem+json"
    assert r.json()["errors"] == {"name": "This value is already taken."}
    assert rows(db, people) == [ada]

    eve = create(api, name="Eve")
    r = api("PUT", str(eve["id"]), json={"name": "Ada", "age": 5})
    assert r.code == 409
    assert rows(db, people) == [ada, eve]


def test_unique_violation_html_shows_the_form(site: Client, people: Table, db: Engine) -> None:
    assert site("POST", body={"name": "Ada"}).code == 303
    r = site("POST", body={"name": "Ada", "age": "9"})
    assert r.status == "409 Conflict"
    page = r.page()
    assert page.ids["error-name"] == "This value is already taken."
    assert page.inputs["age"]["value"] == "9"
    assert page.ids["message"]
    assert count(db, people) == 1


def test_foreign_key_violation_is_409(make_table: Any, db: Engine) -> None:
    parents = make_table("parents", Column("id", Integer, primary_key=True), Column("name", String(20)))
    children = make_table(
        "children",
        Column("id", Integer, primary_key=True),
        Column("parent_id", Integer, ForeignKey(parents.c.id), nullable=False),
    )
    seed(db, parents, [{"name": "p"}])
    parent_id = rows(db, parents)[0]["id"]
    api = Client(Fred("json", render, json_parser, children, engine=db))
    r = api("POST", json={"parent_id": parent_id + 1000})
    assert r.code == 409
    assert count(db, children) == 0
    assert create(api, parent_id=parent_id)["parent_id"] == parent_id
    r = api("PUT", str(rows(db, children)[0]["id"]), json={"parent_id": parent_id + 1000})
    assert r.code == 409
    assert rows(db, children)[0]["parent_id"] == parent_id


# --- ETags and preconditions -------------------------------------------------------------------------------------


def test_every_member_response_has_an_etag(people: Table, db: Engine, templates: Templates) -> None:
    api = Client(Fred("json", render, json_parser, people, engine=db))
    site = Client(Fred("html", render, form_parser, people, engine=db), templates)
    created = api("POST", json={"name": "Ada"})
    id = str(created.json()["id"])
    etag = created.header("ETag")
    assert etag and etag.startswith('"') and etag.endswith('"')
    assert api("GET", id).header("ETag") == etag
    assert site("GET", id).header("ETag") == etag
    assert site("GET", id, "edit_form").header("ETag") == etag
    updated = api("PUT", id, json={"age": 1})
    assert updated.header("ETag") not in (None, etag)
    assert api("GET", id).header("ETag") == updated.header("ETag")


@pytest.mark.parametrize("ext", ["json", "html"])
def test_if_none_match_is_304(people: Table, db: Engine, ext: str, recorder: Recorder) -> None:
    app = Client(Fred(ext, render if ext == "json" else recorder, json_parser, people, engine=db))
    seed(db, people, [{"name": "Ada"}])
    etag = app("GET", "1").header("ETag")
    for header in (etag, f'"nope", {etag}', "W/" + etag, "*"):
        r = app("GET", "1", headers={"If-None-Match": header})
        assert r.status == "304 Not Modified"
        assert r.body == b""
        assert r.header("ETag") == etag
    r = app("GET", "1", headers={"If-None-Match": '"something-else"'})
    assert r.status == "200 OK"
    assert r.header("ETag") == etag


def test_stale_if_match_is_412_and_changes_nothing(api: Client, people: Table, db: Engine) -> None:
    row = create(api, name="Ada")
    id = str(row["id"])
    stale = api("GET", id).header("ETag")
    current = api("PUT", id, json={"age": 1}).header("ETag")
    r = api("PUT", id, json={"name": "Eve"}, headers={"If-Match": stale})
    assert r.status == "412 Precondition Failed"
    assert r.header("ETag") == current
    r = api("DELETE", id, headers={"If-Match": stale})
    assert r.status == "412 Precondition Failed"
    assert rows(db, people) == [dict(row, age=1)]
    # with the current tag (or any tag) it goes through
    r = api("PUT", id, json={"name": "Eve"}, headers={"If-Match": f'"x", {current}'})
    assert r.code == 200
    assert api("PUT", id, json={"age": 2}, headers={"If-Match": "*"}).code == 200
    assert api("DELETE", id, headers={"If-Match": api("GET", id).header("ETag")}).code == 204
    assert count(db, people) == 0


def test_stale_if_match_from_html_is_412(site: Client, people: Table, db: Engine) -> None:
    site("POST", body={"name": "Ada"})
    id = str(rows(db, people)[0]["id"])
    r = site("POST", id, body={"_method": "PUT", "name": "Eve"}, headers={"If-Match": '"stale"'})
    assert r.code == 412
    assert rows(db, people)[0]["name"] == "Ada"


def test_if_match_on_a_missing_row_is_404(api: Client) -> None:
    assert api("PUT", "7", json={"name": "x"}, headers={"If-Match": "*"}).code == 404
    assert api("DELETE", "7", headers={"If-Match": '"abc"'}).code == 404


def test_concurrent_writers_with_the_same_etag_one_wins(api: Client, people: Table, db: Engine) -> None:
    row = create(api, name="Ada")
    id = str(row["id"])
    etag = api("GET", id).header("ETag")
    # Hold both writers just before their UPDATE, so that both have read the
    # row (and checked the tag) before either writes.
    barrier = threading.Barrier(2, timeout=5)

    def hold(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass

    results: dict[str, Response] = {}

    def writer(name: str) -> None:
        results[name] = api("PUT", id, json={"name": name}, headers={"If-Match": etag})

    event.listen(db, "before_cursor_execute", hold)
    try:
        threads = [threading.Thread(target=writer, args=(name,)) for name in ("Grace", "Eve")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        event.remove(db, "before_cursor_execute", hold)
    assert not barrier.broken, "the writers did not both reach their UPDATE"
    statuses = sorted(r.status for r in results.values())
    assert statuses == ["200 OK", "412 Precondition Failed"], [r.body for r in results.values()]
    (winner,) = [name for name, r in results.items() if r.code == 200]
    assert rows(db, people)[0]["name"] == winner


def test_edit_form_carries_the_etag(site: Client, people: Table, db: Engine) -> None:
    site("POST", body={"name": "Ada"})
    id = str(rows(db, people)[0]["id"])
    r = site("GET", id, "edit_form")
    assert r.page().inputs["_etag"]["value"] == r.header("ETag") == site("GET", id).header("ETag")


def test_stale_etag_from_a_form_is_409_with_current_values(site: Client, people: Table, db: Engine) -> None:
    site("POST", body={"name": "Ada", "age": "36"})
    id = str(rows(db, people)[0]["id"])
    mine = site("GET", id, "edit_form").page()
    # someone else saves first
    theirs = site("GET", id, "edit_form").page()
    assert site("POST", id, body=dict(form_of(theirs), name="Grace")).code == 303

    r = site("POST", id, body=dict(form_of(mine), age="99"))
    assert r.status == "409 Conflict"
    page = r.page()
    assert page.inputs["name"]["value"] == "Grace"  # the current values, not mine
    assert page.inputs["age"]["value"] == "36"
    assert page.ids["message"]
    current = site("GET", id)
    assert page.inputs["_etag"]["value"] == current.header("ETag") == r.header("ETag")
    assert rows(db, people)[0]["name"] == "Grace" and rows(db, people)[0]["age"] == 36
    # the user makes the change again, on the current values: it goes through
    assert site("POST", id, body=dict(form_of(page), age="99")).code == 303
    assert rows(db, people)[0]["age"] == 99

    stale = dict(form_of(mine), _method="DELETE")
    r = site("POST", id, body=stale)
    assert r.status == "409 Conflict"
    assert count(db, people) == 1
    current = dict(form_of(site("GET", id, "edit_form").page()), _method="DELETE")
    assert site("POST", id, body=current).code == 303
    assert count(db, people) == 0


# --- lists and paging ------------------------------------------------------------------------------------------


@pytest.fixture
def crowd(people: Table, db: Engine) -> list[dict[str, Any]]:
    """120 people: names out of key order, nicknames with ties and NULLs."""
    seed(db, people, [
        {"name": f"n{(i * 37) % 120:03d}",
         "nickname": None if i % 4 == 0 else f"nick{i % 7}",
         "age": None if i % 5 == 0 else i % 9,
         "active": i % 2 == 0}
        for i in range(120)
    ])
    return rows(db, people)


def link_header(r: Response) -> dict[str, str]:
    links = {}
    for part in (r.header("Link") or "").split(","):
        if part.strip():
            url, _, rel = part.partition(";")
            links[rel.strip().removeprefix('rel="').removesuffix('"')] = url.strip()[1:-1]
    return links


def walk(api: Client, query: str) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """Follow next links from the first page, then prev links back; return both page lists."""
    r = api("GET", query=query)
    forward = []
    while True:
        assert r.code == 200, r.body
        body = r.json()
        forward.append(body["data"])
        assert link_header(r) == {k: body[k] for k in ("next", "prev") if body[k]}
        if body["next"] is None:
            break
        assert len(forward) < 20, "paging does not end"
        r = api.follow(body["next"])
    backward = [body["data"]]
    while body["prev"] is not None:
        body = api.follow(body["prev"]).json()
        backward.append(body["data"])
        assert len(backward) < 20, "paging does not end"
    return forward, backward


def assert_sorted(seq: list[dict[str, Any]], sort: str) -> None:
    column = sort.lstrip("-") or "id"
    values = [row[column] for row in seq]
    present = [v for v in values if v is not None]
    nulls = len(values) - len(present)
    # NULLs come together, at one end
    assert values[len(present):] == [None] * nulls or values[:nulls] == [None] * nulls
    assert present == sorted(present, reverse=sort.startswith("-"))


@pytest.mark.parametrize("sort", ["", "id", "-id", "name", "-name", "nickname", "-nickname", "age", "-active"])
def test_paging_walk_visits_every_row_once(api: Client, crowd: list[dict[str, Any]], sort: str) -> None:
    forward, backward = walk(api, f"sort={sort}" if sort else "")
    assert [len(p) for p in forward] == [50, 50, 20]
    seq = [row for page in forward for row in page]
    assert sorted(r["id"] for r in seq) == [r["id"] for r in crowd]  # each row exactly once
    assert_sorted(seq, sort)
    back = [row for page in reversed(backward) for row in page]
    assert back == seq  # the same rows, in the same order, walking back
    assert all(0 < len(p) <= 50 for p in backward)


def test_page_size_and_limit(people: Table, db: Engine, crowd: list[dict[str, Any]]) -> None:
    api = Client(Fred("json", render, json_parser, people, engine=db, page_size=7, max_page_size=30))
    body = api("GET").json()
    assert [r["id"] for r in body["data"]] == [r["id"] for r in crowd[:7]]
    assert body["prev"] is None
    body = api("GET", query="limit=30").json()
    assert len(body["data"]) == 30
    nxt = api.follow(body["next"]).json()
    assert len(nxt["data"]) == 30  # the limit carries over to the next page
    assert nxt["data"][0]["id"] == crowd[30]["id"]
    assert api("GET", query="limit=31").code == 400


def test_default_page_is_50(api: Client, crowd: list[dict[str, Any]]) -> None:
    r = api("GET")
    body = r.json()
    assert len(body["data"]) == 50
    assert body["prev"] is None
    assert body["next"].startswith("/fred/?")
    assert link_header(r) == {"next": body["next"]}
    assert len(api("GET", query="limit=500").json()["data"]) == 120
    assert api("GET", query="limit=501").code == 400


def test_empty_list(api: Client) -> None:
    r = api("GET")
    assert r.json() == {"data": [], "next": None, "prev": None}
    assert r.header("Link") is None


@pytest.mark.parametrize("query", [
    "limit=0", "limit=-1", "limit=x", "limit=1.5", "limit=%EF%BC%91", "limit=99999999999999999999999",
    "limit=", "sort=", "sort=nope", "sort=-nope", "sort=name;drop", "sort=--name",
])
def test_bad_list_parameters_are_400(api: Client, crowd: list[dict[str, Any]], query: str) -> None:
    r = api("GET", query=query)
    assert r.status == "400 Bad Request"
    assert r.header("Content-Type") == "application/problem+json"


@pytest.mark.parametrize("query", [
    "after=", "after=abc", "after=1.5", "after=99999999999999999999", "before=abc", "sort=-id&after=x",
    "sort=name&after=!!!", "sort=name&after=bm9wZQ", "sort=name&before=W3RydWVd",
    "sort=age&after=WyJ4IiwgIngiLCAieCJd",
])
def test_a_cursor_the_list_never_gave_out_names_no_page(api: Client, crowd: list[dict[str, Any]],
                                                        query: str) -> None:
    """A cursor is opaque: one that is not this list's is no page of it (404), as the document says."""
    r = api("GET", query=query)
    assert r.status == "404 Not Found"
    assert r.json()["detail"] == "No page starts at that cursor: use the next and prev links a page gives."


def test_after_wins_over_before(api: Client, crowd: list[dict[str, Any]]) -> None:
    first = api("GET", query="limit=2").json()
    after = first["next"].split("after=")[1].split("&")[0]
    both = api("GET", query=f"limit=2&after={after}&before={after}")
    assert both.code == 200
    assert both.json()["data"] == api("GET", query=f"limit=2&after={after}").json()["data"]


def test_too_many_query_fields_is_400_not_a_crash(api: Client) -> None:
    r = api("GET", query="&".join(f"utm{i}=x" for i in range(30)))
    assert r.status == "400 Bad Request"


def test_html_list_has_links_and_vars(people: Table, db: Engine, crowd: list[dict[str, Any]],
                                      templates: Templates, recorder: Recorder) -> None:
    site = Client(Fred("html", render, form_parser, people, engine=db), templates)
    r = site("GET", query="sort=-name")
    assert r.code == 200
    page = r.page()
    assert sum(1 for key in page.ids if key.startswith("row-")) == 50
    assert "prev" not in page.links
    assert page.links["next"] == link_header(r)["next"]
    r = site.follow(page.links["next"])
    page = r.page()
    assert set(page.links) >= {"next", "prev", "new"}
    assert link_header(r) == {"next": page.links["next"], "prev": page.links["prev"]}
    assert parse_qs(urlsplit(page.links["next"]).query)["sort"] == ["-name"]

    spy = Client(Fred("html", recorder, form_parser, people, engine=db))
    spy("GET")
    vars = recorder.last["vars"]
    assert recorder.last["template"] == "fred/list.html"
    assert vars["next_url"] and vars["prev_url"] is None
    assert len(vars["data"]) == 50
    assert vars["primary"] == "id"


# --- threads ----------------------------------------------------------------------------------------------------


def test_concurrent_requests_each_get_their_own_response(api: Client, people: Table, db: Engine) -> None:
    app = api.app
    before = dict(vars(app))
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for k in range(4):
                name = f"t{n}-{k}"
                r = api("POST", json={"name": name, "age": n})
                assert r.code == 201, r.body
                assert r.json()["name"] == name
                got = api.follow(r.header("Location"))
                assert got.json()["name"] == name and got.json()["age"] == n
                assert api("PUT", str(got.json()["id"]), json={"nickname": name},
                           headers={"If-Match": got.header("ETag")}).json()["nickname"] == name
                assert api("GET", "abc").code == 404
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[0]
    assert sorted(r["name"] for r in rows(db, people)) == sorted(f"t{n}-{k}" for n in range(8) for k in range(4))
    assert all(r["name"] == r["nickname"] for r in rows(db, people))
    after = vars(app)
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)


# --- limits and failures ---------------------------------------------------------------------------------------------


def test_body_limits_apply(people: Table, db: Engine) -> None:
    api = Client(Fred("json", render, json_parser, people, engine=db, limits=Limits(max_body=100, max_fields=3)))
    assert api("POST", json={"name": "x" * 200}).code == 413
    assert api("POST", json={"name": "a", "age": 1, "nickname": "b", "active": True}).code == 413
    assert api("POST", body=b"{bad", content_type="application/json").code == 400
    assert api("POST", body=b"<x/>", content_type="application/xml").code == 415
    assert count(db, people) == 0
    assert api("POST", json={"name": "a"}).code == 201


def test_body_without_content_type_uses_the_collection_parser(api: Client, people: Table, db: Engine) -> None:
    r = api("POST", body=b'{"name": "Ada"}')
    assert r.code == 201
    assert rows(db, people)[0]["name"] == "Ada"


def test_unreachable_database_is_503(tmp_path: Any) -> None:
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("name", String(5)))
    engine = create_engine(f"sqlite:///{tmp_path}/missing/folder/db.sqlite")
    api = Client(Fred("json", render, json_parser, table, engine=engine))
    r = api("GET")
    assert r.status == "503 Service Unavailable"
    assert r.header("Retry-After")
    assert api("POST", json={"name": "x"}).code == 503
    engine.dispose()


@pytest.mark.parametrize("sort", ["n", "-f", "price", "-code", "flag", "day", "-at", "clock", "size", "-size",
                                  "colour", "-colour"])
def test_paging_walk_on_every_column_type(kinds: Table, db: Engine, sort: str) -> None:
    seed(db, kinds, [
        {"n": None if i % 6 == 0 else i % 4,
         "f": None if i % 5 == 0 else (i % 3) / 2,
         "price": None if i % 7 == 0 else decimal.Decimal(i % 4) / 4,
         "code": None if i % 3 == 0 else f"c{i % 5}",
         "flag": i % 3 == 0,
         "day": None if i % 4 == 0 else datetime.date(2024, 1, 1 + i % 3),
         "at": None if i % 4 == 1 else datetime.datetime(2024, 1, 1, 12, i % 2, 30),
         "clock": None if i % 5 == 2 else datetime.time(i % 3, 15),
         "size": None if i % 4 == 3 else "SML"[i % 3],
         "colour": None if i % 5 == 4 else list(Colour)[i % 3]}
        for i in range(31)
    ])
    api = Client(Fred("json", render, json_parser, kinds, engine=db, page_size=7))
    forward, backward = walk(api, f"sort={sort}")
    assert [len(p) for p in forward] == [7, 7, 7, 7, 3]
    seq = [row for page in forward for row in page]
    assert sorted(r["id"] for r in seq) == [r["id"] for r in rows(db, kinds)]
    assert_sorted(seq, sort)  # enums sort by label, the same on every database
    assert [row for page in reversed(backward) for row in page] == seq


def test_natural_string_key(make_table: Any, db: Engine) -> None:
    codes = make_table("codes", Column("code", String(10), primary_key=True, autoincrement=False),
                       Column("label", String(20)))
    api = Client(Fred("json", render, json_parser, codes, engine=db, page_size=2))
    # a key is part of the address: one the URL template could never match is refused
    r = api("POST", json={"code": "a b", "label": "first"})
    assert r.code == 422
    assert set(r.json()["errors"]) == {"code"}
    r = api("POST", json={"code": "a.b~1", "label": "first"})
    assert r.code == 201
    assert r.header("Location") == "/fred/a.b~1"
    assert api.follow(r.header("Location")).json() == {"code": "a.b~1", "label": "first"}
    assert api("POST", json={"label": "no key"}).json()["errors"] == {"code": "This field is required."}
    r = api("POST", json={"code": "a.b~1", "label": "again"})
    assert r.code == 409
    assert r.json()["errors"] == {"code": "This value is already taken."}
    # the key is the address: an update cannot change it, and is told so
    r = api("PUT", "a.b~1", json={"code": "zz", "label": "renamed"})
    assert r.code == 422
    assert r.json()["errors"] == {"code": "The key is part of the address and cannot change: leave it out."}
    r = api("PUT", "a.b~1", json={"label": "renamed"})
    assert r.code == 200
    assert r.json() == {"code": "a.b~1", "label": "renamed"}
    create(api, code="b", label="x")
    create(api, code="c", label="y")
    forward, backward = walk(api, "")
    assert [[row["code"] for row in page] for page in forward] == [["a.b~1", "b"], ["c"]]
    assert api("GET", "nothere").code == 404
    assert api("GET", "x" * 11).code == 404


def test_head_of_a_member_has_the_etag_and_no_body(api: Client) -> None:
    create(api, name="Ada")
    get = api("GET", "1")
    head = api("HEAD", "1")
    assert head.status == "200 OK"
    assert head.body == b""
    assert head.header("ETag") == get.header("ETag")


def test_links_under_a_mounted_dispatcher(people: Table, db: Engine) -> None:
    routes = robaccia.Dispatcher()
    routes.add("/{view:alnum}/[{id:unreserved}][;{noun:unreserved}]",
               Fred("json", render, json_parser, people, engine=db, page_size=1))

    def request(method: str, path: str, **kw: Any) -> Response:
        environ = make_environ(method, path, **kw)
        environ["SCRIPT_NAME"] = "/app"
        return Response(*call(routes, environ=environ))

    r = request("POST", "/fred/", json={"name": "Ada"})
    assert r.code == 201
    assert r.header("Location") == f"/app/fred/{r.json()['id']}"
    request("POST", "/fred/", json={"name": "Eve"})
    body = request("GET", "/fred/").json()
    assert body["next"].startswith("/app/fred/?")
    assert request("GET", "/fred/", query=urlsplit(body["next"]).query).json()["data"][0]["name"] == "Eve"

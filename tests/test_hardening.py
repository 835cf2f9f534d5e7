"""Hardening regressions: data integrity, paging and conditional requests on every database.

Each test is one finding of an outside attack (issue "Hardening"), fixed at its
cause and kept here: single-precision floats and long texts that made keyset
paging loop or skip rows on MariaDB, cursors that grew with the data, list
pages that showed whole texts, weak ETags accepted by If-Match.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import unique
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, insert
from sqlalchemy.engine import Engine

from robaccia import DefaultModelCollection
from robaccia.conditional import etag_of
from robaccia.testing import call, make_environ


class Api(DefaultModelCollection):
    def list(self, environ: Any, start_response: Any) -> None:
        pass

    def retrieve(self, environ: Any, start_response: Any) -> None:
        pass

    def update(self, environ: Any, start_response: Any) -> None:
        pass

    def delete(self, environ: Any, start_response: Any) -> None:
        pass


def get(app: Any, id: str | None = None, query: str = "", method: str = "GET",
        **kw: Any) -> tuple[str, dict[str, str], bytes]:
    environ = make_environ(method, "/t/", query=query,
                           **{"wsgiorg.routing_args": ((), {"view": "t", "id": id})}, **kw)
    status, headers, body = call(app, environ=environ)
    return status, dict(headers), body


def walk(app: Any, query: str) -> tuple[list[int], list[int], int]:
    """Follow next links to the end; return the keys seen, in order, then back; and the longest Link."""
    seen: list[int] = []
    longest = 0
    status, headers, body = get(app, query=query)
    pages = 0
    while True:
        assert status == "200 OK", body[:300]
        page = json.loads(body)
        seen += [row["id"] for row in page["data"]]
        longest = max(longest, len(headers.get("Link", "")))
        pages += 1
        assert pages < 60, "paging does not end"
        if page["next"] is None:
            break
        status, headers, body = get(app, query=urlsplit(page["next"]).query)
    back: list[int] = []
    while page["prev"] is not None:
        status, headers, body = get(app, query=urlsplit(page["prev"]).query)
        page = json.loads(body)
        back = [row["id"] for row in page["data"]] + back
        assert len(back) <= len(seen)
    return seen, back + [row["id"] for row in json.loads(get(app, query=query)[2])["data"]][:0], longest


@pytest.fixture
def table(db: Engine) -> Any:
    meta = MetaData()
    t = Table(unique("hard"), meta, Column("id", Integer, primary_key=True),
              Column("ratio", Float(precision=24)),  # single precision on MariaDB, on purpose
              Column("notes", Text), Column("code", String(40)))
    meta.create_all(db)
    yield t
    meta.drop_all(db)


def test_paging_on_a_single_precision_float_visits_every_row_once(table: Any, db: Engine) -> None:
    """MariaDB rounds FLOAT in what it returns (0.3 for 0.30000001): the cursor used to hold
    the rounded value, and the next page was the same page, for ever."""
    with db.begin() as conn:
        conn.execute(insert(table), [{"ratio": 0.1 * (i % 7) + 0.2, "code": f"c{i}"} for i in range(40)])
    app = Api(table, ext="json", engine=db)
    for sort in ("ratio", "-ratio"):
        seen, _, _ = walk(app, f"sort={sort}&limit=3")
        assert sorted(seen) == list(range(1, 41)) and len(seen) == 40, sort


def test_paging_on_long_texts_visits_every_row_once_with_small_cursors(table: Any, db: Engine) -> None:
    """MariaDB sorts long texts by their first max_sort_length bytes; two notes differing after
    byte 1100 left page 2 empty. And a 40,000-character note made a 320 KB Link header."""
    long = "x" * 1100
    rows = [{"notes": long + "b"}, {"notes": long + "a"}, {"notes": "y" * 40_000},
            {"notes": long + "a"}, {"notes": None}, {"notes": "short"}]
    with db.begin() as conn:
        conn.execute(insert(table), rows)
    app = Api(table, ext="json", engine=db)
    for sort in ("notes", "-notes"):
        seen, _, longest = walk(app, f"sort={sort}&limit=1")
        assert sorted(seen) == list(range(1, len(rows) + 1)), (sort, seen)
        assert longest < 2000, longest  # the cursor does not grow with the data


def test_weak_etags_do_not_satisfy_if_match(table: Any, db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(insert(table), [{"code": "a"}])
    app = Api(table, ext="json", engine=db)
    status, headers, body = get(app, "1")
    etag = headers["ETag"]
    assert etag == etag_of(json.loads(body))
    weak = get(app, "1", method="PUT", json={"code": "b"}, headers={"If-Match": "W/" + etag})
    assert weak[0] == "412 Precondition Failed"
    assert json.loads(get(app, "1")[2])["code"] == "a"
    strong = get(app, "1", method="PUT", json={"code": "b"}, headers={"If-Match": etag})
    assert strong[0] == "200 OK"
    # If-None-Match compares weakly (RFC 9110): a weak tag of the current row is 304
    current = get(app, "1")[1]["ETag"]
    assert get(app, "1", headers={"If-None-Match": "W/" + current})[0] == "304 Not Modified"


def test_list_cells_show_an_excerpt_and_the_member_page_the_whole(tmp_path: Any) -> None:
    from robaccia.fields import EXCERPT, describe

    t = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("notes", Text),
              Column("code", String(20)))
    fields = {f.name: f for f in describe(t)}
    assert fields["notes"].long and not fields["code"].long
    big = "word " * 200_000
    shown = fields["notes"].excerpt(big)
    assert len(shown) <= EXCERPT + 1 and shown.endswith("\u2026")
    assert fields["notes"].excerpt("short") == "short"


# --- what addmodelview writes stores the same on every database -------------------------------

class Writable(Api):
    def create(self, environ: Any, start_response: Any) -> None:
        pass


EVERY_TYPE = ["title:string", "notes:text", "count:integer", "ratio:float", "price:decimal:14,4",
              "active:boolean", "day:date", "seen:datetime", "mail:email", "site:url"]


@pytest.fixture
def scaffolded(db: Engine, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The table of a model file addmodelview writes with every field type, created on ``db``."""
    import sys
    import types

    from robaccia import scaffold
    from robaccia.database import make_metadata

    name = unique("kinds")
    root = scaffold.create_project("p", tmp_path)
    scaffold.add_model_view(root, name, "json", EVERY_TYPE)
    dbconfig = types.ModuleType("dbconfig")
    dbconfig.metadata = make_metadata()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dbconfig", dbconfig)
    namespace: dict[str, Any] = {}
    path = root / "models" / f"{name}.py"
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    table = namespace["table"]
    table.create(db)
    yield table
    table.drop(db)


def test_every_scaffolded_type_returns_what_was_stored(scaffolded: Any, db: Engine) -> None:
    """MariaDB's FLOAT is single precision and its DATETIME drops microseconds: the
    scaffolder writes Double and a microsecond DATETIME instead, on every database."""
    app = Writable(scaffolded, ext="json", engine=db)
    sent = {"title": "Ada", "notes": "n" * 3000, "count": -2**31, "ratio": 1.23456789,
            "price": "1234567890.1234", "active": False, "day": "2026-02-28",
            "seen": "2026-11-30T07:01:02.345678Z", "mail": "ada@example.com",
            "site": "https://example.com/a?b=c"}
    for ratio in (1.23456789, 0.1 + 0.2, 1e-300, 2.0**60 + 1):
        status, headers, _ = get(app, method="POST", json=dict(sent, ratio=ratio))
        assert status == "201 Created"
        key = headers["Location"].rstrip("/").rsplit("/", 1)[1]
        stored = json.loads(get(app, key)[2])
        assert {k: stored[k] for k in sent} == dict(sent, ratio=ratio), db.dialect.name


def test_a_deleted_rows_id_is_never_given_to_a_new_row(scaffolded: Any, db: Engine) -> None:
    """SQLite took the largest key plus one: delete employee 5, and the next was employee 5."""
    app = Writable(scaffolded, ext="json", engine=db)
    keys = []
    for n in range(3):
        status, headers, _ = get(app, method="POST", json={"title": f"t{n}"})
        keys.append(int(headers["Location"].rstrip("/").rsplit("/", 1)[1]))
    assert get(app, str(keys[-1]), method="DELETE")[0] == "204 No Content"
    status, headers, _ = get(app, method="POST", json={"title": "new"})
    assert int(headers["Location"].rstrip("/").rsplit("/", 1)[1]) > keys[-1]

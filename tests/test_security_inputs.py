"""Security battery, hostile inputs: every class of malformed value, on every field type,
representation and URI, answered with a 4xx and nothing written.

The classes (from an outside attack on scaffolded projects): lone surrogates,
deep nesting, values at the edges of their ranges, a file where a field is
expected, hostile cookies; sent as JSON, urlencoded forms and multipart forms,
to create, update (PUT and the form's _method), delete, the list and its
cursors, the member page and the forms. The project runs in this process (as
robaccia's test client drives it: the same loader and middlewares as the
servers); the table is read directly after each refused write.
"""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from robaccia import scaffold
from robaccia.project import Project
from robaccia.testing import Client

FIELDS = ["name:string:required", "notes:text", "count:integer", "ratio:float", "price:decimal",
          "active:boolean", "born:date", "seen:datetime"]
NAMES = [f.split(":")[0] for f in FIELDS]

SURROGATES = ["\ud800", "a\udfffb", "\udc80" * 3]
NESTED = [[[[]]]] * 1
DEEP = "[" * 950 + "]" * 950
EDGES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0000-01-01", "10000-01-01",
         "9999-12-31T23:59:59.9999999", "1e309", "-1e309", "nan", "inf", "1e1000", "9" * 400,
         "-9223372036854775809", "2147483648", "-2147483649", "0x10", "1_000", "１２", "\u0661"]


def record(name: str, **values: Any) -> None:
    """Add a figure to tests/output/figures.json (the README's security table reads it)."""
    path = Path(__file__).resolve().parent / "output" / "figures.json"
    path.parent.mkdir(exist_ok=True)
    try:
        figures = json.loads(path.read_text())
    except (OSError, ValueError):
        figures = {}
    figures[name] = values
    path.write_text(json.dumps(figures, indent=2, sort_keys=True))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One project, an HTML and a JSON view over tables with every field type."""
    import importlib
    import os

    root = scaffold.create_project(f"hostile{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("inputs"))
    scaffold.add_model_view(root, "things", "html", FIELDS)
    scaffold.add_model_view(root, "apithings", "json", FIELDS)
    os.environ.pop("ROBACCIA_DATABASE_URL", None)
    project = Project(root)
    tables = {v: importlib.import_module(f"models.{v}").table for v in ("things", "apithings")}
    importlib.import_module("dbconfig").metadata.create_all(project.engine)
    return project, tables


def snapshot(project: Any, table: Any) -> list[Any]:
    with project.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]


def good(n: int) -> dict[str, Any]:
    return {"name": f"thing {n}", "notes": "n" * n, "count": n, "ratio": n + 0.5, "price": f"{n}.25",
            "active": n % 2 == 0, "born": "2020-02-29", "seen": "2024-01-01T10:00:00Z"}


def multipart(values: dict[str, Any], files: dict[str, bytes] | None = None) -> tuple[bytes, str]:
    boundary = "hostile" + uuid.uuid4().hex
    parts = []
    for name, value in values.items():
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                     + data + b"\r\n")
    for name, data in (files or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                     + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Tally:
    def __init__(self) -> None:
        self.sent = 0
        self.server_errors: list[str] = []
        self.written: list[str] = []

    def check(self, label: str, response: Any) -> None:
        self.sent += 1
        if response.status_code >= 500:
            self.server_errors.append(f"{label}: {response.status} {response.text[:200]!r}")


def hostile_values() -> list[tuple[str, Any]]:
    """(class, value) pairs: surrogates, nesting, range edges."""
    values: list[tuple[str, Any]] = [("surrogate", s) for s in SURROGATES]
    values += [("nested", NESTED), ("nested", {"a": {"b": 1}}), ("nested", [1, 2])]
    values += [("edge", e) for e in EDGES]
    return values


def test_hostile_json_and_forms_on_every_field_and_uri(site: Any) -> None:
    project, tables = site
    tally = Tally()
    client = Client(project)
    for view, kind in (("things", "html"), ("apithings", "json")):
        table = tables[view]
        created = client.post(f"/{view}/", json=good(1))
        assert created.status_code in (201, 303), created.text
        member = created.location
        for field, (klass, value) in itertools.product(NAMES, hostile_values()):
            before = snapshot(project, table)
            body = dict(good(2), **{field: value})
            # JSON create and update
            for method, path in (("POST", f"/{view}/"), ("PUT", member)):
                response = client.request(method, path, json=body)
                tally.check(f"{kind} {method} json {field}={value!r:.40}", response)
                if response.status_code < 300 and klass == "surrogate":
                    tally.written.append(f"{method} {field} {value!r}")
            # forms: urlencoded and multipart, create and the _method override
            text = value if isinstance(value, str) else json.dumps(value)
            for target, extra in ((f"/{view}/", {}), (member, {"_method": "PUT"})):
                form = {k: v if k != field else text for k, v in body.items()}
                encoded = "&".join(f"{k}={quote(str(v).encode('utf-8', 'surrogatepass'))}"
                                   for k, v in {**form, **extra}.items())
                response = client.request("POST", target, encoded,
                                          content_type="application/x-www-form-urlencoded")
                tally.check(f"{kind} form {target} {field}", response)
                data, ctype = multipart({**form, **extra})
                response = client.request("POST", target, data, content_type=ctype)
                tally.check(f"{kind} multipart {target} {field}", response)
            after = snapshot(project, table)
            if klass == "surrogate" and after != before and len(after) > len(before) + 0:
                # a surrogate must never reach the database, whatever else was written
                for row in after:
                    for cell in row:
                        if isinstance(cell, str):
                            try:
                                cell.encode("utf-8")
                            except UnicodeEncodeError:
                                tally.written.append(f"{view}.{field}: {cell!r}")
        # deep nesting and file parts for every field
        deep = f'{{"name": "x", "notes": {DEEP}}}'.encode()
        for method, path in (("POST", f"/{view}/"), ("PUT", member)):
            tally.check(f"{kind} deep {method}", client.request(method, path, deep,
                                                                content_type="application/json"))
        for field in NAMES:
            before = snapshot(project, table)
            data, ctype = multipart({k: v for k, v in good(3).items() if k != field}, {field: b"\xff\x00x"})
            response = client.request("POST", f"/{view}/", data, content_type=ctype)
            tally.check(f"{kind} file part for {field}", response)
            assert response.status_code == 422, (field, response.status, response.text[:300])
            assert snapshot(project, table) == before
        # invalid UTF-8 in every body type is a 400 (multipart too), never U+FFFD stored
        for ctype, data in (("application/x-www-form-urlencoded", b"name=%ff%fe"),
                            ("application/json", b'{"name": "\xff\xfe"}'),
                            multipart({"name": b"\xff\xfe ok"})[::-1]):
            before = snapshot(project, table)
            response = client.request("POST", f"/{view}/", data, content_type=ctype)
            tally.check(f"{kind} invalid utf-8 {ctype[:20]}", response)
            assert response.status_code == 400, (ctype, response.status)
            assert snapshot(project, table) == before
    record("hostile_inputs", requests=tally.sent, server_errors=len(tally.server_errors),
           surrogates_written=len(tally.written),
           summary=f"{tally.sent} requests with lone surrogates, nesting, range edges, file parts "
                   f"and invalid UTF-8 on 8 field types x 2 representations x create/update: "
                   f"{len(tally.server_errors)} 5xx, {len(tally.written)} surrogates stored")
    assert not tally.server_errors, "\n".join(tally.server_errors[:15])
    assert not tally.written, tally.written[:10]


def _cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_hostile_cursors_and_query_strings(site: Any) -> None:
    project, tables = site
    client = Client(project)
    tally = Tally()
    for view in ("things", "apithings"):
        for n in range(3):
            client.post(f"/{view}/", json=good(10 + n))
        cursors = [_cursor([1, 1, False, s]) for s in SURROGATES]
        cursors += [_cursor([1, 1, False, e]) for e in EDGES]
        cursors += [_cursor(json.loads(DEEP)), _cursor([[[[[1]]]], 1, False, None]), "W" * 3000,
                    _cursor([1, -1, False, None]), _cursor([1, 2**70, False, None]), "%ED%A0%80",
                    _cursor(["\ud800", 1, False, None]), _cursor([1, 1, True, "x"]), "!!!", ""]
        for sort in ["", "-name", "notes", "count", "-ratio", "price", "active", "born", "-seen"]:
            for cursor in cursors:
                for key in ("after", "before"):
                    query = f"sort={sort}&{key}={cursor}" if sort else f"{key}={cursor}"
                    response = client.get(f"/{view}/?{query}")
                    tally.check(f"{view} {query[:60]}", response)
                    assert response.status_code in (200, 400, 404), (query[:80], response.status)
        for query in ("limit=", "sort=", "sort=-", "limit=0", "limit=1e3", "after=%ED%A0%80",
                      "sort=%00", "&" * 200, "a=1&" * 50):
            response = client.get(f"/{view}/?{query}")
            tally.check(f"{view} {query[:40]}", response)
            assert response.status_code in (200, 400, 404), (query[:80], response.status)
    record("hostile_cursors", requests=tally.sent, server_errors=len(tally.server_errors),
           summary=f"{tally.sent} list requests with hostile cursors (surrogates, nesting, range "
                   f"edges, oversize) and query strings, every sort: {len(tally.server_errors)} 5xx")
    assert not tally.server_errors, tally.server_errors[:10]


HOSTILE_COOKIES = [
    "robaccia_csrf=\u00e9\u00e8\u00ff", "robaccia_csrf=\xff\xfe", "robaccia_flash=\u00e9;robaccia_csrf=x",
    "robaccia_csrf=" + "a" * 5000, "robaccia_csrf=abc.def", 'robaccia_csrf="q\\"uoted"',
    "robaccia_flash=" + "%" * 300, "robaccia_flash=not.signed", "robaccia_csrf=;robaccia_csrf=",
    "=; ;;=x", "\x00=\x01", "robaccia_csrf=\u0100",
]


def test_a_hostile_cookie_is_treated_as_absent(site: Any) -> None:
    project, tables = site
    tally = Tally()
    for cookie in HOSTILE_COOKIES:
        client = Client(project, csrf=False)
        for path in ("/", "/things/", "/things/;new_form", "/apithings/", "/static/robaccia.css"):
            response = client.get(path, headers={"Cookie": cookie})
            tally.check(f"{cookie[:30]!r} {path}", response)
            assert response.status_code == 200, (cookie[:40], path, response.status)
        page = client.get("/things/;new_form", headers={"Cookie": cookie})
        fresh = next((v for k, v in page.headers if k == "Set-Cookie" and v.startswith("robaccia_csrf=")),
                     None)
        assert fresh is not None, cookie  # a bad cookie is replaced, so forms work again
        token = page.text.split('name="_csrf" value="', 1)[1].split('"', 1)[0]
        response = client.post("/things/", {"name": "after a bad cookie", "_csrf": token},
                               headers={"Cookie": fresh.split(";", 1)[0]})
        tally.check(f"{cookie[:30]!r} create", response)
        assert response.status_code == 303, (cookie[:40], response.status, response.text[:200])
    record("hostile_cookies", requests=tally.sent, server_errors=len(tally.server_errors),
           summary=f"{len(HOSTILE_COOKIES)} hostile cookies (non-ASCII, oversize, unsigned, quoted, "
                   f"repeated) on every page kind: {len(tally.server_errors)} 5xx; each replaced, "
                   "the form after it accepted")
    assert not tally.server_errors


def test_edge_uris(site: Any) -> None:
    project, tables = site
    client = Client(project)
    for path in ("/things/;edit_form", "/things/;delete_form", "/apithings/;edit_form",
                 "/things/0;edit_form", "/things/999999999999999999999;delete_form"):
        response = client.get(path)
        assert response.status_code in (404, 405), (path, response.status)


def test_refused_writes_change_nothing(site: Any) -> None:
    project, tables = site
    table = tables["apithings"]
    client = Client(project)
    before = snapshot(project, table)
    with project.engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(table)).scalar()
    for body in ({"name": "\ud800"}, {"name": "ok", "born": "0001-01-01T00:00:00+01:00"},
                 {"name": "ok", "seen": "0001-01-01T00:00:00+01:00"}, {"name": "ok", "count": "9" * 40}):
        response = client.post("/apithings/", json=body)
        assert 400 <= response.status_code < 500, (body, response.status)
    assert snapshot(project, table) == before
    with project.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(table)).scalar() == count

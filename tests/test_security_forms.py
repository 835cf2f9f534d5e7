"""Security battery, forms: mass assignment, the _method override, CSRF.

Each test talks to a scaffolded project served by ``robaccia-admin serve``
(serve: waitress, debug off, SQLite) and checks the database itself after every
request, so "accepted" means "the data changed", not just a status code.
Figures go to tests/output/figures.json.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_support import (
    AUDIT,
    Site,
    build_project,
    record_audit,
    record_figure,
    serving,
)
from support import POSTGRES_URL, Client

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HYPOTHESIS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
REAL_COLUMNS = {"id", "name", "title", "office_number"}
# Fresh numbers for every example (Hypothesis reseeds `random` for each one).
_fresh = itertools.count(10**9 + (uuid.uuid4().int % 10**6) * 1000)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    project = build_project(tmp_path_factory.mktemp("forms"), "genshi")
    with serving(project, "serve") as served_site:
        yield served_site
    record_audit()


@pytest.fixture(scope="module")
def browser(site: Site) -> Client:
    return site.client()


# --- direct database access (the oracle) -------------------------------------------------------


def insert(site: Site, role: str = "html", **values: Any) -> int:
    table = site.view(role)
    with site.project.sqlite() as conn:
        names = ", ".join(f'"{k}"' for k in values)
        marks = ", ".join("?" for _ in values)
        cur = conn.execute(
            f'INSERT INTO "{table}" ({names}) VALUES ({marks})', list(values.values())
        )
        return int(cur.lastrowid or 0)


def fetch(site: Site, id: Any, role: str = "html") -> dict[str, Any] | None:
    with site.project.sqlite() as conn:
        row = conn.execute(f'SELECT * FROM "{site.view(role)}" WHERE id = ?', (id,)).fetchone()
        return dict(row) if row is not None else None


def count(site: Site, where: str, args: tuple[Any, ...], role: str = "html") -> int:
    with site.project.sqlite() as conn:
        return int(
            conn.execute(
                f'SELECT COUNT(*) FROM "{site.view(role)}" WHERE {where}', args
            ).fetchone()[0]
        )


def member_id(location: str | None) -> int:
    assert location, "no Location"
    return int(location.rstrip("/").rsplit("/", 1)[1])


def multipart(fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    boundary = "battery" + uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields
    ]
    return (
        "".join(parts) + f"--{boundary}--\r\n"
    ).encode(), f"multipart/form-data; boundary={boundary}"


# --- mass assignment ------------------------------------------------------------------------------

EXTRA_KEYS = st.sampled_from(
    [
        "id",
        "ID",
        "Id",
        "_method",
        "_etag",
        "is_admin",
        "owner",
        "created",
        "rowid",
        "oid",
        "Name",
        "name ",
        " name",
        "name[]",
        "office_number.0",
        "__class__",
        "__dict__",
        "_csrf_",
        "title;DROP TABLE x",
        "' OR 1=1 --",
        "id\x00",
        "tItle",
    ]
) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz_ -;'\"()[]", min_size=1, max_size=16).filter(
    lambda k: k not in REAL_COLUMNS | {"_csrf"}
)
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40
).filter(lambda s: s.strip() != "")
EXTRA_VALUES = st.one_of(
    st.text(max_size=12).filter(lambda s: "\x00" not in s),
    st.integers(1_000_000, 10**12).map(str),
    st.sampled_from(["PUT", "DELETE", "put", "GET", "HEAD", "PATCH", "x"]),
)

MASS = {"requests": 0, "server_errors": 0, "pk_changes": 0, "foreign_writes": 0}


def _check_no_5xx(status: int) -> None:
    MASS["requests"] += 1
    if status >= 500:
        MASS["server_errors"] += 1
    assert status < 500, status


@HYPOTHESIS
@given(
    name=TEXT,
    title=TEXT,
    office=st.integers(-1000, 10**6),
    extras=st.dictionaries(EXTRA_KEYS, EXTRA_VALUES, max_size=6),
)
def test_form_create_writes_only_allowed_columns(
    site: Site, browser: Client, name: str, title: str, office: int, extras: dict[str, str]
) -> None:
    if "id" in extras:
        extras["id"] = str(next(_fresh))
    form = [("name", name), ("title", title), ("office_number", str(office)), *extras.items()]
    response = browser.request("POST", f"/{site.view('html')}/", form=form, csrf=True)
    _check_no_5xx(response.status)
    override = extras.get("_method", "").upper()
    if override in ("PUT", "DELETE"):
        assert response.status == 405  # PUT/DELETE on the collection: nothing handles it
        return
    assert response.status == 303, (response.status, response.text[:300])
    new_id = member_id(response.header("Location"))
    row = fetch(site, new_id)
    if "id" in extras and new_id == int(extras["id"]):
        MASS["pk_changes"] += 1
    assert new_id != int(extras.get("id", -1))
    expected = {"id": new_id, "name": name, "title": title, "office_number": office}
    if row != expected:
        MASS["foreign_writes"] += 1
    assert row == expected


@HYPOTHESIS
@given(name=TEXT, extras=st.dictionaries(EXTRA_KEYS, EXTRA_VALUES, max_size=6))
def test_form_update_keeps_primary_key(
    site: Site, browser: Client, name: str, extras: dict[str, str]
) -> None:
    original = insert(site, name="before", title="t", office_number=1)
    extras.pop("_method", None)
    extras.pop("_etag", None)
    wanted_id = str(next(_fresh))
    form = [("_method", "PUT"), ("name", name), ("id", wanted_id), *extras.items()]
    response = browser.request("POST", f"/{site.view('html')}/{original}", form=form, csrf=True)
    _check_no_5xx(response.status)
    assert response.status == 303, (response.status, response.text[:300])
    assert member_id(response.header("Location")) == original
    if fetch(site, int(wanted_id)) is not None or fetch(site, original) is None:
        MASS["pk_changes"] += 1
    assert fetch(site, int(wanted_id)) is None
    row = fetch(site, original)
    expected = {"id": original, "name": name, "title": "t", "office_number": 1}
    if row != expected:
        MASS["foreign_writes"] += 1
    assert row == expected


@HYPOTHESIS
@given(
    value=st.integers(-(2**31), 2**31 - 1),
    extras=st.dictionaries(EXTRA_KEYS, EXTRA_VALUES, max_size=4),
)
def test_json_create_and_update_reject_unknown_members(
    site: Site, browser: Client, value: int, extras: dict[str, str]
) -> None:
    view = site.view("json")
    if "id" in extras:
        extras["id"] = str(next(_fresh))
    marker = next(_fresh)
    body = {"count": marker, **extras}
    response = browser.request("POST", f"/{view}/", json_body=body)
    _check_no_5xx(response.status)
    if extras:
        # NOTE: a JSON body with keys that are not columns, or that sets the id the server
        # assigns, is refused whole (422), as the schema's additionalProperties says.
        assert response.status == 422, (response.status, response.text[:300])
        assert count(site, '"count" = ?', (marker,), "json") == 0
    else:
        assert response.status == 201, (response.status, response.text[:300])
        new_id = member_id(response.header("Location"))
        assert fetch(site, new_id, "json") == {"id": new_id, "count": marker}
    target = insert(site, "json", count=0)
    response = browser.request(
        "PUT", f"/{view}/{target}", json_body={"count": value, "id": target + 10**9, **extras}
    )
    _check_no_5xx(response.status)
    assert response.status == 422, (response.status, response.text[:300])
    assert fetch(site, target + 10**9, "json") is None
    assert fetch(site, target, "json") == {"id": target, "count": 0}
    response = browser.request("PUT", f"/{view}/{target}", json_body={"count": value, **extras})
    _check_no_5xx(response.status)
    row = fetch(site, target, "json")
    if extras:
        assert response.status == 422
        assert row == {"id": target, "count": 0}
    else:
        assert response.status == 200, (response.status, response.text[:300])
        assert row == {"id": target, "count": value}


@pytest.fixture(scope="module", autouse=True)
def mass_assignment_figure() -> Any:
    yield
    if MASS["requests"]:
        record_figure(
            "mass_assignment",
            **MASS,
            summary=f"{MASS['requests']} generated create/update requests with extra keys, the "
            f"primary key and _method: {MASS['foreign_writes']} writes outside the allowed "
            f"columns, {MASS['pk_changes']} primary-key changes, {MASS['server_errors']} 5xx",
        )


def test_string_primary_key_never_changes(site: Site, browser: Client) -> None:
    """A writable (string) key is set on create and never changed by an update."""
    html, jkey = site.view("skey"), site.view("jkey")
    key = f"mk-{uuid.uuid4().hex[:8]}"
    response = browser.request("POST", f"/{html}/", form={"id": key, "label": "a"}, csrf=True)
    _check_no_5xx(response.status)
    assert response.status == 303
    for form in (
        {"_method": "PUT", "id": key + "-moved", "label": "b"},
        {"_method": "PUT", "ID": key + "-moved", "label": "c", "_method ": "DELETE"},
    ):
        response = browser.request("POST", f"/{html}/{key}", form=form, csrf=True)
        _check_no_5xx(response.status)
        assert response.status == 303, response.status
        assert response.header("Location") == f"/{html}/{key}"
        assert fetch(site, key + "-moved", "skey") is None
        assert fetch(site, key, "skey") == {"id": key, "label": form["label"]}
    response = browser.request("POST", f"/{jkey}/", json_body={"id": key, "label": "a"})
    _check_no_5xx(response.status)
    assert response.status == 201
    # JSON names the key in the address; a body that tries to change it is refused whole
    response = browser.request(
        "PUT", f"/{jkey}/{key}", json_body={"id": key + "-moved", "label": "b"}
    )
    _check_no_5xx(response.status)
    assert response.status == 422, response.text
    assert response.json()["errors"] == {
        "id": "The key is part of the address and cannot change: leave it out."}
    assert fetch(site, key + "-moved", "jkey") is None
    assert fetch(site, key, "jkey") == {"id": key, "label": "a"}
    response = browser.request("PUT", f"/{jkey}/{key}", json_body={"label": "b"})
    assert response.status == 200 and response.json() == {"id": key, "label": "b"}


# --- method override ------------------------------------------------------------------------------

REAL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "FOO"]
CHANNELS = ["query", "form", "multipart", "json", "header"]
VALUES = ["PUT", "DELETE", "put", "delete", "GET", "HEAD", "PATCH", "POST", "junk"]


def _override_request(
    site: Site, browser: Client, method: str, channel: str, value: str, id: int
) -> int:
    path = f"/{site.view('html')}/{id}"
    fields = [("name", "changed")]
    headers: dict[str, str] = {}
    if channel == "query":
        path += f"?_method={value}"
    elif channel == "header":
        headers["X-HTTP-Method-Override"] = value
    if channel == "json":
        return browser.request(
            method, path, json_body={"name": "changed", "_method": value}, headers=headers
        ).status
    if channel == "multipart":
        body, ctype = multipart([*fields, ("_method", value), ("_csrf", browser.token)])
        headers["Content-Type"] = ctype
        return browser.request(method, path, body=body, headers=headers).status
    if channel == "form":
        fields.append(("_method", value))
    return browser.request(method, path, form=fields, headers=headers, csrf=True).status


def test_method_override_matrix(site: Site, browser: Client) -> None:
    cases = list(itertools.product(REAL_METHODS, CHANNELS, VALUES))
    wrong: list[str] = []
    effective_changes = 0
    server_errors = 0
    for n, (method, channel, value) in enumerate(cases):
        id = insert(site, name=f"orig-{n}", title="t", office_number=n)
        status = _override_request(site, browser, method, channel, value, id)
        server_errors += status >= 500
        overridden = (
            method == "POST"
            and channel in ("form", "multipart")
            and value.upper() in ("PUT", "DELETE")
        )
        effective = value.upper() if overridden else method
        row = fetch(site, id)
        if effective == "DELETE":
            ok = row is None and status == 303
        elif effective == "PUT" and channel != "json":
            ok = row is not None and row["name"] == "changed" and status == 303
        else:
            # PUT with a JSON body naming _method is refused (unknown member); all
            # other methods must leave the row alone.
            ok = row is not None and row["name"] == f"orig-{n}" and status < 500
        if overridden:
            effective_changes += 1
        if method in ("GET", "HEAD") and (row is None or row["name"] != f"orig-{n}"):
            ok = False
        if not ok:
            wrong.append(f"{method} {channel} _method={value}: {status}, row={row}")
    record_figure(
        "method_override_matrix",
        cases=len(cases),
        wrong=len(wrong),
        server_errors=server_errors,
        overrides_honoured=effective_changes,
        accepted_channels=["POST form body (urlencoded or multipart), value PUT or DELETE"],
        summary=f"{len(cases)} cases (8 methods x 5 channels x 9 values): {len(wrong)} wrong, "
        f"{server_errors} 5xx; GET/HEAD changed data 0 times; only POST + form body + "
        "PUT/DELETE overrides",
    )
    assert not wrong, "\n".join(wrong[:20])
    assert server_errors == 0


# --- CSRF -----------------------------------------------------------------------------------------

CSRF_METHODS = ["POST", "PUT", "PATCH", "DELETE"]
TOKENS = ["missing", "wrong", "foreign", "valid"]
ORIGINS = ["absent", "same", "other", "null"]
FETCH_SITES = ["absent", "same-origin", "same-site", "cross-site", "none"]


def _origin_headers(site: Site, origin: str, fetch_site: str) -> dict[str, str]:
    headers = {}
    if origin != "absent":
        headers["Origin"] = {"same": site.origin, "other": "http://evil.example", "null": "null"}[
            origin
        ]
    if fetch_site != "absent":
        headers["Sec-Fetch-Site"] = fetch_site
    return headers


def _same_site(origin: str, fetch_site: str) -> bool:
    # NOTE: Sec-Fetch-Site: same-site (a sibling subdomain) is refused too.
    return origin in ("absent", "same") and fetch_site in ("absent", "same-origin", "none")


def test_csrf_matrix_forms(site: Site, browser: Client) -> None:
    other_browser = site.client()
    foreign = other_browser.token
    assert foreign != browser.token
    view = site.view("html")
    wrong: list[str] = []
    accepted_without_valid = 0
    cases = list(itertools.product(CSRF_METHODS, TOKENS, ORIGINS, FETCH_SITES))
    for n, (method, token, origin, fetch_site) in enumerate(cases):
        headers = _origin_headers(site, origin, fetch_site)
        sent = {
            "missing": None,
            "wrong": "0" * len(browser.token),
            "foreign": foreign,
            "valid": browser.token,
        }[token]
        id = insert(site, name=f"csrf-{n}", title="t", office_number=n)
        marker = f"created-{uuid.uuid4().hex}"
        if method == "POST":
            form = [("name", marker)] + ([("_csrf", sent)] if sent else [])
            response = browser.request("POST", f"/{view}/", form=form, headers=headers)
            changed = count(site, "name = ?", (marker,)) > 0
        elif method == "PUT":
            form = [("name", marker)] + ([("_csrf", sent)] if sent else [])
            response = browser.request("PUT", f"/{view}/{id}", form=form, headers=headers)
            changed = fetch(site, id)["name"] == marker  # type: ignore[index]
        else:
            if sent:
                headers["X-CSRF-Token"] = sent
            form = [("name", marker)] if method == "PATCH" else []
            response = browser.request(method, f"/{view}/{id}", form=form or None, headers=headers)
            row = fetch(site, id)
            changed = row is None or row["name"] != f"csrf-{n}"
        expected = token == "valid" and _same_site(origin, fetch_site)
        accepted = response.status != 403
        if accepted and token != "valid":
            accepted_without_valid += 1
        if method == "PATCH":
            ok = (response.status == 405) if expected else (response.status == 403)
            ok = ok and not changed
        else:
            ok = (
                (accepted and changed and response.status == 303)
                if expected
                else (response.status == 403 and not changed)
            )
        if not ok:
            wrong.append(
                f"{method} token={token} Origin={origin} Sec-Fetch-Site={fetch_site}: "
                f"{response.status}, changed={changed}"
            )
    record_figure(
        "csrf_matrix_forms",
        cases=len(cases),
        wrong=len(wrong),
        accepted_without_valid_token=accepted_without_valid,
        summary=f"{len(cases)} unsafe form requests (4 methods x 4 token states x 4 Origins x 5 "
        f"Sec-Fetch-Site): {accepted_without_valid} accepted without a valid token, "
        f"{len(wrong)} outcomes other than expected",
    )
    assert not wrong, "\n".join(wrong[:20])


def test_csrf_matrix_json(site: Site, browser: Client) -> None:
    """application/json needs no token but is still refused from another site."""
    view = site.view("json")
    wrong: list[str] = []
    cases = list(itertools.product(CSRF_METHODS, ORIGINS, FETCH_SITES))
    accepted_cross_site = 0
    for n, (method, origin, fetch_site) in enumerate(cases):
        headers = _origin_headers(site, origin, fetch_site)
        id = insert(site, "json", count=n)
        marker = 10**7 + n
        if method == "POST":
            response = browser.request(
                "POST", f"/{view}/", json_body={"count": marker}, headers=headers, cookies=False
            )
            changed = count(site, '"count" = ?', (marker,), "json") > 0
            ok_status = 201
        elif method == "DELETE":
            response = browser.request(
                "DELETE", f"/{view}/{id}", json_body={}, headers=headers, cookies=False
            )
            changed = fetch(site, id, "json") is None
            ok_status = 204
        else:
            response = browser.request(
                method, f"/{view}/{id}", json_body={"count": marker}, headers=headers, cookies=False
            )
            changed = fetch(site, id, "json") != {"id": id, "count": n}
            ok_status = 200 if method == "PUT" else 405
        expected = _same_site(origin, fetch_site)
        if not expected and response.status != 403:
            accepted_cross_site += 1
        ok = (
            (response.status == ok_status and changed == (method != "PATCH"))
            if expected
            else (response.status == 403 and not changed)
        )
        if not ok:
            wrong.append(
                f"{method} JSON Origin={origin} Sec-Fetch-Site={fetch_site}: "
                f"{response.status}, changed={changed}"
            )
    # Bodies a cross-site page *can* send without CORS must carry a token.
    simple = 0
    for ctype, body in (
        ("text/plain", '{"count": 5}'),
        ("application/x-www-form-urlencoded", "count=5"),
        (
            "multipart/form-data; boundary=x",
            '--x\r\nContent-Disposition: form-data; name="count"\r\n\r\n5\r\n--x--\r\n',
        ),
    ):
        response = browser.request(
            "POST", f"/{view}/", body=body, headers={"Content-Type": ctype}, cookies=False
        )
        simple += 1
        if response.status != 403:
            wrong.append(f"POST {ctype} without token: {response.status}")
    record_figure(
        "csrf_matrix_json",
        cases=len(cases) + simple,
        wrong=len(wrong),
        accepted_from_other_sites=accepted_cross_site,
        summary=f"{len(cases)} JSON requests (4 methods x 4 Origins x 5 Sec-Fetch-Site) and "
        f"{simple} token-less 'simple' bodies: {accepted_cross_site} accepted from another "
        f"site, {len(wrong)} outcomes other than expected",
    )
    assert not wrong, "\n".join(wrong[:20])


def test_audit_detects_internals() -> None:
    """The leak detector itself: each kind of internal is caught, a clean page is not."""
    from security_support import Audit

    audit = Audit()
    samples = [
        b'Traceback (most recent call last):\n  File "/srv/app/views/x.py", line 3, in <module>',
        b"psycopg.errors.InvalidTextRepresentation: invalid input syntax for type integer",
        b"sqlite3.OperationalError: no such table: x",
        b"(pymysql.err.DataError) (1406, 'Data too long')",
        b"[SQL: SELECT employees.id FROM employees WHERE employees.id = %(pk)s]",
        POSTGRES_URL.encode(),
        b"/usr/lib/python3/dist-packages/sqlalchemy/engine/base.py",
    ]
    for body in samples:
        audit.check(None, "GET", "/x", b"", 500, body)
    audit.check(None, "GET", "/x", b"", 404, b"<p>Nothing matches the requested address.</p>")
    assert len(audit.leaks) == len(samples), audit.leaks
    assert len(audit.server_errors) == len(samples)


def test_audit_so_far(site: Site) -> None:
    assert not AUDIT.leaks, AUDIT.leaks[:5]
    assert not AUDIT.server_errors, AUDIT.server_errors[:5]

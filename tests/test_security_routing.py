"""Security battery, routing: view/id/noun fuzzing, module imports, static traversal, ids.

* Hostile view names, nouns and method tokens get 404 or 405 (400 only from
  the server itself, for tokens it refuses before the app runs), and import
  nothing: checked in-process by comparing sys.modules, and over HTTP with a
  helper module in views/ whose import leaves a marker file.
* A static traversal corpus (encoded dots, backslashes, NUL, overlong UTF-8,
  a sibling static2/ folder, symlinks out of static/) serves nothing from
  outside static/, on serve and on the development server.
* Ids of every wrong shape, against integer and string primary keys, on
  SQLite and PostgreSQL: 404, never 5xx.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_support import (
    AUDIT,
    SECRET_OUTSIDE,
    Site,
    build_project,
    drop_tables,
    raw_exchange,
    record_audit,
    record_figure,
    request_bytes,
    serving,
    unique_prefix,
)
from support import project_env, require_postgres

HYPOTHESIS = settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_project(tmp_path_factory.mktemp("routing"), "jinja2")


@pytest.fixture(scope="module")
def site(project: Any) -> Any:
    with serving(project, "serve") as served_site:
        yield served_site
    record_audit()


@pytest.fixture(scope="module")
def dev_site(project: Any) -> Any:
    with serving(project, "run") as served_site:
        yield served_site


def from_server(headers: list[tuple[str, str]]) -> bool:
    """Tell whether a response came from the server itself (waitress) (the app adds these headers)."""
    return not any(name.lower() == "x-frame-options" for name, _ in headers)


# --- view, noun and method fuzzing ----------------------------------------------------------------

HOSTILE_VIEWS = [
    "..",
    ".",
    "...",
    "__init__",
    "__main__",
    "__pycache__",
    "os",
    "sys",
    "subprocess",
    "json",
    "importlib",
    "builtins",
    "antigravity",
    "this",
    "settings",
    "dbconfig",
    "dispatcher",
    "models",
    "views",
    "robaccia",
    "tests",
    "static",
    "templates",
    "helpers",
    "helpers.py",
    "views.helpers",
    "employees.py",
    "employees.__init__",
    "os.path",
    "x.y",
    "%2e%2e",
    "..%2f..%2fsettings",
    "Employees",
    "EMPLOYEES",
    "\uff45mployees",
    "\u00e9mployees",
    "employee\u0073\u0307",
    "\u0130",
    "k" * 250,
    "%00",
    "employees%00",
    "nul\x00",
    "-",
    "_",
    "~",
    "__",
    "_employees",
    "employees_",
    "1",
    "0x",
    "eval",
    "exec",
    "__import__",
    "jkeys.",
    "keys..",
]
# Cases that were bugs once, each with its own regression test below.
BUG_HELPER = "helpers"  # a module in views/ without `app`
BUG_LONG = ["k" * 300, "a" * 5000]  # alphanumeric names too long for a file name
HOSTILE_VIEWS.remove(BUG_HELPER)
NOUNS = [
    "_fetch",
    "fetch",
    "respond",
    "_respond",
    "finish",
    "resolve",
    "_render",
    "render",
    "page",
    "_page",
    "db_errors",
    "_db_errors",
    "default_list",
    "default_delete",
    "__init__",
    "__class__",
    "__call__",
    "list",
    "create",
    "retrieve",
    "update",
    "delete",
    "new_form;x",
    "edit_form.",
    "form",
    "edit",
    "pk_value",
    "_pk_value",
    "member_vars",
    "write",
    "read",
    "prepare",
    "_prepare",
    "handler",
    "candidates",
    "guarded",
    "invalid",
    "integrity",
    "conflict",
    "cursor",
    "decode_cursor",
    "sorted",
    "table",
    "engine",
    "fields",
    "columns",
    "renderer",
    "parser",
    "limits",
    "ext",
    "title",
    "item",
    "primary",
    "pk",
]
METHODS = [
    "GET",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "FOO",
    "UPDATE",
    "PROPFIND",
    "get",
    "M-SEARCH",
    "TRACE",
    "CONNECT",
    "A{B",
]
# Tokens no resource here handles (the server refuses the malformed ones itself).
ODD_METHODS = [
    "PATCH",
    "FOO",
    "UPDATE",
    "PROPFIND",
    "get",
    "Get",
    "M-SEARCH",
    "TRACE",
    "CONNECT",
    "A{B",
    "GET2",
    "X" * 40,
    "DELETE_FORM",
    "GET_EDIT_FORM",
]


def _fuzz_status_ok(result: Any) -> bool:
    if result.status in (404, 405):
        return True
    return result.status in (400, 414) and from_server(result.headers)


def test_view_noun_and_method_fuzzing(site: Site) -> None:
    html = site.view("html")
    existing = int(
        site.client()
        .request("POST", f"/{site.view('json')}/", json_body={"count": 1})
        .header("Location")
        .rsplit("/", 1)[1]
    )  # type: ignore[union-attr]
    targets: list[tuple[str, str]] = []
    for view in HOSTILE_VIEWS:
        encoded = quote(view, safe="-._~%")
        for suffix in ("/", "", "/1", "/;new_form", "/1;edit_form"):
            targets.append(("GET", f"/{encoded}{suffix}"))
        targets.append(("POST", f"/{encoded}/"))
    for noun in NOUNS:
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            targets.append((method, f"/{html}/1;{quote(noun, safe='-._~')}"))
            targets.append((method, f"/{html}/;{quote(noun, safe='-._~')}"))
    for method in ODD_METHODS:
        for path in (
            f"/{html}/",
            f"/{html}/1",
            f"/{html}/1;edit_form",
            f"/{html}/;new_form",
            f"/{site.view('json')}/{existing}",
            f"/{html}",
            "/nosuchview/",
        ):
            targets.append((method, path))
    wrong = []
    for method, path in targets:
        data = request_bytes(site, method, path, {"Content-Type": "application/json"}, b"{}")
        result = raw_exchange(site, data, timeout=20)
        if not _fuzz_status_ok(result):
            wrong.append(f"{method} {path[:80]}: {result.status}")
    record_figure(
        "view_noun_method_fuzzing",
        requests=len(targets),
        wrong=len(wrong),
        server_errors=sum(" 5" in w for w in wrong),
        summary=f"{len(targets)} requests with hostile view names, nouns and method tokens: "
        f"{len(wrong)} answered other than 404/405",
        examples=wrong[:5],
    )
    assert not wrong, "\n".join(wrong[:20])


@HYPOTHESIS
@given(
    view=st.text(min_size=1, max_size=40),
    noun=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
    method=st.sampled_from(METHODS),
)
def test_generated_views_and_nouns(site: Site, view: str, noun: str | None, method: str) -> None:
    if (
        view in site.project.views.values()
        or view == BUG_HELPER
        or (view.isascii() and view.isalnum() and len(view) > 250)
    ):
        return
    path = "/" + quote(view.encode("utf-8", "surrogatepass"), safe="") + "/1"
    if noun is not None:
        path += ";" + quote(noun.encode("utf-8", "surrogatepass"), safe="")
    data = request_bytes(site, method, path, {"Content-Type": "application/json"}, b"{}")
    result = raw_exchange(site, data, timeout=20)
    assert _fuzz_status_ok(result), (method, path, result.status)


def test_helper_module_in_views_says_it_defines_no_app(site: Site) -> None:
    """A module in views/ without an app is an error that says so in the log (and is
    a plain 500 to visitors), never a silent 404: views are found by importing them."""
    statuses = {}
    for path in ("/helpers/", "/helpers", "/helpers/1"):
        result = raw_exchange(site, request_bytes(site, "GET", path), timeout=20, audit=False)
        statuses[path] = result.status
        assert b"Traceback" not in result.raw and b"helpers" not in result.raw, result.raw[:500]
    record_figure(
        "regression_helper_module_in_views",
        statuses=statuses,
        summary=f"views/helpers.py (no app): answers {sorted(set(statuses.values()))}, "
        "and the log names the file",
    )
    assert set(statuses.values()) == {500}, statuses
    assert "views/helpers.py defines no app" in site.log.read_text()


def test_overlong_view_name_is_404(site: Site) -> None:
    wrong = []
    for view in BUG_LONG:
        for suffix in ("/", ""):
            result = raw_exchange(
                site, request_bytes(site, "GET", f"/{view}{suffix}"), timeout=20, audit=False
            )
            if not (
                result.status == 404
                or (result.status in (400, 414) and from_server(result.headers))
            ):
                wrong.append((len(view), result.status))
    record_figure(
        "regression_overlong_view_name",
        wrong=wrong,
        summary=f"alphanumeric view names of 300/5000 characters: {len(wrong)} of 4 requests "
        "answered 500",
    )
    assert not wrong, wrong


IN_PROCESS = r"""
import json, os, sys
root, paths = sys.argv[1], json.loads(sys.argv[2])
os.chdir(root)
sys.path.insert(0, root)
import robaccia
from robaccia.testing import call, make_environ

app = robaccia.load_project(root)

def run(method, path):
    environ = make_environ(method, path.partition("?")[0], b"{}" if method != "GET" else None,
                           content_type="application/json" if method != "GET" else None,
                           query=path.partition("?")[2])
    return int(call(app, environ=environ)[0][:3])

# Warm up every legitimate path, so that lazy imports of real code are done.
warm = [("GET", "/"), ("GET", "/employees/"), ("GET", "/employees/;new_form"),
        ("POST", "/counters/"), ("GET", "/counters/1"), ("GET", "/employees/1"),
        ("GET", "/employees/1;edit_form"), ("GET", "/employees/1;delete_form"),
        ("GET", "/static/robaccia.css"), ("GET", "/nosuchview/"), ("GET", "/employees"),
        ("FOO", "/employees/"), ("OPTIONS", "/employees/"), ("HEAD", "/employees/"),
        ("GET", "/counters/?sort=-count"), ("GET", "/keys/x"), ("GET", "/jkeys/x"),
        ("PUT", "/counters/1"), ("DELETE", "/counters/999")]
warm_statuses = [run(m, p) for m, p in warm]
before = set(sys.modules)
statuses = [run(m, p) for m, p in paths]
after = set(sys.modules)
print(json.dumps({"warm": warm_statuses, "statuses": statuses, "new": sorted(after - before)}))
"""


def test_no_module_imported_by_a_request_in_process(project: Any) -> None:
    """Compare sys.modules of an in-process app before and after hostile requests."""
    paths = []
    for view in HOSTILE_VIEWS:
        for suffix in ("/", "/1", "/1;edit_form", ""):
            paths.append(("GET", f"/{view}{suffix}"))
        paths.append(("POST", f"/{view}/"))
    for noun in NOUNS:
        for method in ("GET", "POST", "PUT", "DELETE"):
            paths.append((method, f"/employees/1;{noun}"))
    result = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(project.root), json.dumps(paths)],
        cwd=project.root,
        env=project_env(None),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(s < 500 for s in report["warm"]), report["warm"]
    bad = [(p, s) for p, s in zip(paths, report["statuses"], strict=True) if s not in (404, 405)]
    record_figure(
        "modules_imported_by_requests",
        requests=len(paths),
        new_modules=report["new"],
        wrong_status=len(bad),
        summary=f"{len(paths)} hostile in-process requests: {len(report['new'])} modules imported, "
        f"{len(bad)} answered other than 404/405",
    )
    assert report["new"] == []
    assert not bad, bad[:10]


# --- static files ---------------------------------------------------------------------------------

TRAVERSAL = [
    "../settings.py",
    "..%2fsettings.py",
    "..%2Fsettings.py",
    "%2e%2e/settings.py",
    "%2e%2e%2fsettings.py",
    ".%2e/settings.py",
    "%2e./settings.py",
    "..%252fsettings.py",
    "%252e%252e/settings.py",
    "..\\settings.py",
    "..%5csettings.py",
    "%5c..%5csettings.py",
    "..\\..\\settings.py",
    "../static2/secret.txt",
    "..%2fstatic2/secret.txt",
    "../static2%2fsecret.txt",
    "/../settings.py",
    "//etc/passwd",
    "%2fetc%2fpasswd",
    "/etc/passwd",
    "robaccia.css%00.txt",
    "..%00/settings.py",
    "%00../settings.py",
    "%c0%ae%c0%ae/settings.py",
    "..%c0%afsettings.py",
    "%e0%80%ae%e0%80%ae/settings.py",
    "%c0%2e%c0%2e/settings.py",
    "escape.txt",
    "escapedir/secret.txt",
    "escapedir%2fsecret.txt",
    "sub/../../settings.py",
    "sub/..%2f..%2fsettings.py",
    "./../settings.py",
    "....//settings.py",
    "..;/settings.py",
    "../.secret_key",
    "..%2f.secret_key",
    "../../../../../../etc/passwd",
    "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%5c%2e%2e%5csettings.py",
    "file:///etc/passwd",
    "C:\\Windows\\win.ini",
    "C:%5cWindows%5cwin.ini",
    "\\\\server\\share",
    "..",
    ".",
    "",
    "sub/",
    "sub/.",
    "sub/..",
    ".hidden",
    "sub/%2e%2e/%2e%2e/settings.py",
    "robaccia.css/..",
    "robaccia.css/../../settings.py",
    "%u002e%u002e/settings.py",
    "\u2025/settings.py",
    "%e2%80%a5/settings.py",
    "..%u2216settings.py",
    "..%2f..%2fdatabase.db",
    "../database.db",
    "../logs/robaccia.log",
]
ROOT_TARGETS = [
    "/static2/secret.txt",
    "/static/../static2/secret.txt",
    "/static%2f..%2fstatic2/secret.txt",
    "/static/..%2fstatic2/secret.txt",
    "/static2%2fsecret.txt",
    "/static..%2fsettings.py",
    "/./static/../settings.py",
    "/static/./../settings.py",
    "//static/../settings.py",
    "http://127.0.0.1/static/../settings.py",
    "/%73tatic/../settings.py",
    "/STATIC/robaccia.css",
    "/static\\..\\settings.py",
    "/settings.py",
    "/dispatcher.py",
    "/.secret_key",
    "/database.db",
]
INSIDE = {"/static/robaccia.css", "/static/sub/inside.txt", "/static/sub%2finside.txt"}


def _static_corpus() -> list[bytes]:
    targets = [f"/static/{t}" for t in TRAVERSAL] + ROOT_TARGETS
    raw = [t.encode("utf-8") for t in targets]
    raw += [
        b"/static/..\x00/settings.py",
        b"/static/robaccia.css\x00",
        b"/static/\xc0\xae\xc0\xae/settings.py",
        b"/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        b"/static/..\t/settings.py",
    ]
    return raw


def _served_outside(site: Site, body: bytes) -> bool:
    secrets = [
        SECRET_OUTSIDE.encode(),
        b"SECRET_KEY",
        b"root:x:0",
        b"MAX_BODY_SIZE",
        site.project.secret_key.encode(),
        b"SQLite format",
        b"[fonts]",
    ]
    return any(s in body for s in secrets)


@pytest.mark.parametrize("server", ["serve", "run"])
def test_static_traversal(server: str, site: Site, dev_site: Site) -> None:
    target_site = site if server == "serve" else dev_site
    css = (target_site.project.root / "static" / "robaccia.css").read_bytes()
    corpus = _static_corpus()
    outside = 0
    server_errors = 0
    wrong: list[str] = []
    for target in corpus:
        data = (
            b"GET "
            + target
            + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % (target_site.port)
        )
        result = raw_exchange(target_site, data, timeout=20)
        assert not result.timed_out and result.status is not None, (target, result.raw[:200])
        if _served_outside(target_site, result.body):
            outside += 1
            wrong.append(f"{target!r}: served a file from outside static/")
        if result.status >= 500:
            server_errors += 1
            wrong.append(f"{target!r}: {result.status}")
        elif result.status == 200 and result.body not in (css, b"inside static\n"):
            wrong.append(f"{target!r}: 200 with an unexpected body")
        elif result.status not in (200, 301, 400, 404, 405):
            wrong.append(f"{target!r}: {result.status}")
    # Positive controls: the files inside static/ are served.
    for path in sorted(INSIDE):
        result = raw_exchange(target_site, request_bytes(target_site, "GET", path), timeout=20)
        assert result.status == 200, (path, result.status)
    record_figure(
        f"static_traversal_{server}",
        requests=len(corpus),
        served_from_outside=outside,
        server_errors=server_errors,
        summary=f"{server}: {len(corpus)} traversal attempts (encoded dots, backslashes, NUL, "
        "overlong "
        f"UTF-8, sibling static2/, symlinks out): {outside} served from outside static/, "
        f"{server_errors} 5xx",
    )
    assert not wrong, "\n".join(wrong[:20])


# --- ids of every wrong shape ---------------------------------------------------------------------

INT_IDS = [
    "abc",
    "1.5",
    "-0",
    "-1",
    "1e3",
    "0x10",
    "1_000",
    "+1",
    "99999999999999999999",
    "9223372036854775808",
    "9223372036854775807",
    "18446744073709551616",
    "2147483648",
    "2147483647",
    "-2147483649",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "\u0661\u0662",
    "\uff11\uff12",
    "\u00b2",
    " 1",
    "1 ",
    "1\t",
    "1\n",
    "%00",
    "1%00",
    "1;",
    "1.",
    ".1",
    "..",
    ".",
    "~",
    "-",
    "_",
    "1-1",
    "0",
    "x" * 1000,
    "1" * 100,
    "'",
    "1' OR '1'='1",
    "1--",
    "null",
    "None",
    "true",
    "[]",
    "{}",
    "1,2",
    "1/2",
    "\u0000",
    "\U0001d7cf",
    "0b1",
    "0o7",
    "1j",
    "9" * 19,
    "9" * 20,
]
STR_IDS = [
    "x" * 201,
    "x" * 1000,
    "nonexistent",
    "\u00e9t\u00e9",
    "..",
    ".",
    "~",
    "a b",
    "'; DROP TABLE x; --",
    "%",
    "%25",
    "\U0001f600",
    "\u0000",
    "a\u0000b",
    "a\nb",
    " ",
    "-",
    "_",
    "x;",
    "x;y;z",
    "\ufeff",
    "NULL",
    "1",
    "0",
    "-1",
    "1.5",
    "true",
]


def _id_requests(
    site: Site, role: str, id: str, token: str
) -> list[tuple[str, str, bytes, dict[str, str]]]:
    view = site.view(role)
    path = f"/{view}/{quote(id.encode('utf-8', 'surrogatepass'), safe='-._~')}"
    if role in ("html", "skey"):
        form = f"_csrf={token}&_method=".encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return [
            ("GET", path, b"", {}),
            ("HEAD", path, b"", {}),
            ("GET", path + ";edit_form", b"", {}),
            ("GET", path + ";delete_form", b"", {}),
            ("POST", path, form + b"PUT&label=x&name=x", headers),
            ("POST", path, form + b"DELETE", headers),
        ]
    headers = {"Content-Type": "application/json"}
    body = b'{"count": 1}' if role == "json" else b'{"label": "x"}'
    return [
        ("GET", path, b"", {}),
        ("PUT", path, body, headers),
        ("DELETE", path, b"{}", headers),
        ("PATCH", path, body, headers),
    ]


def _fuzz_ids(site: Site) -> tuple[int, list[str]]:
    browser = site.client()
    token = browser.token
    cookie = browser.cookie_header()
    wrong: list[str] = []
    sent = 0
    for role, ids in (("html", INT_IDS), ("json", INT_IDS), ("skey", STR_IDS), ("jkey", STR_IDS)):
        for id in ids:
            for method, path, body, headers in _id_requests(site, role, id, token):
                headers = dict(headers, Cookie=cookie)
                result = raw_exchange(
                    site, request_bytes(site, method, path, headers, body), timeout=20
                )
                sent += 1
                expected = {404} if method != "PATCH" else {404, 405}
                if result.status not in expected and not (
                    result.status in (400, 414) and from_server(result.headers)
                ):
                    wrong.append(f"{method} {role} {id[:40]!r}: {result.status}")
            # The same values as page cursors of the list: 200 or 404 (no such page), never 5xx.
            for param in ("after", "before"):
                query = urlencode({param: id.encode("utf-8", "surrogatepass")})
                path = f"/{site.view(role)}/?{query}"
                result = raw_exchange(site, request_bytes(site, "GET", path), timeout=20)
                sent += 1
                if result.status not in (200, 404) and not (
                    result.status in (400, 414) and from_server(result.headers)
                ):
                    wrong.append(f"GET {role} ?{param}={id[:40]!r}: {result.status}")
    return sent, wrong


def test_wrong_ids_sqlite(site: Site) -> None:
    # Rows with small ids exist, so "wrong shape" is never confused with "absent".
    browser = site.client()
    for n in range(3):
        assert (
            browser.request("POST", f"/{site.view('json')}/", json_body={"count": n}).status == 201
        )
        assert (
            browser.request(
                "POST", f"/{site.view('jkey')}/", json_body={"id": f"k{n}", "label": "x"}
            ).status
            == 201
        )
    sent, wrong = _fuzz_ids(site)
    record_figure(
        "wrong_ids_sqlite",
        requests=sent,
        wrong=len(wrong),
        summary=f"SQLite: {sent} requests with ids of the wrong shape (integer and string "
        f"keys, HTML and JSON, as members and as page cursors): {len(wrong)} "
        "answered other than 404 (cursors: 200/404)",
    )
    assert not wrong, "\n".join(wrong[:20])


@HYPOTHESIS
@given(id=st.text(min_size=1, max_size=30).filter(lambda s: not (s.isascii() and s.isdigit())))
def test_generated_ids_sqlite(site: Site, id: str) -> None:
    for role in ("html", "jkey"):
        path = f"/{site.view(role)}/{quote(id.encode('utf-8', 'surrogatepass'), safe='-._~')}"
        result = raw_exchange(site, request_bytes(site, "GET", path), timeout=20)
        assert result.status == 404 or (
            result.status in (400, 414) and from_server(result.headers)
        ), (role, id, result.status)


@pytest.fixture(scope="module")
def pg_site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    url = require_postgres()
    prefix = unique_prefix("r")
    project = build_project(tmp_path_factory.mktemp("routing-pg"), "genshi", url, prefix)
    try:
        with serving(project, "serve") as served_site:
            yield served_site
    finally:
        drop_tables(url, list(project.views.values()))
        record_audit()


@pytest.mark.slow
def test_wrong_ids_postgresql(pg_site: Site) -> None:
    browser = pg_site.client()
    for n in range(3):
        assert (
            browser.request("POST", f"/{pg_site.view('json')}/", json_body={"count": n}).status
            == 201
        )
        assert (
            browser.request(
                "POST", f"/{pg_site.view('jkey')}/", json_body={"id": f"k{n}", "label": "x"}
            ).status
            == 201
        )
    sent, wrong = _fuzz_ids(pg_site)
    # A valid id that names no row is 404 too, and one that does is found.
    assert browser.request("GET", f"/{pg_site.view('jkey')}/k1").status == 200
    record_figure(
        "wrong_ids_postgresql",
        requests=sent,
        wrong=len(wrong),
        summary=f"PostgreSQL: {sent} requests with ids of the wrong shape (integer and "
        f"string keys, HTML and JSON, as members and as page cursors): "
        f"{len(wrong)} answered other than 404 (cursors: 200/404)",
    )
    assert not wrong, "\n".join(wrong[:20])


def test_audit_so_far(site: Site) -> None:
    assert not AUDIT.leaks, AUDIT.leaks[:5]
    assert not AUDIT.server_errors, AUDIT.server_errors[:5]

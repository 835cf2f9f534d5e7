"""A generated project at run time: deferred views, the servers, errors, reloading.

The project is made with robaccia-admin (as a subprocess) and served for real
with ``run`` (the development server) and ``serve`` (waitress). The
deferred-collection checks run in a subprocess, to keep this process's
sys.path and sys.modules clean; they include the original
``test_robaccia.py`` tests test_deferred and test_dispatcher.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import (
    EMPLOYEE_FIELDS,
    Client,
    Response,
    Server,
    TransportError,
    admin,
    make_project,
    project_env,
    served,
)

from robaccia import scaffold

BOOM_VIEW = '''\
import robaccia
from robaccia import DefaultCollection


class Collection(DefaultCollection):
    def list(self, environ, start_response):
        raise RuntimeError("kaboom <script>alert(1)</script>")


app = Collection("html", robaccia.find_renderer("html"))
'''
# The view of the original tests: it answers with its routing arguments.
HELLO_VIEW = '''\
def app(environ, start_response):
    args = environ["wsgiorg.routing_args"][1]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("Hello %s-%s" % (args["id"], args["noun"])).encode()]
'''
TRAVERSALS = [
    "/static/../settings.py",
    "/static/%2e%2e/settings.py",
    "/static/..%2fsettings.py",
    "/static/%2e%2e%2fsettings.py",
    "/static/..%5csettings.py",
    "/static/..\\settings.py",
    "/static/./../settings.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/robaccia.css%00.py",
    "/static/../.secret_key",
    "/static/.hidden",
    "/static/",
    "/static/..",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """myproject: employees (html, with a model), people (json), fred (no model), boom."""

    def more(root: Path) -> None:
        admin("addview", "fred", cwd=root)
        (root / "views" / "boom.py").write_text(BOOM_VIEW)
        (root / "static" / ".hidden").write_text("hidden")

    return make_project(tmp_path_factory.mktemp("served"), cli=True, createdb=True, edit=more,
                        views={"employees": EMPLOYEE_FIELDS, "people": ["name:string:required"]},
                        kind={"people": "json"})


def _json(body: bytes) -> Any:
    return json.loads(body.decode("utf-8"))


def _check_crud(http: Client) -> None:
    """List, create, retrieve, update and delete, in both representations."""
    json_type = {"Content-Type": "application/json"}

    # employees: an HTML collection; JSON bodies are accepted, answers redirect.
    r = http.request("GET", "/employees/")
    assert r.status == 200 and str(r.header("Content-Type")).startswith("text/html")
    ada = {"name": "Ada Lovelace", "title": "Analyst", "office_number": 101}
    r = http.request("POST", "/employees/", json.dumps(ada), json_type)
    assert r.status == 303
    location = str(r.header("Location"))
    assert re.fullmatch(r"/employees/\d+", location)
    r = http.request("GET", location)
    assert r.status == 200 and b"Ada Lovelace" in r.body and b"Analyst" in r.body
    assert b"Ada Lovelace" in http.request("GET", "/employees/").body
    changed = dict(ada, title="Countess")
    r = http.request("PUT", location, json.dumps(changed), json_type)
    assert r.status == 303 and r.header("Location") == location
    body = http.request("GET", location).body
    assert b"Countess" in body and b"Analyst" not in body
    r = http.request("DELETE", location, headers=json_type)
    assert r.status == 303 and r.header("Location") == "/employees/"
    assert http.request("GET", location).status == 404

    # people: a JSON collection.
    r = http.request("POST", "/people/", json.dumps({"name": "Grace"}), json_type)
    assert r.status == 201
    location = str(r.header("Location"))
    created = _json(r.body)
    assert created["name"] == "Grace" and location == f"/people/{created['id']}"
    r = http.request("GET", location)
    assert r.status == 200 and str(r.header("Content-Type")).startswith("application/json")
    assert _json(r.body) == created
    assert created in _json(http.request("GET", "/people/").body)["data"]
    r = http.request("PUT", location, json.dumps({"name": "Hopper"}), json_type)
    assert r.status == 200 and _json(r.body) == {"id": created["id"], "name": "Hopper"}
    assert http.request("DELETE", location, headers=json_type).status == 204
    assert http.request("GET", location).status == 404
    assert http.request("POST", "/people/", json.dumps({}), json_type).status == 422


def _check_routes_and_static(http: Client, root: Path) -> None:
    # The original view-only story: addview fred, then GET /fred/ renders list.html.
    r = http.request("GET", "/fred/")
    assert r.status == 200 and b"Hello World!" in r.body
    r = http.request("GET", "/fred/42")
    assert r.status == 200 and b"Collection Item: 42" in r.body

    r = http.request("GET", "/fred")
    assert (r.status, r.header("Location"), r.body) == (301, "/fred/", b"")
    r = http.request("GET", "/employees")
    assert (r.status, r.header("Location")) == (301, "/employees/")
    for path in ("/nope/", "/nope", "/nope/1", "/fr_ed/", "/__init__/", "/os/", "/settings/",
                 "/dbconfig/", "/dispatcher/", "/views/", "/fred/1/2"):
        assert http.request("GET", path).status == 404, path

    r = http.request("GET", "/")
    assert r.status == 200
    links = re.findall(rb'href="(/[a-z0-9]+/)"', r.body)
    assert {b"/boom/", b"/employees/", b"/fred/", b"/people/"} <= set(links)

    css = (root / "static" / "robaccia.css").read_bytes()
    r = http.request("GET", "/static/robaccia.css")
    assert (r.status, r.body) == (200, css)
    assert str(r.header("Content-Type")).startswith("text/css")
    assert "max-age=" in str(r.header("Cache-Control"))
    assert r.header("Last-Modified") is not None or r.header("ETag") is not None
    for path in TRAVERSALS:
        r = http.request("GET", path)
        assert r.status == 404, path
        assert b"SECRET_KEY" not in r.body and b"root:" not in r.body and b"hidden" not in r.body


def _check_served(server: Server) -> tuple[Response, str]:
    """Everything above on a served project; then GET /boom/: its 500 answer and page."""
    http = server.client(keep_cookies=False)
    _check_crud(http)
    _check_routes_and_static(http, server.root)
    r = http.request("GET", "/boom/")
    assert r.status == 500 and str(r.header("Content-Type")).startswith("text/html")
    return r, r.body.decode()


@pytest.mark.slow
def test_run_serves_the_project(project: Path) -> None:
    log = project / "logs" / "robaccia.log"
    with served(project, "run") as server:
        r, page = _check_served(server)
        # The debug page shows the traceback, escaped: a page that runs no code.
        assert "Traceback (most recent call last)" in page
        assert "RuntimeError: kaboom &lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script" not in page
        policy = r.header("Content-Security-Policy")
        assert policy is not None and "script-src" not in policy
    text = log.read_text()
    assert '"GET /employees/ HTTP/1.1" 200' in text
    assert '"POST /people/ HTTP/1.1" 201' in text
    assert ("ERROR robaccia.middleware: Unhandled error on GET /boom/: RuntimeError: kaboom "
            "<script>alert(1)</script>\n    Traceback") in text  # the traceback indented: no line of its own
    assert "RuntimeError: kaboom <script>alert(1)</script>" in text


@pytest.mark.slow
def test_serve_serves_the_project_without_debug(project: Path, tmp_path: Path) -> None:
    output = tmp_path / "serve.out"
    with served(project, "serve", workers=2, log=output, signals=True) as server:
        _, page = _check_served(server)
        assert "Internal Server Error" in page
        for internal in ("Traceback", "kaboom", "RuntimeError", ".py", str(project), "/work/",
                         "site-packages"):
            assert internal not in page
        server.process.terminate()
        assert server.process.wait(timeout=15) == 0
    text = output.read_text()
    assert "Unhandled error on GET /boom/: RuntimeError: kaboom" in text
    assert "Traceback (most recent call last):" in text
    assert "RuntimeError: kaboom <script>alert(1)</script>" in text
    assert "(2 workers x 4 threads)" in text.splitlines()[0]


def _get(base: str, path: str) -> tuple[int, bytes]:
    try:
        r = Client(base, keep_cookies=False).request("GET", path)
    except TransportError:  # restarting
        return 0, b""
    return r.status, r.body


def _wait_for(base: str, path: str, wanted: bytes, timeout: float = 15) -> bytes:
    deadline = time.monotonic() + timeout
    body = b""
    while time.monotonic() < deadline:
        status, body = _get(base, path)
        if status == 200 and wanted in body:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{wanted!r} not served at {path} after {timeout}s; last: {body[:200]!r}")


def _wait_for_line(output: Path, line: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in output.read_text().splitlines():
            return
        time.sleep(0.1)
    raise AssertionError(f"{line!r} not printed after {timeout}s:\n{output.read_text()}")


def _port_is_free(base: str) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", int(base.rsplit(":", 1)[1]))) != 0


@pytest.mark.slow
def test_run_reloads_on_changes_and_stops_on_ctrl_c(project: Path, tmp_path: Path) -> None:
    scaffold.add_view(project, "wilma")
    template = project / "templates" / "wilma" / "list.html"
    view = project / "views" / "wilma.py"
    output = tmp_path / "run.out"
    with served(project, "run", reload=True, log=output, signals=True) as server:
        base, process = server.base, server.process
        _wait_for(base, "/wilma/", b"Hello World!")

        template.write_text(template.read_text().replace("Hello World!", "Hello Reloaded!"))
        _wait_for(base, "/wilma/", b"Hello Reloaded!")
        _wait_for_line(output, "Changed: templates/wilma/list.html; restarting.")
        _wait_for(base, "/wilma/", b"Hello Reloaded!")

        # Views are imported once per process: new code is served only after a restart.
        view.write_text(view.read_text().replace(
            "    def list(self, environ, start_response):\n        pass\n",
            "    def list(self, environ, start_response):\n"
            '        start_response("200 OK", [("Content-Type", "text/plain")])\n'
            '        return [b"new code"]\n'))
        assert _wait_for(base, "/wilma/", b"new code") == b"new code"

        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 6
        assert _port_is_free(base)
    out = output.read_text()
    assert "(debug, reloading on changes)" in out.splitlines()[0]
    assert "Changed: templates/wilma/list.html; restarting." in out
    assert "Changed: views/wilma.py; restarting." in out
    assert out.rstrip().endswith("Stopped.")
    assert "Traceback" not in out


@pytest.mark.slow
@pytest.mark.parametrize(("reload", "sig"), [(False, signal.SIGINT), (True, signal.SIGTERM)],
                         ids=["ctrl-c-no-reload", "sigterm-reloading"])
def test_run_stops_cleanly(project: Path, tmp_path: Path, reload: bool, sig: signal.Signals) -> None:
    output = tmp_path / "run.out"
    with served(project, "run", reload=reload, log=output, signals=True) as server:
        assert _get(server.base, "/fred/")[0] == 200
        server.process.send_signal(sig)
        assert server.process.wait(timeout=10) == 0
        # The reloader's child stops with it: nothing is left serving.
        assert _port_is_free(server.base)
    out = output.read_text()
    assert out.rstrip().endswith("Stopped.")
    assert "Traceback" not in out


SLOW_VIEW = '''\
import time


def app(environ, start_response):
    time.sleep(1.5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"finished"]
'''


@pytest.mark.slow
def test_ctrl_c_lets_the_request_in_progress_finish(project: Path, tmp_path: Path) -> None:
    """A request being answered when the server is stopped is answered, then logged,
    and only then does the server say Stopped."""
    import threading

    view = project / "views" / "slowpoke.py"
    view.write_text(SLOW_VIEW)
    output = tmp_path / "run.out"
    answer: list[tuple[int, bytes]] = []
    try:
        with served(project, "run", log=output, signals=True) as server:
            client = threading.Thread(target=lambda: answer.append(_get(server.base, "/slowpoke/")))
            client.start()
            time.sleep(0.5)  # the request is in the view now
            server.process.send_signal(signal.SIGINT)
            assert server.process.wait(timeout=10) == 0
            client.join(timeout=10)
    finally:
        view.unlink()
    assert answer == [(200, b"finished")]
    lines = output.read_text().rstrip().splitlines()
    assert lines[-1] == "Stopped."
    assert '"GET /slowpoke/ HTTP/1.1" 200' in lines[-2]


# --- deferred collections, in a subprocess -------------------------------------------------


def _python(script: str, cwd: Path) -> Any:
    """Run a script in a fresh interpreter; return the JSON it prints last."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=cwd, text=True,
                            capture_output=True, env=project_env(), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_deferred(tmp_path: Path) -> None:
    """The original test_robaccia.test_deferred, and 404 instead of an ImportError."""
    (tmp_path / "views").mkdir()
    (tmp_path / "views" / "__init__.py").write_text("")
    (tmp_path / "views" / "fred.py").write_text(HELLO_VIEW)
    result = _python('''
        import json, sys
        sys.path.insert(0, ".")
        import robaccia

        statuses = []
        def sr(status, headers, exc_info=None):
            statuses.append(status)

        def call(view):
            args = {"view": view, "id": "anid", "noun": "somenoun"}
            body = robaccia.deferred_collection({"wsgiorg.routing_args": ([], args)}, sr)
            return [b.decode() for b in body]

        hello = call("fred")
        before = set(sys.modules)
        for view in ("nope", "os", "sys", "this", "robaccia", "__init__", "..", "fred.x", ""):
            call(view)
        print(json.dumps({"hello": hello, "statuses": statuses,
                          "new": sorted(set(sys.modules) - before)}))
    ''', tmp_path)
    assert result["hello"] == ["Hello anid-somenoun"]
    assert result["statuses"] == ["200 OK"] + ["404 Not Found"] * 9
    assert result["new"] == []


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Drive a fresh project's dispatcher in a subprocess and report what happened."""
    root = scaffold.create_project("probed", tmp_path_factory.mktemp("probe"))
    (root / "views" / "fred.py").write_text(HELLO_VIEW)
    (root / "views" / "counted.py").write_text(
        "import builtins, time\n"
        "builtins.COUNTED_LOADS = getattr(builtins, 'COUNTED_LOADS', 0) + 1\n"
        "time.sleep(0.2)  # a slow import: concurrent first requests overlap\n" + HELLO_VIEW
    )
    return _python('''
        import builtins, json, sys, threading
        sys.path.insert(0, ".")
        import robaccia
        from robaccia.testing import call

        import dispatcher

        app = robaccia.load_project(".")
        out = {}
        # The original test_robaccia.test_dispatcher.
        statuses = []
        def sr(status, headers, exc_info=None):
            statuses.append(status)
        body = dispatcher.app({"PATH_INFO": "/fred/someid;anoun", "REQUEST_METHOD": "GET"}, sr)
        out["original"] = [[b.decode() for b in body], statuses]

        # Warm up the 404 path, then ask for modules that are not views.
        call(app, "GET", "/nope/")
        before = set(sys.modules)
        names = ["__init__", "__main__", "os", "sys", "this", "robaccia", "dbconfig", "settings",
                 "dispatcher", "views", "models", "tests", "builtins", "subprocess", "nope",
                 "FRED", "fred.py", "..", "%2e%2e", "os.path", "views.fred", "fred%00"]
        paths = [f"/{n}{suffix}" for n in names for suffix in ("/", "", "/1", "/;new_form")]
        out["routed"] = {p: call(app, "GET", p)[0] for p in paths}
        project = app
        out["direct"] = {}
        for name in names:
            environ = {"wsgiorg.routing_args": ([], {"view": name, "id": None, "noun": None}),
                       "REQUEST_METHOD": "GET"}
            for function in (robaccia.deferred_collection, project.deferred_collection):
                try:
                    status = call(function, environ=environ)[0]
                except robaccia.HTTPException as exc:  # the middleware would answer 404
                    status = exc.code
                out["direct"][f"{function.__qualname__}:{name}"] = status
        out["new"] = sorted(set(sys.modules) - before)

        # Concurrent first requests import a view once.
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            call(app, "GET", "/counted/a;b")[2].decode())) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results.append(call(app, "GET", "/counted/c;d")[2].decode())
        out["counted"] = [builtins.COUNTED_LOADS, sorted(set(results))]
        out["collections"] = project.collections()
        print(json.dumps(out))
    ''', root)


def test_dispatcher(probe: Any) -> None:
    """The original test_robaccia.test_dispatcher: import dispatcher and call its app."""
    assert probe["original"] == [["Hello someid-anoun"], ["200 OK"]]


def test_only_existing_views_are_routed_and_nothing_else_is_imported(probe: Any) -> None:
    assert probe["new"] == []
    assert set(probe["routed"].values()) == {"404 Not Found"}, probe["routed"]
    assert len(probe["routed"]) == 22 * 4
    assert set(probe["direct"].values()) <= {"404 Not Found", 404}, probe["direct"]
    assert len(probe["direct"]) == 22 * 2


def test_each_view_is_imported_once(probe: Any) -> None:
    assert probe["counted"] == [1, ["Hello a-b", "Hello c-d"]]
    assert probe["collections"] == ["counted", "fred"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=80).filter(lambda m: m.strip()), min_size=1, max_size=3))
def test_flash_messages_come_back_as_they_were_sent(messages: list[str]) -> None:
    """Any text, accents, quotes and semicolons included, survives the flash cookie."""
    from robaccia.defaultmodelcollection import flash
    from robaccia.middleware import FlashMessages
    from robaccia.request import Request
    from robaccia.testing import call, make_environ

    def send(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        for message in messages:
            flash(environ, message)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    def show(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        shown = Request.of(environ).flashes  # read (and cleared) before the response starts
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(shown).encode()]

    _, headers, _ = call(FlashMessages(send, "s" * 32))
    cookie = next(v for k, v in headers if k == "Set-Cookie" and v.startswith("robaccia_flash="))
    environ = make_environ("GET", "/", headers={"Cookie": cookie.split(";")[0]})
    _, headers, body = call(FlashMessages(show, "s" * 32), environ=environ)
    assert json.loads(body) == [m[:500] for m in messages]
    assert ("Set-Cookie", "robaccia_flash=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax") in headers

"""A generated project at run time: deferred views, the servers, errors, reloading.

The project is made with robaccia-admin (as a subprocess) and served for real
with ``run`` (the development server) and ``serve`` (gunicorn). The
deferred-collection checks run in a subprocess, to keep this process's
sys.path and sys.modules clean; they include the original
``test_robaccia.py`` tests test_deferred and test_dispatcher.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import admin, free_port, make_project, project_env, request, served, wait_for_port

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
    root = make_project(tmp_path_factory.mktemp("served"))
    admin("addview", "fred", cwd=root)
    admin("addmodelview", "people", "--type", "json", "name:string:required", cwd=root)
    admin("createdb", cwd=root, env=project_env())
    (root / "views" / "boom.py").write_text(BOOM_VIEW)
    (root / "static" / ".hidden").write_text("hidden")
    return root


def _json(body: bytes) -> Any:
    return json.loads(body.decode("utf-8"))


def _check_crud(base: str) -> None:
    """List, create, retrieve, update and delete, in both representations."""
    json_type = {"Content-Type": "application/json"}

    # employees: an HTML collection; JSON bodies are accepted, answers redirect.
    status, headers, body = request(base, "GET", "/employees/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    ada = {"name": "Ada Lovelace", "title": "Analyst", "office_number": 101}
    status, headers, _ = request(base, "POST", "/employees/", json.dumps(ada), json_type)
    assert status == 303
    location = headers["location"]
    assert re.fullmatch(r"/employees/\d+", location)
    status, _, body = request(base, "GET", location)
    assert status == 200 and b"Ada Lovelace" in body and b"Analyst" in body
    assert b"Ada Lovelace" in request(base, "GET", "/employees/")[2]
    changed = dict(ada, title="Countess")
    status, headers, _ = request(base, "PUT", location, json.dumps(changed), json_type)
    assert status == 303 and headers["location"] == location
    body = request(base, "GET", location)[2]
    assert b"Countess" in body and b"Analyst" not in body
    status, headers, _ = request(base, "DELETE", location, headers=json_type)
    assert status == 303 and headers["location"] == "/employees/"
    assert request(base, "GET", location)[0] == 404

    # people: a JSON collection.
    status, headers, body = request(base, "POST", "/people/", json.dumps({"name": "Grace"}),
                                    json_type)
    assert status == 201
    location = headers["location"]
    created = _json(body)
    assert created["name"] == "Grace" and location == f"/people/{created['id']}"
    status, headers, body = request(base, "GET", location)
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert _json(body) == created
    assert created in _json(request(base, "GET", "/people/")[2])["data"]
    status, _, body = request(base, "PUT", location, json.dumps({"name": "Hopper"}), json_type)
    assert status == 200 and _json(body) == {"id": created["id"], "name": "Hopper"}
    assert request(base, "DELETE", location, headers=json_type)[0] == 204
    assert request(base, "GET", location)[0] == 404
    assert request(base, "POST", "/people/", json.dumps({}), json_type)[0] == 422


def _check_routes_and_static(base: str, root: Path) -> None:
    # The original view-only story: addview fred, then GET /fred/ renders list.html.
    status, _, body = request(base, "GET", "/fred/")
    assert status == 200 and b"Hello World!" in body
    status, _, body = request(base, "GET", "/fred/42")
    assert status == 200 and b"Collection Item: 42" in body

    status, headers, body = request(base, "GET", "/fred")
    assert (status, headers["location"], body) == (301, "/fred/", b"")
    status, headers, _ = request(base, "GET", "/employees")
    assert (status, headers["location"]) == (301, "/employees/")
    for path in ("/nope/", "/nope", "/nope/1", "/fr_ed/", "/__init__/", "/os/", "/settings/",
                 "/dbconfig/", "/dispatcher/", "/views/", "/fred/1/2"):
        assert request(base, "GET", path)[0] == 404, path

    status, headers, body = request(base, "GET", "/")
    assert status == 200
    links = re.findall(rb'href="(/[a-z0-9]+/)"', body)
    assert {b"/boom/", b"/employees/", b"/fred/", b"/people/"} <= set(links)

    css = (root / "static" / "robaccia.css").read_bytes()
    status, headers, body = request(base, "GET", "/static/robaccia.css")
    assert (status, body) == (200, css)
    assert headers["content-type"].startswith("text/css")
    assert "max-age=" in headers["cache-control"]
    assert "last-modified" in headers or "etag" in headers
    for path in TRAVERSALS:
        status, _, body = request(base, "GET", path)
        assert status == 404, path
        assert b"SECRET_KEY" not in body and b"root:" not in body and b"hidden" not in body


@pytest.mark.slow
def test_run_serves_the_project(project: Path) -> None:
    log = project / "logs" / "robaccia.log"
    with served(project, "run") as base:
        _check_crud(base)
        _check_routes_and_static(base, project)

        status, headers, body = request(base, "GET", "/boom/")
        assert status == 500 and headers["content-type"].startswith("text/html")
        page = body.decode()
        # The debug page shows the traceback, escaped: a page that runs no code.
        assert "Traceback (most recent call last)" in page
        assert "RuntimeError: kaboom &lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script" not in page
        assert "script-src" not in headers["content-security-policy"]
    text = log.read_text()
    assert '"GET /employees/ HTTP/1.1" 200' in text
    assert '"POST /people/ HTTP/1.1" 201' in text
    assert ("ERROR robaccia.middleware: Unhandled error on GET /boom/: RuntimeError: kaboom "
            "<script>alert(1)</script>\nTraceback") in text
    assert "RuntimeError: kaboom <script>alert(1)</script>" in text


@contextlib.contextmanager
def _started(root: Path, *args: str, output: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start robaccia-admin with its output in a file; yield its URL and process."""
    port = free_port()
    with open(output, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "robaccia", *args, "--port", str(port)], cwd=root,
            env=project_env(), stdout=out, stderr=subprocess.STDOUT, text=True,
            # Ctrl-C must reach it even if this test runs with SIGINT ignored.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            start_new_session=True,  # so that teardown can stop its children too
        )
        try:
            wait_for_port(port, process)
            yield f"http://127.0.0.1:{port}", process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_serve_serves_the_project_without_debug(project: Path, tmp_path: Path) -> None:
    output = tmp_path / "serve.out"
    with _started(project, "serve", "--workers", "2", output=output) as (base, process):
        _check_crud(base)
        _check_routes_and_static(base, project)

        status, headers, body = request(base, "GET", "/boom/")
        assert status == 500 and headers["content-type"].startswith("text/html")
        page = body.decode()
        assert "Internal Server Error" in page
        for internal in ("Traceback", "kaboom", "RuntimeError", ".py", str(project), "/work/",
                         "site-packages"):
            assert internal not in page
        process.terminate()
        assert process.wait(timeout=15) == 0
    text = output.read_text()
    assert "Unhandled error on GET /boom/: RuntimeError: kaboom" in text and "Traceback (most recent call last):" in text
    assert "RuntimeError: kaboom <script>alert(1)</script>" in text
    assert "(2 workers)" in text.splitlines()[0]


def _get(base: str, path: str) -> tuple[int, bytes]:
    try:
        status, _, body = request(base, "GET", path)
    except OSError:  # restarting
        return 0, b""
    return status, body


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
    with _started(project, "run", output=output) as (base, process):
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
@pytest.mark.parametrize(("args", "sig"), [(("--no-reload",), signal.SIGINT),
                                           ((), signal.SIGTERM)],
                         ids=["ctrl-c-no-reload", "sigterm-reloading"])
def test_run_stops_cleanly(project: Path, tmp_path: Path, args: tuple[str, ...],
                           sig: signal.Signals) -> None:
    output = tmp_path / "run.out"
    with _started(project, "run", *args, output=output) as (base, process):
        assert _get(base, "/fred/")[0] == 200
        process.send_signal(sig)
        assert process.wait(timeout=10) == 0
        # The reloader's child stops with it: nothing is left serving.
        assert _port_is_free(base)
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
        with _started(project, "run", "--no-reload", output=output) as (base, process):
            client = threading.Thread(target=lambda: answer.append(_get(base, "/slowpoke/")))
            client.start()
            time.sleep(0.5)  # the request is in the view now
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
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

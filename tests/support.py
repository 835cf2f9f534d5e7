"""What the tests share, one piece of code each.

* databases: the test database URLs (``ROBACCIA_TEST_POSTGRES_URL``,
  ``ROBACCIA_TEST_MARIADB_URL``), and skipping a test when a service is
  missing (failing it with ``ROBACCIA_REQUIRE_SERVICES=1``, as CI sets, so
  a missing service is never silent);
* the HTML reader: :func:`read_page` (inputs, ids, links, text, shape);
* the HTTP client for real servers: :class:`Client`, :class:`Response`;
* the project builder :func:`make_project`, robaccia-admin as a subprocess
  (:func:`admin`), loading a project in this process (:func:`load`);
* the server launcher :func:`served` (``run`` or ``serve``, for real).
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode

import pytest

# --- databases --------------------------------------------------------------------------------


REQUIRE_SERVICES = os.environ.get("ROBACCIA_REQUIRE_SERVICES") == "1"

POSTGRES_URL = os.environ.get(
    "ROBACCIA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("ROBACCIA_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
DATABASE_URLS = {"postgresql": POSTGRES_URL, "mariadb": MARIADB_URL}


def missing(reason: str) -> NoReturn:
    """Skip the test for want of a service, or fail it with ROBACCIA_REQUIRE_SERVICES=1."""
    if REQUIRE_SERVICES:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def database_problem(url: str, timeout: float = 3) -> str | None:
    """Why the database at ``url`` cannot be used now, or None when it answers."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, connect_args={"connect_timeout": timeout}, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return None
    except Exception as exc:  # any driver error means "not reachable"
        return f"{engine.url!r} is not reachable: {type(exc).__name__}: {exc}"
    finally:
        engine.dispose()


_reachable: set[str] = set()


def require_database(backend: str) -> str:
    """The URL of ``backend`` (postgresql or mariadb); a missing server skips or fails.

    A server that answered once is not asked again this session; one that
    did not is asked again next time (it may have been restarting).
    """
    url = DATABASE_URLS[backend]
    if backend not in _reachable:
        problem = database_problem(url)
        if problem is not None:
            missing(f"{backend}: {problem}")
        _reachable.add(backend)
    return url


def require_postgres() -> str:
    """The PostgreSQL URL; a missing server skips the test (or fails it)."""
    return require_database("postgresql")


# --- reading HTML -----------------------------------------------------------------------------


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
_URL_ATTRIBUTES = ("href", "src", "action", "formaction")


class Page(HTMLParser):
    """An HTML page, read once.

    * ``inputs``: form controls by name (their attributes, ``value`` the
      control's value: a textarea's text, a select's selected option, the
      checked radio button);
    * ``ids``: the text inside each element with an id; ``attrs``: its attributes;
    * ``links``: ``<a rel=...>`` hrefs by rel;
    * ``text``: all the page's text;
    * ``items``: its structure, one entry per tag (name and sorted attribute
      names), end tag, comment, processing instruction or declaration;
      ``urls``: the values of its URL attributes (href, src, action, formaction).
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inputs: dict[str, dict[str, str | None]] = {}
        self.ids: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.links: dict[str, str] = {}
        self.items: list[tuple[str, ...]] = []
        self.urls: list[str] = []
        self._chunks: list[str] = []
        self._stack: list[tuple[str, tuple[str, str] | None]] = []
        self._select: str | None = None

    @property
    def text(self) -> str:
        return "".join(self._chunks)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.items.append((tag, *sorted(name for name, _ in attrs)))
        self.urls += [v for k, v in attrs if k in _URL_ATTRIBUTES and v is not None]
        a = dict(attrs)
        name = a.get("name")
        capture: tuple[str, str] | None = None
        if tag == "input" and name:
            if a.get("type") != "radio" or "checked" in a:
                self.inputs[name] = a
        elif tag == "textarea" and name:
            self.inputs[name] = dict(a, value="")
            capture = ("textarea", name)
        elif tag == "select" and name:
            self._select = name
            self.inputs[name] = dict(a, value=None)
        elif tag == "option" and self._select and "selected" in a:
            self.inputs[self._select]["value"] = a.get("value")
        if tag == "a" and a.get("rel"):
            self.links[str(a["rel"])] = str(a.get("href"))
        if a.get("id") and capture is None:
            self.ids[str(a["id"])] = ""
            self.attrs[str(a["id"])] = a
            capture = ("id", str(a["id"]))
        if tag not in _VOID:
            self._stack.append((tag, capture))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self._stack.pop()
        self.items.append(("/" + tag,))

    def handle_endtag(self, tag: str) -> None:
        self.items.append(("/" + tag,))
        if tag == "select":
            self._select = None
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        self._chunks.append(data)
        for _, capture in self._stack:
            if capture is None:
                continue
            kind, key = capture
            if kind == "id":
                self.ids[key] += data
            else:
                self.inputs[key]["value"] = (self.inputs[key]["value"] or "") + data

    def handle_comment(self, data: str) -> None:
        self.items.append(("<!--",))

    def handle_pi(self, data: str) -> None:
        self.items.append(("<?",))

    def unknown_decl(self, data: str) -> None:
        self.items.append(("<!",))


def read_page(body: bytes) -> Page:
    """Parse an HTML page (UTF-8): inputs by name, text and attributes by id, rel links."""
    page = Page()
    page.feed(body.decode("utf-8"))
    page.close()
    return page


def shape(body: bytes) -> tuple[list[tuple[str, ...]], list[str]]:
    """Return a page's element/attribute structure and its URL attributes."""
    page = read_page(body)
    return page.items, page.urls


def page_text(body: bytes) -> str:
    """All the text of a page, character references decoded, without its markup."""
    return read_page(body).text


def first_difference(a: list[tuple[str, ...]], b: list[tuple[str, ...]]) -> str:
    """Where two page shapes first differ."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"at {i}: {x} != {y}"
    return f"lengths {len(a)} != {len(b)}"


# --- HTTP to a served project -----------------------------------------------------------------


# Called with each answer: method, path, what was sent (body and headers), status, body.
Audit = Callable[[str, str, bytes, int, bytes], None]


class TransportError(AssertionError):
    """A request got no answer (refused, reset, timed out); says what was sent."""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header (any case), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        """Every value of a header (any case), in order."""
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One browser of a served site: its cookies, its CSRF token, its requests.

    ``keep_cookies=False`` makes a client without a cookie jar: Set-Cookie is
    ignored and nothing is sent but what each request says. ``token_page`` is
    a page whose form holds the CSRF token; ``audit`` sees every answer.
    No redirect is followed.
    """

    def __init__(self, base: str, *, timeout: float = 30, keep_cookies: bool = True,
                 token_page: str | None = None, audit: Audit | None = None) -> None:
        self.base = base
        self.timeout = timeout
        self.keep_cookies = keep_cookies
        self.cookies: dict[str, str] = {}
        self.token_page = token_page
        self.audit = audit
        self._token: str | None = None

    @property
    def token(self) -> str:
        """This browser's CSRF token, read from the form of ``token_page``."""
        if self._token is None:
            assert self.token_page is not None, "this client was given no token_page"
            page = self.request("GET", self.token_page)
            assert page.status == 200, page.status
            match = re.search(r'name="_csrf" value="([0-9a-f]+)"', page.text)
            assert match, page.text[:500]
            self._token = match.group(1)
        return self._token

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        *,
        form: dict[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        cookies: bool = True,
        csrf: bool = False,
    ) -> Response:
        """Send one request; return its answer.

        ``form`` is form-encoded (with this browser's token when ``csrf``),
        ``json_body`` sent as application/json (the token in X-CSRF-Token
        when ``csrf``), ``body`` as it is (str as UTF-8). ``cookies=False``
        sends no Cookie header this once.
        """
        sent_headers = dict(headers or {})
        if form is not None:
            pairs = list(form.items()) if isinstance(form, dict) else list(form)
            if csrf:
                pairs.append(("_csrf", self.token))
            body = urlencode(pairs)
            sent_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif json_body is not None:
            body = json.dumps(json_body)
            sent_headers.setdefault("Content-Type", "application/json")
            if csrf:
                sent_headers.setdefault("X-CSRF-Token", self.token)
        elif csrf:
            sent_headers.setdefault("X-CSRF-Token", self.token)
        if cookies and self.cookies:
            sent_headers.setdefault("Cookie", self.cookie_header())
        data = body.encode() if isinstance(body, str) else body
        host, port = self.base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=sent_headers)
            raw = conn.getresponse()
            response = Response(raw.status, raw.getheaders(), raw.read())
        except OSError as exc:
            raise TransportError(
                f"{method} {path} {sent_headers} {data!r:.200}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            conn.close()
        if self.keep_cookies:
            for value in response.all("Set-Cookie"):
                name, _, rest = value.partition("=")
                if "Max-Age=0" in value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = rest.split(";", 1)[0]
        if self.audit is not None:
            sent = (data or b"") + repr(sent_headers).encode()
            self.audit(method, path, sent, response.status, response.body)
        return response


# --- projects ---------------------------------------------------------------------------------


EMPLOYEE_FIELDS = ["name:string:required", "title:string", "office_number:integer"]


def admin(*args: str, cwd: Path, env: dict[str, str] | None = None,
          check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run robaccia-admin (as python -m robaccia) and capture its output."""
    result = subprocess.run([sys.executable, "-m", "robaccia", *args], cwd=cwd, text=True,
                            capture_output=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"robaccia-admin {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def project_env(database_url: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment for a project's process: debug unset, the database URL and hosts set."""
    env = dict(os.environ)
    env.pop("ROBACCIA_DEBUG", None)
    # what serve needs to start (the tests reach it by these names)
    env.setdefault("ROBACCIA_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
    if database_url:
        env["ROBACCIA_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def make_project(
    parent: Path,
    engine: str = "genshi",
    *,
    name: str = "myproject",
    views: Mapping[str, list[str]] | None = None,
    kind: str | Mapping[str, str] = "html",
    cli: bool = False,
    settings: Mapping[str, Any] | None = None,
    edit: Callable[[Path], None] | None = None,
    createdb: bool = False,
    database_url: str | None = None,
    debug: bool | None = None,
) -> Path:
    """Scaffold ``parent/name`` with model views; return its folder.

    * ``views`` maps view names to addmodelview fields (default: employees
      with :data:`EMPLOYEE_FIELDS`); ``kind`` is "html" or "json", for every
      view or by view name (a view not named is "html");
    * ``cli``: made with robaccia-admin createproject and addmodelview as
      subprocesses, as a user makes it; otherwise with robaccia.scaffold in
      this process (faster);
    * ``settings``: names and values appended to settings.py;
    * ``edit``: called with the folder after scaffolding, before createdb;
    * ``createdb``: run robaccia-admin createdb (in a subprocess, on
      ``database_url`` when given, else the project's SQLite file), for a
      project that is going to be served; a project loaded in this process
      with :func:`load` gets its tables there;
    * ``debug``: the mode :func:`load` loads the project in (default off).
    """
    from robaccia import scaffold

    views = {"employees": EMPLOYEE_FIELDS} if views is None else views
    root = parent / name
    if cli:
        admin("createproject", name, "--templates", engine, cwd=parent)
    else:
        scaffold.create_project(name, parent, engine)
    for view, fields in views.items():
        view_kind = kind if isinstance(kind, str) else kind.get(view, "html")
        if cli:
            admin("addmodelview", view, *fields, *(["--type", view_kind] if view_kind != "html" else []),
                  cwd=root)
        else:
            scaffold.add_model_view(root, view, view_kind, fields)
    if settings:
        path = root / "settings.py"
        path.write_text(path.read_text() + "\n" + "".join(f"{k} = {v!r}\n" for k, v in settings.items()))
    if edit is not None:
        edit(root)
    if debug is not None:
        (root / ".debug").write_text("1" if debug else "0")
    if createdb:
        # NOTE: a shared server database may be restarting (a test stopping it): retry a little.
        attempts = 6 if database_url else 1
        for attempt in range(1, attempts + 1):
            result = admin("createdb", cwd=root, env=project_env(database_url), check=False)
            if result.returncode == 0:
                break
            if attempt < attempts:
                time.sleep(2)
        else:
            raise AssertionError(f"createdb failed:\n{result.stdout}\n{result.stderr}")
    return root


def load(root: Path, *, debug: bool | None = None) -> Any:
    """Load a project in this process, its tables created; return it.

    ``debug`` defaults to what :func:`make_project` was told.
    """
    from robaccia.project import Project

    if debug is None:
        marker = root / ".debug"
        debug = marker.exists() and marker.read_text() == "1"
    old = os.environ.get("ROBACCIA_DEBUG")
    os.environ["ROBACCIA_DEBUG"] = "1" if debug else "0"
    os.environ.pop("ROBACCIA_DATABASE_URL", None)
    try:
        project = Project(root)
    finally:
        if old is None:
            os.environ.pop("ROBACCIA_DEBUG", None)
        else:
            os.environ["ROBACCIA_DEBUG"] = old
    for path in sorted((root / "models").glob("[!_]*.py")):
        importlib.import_module(f"models.{path.stem}")
    importlib.import_module("dbconfig").metadata.create_all(project.engine)
    return project


# --- serving a project for real ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[Any], timeout: float = 15, group: bool = False) -> None:
    """Stop a server process: terminate, then kill if it does not exit in time.

    ``group``: the process leads its own session; afterwards whatever is left
    of its group (a reloader's child, say) is killed too.
    """
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


@dataclass
class Server:
    """A project being served: its address, its process and the file its output goes to."""

    root: Path
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def client(self, **options: Any) -> Client:
        """A new browser of this server (see :class:`Client`)."""
        return Client(self.base, **options)


def _wait_until_serving(process: subprocess.Popen[bytes], port: int, log: Path, name: str,
                        host: str | None = None, headers: dict[str, str] | None = None,
                        timeout: float = 30) -> None:
    """Wait until *this* server answers its front page (not another one on a reused port).

    The probe is sent with ``Host: host`` (default 127.0.0.1:port) and ``headers``: a site
    whose ALLOWED_HOSTS leave out the loopback names, or that redirects plain http, is
    waited on through a request it serves.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/", headers={"Host": host or f"127.0.0.1:{port}",
                                                  **(headers or {})})
                response = conn.getresponse()
                if response.status == 200 and name.encode() in response.read():
                    return
            finally:
                conn.close()
        time.sleep(0.1)
    raise AssertionError(f"server did not start in {timeout}s:\n{log.read_text()[-3000:]}")


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def served(root: Path, command: str = "run", *, database_url: str | None = None, workers: int = 2,
           reload: bool = False, extra_args: tuple[str, ...] = (), log: Path | None = None,
           signals: bool = False, env: dict[str, str] | None = None, wait_host: str | None = None,
           wait_headers: dict[str, str] | None = None) -> Iterator[Server]:
    """Serve a project; yield the :class:`Server` once it answers its front page.

    ``command`` is ``run`` (the development server, ``--no-reload`` unless
    ``reload``) or ``serve`` (waitress, ``--workers``). The output goes to
    ``log`` (default: logs/server-<port>.log in the project): a pipe nobody
    reads fills up after ~64 KiB of access log and then blocks every worker.
    ``signals``: the test will signal the server itself, so it runs in its own
    session with Ctrl-C at its default (even where this test runs with SIGINT
    ignored), and at the end its whole process group is stopped.
    ``wait_host`` and ``wait_headers``: how the front page is asked for while waiting
    (see :func:`_wait_until_serving`).
    The server is stopped at the end (terminated, killed after 15 s).
    """
    port = free_port()
    args = [sys.executable, "-m", "robaccia", command, "--port", str(port)]
    if command == "run":
        args += [] if reload else ["--no-reload"]
    else:
        args += ["--workers", str(workers)]
    args += list(extra_args)
    if log is None:
        log = root / "logs" / f"server-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = (
        {"preexec_fn": _sigint_default, "start_new_session": True} if signals else {}
    )
    with open(log, "w") as out:
        process = subprocess.Popen(args, cwd=root, env=project_env(database_url, **(env or {})),
                                   stdout=out, stderr=subprocess.STDOUT, **options)
        try:
            _wait_until_serving(process, port, log, root.name, wait_host, wait_headers)
            yield Server(root, f"http://127.0.0.1:{port}", process, log)
        finally:
            stop(process, group=signals)

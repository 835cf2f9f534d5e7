"""Machinery shared by the security battery (test_security_*.py, test_scaleout.py).

Every test here talks to a scaffolded project served by the real server
(``robaccia-admin serve``: gunicorn, debug off; or ``run``: the threaded
development server). What this module gives them:

* :func:`build_project`: scaffold a project in-process with the views the
  battery needs (integer and string primary keys, HTML and JSON), small body
  limits, a helper module in views/, files beside static/, then createdb;
* :class:`Client`: one browser (a cookie jar and its CSRF token) speaking
  HTTP/1.1 through http.client, every answer audited;
* :func:`raw_exchange`: a raw socket request with a timeout, for framing
  that http.client refuses to send;
* :data:`AUDIT`: every answer from a debug-off server is scanned for
  internals (tracebacks, SQL, driver names, paths, the database URL) and
  server errors, over the whole session;
* :func:`record_figure`: merge a published figure into tests/output/figures.json;
* :func:`shape`: the element/attribute structure of an HTML page.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from support import REQUIRE_SERVICES, admin, free_port, project_env, stop

from robaccia import scaffold

PG_URL = os.environ.get(
    "ROBACCIA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
FIGURES = Path(__file__).resolve().parent / "output" / "figures.json"

# The battery's body limits, written into the project's settings.py.
MAX_BODY = 4096
MAX_FIELDS = 64


# --- published figures -------------------------------------------------------------------


def record_figure(name: str, **values: Any) -> None:
    """Merge one figure into tests/output/figures.json (safe across processes)."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with open(FIGURES.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
        except ValueError:
            data = {}
        values["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        data[name] = values
        tmp = FIGURES.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        tmp.replace(FIGURES)


# --- services ------------------------------------------------------------------------------


_pg_state: dict[str, str | None] = {}


def postgres_problem() -> str | None:
    """Return why PostgreSQL cannot be used, or None when it can (checked once)."""
    if "problem" not in _pg_state:
        try:
            from sqlalchemy import create_engine

            engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            engine.dispose()
            _pg_state["problem"] = None
        except Exception as exc:  # any driver error means "not reachable"
            _pg_state["problem"] = f"PostgreSQL is not reachable at {PG_URL}: {type(exc).__name__}"
    return _pg_state["problem"]


def require_postgres() -> None:
    """Skip (or fail, with ROBACCIA_REQUIRE_SERVICES=1) when PostgreSQL is missing."""
    problem = postgres_problem()
    if problem is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(problem, pytrace=False)
    pytest.skip(problem)


def drop_tables(database_url: str, names: list[str]) -> None:
    """Drop the battery's tables from a server database."""
    from sqlalchemy import create_engine

    engine = create_engine(database_url, connect_args={"connect_timeout": 5})
    try:
        with engine.begin() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
    finally:
        engine.dispose()


# --- the project ----------------------------------------------------------------------------


HELPER_MODULE = '''"""Not a view: a helper with an import-time side effect (a canary)."""
from pathlib import Path

Path(__file__).resolve().parent.parent.joinpath("IMPORTED_{name}").write_text("imported")
'''

SECRET_OUTSIDE = "OUTSIDE-STATIC-SECRET-7f3a"


@dataclass
class Project:
    """A scaffolded project and the names of its views."""

    root: Path
    engine: str
    database_url: str | None
    views: dict[str, str]  # role -> view (and table) name

    @property
    def db_path(self) -> Path:
        return self.root / "database.db"

    @contextlib.contextmanager
    def sqlite(self) -> Iterator[sqlite3.Connection]:
        """A connection to the project's SQLite database (autocommit), closed after."""
        conn = sqlite3.connect(self.db_path, timeout=15, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    @property
    def secret_key(self) -> str:
        if not hasattr(self, "_secret"):
            self._secret = (self.root / ".secret_key").read_text().strip()
        return self._secret

    def canaries(self) -> list[str]:
        """The names of helper modules whose import left a marker file."""
        return sorted(p.name for p in self.root.glob("IMPORTED_*"))


def build_project(
    parent: Path, engine: str = "genshi", database_url: str | None = None, prefix: str = ""
) -> Project:
    """Scaffold the battery's project.

    Views (role: fields):

    * ``html``: employees, integer id, name (required), title, office_number;
    * ``json``: a JSON counter, integer id, count;
    * ``skey`` / ``jkey``: HTML / JSON views whose primary key is a string id.

    ``prefix`` makes the table names unique (for a shared server database).
    """
    tag = prefix or ""
    views = {
        "html": f"{tag}employees",
        "json": f"{tag}counters",
        "skey": f"{tag}keys",
        "jkey": f"{tag}jkeys",
    }
    root = scaffold.create_project("secproject", parent, engine)
    scaffold.add_model_view(
        root,
        views["html"],
        "html",
        ["name:string:required", "title:string", "office_number:integer"],
    )
    scaffold.add_model_view(root, views["json"], "json", ["count:integer"])
    scaffold.add_model_view(root, views["skey"], "html", ["label:string"])
    scaffold.add_model_view(root, views["jkey"], "json", ["label:string"])
    for role in ("skey", "jkey"):
        model = root / "models" / f"{views[role]}.py"
        text = model.read_text().replace(
            'Column("id", Integer, primary_key=True)', 'Column("id", String(200), primary_key=True)'
        )
        assert "String(200), primary_key=True" in text, text
        model.write_text(text)
    settings = root / "settings.py"
    settings.write_text(
        settings.read_text() + f"\nMAX_BODY_SIZE = {MAX_BODY}\nMAX_FIELDS = {MAX_FIELDS}\n"
    )
    # A helper module that is not a view, and files a static server must never serve.
    (root / "views" / "helpers.py").write_text(HELPER_MODULE.format(name="helpers"))
    (root / "static" / "sub").mkdir()
    (root / "static" / "sub" / "inside.txt").write_text("inside static\n")
    (root / "static2").mkdir()
    (root / "static2" / "secret.txt").write_text(SECRET_OUTSIDE + "\n")
    (root / "outside.txt").write_text(SECRET_OUTSIDE + "\n")
    (root / "static" / "escape.txt").symlink_to(root / "outside.txt")
    (root / "static" / "escapedir").symlink_to(root / "static2", target_is_directory=True)
    # NOTE: a shared PostgreSQL may be restarting (another test stopping it): retry a little.
    for _ in range(6 if database_url else 1):
        result = admin("createdb", cwd=root, env=project_env(database_url), check=False)
        if result.returncode == 0:
            break
        time.sleep(2)
    else:
        raise AssertionError(f"createdb failed:\n{result.stdout}\n{result.stderr}")
    return Project(root, engine, database_url, views)


@contextlib.contextmanager
def serving(
    project: Project, command: str = "serve", extra_args: tuple[str, ...] = (), workers: int = 2
) -> Iterator[Site]:
    """Serve a project; yield a :class:`Site` whose answers are audited.

    Like support.served, but the server's output goes to a file: a pipe
    nobody reads fills up after ~64 KiB of access log and then blocks every
    worker (support.served reads its pipe only when the server dies early).
    """
    port = free_port()
    args = [sys.executable, "-m", "robaccia", command, "--port", str(port)]
    args += ["--no-reload"] if command == "run" else ["--workers", str(workers)]
    args += list(extra_args)
    log = project.root / "logs" / f"server-{port}.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "w") as out:
        process = subprocess.Popen(
            args,
            cwd=project.root,
            env=project_env(project.database_url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_serving(process, port, log)
            yield Site(
                f"http://127.0.0.1:{port}",
                project,
                debug=command == "run",
                process=process,
                log=log,
            )
        finally:
            stop(process, timeout=15)


def _wait_until_serving(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Wait until *this* server answers its front page (not another one on a reused port)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                if response.status == 200 and b"secproject" in response.read():
                    return
            finally:
                conn.close()
        time.sleep(0.1)
    raise AssertionError(f"server did not start:\n{log.read_text()[-3000:]}")


@dataclass
class Site:
    base: str
    project: Project
    debug: bool = False
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    @property
    def origin(self) -> str:
        return self.base

    def view(self, role: str) -> str:
        return self.project.views[role]

    def client(self) -> Client:
        return Client(self)


# --- auditing answers for internals ---------------------------------------------------------------


_INTERNALS = [
    ("traceback", re.compile(r"Traceback \(most recent call last\)")),
    ("python frame", re.compile(r'File "[^"]+", line \d+')),
    (
        "driver",
        re.compile(r"psycopg|sqlite3|pymysql|sqlalchemy|OperationalError|IntegrityError", re.I),
    ),
    (
        "sql",
        re.compile(
            r"\bSELECT\b[^<>]{0,200}\bFROM\b|\bINSERT INTO\b|\bUPDATE\s+\S+\s+SET\b"
            r"|\bDELETE FROM\b"
        ),
    ),
    ("path", re.compile(r"/tmp/|/work/|site-packages|/usr/lib/python|\.py\b")),
    ("database url", re.compile(r"postgresql(\+\w+)?://|sqlite:///|mysql(\+\w+)?://")),
]


@dataclass
class Audit:
    """Counts answers from debug-off servers and the internals they showed."""

    responses: int = 0
    server_errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(
        self,
        site: Site | None,
        method: str,
        target: str,
        sent: bytes,
        status: int | None,
        body: bytes,
    ) -> None:
        if site is not None and site.debug:
            return
        found = []
        text = body.decode("utf-8", "replace")
        request = (target + "\n").encode() + sent
        request_text = request.decode("utf-8", "replace")
        for name, pattern in _INTERNALS:
            match = pattern.search(text)
            if match and match.group(0) not in request_text:
                found.append(f"{name}: {match.group(0)!r}")
        if site is not None:
            for secret in (
                str(site.project.root),
                site.project.database_url or "\0",
                site.project.secret_key,
            ):
                if secret in text:
                    found.append(f"secret: {secret[:40]!r}")
        with self.lock:
            self.responses += 1
            if status is not None and status >= 500 and status != 503:
                self.server_errors.append(f"{status} {method} {target[:120]}")
            if found:
                self.leaks.append(f"{method} {target[:120]} -> {status}: {'; '.join(found)}")


AUDIT = Audit()


def record_audit() -> None:
    """Publish the session's audit so far (each module calls this at its end)."""
    record_figure(
        "no_internals_in_responses",
        responses_audited=AUDIT.responses,
        bodies_with_internals=len(AUDIT.leaks),
        server_errors_other_than_503=len(AUDIT.server_errors),
        summary=f"{AUDIT.responses} responses from debug-off servers, {len(AUDIT.leaks)} showing "
        f"internals, {len(AUDIT.server_errors)} 5xx other than 503",
        examples=AUDIT.leaks[:5] + AUDIT.server_errors[:5],
    )


# --- HTTP ------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One browser: its cookies, its CSRF token, its requests."""

    def __init__(self, site: Site, timeout: float = 30) -> None:
        self.site = site
        self.cookies: dict[str, str] = {}
        self.timeout = timeout
        self._token: str | None = None

    @property
    def token(self) -> str:
        """This browser's CSRF token, read from a new-record form."""
        if self._token is None:
            page = self.request("GET", f"/{self.site.view('html')}/;new_form")
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
        *,
        form: dict[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        cookies: bool = True,
        csrf: bool = False,
    ) -> Response:
        """Send one request (no redirects followed).

        ``form`` is form-encoded (with this browser's token when ``csrf``),
        ``json_body`` sent as application/json, ``body`` as it is.
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
        host, port = self.site.base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=sent_headers)
            raw = conn.getresponse()
            response = Response(raw.status, raw.getheaders(), raw.read())
        except OSError as exc:
            raise AssertionError(
                f"{method} {path} {sent_headers} {data!r:.200}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            conn.close()
        for value in response.all("Set-Cookie"):
            name, _, rest = value.partition("=")
            cookie_value = rest.split(";", 1)[0]
            if "Max-Age=0" in value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = cookie_value
        AUDIT.check(
            self.site,
            method,
            path,
            (data or b"") + repr(sent_headers).encode(),
            response.status,
            response.body,
        )
        return response


@dataclass
class RawResult:
    status: int | None
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes
    timed_out: bool
    elapsed: float


def raw_exchange(
    site: Site, data: bytes, timeout: float = 10, shutdown: bool = False, audit: bool = True
) -> RawResult:
    """Send raw bytes to the site and read the answer until close or ``timeout``.

    ``shutdown`` half-closes the connection after sending (the server then
    sees the end of the request body).
    """
    start = time.monotonic()
    chunks: list[bytes] = []
    timed_out = False
    with socket.create_connection(("127.0.0.1", site.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if shutdown:
                sock.shutdown(socket.SHUT_WR)
        except TimeoutError:
            timed_out = True
        except OSError:
            pass  # the server answered early and closed: read what it sent
        try:
            deadline = start + timeout
            while time.monotonic() < deadline:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            else:
                timed_out = True
        except TimeoutError:
            timed_out = True
        except OSError:
            pass  # reset after the answer
    raw = b"".join(chunks)
    status, headers, body = parse_raw(raw)
    if audit and status is not None:
        first_line = data.split(b"\r\n", 1)[0].decode("latin-1")
        AUDIT.check(site, "RAW", first_line, data, status, body)
    return RawResult(status, headers, body, raw, timed_out, time.monotonic() - start)


def parse_raw(raw: bytes) -> tuple[int | None, list[tuple[str, str]], bytes]:
    """Split a raw HTTP/1.x response into status, headers and body."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return None, [], b""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return None, [], b""
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name, value.strip()))
    return status, headers, body


def request_bytes(
    site: Site,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    content_length: bool = True,
) -> bytes:
    """Build a raw request (Host and Connection: close included)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{site.port}", "Connection: close"]
    hdrs = dict(headers or {})
    if content_length and body and "Content-Length" not in hdrs and "Transfer-Encoding" not in hdrs:
        hdrs["Content-Length"] = str(len(body))
    lines += [f"{k}: {v}" for k, v in hdrs.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --- HTML structure --------------------------------------------------------------------------


class _Shape(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[tuple[str, ...]] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.items.append((tag, *sorted(name for name, _ in attrs)))
        for name, value in attrs:
            if name in ("href", "src", "action", "formaction") and value is not None:
                self.urls.append(value)

    def handle_endtag(self, tag: str) -> None:
        self.items.append(("/" + tag,))

    def handle_comment(self, data: str) -> None:
        self.items.append(("<!--",))

    def handle_pi(self, data: str) -> None:
        self.items.append(("<?",))

    def unknown_decl(self, data: str) -> None:
        self.items.append(("<!",))


def shape(body: bytes) -> tuple[list[tuple[str, ...]], list[str]]:
    """Return a page's element/attribute structure and its URL attributes."""
    parser = _Shape()
    parser.feed(body.decode("utf-8"))
    parser.close()
    return parser.items, parser.urls


def first_difference(a: list[tuple[str, ...]], b: list[tuple[str, ...]]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"at {i}: {x} != {y}"
    return f"lengths {len(a)} != {len(b)}"


def unique_prefix(letters: str = "s") -> str:
    """A table-name prefix no concurrent run uses (lowercase letters and digits)."""
    return letters + uuid.uuid4().hex[:10]

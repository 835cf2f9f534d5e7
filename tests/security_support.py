"""Machinery shared by the security battery (test_security_*.py, test_scaleout.py).

Every test here talks to a scaffolded project served by the real server
(``robaccia-admin serve``: waitress, debug off; or ``run``: the threaded
development server). What this module gives them:

* :func:`build_project`: support.make_project with the views the battery
  needs (integer and string primary keys, HTML and JSON) and small body
  limits, plus a helper module in views/ and files beside static/;
* :func:`serving`: support.served, yielding a :class:`Site` whose browsers
  (support.Client with the site's CSRF form) have every answer audited;
* :func:`raw_exchange`: a raw socket request with a timeout, for framing
  that http.client refuses to send;
* :data:`AUDIT`: every answer from a debug-off server is scanned for
  internals (tracebacks, SQL, driver names, paths, the database URL) and
  server errors, over the whole session;
* :func:`record_figure`: merge a published figure into tests/output/figures.json.

The page shape (support.shape, support.first_difference), the database URLs
(support.POSTGRES_URL) and require_postgres are in support.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import re
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import Client, make_project, served

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


# --- server databases ------------------------------------------------------------------------


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
    root = make_project(
        parent,
        engine,
        name="secproject",
        views={
            views["html"]: ["name:string:required", "title:string", "office_number:integer"],
            views["json"]: ["count:integer"],
            views["skey"]: ["label:string"],
            views["jkey"]: ["label:string"],
        },
        kind={views["json"]: "json", views["jkey"]: "json"},
        settings={"MAX_BODY_SIZE": MAX_BODY, "MAX_FIELDS": MAX_FIELDS},
        edit=functools.partial(_battery_edits, string_keys=[views["skey"], views["jkey"]]),
        createdb=True,
        database_url=database_url,
    )
    return Project(root, engine, database_url, views)


def _battery_edits(root: Path, string_keys: list[str]) -> None:
    """String primary keys; a helper module that is not a view; files static must not serve."""
    for view in string_keys:
        model = root / "models" / f"{view}.py"
        text = model.read_text().replace(
            "Column('id', Integer, primary_key=True)", "Column('id', String(200), primary_key=True)"
        )
        assert "String(200), primary_key=True" in text, text
        model.write_text(text)
    (root / "views" / "helpers.py").write_text(HELPER_MODULE.format(name="helpers"))
    (root / "static" / "sub").mkdir()
    (root / "static" / "sub" / "inside.txt").write_text("inside static\n")
    (root / "static2").mkdir()
    (root / "static2" / "secret.txt").write_text(SECRET_OUTSIDE + "\n")
    (root / "outside.txt").write_text(SECRET_OUTSIDE + "\n")
    (root / "static" / "escape.txt").symlink_to(root / "outside.txt")
    (root / "static" / "escapedir").symlink_to(root / "static2", target_is_directory=True)


@contextlib.contextmanager
def serving(
    project: Project, command: str = "serve", extra_args: tuple[str, ...] = (), workers: int = 2
) -> Iterator[Site]:
    """Serve a project (support.served); yield a :class:`Site` whose answers are audited."""
    with served(
        project.root,
        command,
        database_url=project.database_url,
        workers=workers,
        extra_args=extra_args,
    ) as server:
        yield Site(server.base, project, debug=command == "run", process=server.process,
                   log=server.log)


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
        """A new browser: its CSRF token from the HTML view's new form, its answers audited."""
        return Client(
            self.base,
            token_page=f"/{self.view('html')}/;new_form",
            audit=functools.partial(AUDIT.check, self),
        )


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


# --- raw HTTP ------------------------------------------------------------------------------


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


def unique_prefix(letters: str = "s") -> str:
    """A table-name prefix no concurrent run uses (lowercase letters and digits)."""
    return letters + uuid.uuid4().hex[:10]

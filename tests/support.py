"""Shared helpers for tests that scaffold a project and serve it for real."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REQUIRE_SERVICES = os.environ.get("ROBACCIA_REQUIRE_SERVICES") == "1"
EMPLOYEE_FIELDS = ["name:string:required", "title:string", "office_number:integer"]


def admin(*args: str, cwd: Path, env: dict[str, str] | None = None,
          check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run robaccia-admin (as python -m robaccia) and capture its output."""
    result = subprocess.run([sys.executable, "-m", "robaccia", *args], cwd=cwd, text=True,
                            capture_output=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"robaccia-admin {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def make_project(parent: Path, engine: str = "genshi", name: str = "myproject",
                 view: str = "employees", fields: list[str] | None = None,
                 database_url: str | None = None) -> Path:
    """Scaffold a project with one model view and create its tables."""
    admin("createproject", name, "--templates", engine, cwd=parent)
    root = parent / name
    admin("addmodelview", view, *(fields or EMPLOYEE_FIELDS), cwd=root)
    admin("createdb", cwd=root, env=project_env(database_url))
    return root


def project_env(database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ROBACCIA_DEBUG", None)
    if database_url:
        env["ROBACCIA_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[str] | None = None, timeout: float = 30,
                  log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            out = log_path.read_text() if log_path is not None else ""
            raise AssertionError(f"server exited early ({process.returncode}):\n{out}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listening on port {port} after {timeout}s")


def stop(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Stop a server process: terminate, then kill if it does not exit in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def served(root: Path, command: str = "run", database_url: str | None = None,
           extra_args: tuple[str, ...] = (), **env: str) -> Iterator[str]:
    """Serve a project with `robaccia-admin run --no-reload` (or `serve`); yield its URL."""
    port = free_port()
    args = [sys.executable, "-m", "robaccia", command, "--port", str(port)]
    args += ["--no-reload"] if command == "run" else ["--workers", "2"]
    args += list(extra_args)
    # NOTE: output goes to a file: a pipe nobody reads fills up and blocks the server.
    (root / "logs").mkdir(exist_ok=True)
    log_path = root / "logs" / f"server-{port}.out"
    with open(log_path, "w") as log:
        process = subprocess.Popen(args, cwd=root, env=project_env(database_url, **env), text=True,
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, process, log_path=log_path)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(process)


def request(base: str, method: str, path: str, body: bytes | str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request (no redirects followed); return status, headers, body."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


# --- projects in this process ------------------------------------------------------------


def scaffold_project(parent: Path, engine: str = "genshi", *, debug: bool = False,
                     views: dict[str, list[str]] | None = None, kind: str = "html") -> Path:
    """Scaffold a project (in this process) with model views and their tables.

    ``views`` maps view names to addmodelview fields (default: employees).
    The project is loaded with :func:`load` afterwards.
    """
    from robaccia import scaffold

    root = scaffold.create_project("myproject", parent, engine)
    for name, fields in (views or {"employees": EMPLOYEE_FIELDS}).items():
        scaffold.add_model_view(root, name, kind, fields)
    (root / ".debug").write_text("1" if debug else "0")
    return root


def load(root: Path, *, debug: bool | None = None) -> Any:
    """Load a scaffolded project in this process, its tables created; return it."""
    import importlib

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

"""The one project builder of the tests, robaccia-admin as a subprocess, and loading in-process."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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
    """This process's environment for a project's process: debug unset, the database URL set."""
    env = dict(os.environ)
    env.pop("ROBACCIA_DEBUG", None)
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

"""robaccia as a user gets it: projects made by robaccia-admin, loaded as generated.

Three projects are scaffolded into the run's work folder:

* ``benchjinja``: ``createproject --templates jinja2`` + ``addmodelview employees``
  (HTML): the member page, the list page and create. For the plumbing scenario
  a copy of its generated ``dispatcher.py``, ``dispatcher_plumbing.py``, adds a
  custom collection before the default routes, as the dispatcher's comment
  says to.
* ``benchjson``: ``addmodelview employees --type json`` and ``addmodelview
  benchdeep --type json``: the JSON member and the keyset list pages.
* ``benchgenshi``: ``createproject --templates genshi`` + ``addmodelview employees``.

Every project's modules have the same names (``dispatcher``, ``settings``,
``dbconfig``, ``views.*``, ``models.*``), so :func:`load` imports one project
at a time, imports the views it will serve, and then takes the modules out of
``sys.modules`` again: the app objects keep working, and the next project (or
the same one with another ``ROBACCIA_DATABASE_URL``) gets fresh modules.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import DEEP_TABLE, FIELD_SPECS, Context, Scenario

PROJECT_MODULES = {"dispatcher", "dispatcher_plumbing", "settings", "dbconfig", "views",
                   "models", "tests"}
PROJECTS = {"jinja2": "benchjinja", "json": "benchjson", "genshi": "benchgenshi"}

CUSTOM_ROUTES_MARK = "# Custom routes go here, before the default route below.\n"
PLUMBING_ROUTE = '''
# Benchmark (plumbing scenario): a custom collection, before the default routes.
from robaccia import Collection


class Plumbing(Collection):
    # GET /employees/{id}
    def retrieve(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                  ("Content-Length", "13")])
        return [b"Hello, World!"]


app.add("/employees/[{id:unreserved}][;{noun:unreserved}]", Plumbing())

'''
HELLO_VIEW = '''"""Benchmark (convention scenario): reached through the default route."""

from robaccia.wsgicollection import Collection


class Hello(Collection):
    # GET /hello/{id}
    def retrieve(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                  ("Content-Length", "13")])
        return [b"Hello, World!"]


app = Hello()
'''


def _admin() -> list[str]:
    script = Path(sys.executable).parent / "robaccia-admin"
    return [str(script)] if script.exists() else [sys.executable, "-m", "robaccia"]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(_admin() + args, cwd=cwd, env=env, text=True, capture_output=True,
                            timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"robaccia-admin {' '.join(args)} failed:\n"
                           f"{result.stdout}{result.stderr}")


def scaffold(ctx: Context) -> None:
    """Create the three projects and the employees table of the main database."""
    work = Path(ctx.workdir)
    env = {k: v for k, v in os.environ.items() if k != "ROBACCIA_DEBUG"}
    env["ROBACCIA_DATABASE_URL"] = ctx.url("main")
    for engine, (name, kind, engine_flag) in {
        "jinja2": ("benchjinja", "html", "jinja2"),
        "json": ("benchjson", "json", "jinja2"),
        "genshi": ("benchgenshi", "html", "genshi"),
    }.items():
        _run(["createproject", name, "--templates", engine_flag], work, env)
        root = work / name
        _run(["addmodelview", "employees", *FIELD_SPECS, "--type", kind], root, env)
        if engine == "json":
            _run(["addmodelview", DEEP_TABLE, *FIELD_SPECS, "--type", "json"], root, env)
        ctx.projects[engine] = str(root.resolve())
    _run(["createdb"], work / "benchjinja", env)
    # Not in an HTML project: a view file would add an entry to its pages' navigation.
    (Path(ctx.projects["json"]) / "views" / "hello.py").write_text(HELLO_VIEW)

    root = Path(ctx.projects["jinja2"])
    text = (root / "dispatcher.py").read_text()
    if CUSTOM_ROUTES_MARK not in text:
        raise RuntimeError("the generated dispatcher.py has no 'Custom routes go here' line")
    plumbing = text.replace(CUSTOM_ROUTES_MARK, CUSTOM_ROUTES_MARK + PLUMBING_ROUTE, 1)
    (root / "dispatcher_plumbing.py").write_text(plumbing)


def _purge() -> None:
    for name in list(sys.modules):
        if name.partition(".")[0] in PROJECT_MODULES:
            del sys.modules[name]


def load(root: str, module: str, database_url: str, views: tuple[str, ...]) -> Any:
    """Load a project (its routes from ``module``) with this database; return its app."""
    from robaccia.project import Project

    saved_path = list(sys.path)
    saved_env = {k: os.environ.get(k) for k in ("ROBACCIA_DATABASE_URL", "ROBACCIA_DEBUG")}
    _purge()
    os.environ["ROBACCIA_DATABASE_URL"] = database_url
    os.environ.pop("ROBACCIA_DEBUG", None)
    try:
        project = Project(root)
        if module != "dispatcher":
            # the plumbing copy of dispatcher.py stands in for the project's own
            sys.modules["dispatcher"] = importlib.import_module(module)
        project.build()
        for view in views:
            project.view(view)  # import it now, while its modules are reachable
        return project
    finally:
        sys.path[:] = saved_path
        _purge()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_loaded: dict[str, Any] = {}


def build_robaccia(app_id: str, ctx: Context) -> Any:
    """The robaccia app for a benchmark app id (loaded once per process)."""
    if app_id not in _loaded:
        if app_id == "plumbing":
            app = load(ctx.projects["jinja2"], "dispatcher_plumbing", ctx.url("main"), ())
        elif app_id == "convention":
            app = load(ctx.projects["json"], "dispatcher", ctx.url("main"), ("hello",))
        elif app_id == "json_member":
            app = load(ctx.projects["json"], "dispatcher", ctx.url("main"), ("employees",))
        elif app_id == "jinja2":
            app = load(ctx.projects["jinja2"], "dispatcher", ctx.url("main"), ("employees",))
        elif app_id == "genshi":
            app = load(ctx.projects["genshi"], "dispatcher", ctx.url("main"), ("employees",))
        elif app_id in ("deep_sqlite", "deep_pg"):
            app = load(ctx.projects["json"], "dispatcher", ctx.url(app_id), (DEEP_TABLE,))
        else:
            raise KeyError(app_id)
        _loaded[app_id] = app
    return _loaded[app_id]


def harvest_csrf(ctx: Context) -> None:
    """Visit each HTML project's new form like a browser: keep its cookie and token."""
    from robaccia.testing import call

    for engine in ("jinja2", "genshi"):
        app = build_robaccia(engine, ctx)
        status, headers, body = call(app, "GET", "/employees/;new_form")
        if not status.startswith("200"):
            raise RuntimeError(f"new form of the {engine} project answered {status}")
        cookie = next((v.split(";", 1)[0] for k, v in headers
                       if k.lower() == "set-cookie" and v.startswith("robaccia_csrf=")), None)
        token = re.search(rb'name="_csrf" value="([0-9a-f]+)"', body)
        if cookie is None or token is None:
            raise RuntimeError(f"no CSRF cookie or token in the {engine} project's new form")
        ctx.cookies[engine] = cookie
        ctx.tokens[engine] = token.group(1).decode()


def remove(ctx: Context) -> None:
    shutil.rmtree(ctx.workdir, ignore_errors=True)


def scenario_app(contestant: str, scenario: Scenario, ctx: Context) -> Any:
    """The app a contestant serves a scenario with."""
    if contestant == "robaccia":
        return build_robaccia(scenario.app, ctx)
    from peers import BUILDERS

    return BUILDERS[contestant](scenario.app, ctx)

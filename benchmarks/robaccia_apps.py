"""robaccia as a user gets it: projects made by robaccia-admin, loaded as generated.

Three projects are scaffolded into the run's work folder:

* ``benchjinja``: ``createproject --templates jinja2`` + ``addmodelview employees``:
  the member page, the list page and create. For the plumbing scenario, a copy
  of its ``dispatcher.py`` adds a custom collection before the default route,
  as the file's comment says to.
* ``benchjson``: ``addmodelview employees --type json`` and ``benchdeep --type
  json``, plus ``views/hello.py`` (a plain Collection) for the convention scenario.
* ``benchgenshi``: ``createproject --templates genshi`` + ``addmodelview employees``.

The projects' modules share names (``dispatcher``, ``settings``, ``views.*``...),
so :func:`load` imports one project at a time, with the views it will serve,
and then takes its modules out of ``sys.modules``: the app keeps working, and
the next project (or the same one on another database) gets fresh modules.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import DEEP_TABLE, FIELD_SPECS, Context

PROJECT_MODULES = {"dispatcher", "dispatcher_plumbing", "settings", "dbconfig", "views", "models"}
CUSTOM_ROUTES_MARK = "# Custom routes go here, before the default route below.\n"
FIXED_HANDLER = '''
    def retrieve(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                  ("Content-Length", "13")])
        return [b"Hello, World!"]
'''
PLUMBING_ROUTE = f'''
# Benchmark (plumbing scenario): a custom collection, before the default route.
from robaccia import Collection


class Plumbing(Collection):{FIXED_HANDLER}

app.add("/employees/[{{id:unreserved}}][;{{noun:unreserved}}]", Plumbing())

'''
HELLO_VIEW = f'''"""Benchmark (convention scenario): served through the default route."""

from robaccia.wsgicollection import Collection


class Hello(Collection):{FIXED_HANDLER}

app = Hello()
'''


def _admin(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    script = Path(sys.executable).parent / "robaccia-admin"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "robaccia"]
    result = subprocess.run(command + args, cwd=cwd, env=env, text=True, capture_output=True,
                            timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"robaccia-admin {' '.join(args)} failed:\n"
                           f"{result.stdout}{result.stderr}")


def scaffold(ctx: Context) -> None:
    """Create the three projects and the employees table of the main database."""
    work = Path(ctx.workdir)
    env = {k: v for k, v in os.environ.items() if k != "ROBACCIA_DEBUG"}
    env["ROBACCIA_DATABASE_URL"] = ctx.url("main")
    for key, name, kind, engine in (("jinja2", "benchjinja", "html", "jinja2"),
                                    ("json", "benchjson", "json", "jinja2"),
                                    ("genshi", "benchgenshi", "html", "genshi")):
        _admin(["createproject", name, "--templates", engine], work, env)
        root = work / name
        _admin(["addmodelview", "employees", *FIELD_SPECS, "--type", kind], root, env)
        if key == "json":
            _admin(["addmodelview", DEEP_TABLE, *FIELD_SPECS, "--type", "json"], root, env)
            # Not in an HTML project: another view would add an entry to its pages' menu.
            (root / "views" / "hello.py").write_text(HELLO_VIEW)
        ctx.projects[key] = str(root.resolve())
    _admin(["createdb"], work / "benchjinja", env)

    root = Path(ctx.projects["jinja2"])
    text = (root / "dispatcher.py").read_text()
    if CUSTOM_ROUTES_MARK not in text:
        raise RuntimeError("the generated dispatcher.py has no 'Custom routes go here' line")
    (root / "dispatcher_plumbing.py").write_text(
        text.replace(CUSTOM_ROUTES_MARK, CUSTOM_ROUTES_MARK + PLUMBING_ROUTE, 1))


def _purge() -> None:
    for name in list(sys.modules):
        if name.partition(".")[0] in PROJECT_MODULES:
            del sys.modules[name]


def load(root: str, module: str, database_url: str, views: tuple[str, ...],
         middleware: tuple[str, ...] | None = None) -> Any:
    """Load a project (its routes from ``module``) on this database; return its app.

    ``middleware`` stands in for the project's MIDDLEWARE setting (the anatomy's variants).
    """
    from robaccia.project import Project

    saved_path = list(sys.path)
    saved_env = {k: os.environ.get(k) for k in ("ROBACCIA_DATABASE_URL", "ROBACCIA_DEBUG")}
    _purge()
    os.environ["ROBACCIA_DATABASE_URL"] = database_url
    os.environ.pop("ROBACCIA_DEBUG", None)
    try:
        project = Project(root)
        if middleware is not None:
            project.settings.MIDDLEWARE = middleware
        if module != "dispatcher":  # the plumbing copy stands in for the project's own
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


#: app id -> (project, routes module, database, views)
APPS = {
    "plumbing": ("jinja2", "dispatcher_plumbing", "main", ()),
    "convention": ("json", "dispatcher", "main", ("hello",)),
    "json_member": ("json", "dispatcher", "main", ("employees",)),
    "jinja2": ("jinja2", "dispatcher", "main", ("employees",)),
    "genshi": ("genshi", "dispatcher", "main", ("employees",)),
    "deep_sqlite": ("json", "dispatcher", "deep_sqlite", (DEEP_TABLE,)),
    "deep_pg": ("json", "dispatcher", "deep_pg", (DEEP_TABLE,)),
}
_loaded: dict[tuple[str, tuple[str, ...] | None], Any] = {}


_M = "robaccia.middleware."
#: The anatomy (instruction counts only): the convention app with fewer of the default
#: middlewares, each variant a contestant name -> its MIDDLEWARE, outermost first.
ANATOMY = {
    "robaccia-no-hosts": (_M + "ErrorPages", _M + "SecurityHeaders", _M + "FlashMessages",
                          _M + "CSRFProtection"),
    "robaccia-no-headers": (_M + "ErrorPages", _M + "AllowedHosts", _M + "FlashMessages",
                            _M + "CSRFProtection"),
    "robaccia-no-flash": (_M + "ErrorPages", _M + "AllowedHosts", _M + "SecurityHeaders",
                          _M + "CSRFProtection"),
    "robaccia-no-csrf": (_M + "ErrorPages", _M + "AllowedHosts", _M + "SecurityHeaders",
                         _M + "FlashMessages"),
    "robaccia-error-pages-only": (_M + "ErrorPages",),
    "robaccia-no-middleware": (),
}


def build_robaccia(app_id: str, ctx: Context, middleware: tuple[str, ...] | None = None) -> Any:
    """The robaccia app for a benchmark app id (loaded once per process, per middleware)."""
    key = (app_id, middleware)
    if key not in _loaded:
        project, module, db, views = APPS[app_id]
        _loaded[key] = load(ctx.projects[project], module, ctx.url(db), views, middleware)
    return _loaded[key]


def harvest_csrf(ctx: Context) -> None:
    """Visit each HTML project's new form like a browser: keep its cookie and token."""
    from robaccia.testing import call

    for engine in ("jinja2", "genshi"):
        status, headers, body = call(build_robaccia(engine, ctx), "GET", "/employees/;new_form")
        cookie = next((v.split(";", 1)[0] for k, v in headers
                       if k.lower() == "set-cookie" and v.startswith("robaccia_csrf=")), None)
        token = re.search(rb'name="_csrf" value="([0-9a-f]+)"', body)
        if not status.startswith("200") or cookie is None or token is None:
            raise RuntimeError(f"the {engine} project's new form answered {status} without "
                               "a CSRF cookie and token")
        ctx.cookies[engine] = cookie
        ctx.tokens[engine] = token.group(1).decode()


def app_for(contestant: str, app_id: str, ctx: Context) -> Any:
    """The app a contestant serves an app id with."""
    if contestant == "robaccia":
        return build_robaccia(app_id, ctx)
    if contestant in ANATOMY:
        return build_robaccia(app_id, ctx, ANATOMY[contestant])
    from peers import BUILDERS

    return BUILDERS[contestant](app_id, ctx)

"""A robaccia project at run time: one loader that ``run``, ``serve``, ``runtests`` and the test client share.

:func:`load_project` finds a project folder, puts it on ``sys.path`` (the one
place that does), reads ``settings.py`` and builds the WSGI app: the project's
own routes (``dispatcher.py``'s ``app``) behind the built-in ones of
:mod:`robaccia.builtin` (``/static/``, ``/favicon.ico``, ``/openapi.json``;
``/`` and ``/<view>`` when nothing else answers them), wrapped in the
middlewares of ``settings.MIDDLEWARE``. A ``dispatcher.py`` as short as the
article's is enough::

    from robaccia.wsgidispatcher import Dispatcher
    from robaccia import deferred_collection
    app = Dispatcher()
    app.add('/{view:alnum}/[{id:unreserved}][;{noun:unreserved}]', deferred_collection)

Settings (all optional): ``DEBUG``, ``SECRET_KEY``, ``TEMPLATE_ENGINE``,
``MAX_BODY_SIZE``, ``MAX_FIELDS``, ``PAGE_SIZE``, ``MAX_PAGE_SIZE``,
``ALLOWED_HOSTS``, ``HTTPS``, ``HSTS_SECONDS``, ``HSTS_INCLUDE_SUBDOMAINS``,
``TRUSTED_PROXY``, ``SECURE_COOKIES``, ``MIDDLEWARE``, ``SQL_FAST_PATH``.

A view is ``views/<name>.py``; it is imported the first time a request names
it, and only if that file exists. A name that is not a view is a 404 that
imports nothing; a view that cannot be imported, or defines no ``app``, is an
error that says so (a debug page under ``run``):

    >>> from robaccia.testing import call, make_environ
    >>> env = make_environ('GET', '/os/', **{'wsgiorg.routing_args': ((), {'view': '__init__'})})
    >>> call(deferred_collection, environ=env)[0]
    '404 Not Found'
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
import types
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

# NOTE: _CONDITIONS, _FIRST_SEGMENT and _drop_unreadable_conditions moved too; importable here as before.
from robaccia.builtin import _BUILT_IN, _CONDITIONS, _FIRST_SEGMENT, BuiltIns, _drop_unreadable_conditions  # noqa: F401
from robaccia.errors import BadRequest, HTTPException, NotFound, RobacciaError
from robaccia.middleware import _CHECKED_METHODS, Steps
from robaccia.parsers import Limits
from robaccia.request import Request, safe_root
from robaccia.util import drop_body

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from sqlalchemy.engine import Engine

    from robaccia.renderers import Templates

__all__ = ["Project", "ProjectError", "ViewError", "deferred_collection", "find_root", "load_project"]

logger = logging.getLogger(__name__)

#: Longer names cannot be views (and would be too long for some file systems).
MAX_VIEW_NAME = 100
#: The files and folders that make a folder a project.
MARKERS = ("views", "dispatcher.py")


class ProjectError(RobacciaError):
    """The project folder or its settings are not usable."""


class ViewError(RobacciaError):
    """A view file that cannot be served: it fails to import or defines no ``app``."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def is_view_name(name: Any) -> bool:
    """Tell whether a routing ``view`` could name a file in views/."""
    return (isinstance(name, str) and 0 < len(name) <= MAX_VIEW_NAME and name.isascii()
            and (name.replace("_", "a").isalnum()) and not name.startswith("_"))


def find_root(start: str | os.PathLike[str] = ".") -> Path:
    """Return the project folder at or above ``start`` (as git finds its repository).

    :raises ProjectError: when no folder above has views/ and dispatcher.py.
    """
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if all((folder / m).exists() for m in MARKERS) and (folder / "views").is_dir():
            return folder
    raise ProjectError("This folder is not in a robaccia project (none above it has views/ and "
                       "dispatcher.py): cd into one, or make one with robaccia-admin createproject.")


#: The top-level names a project's modules import each other by.
_PROJECT_MODULES = ("settings", "dbconfig", "dispatcher", "views", "models")


def _claim_modules(root: Path) -> None:
    """Forget modules of these names that another project loaded in this process."""
    for name in list(sys.modules):
        if name.partition(".")[0] not in _PROJECT_MODULES:
            continue
        module = sys.modules[name]
        where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), "")
        if where and not Path(where).resolve().is_relative_to(root):
            del sys.modules[name]


_projects: dict[Path, Project] = {}
_projects_lock = threading.Lock()


def load_project(root: str | os.PathLike[str] | None = None) -> Project:
    """Return the project at (or above) ``root``, default the current folder; loaded once."""
    folder = find_root(root if root is not None else ".")
    with _projects_lock:
        project = _projects.get(folder)
        if project is None:
            project = _projects[folder] = Project(folder)
    return project


class Project(BuiltIns):
    """The run-time side of a project folder, and its WSGI app.

    :param root: the project folder.
    :param settings: the settings module (default: the project's settings.py).
    """

    def __init__(self, root: str | os.PathLike[str], settings: Any = None) -> None:
        path = Path(root).resolve()
        self.root = path.parent if path.is_file() else path
        if not (self.root / "views").is_dir():
            raise ProjectError(f"{self.root} is not a robaccia project (no views/ folder)")
        # NOTE: the one place a project goes on sys.path: its settings, dbconfig,
        # models and views import each other by these top-level names.
        if str(self.root) in sys.path:
            sys.path.remove(str(self.root))
        sys.path.insert(0, str(self.root))
        _claim_modules(self.root)
        self.name = self.root.name
        self.settings = settings if settings is not None else self._load_settings()
        self.debug = bool(self.setting("DEBUG", False))
        #: The site is reached over HTTPS (redirects, HSTS, Secure cookies).
        self.https = bool(self.setting("HTTPS", False))
        self.secure_cookies = self.https or bool(self.setting("SECURE_COOKIES", False))
        self.limits = Limits(int(self.setting("MAX_BODY_SIZE", 1024 * 1024)),
                             int(self.setting("MAX_FIELDS", 1000)))
        self.page_size = int(self.setting("PAGE_SIZE", 50))
        #: The host names the site answers to (empty: the loopback names).
        self.allowed_hosts = list(self.setting("ALLOWED_HOSTS", None) or [])
        self.max_page_size = int(self.setting("MAX_PAGE_SIZE", 500))
        self.static_dir = os.path.realpath(self.root / "static")
        self._templates: Templates | None = None
        self._views: dict[str, WSGIApplication] = {}
        self._lock = threading.RLock()
        self._app: WSGIApplication | None = None
        self._routes: WSGIApplication | None = None
        self._engine: Engine | None = None
        self._steps: Steps | None = None
        self._nav: dict[tuple[str, str | None], tuple[dict[str, Any], ...]] = {}
        #: The routes, when the steps call them with nothing between.
        self._direct: WSGIApplication | None = None
        #: The class of this project's requests (see _chain).
        self._request: type[Request] = Request

    def _load_settings(self) -> types.ModuleType | None:
        if not (self.root / "settings.py").is_file():
            return None
        return importlib.import_module("settings")

    def setting(self, name: str, default: Any) -> Any:
        """Return a setting from settings.py, or ``default``."""
        return getattr(self.settings, name, default)

    def secret(self) -> str:
        """Return the project's secret key."""
        key = os.environ.get("ROBACCIA_SECRET_KEY") or self.setting("SECRET_KEY", None)
        if not key:
            raise ProjectError("No SECRET_KEY: the project has no .secret_key file and "
                               "ROBACCIA_SECRET_KEY is not set. Generate one with: "
                               "robaccia-admin secretkey")
        return str(key)

    @property
    def templates(self) -> Templates:
        """The project's templates/ folder with its engine."""
        if self._templates is None:
            from robaccia.renderers import Templates

            self._templates = Templates(str(self.root / "templates"),
                                        self.setting("TEMPLATE_ENGINE", "genshi"), self.debug)
        return self._templates

    @property
    def engine(self) -> Engine:
        """The project's database engine (``dbconfig.engine``)."""
        if self._engine is None:
            dbconfig = importlib.import_module("dbconfig")
            self._engine = dbconfig.engine
        return self._engine

    @property
    def fast_sql(self) -> bool:
        """Whether model collections may take the SQL fast path (``SQL_FAST_PATH``)."""
        env = os.environ.get("ROBACCIA_SQL_FAST_PATH")
        if env is not None:
            return env != "0"
        return bool(self.setting("SQL_FAST_PATH", True))

    # --- views ---------------------------------------------------------------------

    def collections(self) -> list[str]:
        """Return the names of the project's view files, sorted (read once)."""
        names = self.__dict__.get("_collections")
        if names is None:
            names = sorted(p.stem for p in (self.root / "views").glob("*.py") if is_view_name(p.stem))
            self.__dict__["_collections"] = names
        return list(names)

    def view(self, name: str) -> WSGIApplication:
        """Return the app of ``views/<name>.py``, importing it once.

        :raises NotFound: when no view file has that name.
        :raises ViewError: when the file cannot be imported or defines no ``app``.
        """
        app = self._views.get(name)
        if app is not None:
            return app
        if not is_view_name(name) or not (self.root / "views" / f"{name}.py").is_file():
            raise NotFound()
        with self._lock:
            app = self._views.get(name)
            if app is None:
                app = self._views[name] = self._import_view(name)
        return app

    def _import_view(self, name: str) -> WSGIApplication:
        path = f"views/{name}.py"
        try:
            module = importlib.import_module(f"views.{name}")
        except Exception as exc:
            sys.modules.pop(f"views.{name}", None)
            raise ViewError(f"{path} could not be imported: {type(exc).__name__}: {exc}",
                            f"Fix {path}; the error is in the traceback below.") from exc
        app = getattr(module, "app", None)
        if app is None or not callable(app):
            raise ViewError(f"{path} defines no app",
                            f"A view module must define app, the collection that serves "
                            f"/{name}/ (for example app = Collection(table)). Helpers belong "
                            f"outside views/.")
        return app  # type: ignore[no-any-return]

    def deferred_collection(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Route to the view named by the ``view`` routing argument."""
        name = Request.of(environ).view or ""
        return (self._views.get(name) or self.view(name))(environ, start_response)

    # --- the whole app -------------------------------------------------------------------

    def _load_routes(self) -> WSGIApplication:
        try:
            module = importlib.import_module("dispatcher")
        except Exception as exc:
            if not self.debug:
                raise
            sys.modules.pop("dispatcher", None)
            error = ViewError(f"dispatcher.py could not be imported: {type(exc).__name__}: {exc}",
                              "Fix dispatcher.py; the development server reloads it when you save.")
            error.__cause__ = exc

            def broken(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
                raise error

            return broken
        app = getattr(module, "app", None)
        if app is None:
            raise ProjectError("dispatcher.py defines no app (the project's routes, a Dispatcher).")
        return app  # type: ignore[no-any-return]

    def build(self) -> Project:
        """Load the routes, middlewares and engine now (a server does, to fail at start)."""
        self._chain()
        if (self.root / "dbconfig.py").is_file():
            self.engine  # noqa: B018 (imports dbconfig)
        return self

    def _chain(self) -> WSGIApplication:
        """The routes wrapped in the project's middlewares (built on first use)."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from robaccia.middleware import DEFAULT_MIDDLEWARE, compose

                    self._routes = self._load_routes()
                    middleware = self.setting("MIDDLEWARE", DEFAULT_MIDDLEWARE)
                    app = compose(self._route, middleware, self)
                    known: dict[str, Any] = {"project": self, "hooked": True}
                    # PERF: steps around everything run here, one call fewer per request.
                    if isinstance(app, Steps):
                        self._steps = app
                        known.update(app.defaults)
                        if app.app == self._route:
                            self._direct = self._routes
                    # PERF: what every request of the project starts with (the
                    # project, the steps' attributes) is set once, on a class of
                    # its own, instead of on each request.
                    self._request = type("Request", (Request,), {
                        "__module__": Request.__module__, "__qualname__": Request.__qualname__, **known})
                    self._app = app
        return self._app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer a request: the project is a WSGI application."""
        app = self._app or self._chain()
        request = self._request(environ)
        script = environ.get("SCRIPT_NAME", "")
        # PERF: what Request.hook does, without the call.
        request._start_response = start_response
        respond = request.respond
        if script and not safe_root(script):
            request.script_root = ""
            return BadRequest("The request's SCRIPT_NAME is not a plain path.")(environ, respond)
        request._script_root = script
        method = environ.get("REQUEST_METHOD")
        steps = self._steps
        if steps is None:
            result = app(environ, respond)
        else:
            inner: WSGIApplication = steps.app
            direct = self._direct
            if direct is not None:
                path = environ.get("PATH_INFO", "")
                if not (path.startswith("/static/") or path in _BUILT_IN):
                    inner = direct  # PERF: _route would only pass it on
            # PERF: what steps.enter(request) does, inline (the defaults are on
            # the request's class already), with the method read once: no step
            # changes it.
            try:
                for check in steps.every:
                    check(request)
                if steps.checks and method in _CHECKED_METHODS:
                    for check in steps.checks:
                        check(request)
                result = inner(environ, respond)
            except HTTPException as exc:
                result = exc(environ, respond)
            except Exception:
                if steps.guard is None:
                    raise  # no ErrorPages in MIDDLEWARE: the server's own 500
                result = steps.guard.error(environ, respond, sys.exc_info())
        if method == "HEAD":
            result = drop_body(result)
        if type(result) is list:
            # PERF: the answer is whole, so no layer needs the request any more:
            # without the environ's link to it the two are no reference cycle,
            # and are freed at once instead of by the garbage collector.
            environ.pop("robaccia.request", None)
        return result


def deferred_collection(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Call ``views.<view>.app``, importing the view on first use (the Gloves name).

    Uses the request's project when there is one; otherwise the ``views``
    package on ``sys.path``. Unknown views are 404.
    """
    request = environ.get("robaccia.request") or Request(environ)
    project = request.project
    if project is not None:
        # PERF: Project.deferred_collection and Request.view, inline: every
        # collection request comes here
        args = environ.get("wsgiorg.routing_args")
        name = (args[1] if args is not None else environ.get("selector.vars") or {}).get("view") or ""
        return (project._views.get(name) or project.view(name))(environ, start_response)
    try:
        view = Request.of(environ).view
        if not is_view_name(view):
            raise NotFound()
        spec = importlib.util.find_spec("views")
        if spec is None or not spec.submodule_search_locations:
            raise NotFound()
        folder = next(iter(spec.submodule_search_locations))
        if not os.path.isfile(os.path.join(folder, f"{view}.py")):
            raise NotFound()
        app = getattr(importlib.import_module(f"views.{view}"), "app", None)
        if app is None:
            raise ViewError(f"views/{view}.py defines no app", "A view module must define app.")
    except NotFound as exc:
        return exc(environ, start_response)
    return app(environ, start_response)  # type: ignore[no-any-return]

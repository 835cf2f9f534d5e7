"""A robaccia project at run time: settings, views, static files, the front page.

The generated ``dispatcher.py`` builds one :class:`Project` from its own
folder and routes to it::

    project = Project(__file__)
    routes = Dispatcher()
    routes.add('/', GET=project.index)
    routes.add('/static/{path:any}', GET=project.static)
    routes.add('/{view:alnum}', GET=project.add_slash)
    routes.add('/{view:alnum}/[{id:unreserved}][;{noun:unreserved}]', project.deferred_collection)
    app = project.wsgi(routes)

Settings come from the project's ``settings.py`` (all optional):
``DEBUG``, ``SECRET_KEY``, ``TEMPLATE_ENGINE`` (``"genshi"`` or ``"jinja2"``),
``MAX_BODY_SIZE``, ``MAX_FIELDS``, ``SECURE_COOKIES``.

A view is imported only when its name is alphanumeric and ``views/<name>.py``
exists and defines ``app``, once per process; any other name is a 404 and
imports nothing:

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
import re
import sys
import threading
import types
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robaccia.errors import NotFound, RobacciaError
from robaccia.middleware import ProjectMiddleware
from robaccia.parsers import Limits
from robaccia.renderers import Templates
from robaccia.wsgicollection import routing_vars

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["Project", "ProjectError", "deferred_collection"]

logger = logging.getLogger(__name__)


#: A top-level ``app`` in a view module: an assignment, a function, a class or an import.
_DEFINES_APP = re.compile(r"^(?:app\s*(?::[^=\n]*)?=|def\s+app\b|class\s+app\b|from\s.+\bimport\b.*\bapp\b)", re.M)
#: Longer names cannot be views (and would be too long for some file systems).
_MAX_VIEW_NAME = 100


class ProjectError(RobacciaError):
    """The project folder or its settings are not usable."""


def _view_name(environ: WSGIEnvironment) -> str:
    view = (routing_vars(environ) or {}).get("view") or ""
    if not (isinstance(view, str) and view.isascii() and view.isalnum()) or len(view) > _MAX_VIEW_NAME:
        raise NotFound()
    return view


def _is_view_source(path: Path) -> bool:
    """Tell whether a file is a view: it exists and defines ``app`` at top level.

    A module in views/ that defines no app (a helper) is not a collection: it
    is a 404 and is never imported because of a request.
    """
    return path.is_file() and bool(_DEFINES_APP.search(path.read_text(errors="replace")))


def deferred_collection(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Call ``views.<view>.app``, importing the view on first use.

    Uses the request's project when there is one; otherwise the ``views``
    package on ``sys.path``. Unknown views are 404.
    """
    project: Project | None = environ.get("robaccia.project")
    if project is not None:
        return project.deferred_collection(environ, start_response)
    try:
        view = _view_name(environ)
        if importlib.util.find_spec("views") is None:
            raise NotFound()
        spec = importlib.util.find_spec(f"views.{view}")
        if spec is None or not spec.origin or not _is_view_source(Path(spec.origin)):
            raise NotFound()
        app = getattr(importlib.import_module(f"views.{view}"), "app", None)
        if app is None:
            raise NotFound()
    except NotFound as exc:
        return exc(environ, start_response)
    return app(environ, start_response)  # type: ignore[no-any-return]


class Project:
    """The run-time side of a project folder.

    :param root: the project folder, or a file in it (``__file__`` of dispatcher.py).
    :param settings: the settings module (default: the project's settings.py).
    """

    def __init__(self, root: str | os.PathLike[str], settings: Any = None) -> None:
        path = Path(root).resolve()
        self.root = path.parent if path.is_file() else path
        if not (self.root / "views").is_dir():
            raise ProjectError(f"{self.root} is not a robaccia project (no views/ folder)")
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
        self.settings = settings if settings is not None else self._load_settings()
        self.debug = bool(self.setting("DEBUG", False))
        self.templates = Templates(str(self.root / "templates"),
                                   self.setting("TEMPLATE_ENGINE", "genshi"), self.debug)
        self.limits = Limits(int(self.setting("MAX_BODY_SIZE", 1024 * 1024)),
                             int(self.setting("MAX_FIELDS", 1000)))
        self.static_dir = os.path.realpath(self.root / "static")
        self._views: dict[str, WSGIApplication] = {}
        self._lock = threading.Lock()

    def _load_settings(self) -> types.ModuleType | None:
        file = self.root / "settings.py"
        if not file.is_file():
            return None
        return importlib.import_module("settings")

    def setting(self, name: str, default: Any) -> Any:
        """Return a setting from settings.py, or ``default``."""
        return getattr(self.settings, name, default)

    # --- views -----------------------------------------------------------------

    def collections(self) -> list[str]:
        """Return the names of the project's views, sorted."""
        names = (p.stem for p in (self.root / "views").glob("*.py"))
        return sorted(n for n in names if n.isascii() and n.isalnum())

    def view(self, name: str) -> WSGIApplication:
        """Return the app of ``views/<name>.py``, importing it once.

        :raises NotFound: when the name is not an existing view.
        """
        app = self._views.get(name)
        if app is not None:
            return app
        if not (name.isascii() and name.isalnum()) or len(name) > _MAX_VIEW_NAME:
            raise NotFound()
        if not _is_view_source(self.root / "views" / f"{name}.py"):
            raise NotFound()
        with self._lock:
            app = self._views.get(name)
            if app is None:
                module = importlib.import_module(f"views.{name}")
                app = getattr(module, "app", None)
                if app is None:
                    raise NotFound()
                self._views[name] = app
        return app

    def deferred_collection(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Route to the view named by the ``view`` routing argument."""
        return self.view(_view_name(environ))(environ, start_response)

    def ext_for(self, environ: WSGIEnvironment) -> str | None:
        """Return the representation of the view a request's path names, if any."""
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        name = path.lstrip("/").partition("/")[0].partition(";")[0]
        try:
            return getattr(self.view(name), "ext", None)
        except Exception:
            return None

    def not_found(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The router's 404: in the representation of the view the path names."""
        raise NotFound()

    def add_slash(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Redirect ``/fred`` to ``/fred/`` when fred is a view."""
        name = _view_name(environ)
        self.view(name)
        location = environ.get("SCRIPT_NAME", "") + "/"
        start_response("301 Moved Permanently", [("Location", location), ("Content-Length", "0")])
        return []

    def index(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """List the project's collections."""
        from robaccia.renderers import render

        names = self.collections()
        return render(environ, start_response, "index.html",
                      {"collections": names, "project": self.root.name})

    def openapi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve the OpenAPI 3.1 document of the project's JSON collections."""
        from robaccia.openapi import document
        from robaccia.renderers import to_json

        views = {}
        for name in self.collections():
            try:
                views[name] = self.view(name)
            except Exception:  # a broken view must not hide the others' document
                logger.exception("Could not load views/%s.py for /openapi.json", name)
        body = to_json(document(self.root.name, views))
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    # --- static files ---------------------------------------------------------

    def static(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve a file below static/, never anything outside it."""
        rel = (routing_vars(environ) or {}).get("path") or ""
        parts = rel.split("/")
        if ("\x00" in rel or "\\" in rel or ":" in rel
                or any(p in ("", ".", "..") or p.startswith(".") for p in parts)):
            raise NotFound()
        full = os.path.realpath(os.path.join(self.static_dir, *parts))
        if os.path.commonpath([full, self.static_dir]) != self.static_dir or not os.path.isfile(full):
            raise NotFound()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from webob.static import FileApp

        app = FileApp(full, cache_control="public, max-age=3600")
        return app(environ, start_response)  # type: ignore[no-any-return]

    # --- the whole app ------------------------------------------------------------

    def secret(self) -> str:
        """Return the project's secret key."""
        key = os.environ.get("ROBACCIA_SECRET_KEY") or self.setting("SECRET_KEY", None)
        if not key:
            raise ProjectError("No SECRET_KEY: set it in settings.py or ROBACCIA_SECRET_KEY")
        return str(key)

    def wsgi(self, app: WSGIApplication) -> ProjectMiddleware:
        """Wrap the project's routes with the project middleware."""
        return ProjectMiddleware(
            app,
            self.secret(),
            debug=self.debug,
            secure_cookies=bool(self.setting("SECURE_COOKIES", False)),
            limits=self.limits,
            environ_defaults={"robaccia.templates": self.templates, "robaccia.project": self},
            ext_for=self.ext_for,
        )

"""The resources every project serves besides its own routes, a base of :class:`~robaccia.project.Project`.

``/static/...`` and ``/favicon.ico`` (files below the project's static/
folder, never outside it), ``/openapi.json`` (the document of its JSON
collections), and, when its routes match nothing, ``/`` (the index of its
collections), ``/<view>`` (a redirect to ``/<view>/``) or a 404::

    >>> import tempfile
    >>> from robaccia import scaffold
    >>> from robaccia.project import Project
    >>> from robaccia.testing import call
    >>> root = scaffold.create_project('shop', tempfile.mkdtemp())
    >>> _ = scaffold.add_view(root, 'notes', 'html')
    >>> project = Project(root)
    >>> [call(project, 'GET', path)[0] for path in ('/static/robaccia.css', '/static/../settings.py',
    ...                                             '/openapi.json', '/', '/nothing')]
    ['200 OK', '404 Not Found', '200 OK', '200 OK', '404 Not Found']
    >>> status, headers, body = call(project, 'GET', '/notes')
    >>> status, dict(headers)['Location']
    ('301 Moved Permanently', '/notes/')
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robaccia.errors import NotFound, RobacciaError
from robaccia.request import Request, site_path
from robaccia.uritemplate import Template
from robaccia.wsgidispatcher import Dispatcher

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["BuiltIns"]

# NOTE: the name these messages had before they moved here, which log settings may name.
logger = logging.getLogger("robaccia.project")

#: Paths the project serves itself (besides /static/...).
_BUILT_IN = frozenset({"/favicon.ico", "/openapi.json"})
#: The first segment of a path, where a view's name would be.
_FIRST_SEGMENT = Template("/{view:word}|")


class BuiltIns:
    """The built-in resources of a :class:`~robaccia.project.Project`, which sets what they read.

    ``_route`` is the app the middlewares wrap: these paths, then the
    project's routes. The dispatcher calls ``unrouted`` when no route
    matches; error pages ask ``representation_for`` whether to answer in
    HTML or JSON; pages get ``template_context``.
    """

    root: Path
    name: str
    max_page_size: int
    static_dir: str
    _nav: dict[tuple[str, str | None], tuple[dict[str, Any], ...]]
    _routes: WSGIApplication | None

    if TYPE_CHECKING:
        def collections(self) -> list[str]: ...

        def view(self, name: str) -> WSGIApplication: ...

    def template_context(self, request: Request) -> dict[str, Any]:
        """The variables every page of the project gets: its name and collections."""
        key = (request.script_root, request.view)
        nav = self._nav.get(key)
        if nav is None:
            # PERF: the same list for every page of a view (pages only read it)
            root, current = key
            nav = tuple({"name": n, "title": n.replace("_", " ").capitalize(),
                         "url": site_path(f"{root}/{n}/"), "current": n == current}
                        for n in self.collections())
            if len(self._nav) >= 1024:
                self._nav.clear()
            self._nav[key] = nav
        return {"project": self.name, "nav": nav}

    def index(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The front page: each collection, with its New link and row count where known."""
        from robaccia.project import ViewError  # NOTE: here, as robaccia.project imports this module
        from robaccia.renderers import render

        request = Request.of(environ)
        collections = []
        for entry in self.template_context(request)["nav"]:
            info = dict(entry, new_url=None, count=None)
            try:
                app = self.view(entry["name"])
            except (NotFound, ViewError):
                collections.append(info)
                continue
            summary = getattr(app, "summary", None)
            if summary is not None:
                info.update(summary(environ, entry["url"]))
            collections.append(info)
        return render(environ, start_response, "index.html",
                      {"collections": collections, "title": self.name})

    def openapi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve the OpenAPI 3.1 document of the project's JSON collections."""
        from robaccia.openapi import document
        from robaccia.renderers import to_json

        views = {}
        for name in self.collections():
            try:
                views[name] = self.view(name)
            except RobacciaError:  # a broken view must not hide the others' document
                logger.exception("Could not load views/%s.py for /openapi.json", name)
        body = to_json(document(self.name, views, max_page_size=self.max_page_size))
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    def static(self, environ: WSGIEnvironment, start_response: StartResponse, rel: str) -> Iterable[bytes]:
        """Serve a file below static/, never anything outside it."""
        parts = rel.split("/")
        if ("\x00" in rel or "\\" in rel or ":" in rel
                or any(p in ("", ".", "..") or p.startswith(".") for p in parts)):
            raise NotFound()
        full = os.path.realpath(os.path.join(self.static_dir, *parts))
        if os.path.commonpath([full, self.static_dir]) != self.static_dir or not os.path.isfile(full):
            raise NotFound()
        from webob.static import FileApp

        _drop_unreadable_conditions(environ)
        return FileApp(full, cache_control="public, max-age=3600")(environ, start_response)

    def unrouted(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """What answers when the project's routes match nothing: ``/``, ``/<view>`` or 404."""
        from robaccia.project import is_view_name

        request = Request.of(environ)
        path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))[len(request.script_root):]
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            if path in ("", "/"):
                return self.index(environ, start_response)
            name = path.strip("/")
            if path == "/" + name and is_view_name(name):
                self.view(name)
                location = site_path(request.script_root + f"/{name}/")
                start_response("301 Moved Permanently", [("Location", location), ("Content-Length", "0"),
                                                         ("Cache-Control", "max-age=3600")])
                return []
        raise NotFound()

    def representation_for(self, environ: WSGIEnvironment) -> str | None:
        """The representation of the collection a request's path names, if one does.

        For errors raised before a collection answers: the project's routes
        (or, when they match nothing, the path's first segment) name the
        view, and a view file that exists tells its ``ext``.
        """
        from robaccia.project import is_view_name

        request = Request.of(environ)
        path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))[len(request.script_root):]
        view = None
        routes = self._routes
        if isinstance(routes, Dispatcher):
            found = routes.match(path, environ.get("REQUEST_METHOD", "GET"))
            if found is not None:
                view = found[2].get("view")
        if view is None:
            first = _FIRST_SEGMENT.match(path)
            view = first["view"] if first else None
        if not isinstance(view, str) or not is_view_name(view) or not (
                self.root / "views" / f"{view}.py").is_file():
            return None
        try:
            return getattr(self.view(view), "ext", None)
        except RobacciaError:
            return None

    def _route(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/static/") or path == "/favicon.ico":
            rel = path[len("/static/"):] if path.startswith("/static/") else "favicon.ico"
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                from robaccia.errors import MethodNotAllowed

                raise MethodNotAllowed(["GET", "HEAD"])
            return self.static(environ, start_response, rel)
        if path == "/openapi.json" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return self.openapi(environ, start_response)
        return self._routes(environ, start_response)  # type: ignore[misc]


#: Request headers a static file answer reads, and the WebOb property that parses each.
_CONDITIONS = (("HTTP_RANGE", "range"), ("HTTP_IF_RANGE", "if_range"),
               ("HTTP_IF_MODIFIED_SINCE", "if_modified_since"),
               ("HTTP_IF_UNMODIFIED_SINCE", "if_unmodified_since"),
               ("HTTP_IF_NONE_MATCH", "if_none_match"), ("HTTP_IF_MATCH", "if_match"))


def _drop_unreadable_conditions(environ: WSGIEnvironment) -> None:
    """Forget Range and conditional headers that cannot be read (RFC 9110: ignore them).

    WebOb parses them when the file is served, and a malformed one
    (``Range: bytes=--1``, a date in the year 99999) would raise there.
    """
    from webob.request import BaseRequest

    request = BaseRequest(environ)
    for key, prop in _CONDITIONS:
        if key in environ:
            try:
                getattr(request, prop)
            except Exception:  # whatever the parser raises: the header is unreadable
                del environ[key]

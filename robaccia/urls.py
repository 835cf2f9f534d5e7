"""URLs: the ones robaccia emits are paths on this site, built from the routes.

Every URL robaccia sends (redirects, ``Location``, ``Link``, page links)
passes :func:`site_path`, which refuses anything that could leave the site;
:func:`safe_root` tells whether a ``SCRIPT_NAME`` may prefix them. The
:class:`~robaccia.request.Request` builds them with the methods of
:class:`URLMethods`: ``url_for`` (a named route), ``route_url`` (the route
that matched, some values changed), ``collection_url``, ``member_url`` and
``static_url``::

    >>> from robaccia.urls import safe_root, site_path
    >>> site_path('/employees/7;edit_form')
    '/employees/7;edit_form'
    >>> safe_root('/app'), safe_root('//evil.example')
    (True, False)
    >>> from robaccia.request import Request
    >>> from robaccia.testing import make_environ
    >>> req = Request.of(make_environ('GET', '/employees/', **{
    ...     'wsgiorg.routing_args': ((), {'view': 'employees'})}))
    >>> req.member_url('a b'), req.member_url(7, 'edit_form'), req.static_url('site.css')
    ('/employees/a%20b', '/employees/7;edit_form', '/static/site.css')
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from robaccia.errors import RobacciaError

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

__all__ = ["URLMethods", "UnsafeURLError", "safe_root", "site_path"]

#: What a path robaccia emits may hold: RFC 3986 path characters and "%".
_SITE_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*(?:\?[^\s#\\]*)?\Z")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._~/-]*\Z").match
_PLAIN_KEY = re.compile(r"[A-Za-z0-9._~-]+\Z").match
_ROOT = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)*\Z")


class UnsafeURLError(RobacciaError, ValueError):
    """A URL robaccia was about to emit is not a plain path on this site."""


def site_path(url: str) -> str:
    """Return ``url`` if it is a path on this site; refuse anything else.

    Every URL robaccia emits (redirects, ``Location``, ``Link``, page links)
    passes here: a scheme-relative ``//host``, a backslash, a control
    character or a space can never leave the server.

    >>> site_path('/employees/?after=x')
    '/employees/?after=x'
    >>> site_path('//evil.example/employees/')
    Traceback (most recent call last):
    robaccia.urls.UnsafeURLError: '//evil.example/employees/' is not a path on this site
    """
    if not _SITE_PATH.match(url):
        raise UnsafeURLError(f"{url[:200]!r} is not a path on this site")
    return url


def safe_root(script_name: str) -> bool:
    """Tell whether a SCRIPT_NAME can prefix the URLs robaccia emits."""
    return bool(_ROOT.match(script_name))


class URLMethods:
    """The URL builders of :class:`~robaccia.request.Request` (a mixin: the
    request gives ``environ`` and the routing arguments)."""

    _script_root: str | None = None

    if TYPE_CHECKING:
        environ: WSGIEnvironment

        @property
        def routing(self) -> dict[str, Any]: ...

        @property
        def view(self) -> str | None: ...

    @property
    def script_root(self) -> str:
        """The path the application is mounted at (SCRIPT_NAME when the project got it)."""
        root = self._script_root
        if root is None:
            routes = self.environ.get("robaccia.routes")
            root = routes[1] if routes is not None else ""
        return root

    @script_root.setter
    def script_root(self, value: str) -> None:
        self._script_root = value

    def url_for(self, name: str, **values: Any) -> str:
        """Return the path of the route named ``name`` (with SCRIPT_NAME).

        :raises RouteBuildError: no such route, or the values do not fit it.
        """
        routes = self.environ.get("robaccia.routes")
        if routes is None:
            from robaccia.uritemplate import RouteBuildError

            raise RouteBuildError(f"No route is named {name!r} (the request was not routed)")
        dispatcher, root = routes
        return site_path(root + dispatcher.url_for(name, **values))

    def route_url(self, **values: Any) -> str:
        """Return the path of the route that matched, with some values changed.

        ``route_url(id=None, noun=None)`` is this collection's URL,
        ``route_url(id=7)`` a member's.
        """
        matched = self.environ.get("robaccia.route")
        if matched is not None and matched[0].template is not None:
            route, script = matched
            names = route.template._names
            current = {k: v for k, v in self.routing.items() if k in names}
            for key, value in values.items():
                if key in names:
                    current[key] = value
            return site_path(script + route.build(current))
        return site_path(self._fallback_url(values))

    def _fallback_url(self, values: dict[str, Any]) -> str:
        """A collection URL for a request no template routed (a bare collection)."""
        view = self.view
        base = (self.script_root + f"/{view}/") if view else self.script_root + "/"
        if values.get("id") is not None:
            base += quote(str(values["id"]), safe="-._~")
        if values.get("noun"):
            base += ";" + str(values["noun"])
        return base

    @property
    def collection_url(self) -> str:
        """The URL of the collection this request addressed."""
        shape = self._shape()
        return shape[0] if shape else self.route_url(id=None, noun=None)

    def member_url(self, id: Any, noun: str | None = None) -> str:
        """The URL of a member of this collection (or of one of its nouns)."""
        if noun is None:
            # PERF: a list page asks for one per row. The route was expanded
            # once around a marker; a plain key that its range takes goes in
            # the marker's place (what expanding with it would give).
            shape = self._shape()
            if shape:
                text = id if type(id) is str else str(id)
                if _PLAIN_KEY(text) and shape[3](text) is not None:
                    return shape[1] + text + shape[2]
        return self.route_url(id=str(id), noun=noun)

    def _shape(self) -> tuple[str, str, str, Any] | None:
        """(collection URL, before the id, after the id, id check) of this request's
        collection, or None when its route cannot be built that way.

        Kept on the route, per SCRIPT_NAME and the route's other values (the
        view), a bounded number: they are the same for every request to a
        collection.
        """
        known = self.__dict__
        if "_url_shape" in known:
            kept: tuple[str, str, str, Any] | None = known["_url_shape"]
            return kept
        shape: tuple[str, str, str, Any] | None = None
        matched = self.environ.get("robaccia.route")
        if matched is not None and matched[0].template is not None:
            route, script = matched
            # NOTE: a name routing lacks is None to it, as to expansion
            key = (script, *map(self.routing.get, route.others))
            shapes = route.shapes
            shape = shapes.get(key)
            if shape is None:
                shape = self._new_shape(route)
                if len(shapes) >= 256:
                    shapes.clear()
                shapes[key] = shape
        self.__dict__["_url_shape"] = shape
        return shape

    def _new_shape(self, route: Any) -> tuple[str, str, str, Any] | None:
        check = route.template.checker("id")
        if check is None or "noun" in route.template._names and route.template.checker("noun") is None:
            return None
        marker = next((m for m in ("Rx0bacc1a", "9081726354") if check(m) is not None), None)
        if marker is None:
            return None
        collection = self.route_url(id=None, noun=None)
        before, found, after = self.route_url(id=marker, noun=None).rpartition(marker)
        return (collection, before, after, check) if found and marker not in before else None

    def static_url(self, path: str) -> str:
        """The URL of a file below the project's static/ folder."""
        if not _PLAIN_PATH(path):
            path = quote(path, safe="/-._~")
        return site_path(self.script_root + "/static/" + path)

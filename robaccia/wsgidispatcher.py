"""Dispatch WSGI requests by URI template and request method.

A :class:`Dispatcher` holds an ordered list of rules. Each rule is a URI
template (or a regular expression) plus the application(s) that handle it;
the first rule whose path matches and whose methods include the request's
method wins::

    >>> from robaccia.wsgidispatcher import Dispatcher
    >>> def hello(environ, start_response):
    ...     args = environ['wsgiorg.routing_args'][1]
    ...     start_response('200 OK', [('Content-Type', 'text/plain')])
    ...     return [('Hello %s' % args['name']).encode()]
    >>> d = Dispatcher()
    >>> d.add('/hello/{name:alpha}', GET=hello)
    >>> from robaccia.testing import call
    >>> call(d, 'GET', '/hello/world')
    ('200 OK', [('Content-Type', 'text/plain')], b'Hello world')
    >>> call(d, 'POST', '/hello/world')[0]
    '405 Method Not Allowed'

Template grammar
----------------
``{name}``
    a named capture of one path segment (``[^/]+``).
``{name:range}``
    a named capture using a range: ``word``, ``alpha``, ``digits``, ``alnum``,
    ``segment``, ``unreserved``, ``any``, or one given to the dispatcher as
    ``Dispatcher(ranges={'name': regex})``.
``[...]``
    an optional part; optional parts nest.
a trailing ``|``
    the template need only match the start of the path.

Any other text is literal. A template with none of these is an exact string
match. Patterns are compiled with :data:`re.ASCII`, so ``\\d`` and ``\\w``
never match non-ASCII digits or letters.

Each template is analysed when it is added so that matching stays linear in
the path's length (see :mod:`robaccia.uritemplate`).

Named routes and URLs
---------------------
``add(template, app, name='hello')`` names a route; :meth:`Dispatcher.url_for`
builds its path back from values, and a handler builds it with the request's
``SCRIPT_NAME`` in front (:meth:`robaccia.request.Request.url_for`)::

    >>> d.add('/greetings/[{id:digits}]', GET=hello, name='greetings')
    >>> d.url_for('greetings', id=7), d.url_for('greetings')
    ('/greetings/7', '/greetings/')

The route that matched a request is kept in ``environ['robaccia.route']``
(with the ``SCRIPT_NAME`` it was matched under), the outermost dispatcher in
``environ['robaccia.routes']``: what URL building needs, and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from robaccia.errors import MethodNotAllowed, NotFound, RobacciaError
from robaccia.uritemplate import (
    DEFAULT_RANGES,
    InvalidTemplateError,
    RouteBuildError,
    Template,
    template2regex,
)
from robaccia.util import drop_body

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "DEFAULT_RANGES",
    "DEFAULT_ROUTE",
    "Dispatcher",
    "DuplicateArgumentError",
    "InvalidArgumentError",
    "InvalidTemplateError",
    "Route",
    "RouteBuildError",
    "drop_body",
    "template2regex",
]

#: The Gloves route: every collection, its members and their nouns. Added
#: without a name, it is named ``collection``.
DEFAULT_ROUTE = "/{view:alnum}/[{id:unreserved}][;{noun:unreserved}]"


class DuplicateArgumentError(RobacciaError, TypeError):
    """An application was given both positionally and by method name."""


class InvalidArgumentError(RobacciaError, TypeError):
    """More than one positional application was given."""


# --- dispatching ------------------------------------------------------------


class Route:
    """One rule: how a path is matched, the apps by method, and how it is built back.

    :param name: the name :meth:`Dispatcher.url_for` knows it by, if any.
    :param template: the compiled URI template (None for a regex rule).
    """

    __slots__ = ("name", "template", "apps", "any", "text", "regex", "whole", "positional", "shapes",
                 "others")

    def __init__(self, name: str | None, template: Template | None, apps: Mapping[str, WSGIApplication],
                 *, text: str | None = None, regex: re.Pattern[str] | None = None,
                 positional: bool = False) -> None:
        self.name = name
        self.template = template
        self.apps = apps
        #: The app for any method (``_ANY_``), if there is one.
        self.any = apps.get("_ANY_")
        self.text = text  # a plain string, matched by equality
        self.regex = regex if regex is not None else (template.regex if template else None)
        #: The regex matches whole paths (a template that is not open-ended).
        self.whole = template is not None and not template.open_ended
        self.positional = positional
        #: URL shapes requests have worked out for this route (see Request.member_url).
        self.shapes: dict[Any, Any] = {}
        #: The template's names but id and noun, sorted: the values a URL shape is kept by.
        self.others = tuple(sorted(n for n in template.variables if n not in ("id", "noun"))) \
            if template is not None else ()

    def build(self, values: Mapping[str, Any]) -> str:
        """Return the path of this route for these values."""
        if self.text is not None:
            if values:
                raise RouteBuildError(f"{self.text!r} takes no values")
            return self.text
        if self.template is None:
            raise RouteBuildError(f"the route {self.name!r} is a regular expression: it cannot be built")
        return self.template.expand(**values)

    def __repr__(self) -> str:
        shown = self.text if self.text is not None else (
            self.template.template if self.template else self.regex.pattern if self.regex else "")
        return f"Route({shown!r}, name={self.name!r})"


def _head_app(app: WSGIApplication) -> WSGIApplication:
    """Serve HEAD with a GET application, dropping the body."""

    def head(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return drop_body(app(environ, start_response))

    return head


class Dispatcher:
    """A WSGI application that routes by URI template and method.

    :param handle404: the application called when no rule matches (default:
        the project's, which serves its front page; else a 404).
    :param ranges: extra named ranges for this dispatcher's templates.
    """

    def __init__(
        self,
        handle404: WSGIApplication | None = None,
        ranges: Mapping[str, str] | None = None,
    ) -> None:
        self.handle404 = handle404
        self.ranges: dict[str, str] = dict(ranges or {})
        self._routes: list[Route] = []
        self._names: dict[str, Route] = {}

    @property
    def routes(self) -> list[Route]:
        """The rules, in the order they are tried."""
        return list(self._routes)

    def add(self, template: str, *args: WSGIApplication, name: str | None = None,
            **methods: WSGIApplication) -> None:
        """Add a rule for a URI template.

        ``add(t, app)`` and ``add(t, _ANY_=app)`` handle every method;
        ``add(t, GET=a, POST=b)`` handles only the named methods. ``name``
        lets :meth:`url_for` build the route's path.
        """
        apps = self._apps(args, methods)
        if "{" in template or "[" in template or template.endswith("|"):
            route = Route(name, Template(template, self.ranges), apps)
            if name is None and template == DEFAULT_ROUTE and "collection" not in self._names:
                route.name = "collection"
        else:
            route = Route(name, None, apps, text=template)
        self._append(route)

    def addregex(self, regex: str, *args: WSGIApplication, name: str | None = None,
                 **methods: WSGIApplication) -> None:
        """Add a rule for a regular expression, matched at the start of the path.

        Unnamed groups become positional routing arguments, named groups
        named ones. Such a route can be named but not built.
        """
        apps = self._apps(args, methods)
        self._append(Route(name, None, apps, regex=re.compile(regex), positional=True))

    def _append(self, route: Route) -> None:
        if route.name is not None:
            if route.name in self._names:
                raise InvalidArgumentError(f"A route named {route.name!r} exists already")
            self._names[route.name] = route
        self._routes.append(route)

    @staticmethod
    def _apps(
        args: tuple[WSGIApplication, ...], methods: dict[str, WSGIApplication]
    ) -> dict[str, WSGIApplication]:
        if len(args) > 1:
            raise InvalidArgumentError("Give at most one application positionally")
        if args and methods:
            raise DuplicateArgumentError(
                "Give the application either positionally or by method, not both"
            )
        apps = {"_ANY_": args[0]} if args else dict(methods)
        if not apps:
            raise InvalidArgumentError("No application given")
        if "GET" in apps and "HEAD" not in apps and "_ANY_" not in apps:
            apps["HEAD"] = _head_app(apps["GET"])
        return apps

    def url_for(self, name: str, **values: Any) -> str:
        """Return the path (below this dispatcher) of the route named ``name``.

        :raises RouteBuildError: no route has that name, or the values do not fit it.
        """
        route = self._names.get(name)
        if route is None:
            raise RouteBuildError(f"No route is named {name!r}")
        return route.build(values)

    def match(self, path: str, method: str = "GET") -> tuple[Route, WSGIApplication, dict[str, Any]] | None:
        """Return the route, app and captures a request would get, or None."""
        for route in self._routes:
            if route.text is not None:
                if path != route.text:
                    continue
                named: dict[str, Any] = {}
            else:
                m = route.regex.match(path)  # type: ignore[union-attr]
                if m is None:
                    continue
                named = m.groupdict()
            app = route.apps.get(method) or route.apps.get("_ANY_")
            if app is not None:
                return route, app, named
        return None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        allowed: list[str] = []
        for route in self._routes:
            # PERF: one loop, no helper calls: this runs for every request.
            if route.text is not None:
                if path != route.text:
                    continue
                m = None
            else:
                m = route.regex.match(path)  # type: ignore[union-attr]
                if m is None:
                    continue
            app = route.apps.get(method, route.any)
            if app is None:
                allowed.extend(name for name in route.apps if name not in allowed)
                continue
            script = environ.get("SCRIPT_NAME", "")
            if "robaccia.routes" not in environ:
                environ["robaccia.routes"] = (self, script)
            environ["robaccia.route"] = (route, script)
            positional: list[Any] = []
            if m is None:
                named: dict[str, Any] = {}
                end = -1  # the whole path
            else:
                if route.positional:
                    groups = set(route.regex.groupindex.values())  # type: ignore[union-attr]
                    positional = [g for i, g in enumerate(m.groups(), 1) if i not in groups]
                named = m.groupdict()
                end = -1 if route.whole else m.end()
            old = environ.get("wsgiorg.routing_args")
            if old is None:
                environ["wsgiorg.routing_args"] = (positional, named)
            else:
                merged = dict(old[1])
                merged.update(named)
                environ["wsgiorg.routing_args"] = (list(old[0]) + positional, merged)
            if end < 0:
                if path:
                    environ["SCRIPT_NAME"] = script + path
                    environ["PATH_INFO"] = ""
            elif end:
                environ["SCRIPT_NAME"] = script + path[:end]
                environ["PATH_INFO"] = path[end:]
            return app(environ, start_response)
        if allowed:
            return MethodNotAllowed(allowed)(environ, start_response)
        handle404 = self.handle404 or _unrouted(environ) or _NOT_FOUND
        return handle404(environ, start_response)


def _unrouted(environ: WSGIEnvironment) -> WSGIApplication | None:
    """The project's answer for paths no route matched (the front page, /view to /view/), if any."""
    project = getattr(environ.get("robaccia.request"), "project", None)
    return getattr(project, "unrouted", None)


_NOT_FOUND = NotFound()

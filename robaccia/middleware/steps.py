"""Steps, and composing a project's middlewares around its routes.

A :class:`Step` is a middleware whose work comes before the app: it sets
attributes on the :class:`~robaccia.request.Request` and checks the request.
Alone it is an ordinary WSGI middleware; :func:`compose` makes steps next to
each other one :class:`Steps` layer::

    >>> from robaccia.errors import Forbidden
    >>> from robaccia.testing import call
    >>> class Stamp(Step):
    ...     checks_every = True
    ...     def __init__(self, app):
    ...         self.app = app
    ...     def defaults(self):
    ...         return {'stamp': 'stamped'}
    ...     def check(self, request):
    ...         if request.environ.get('HTTP_X_REFUSE'):
    ...             raise Forbidden('Refused.')
    >>> def app(environ, start_response):
    ...     start_response('200 OK', [('Content-Type', 'text/plain')])
    ...     return [Request.of(environ).stamp.encode()]
    >>> call(Stamp(app))[2]
    b'stamped'
    >>> layer = compose(app, [Stamp, Stamp], project=None)
    >>> type(layer).__name__, len(layer.steps), call(layer, headers={'X-Refuse': '1'})[0]
    ('Steps', 2, '403 Forbidden')
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from robaccia.errors import HTTPException
from robaccia.middleware.errorpages import ErrorPages
from robaccia.request import Request

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from robaccia.project import Project

__all__ = ["DEFAULT_MIDDLEWARE", "Step", "Steps", "compose"]

#: The middlewares a project gets when its settings name none, outermost first.
DEFAULT_MIDDLEWARE = (
    "robaccia.middleware.ErrorPages",
    "robaccia.middleware.AllowedHosts",
    "robaccia.middleware.SecurityHeaders",
    "robaccia.middleware.FlashMessages",
    "robaccia.middleware.CSRFProtection",
)


class Step:
    """A middleware whose work is a step on the request before the app runs.

    A step says what it sets on every request (:meth:`defaults`: attributes of
    the :class:`~robaccia.request.Request`) and what it checks on unsafe
    requests (:meth:`check`). Used alone it is an ordinary WSGI middleware;
    composed in a project, steps next to each other are one layer
    (:class:`Steps`) that sets all their attributes at once and runs their
    checks in order: the same work, with fewer calls on every request.
    """

    app: WSGIApplication
    #: True when :meth:`check` has work to do on unsafe methods.
    checks_unsafe = False
    #: True when :meth:`check` has work to do on every request.
    checks_every = False

    def defaults(self) -> dict[str, Any]:
        """The request attributes this step sets on every request."""
        return {}

    def check(self, request: Request) -> None:
        """Check a request (unsafe ones, or all: see the flags); raise an HTTPException to refuse it."""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return Steps(self.app, [self])(environ, start_response)


class Steps:
    """Steps as one WSGI layer: their attributes at once, their checks in order, then the app.

    :param guard: the :class:`ErrorPages` that wrapped these steps, if it did:
        then this layer answers errors for it (the same pages, one call fewer).
    """

    def __init__(self, app: WSGIApplication, steps: Sequence[Step], guard: ErrorPages | None = None) -> None:
        self.app = app
        self.steps = tuple(steps)
        self.guard = guard
        self.defaults: dict[str, Any] = {}
        for step in self.steps:
            self.defaults.update(step.defaults())
        self.every = tuple(step.check for step in self.steps if step.checks_every)
        self.checks = tuple(step.check for step in self.steps if step.checks_unsafe)

    def enter(self, request: Request) -> None:
        """Set the steps' attributes on the request and run their checks."""
        request.__dict__.update(self.defaults)
        for check in self.every:
            check(request)
        if self.checks and request.environ.get("REQUEST_METHOD") in _CHECKED_METHODS:
            for check in self.checks:
                check(request)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = environ.get("robaccia.request") or Request(environ)
        if not request.hooked:
            start_response = request.hook(start_response)
        if self.guard is None:
            try:
                self.enter(request)
            except HTTPException as refused:
                return refused(environ, start_response)
            return self.app(environ, start_response)
        try:
            self.enter(request)
            return self.app(environ, start_response)
        except HTTPException as exc:
            return exc(environ, start_response)
        except Exception:
            return self.guard.error(environ, start_response, sys.exc_info())


_CHECKED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _load(spec: Any) -> Any:
    if not isinstance(spec, str):
        return spec
    module, _, name = spec.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        from robaccia.errors import RobacciaError

        raise RobacciaError(f"MIDDLEWARE names {spec!r}, which cannot be imported: {exc}") from exc


def compose(app: WSGIApplication, middleware: Sequence[Any], project: Project) -> WSGIApplication:
    """Wrap ``app`` in the middlewares (dotted names or classes), the first outermost.

    A middleware with ``from_project(app, project)`` is built with it; any
    other is called as ``middleware(app)``. Steps next to each other become
    one :class:`Steps` layer (PERF: fewer calls on every request).
    """
    run: list[Step] = []
    for spec in reversed(list(middleware)):
        factory = _load(spec)
        make = getattr(factory, "from_project", None)
        if isinstance(factory, type) and issubclass(factory, Step):
            step = make(None, project) if make is not None else factory(None)  # type: ignore[call-arg]
            run.insert(0, step)
            continue
        if run:
            app, run = Steps(app, run), []
        app = make(app, project) if make is not None else factory(app)
        if isinstance(app, ErrorPages) and isinstance(app.app, Steps) and app.app.guard is None:
            app.app.guard = app  # error pages around steps: one layer does both
            app = app.app
    if run:
        app = Steps(app, run)
    return app

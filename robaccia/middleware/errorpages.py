"""Error pages: what the app raised becomes its HTTP error, anything else a logged 500.

    >>> from robaccia.errors import NotFound
    >>> from robaccia.testing import call
    >>> def missing(environ, start_response):
    ...     raise NotFound()
    >>> call(ErrorPages(missing))[0]
    '404 Not Found'

Any other exception is logged (logger ``robaccia.middleware``) and answered
with the plain 500 page, or with the debug page when ``debug`` is on (only
``run`` turns it on); the page never shows internals::

    >>> import logging
    >>> def broken(environ, start_response):
    ...     raise RuntimeError('kaboom')
    >>> logging.disable(logging.ERROR)
    >>> status, headers, body = call(ErrorPages(broken), 'GET', '/boom/')
    >>> logging.disable(logging.NOTSET)
    >>> status, b'kaboom' in body
    ('500 Internal Server Error', False)
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from robaccia.errors import HTTPException, InternalServerError

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from robaccia.project import Project

__all__ = ["ErrorPages"]

# NOTE: the name the errors were always logged under, before middleware was a
# package: projects' logging settings and log filters name it.
logger = logging.getLogger("robaccia.middleware")


class ErrorPages:
    """Answer what the app raised: its HTTP error, or a 500 page for anything else.

    :param debug: show the debug page (the exception, the user's code, the
        traceback) instead of the plain 500 page. Only ``run`` turns it on.
    """

    def __init__(self, app: WSGIApplication, *, debug: bool = False) -> None:
        self.app = app
        self.debug = debug

    @classmethod
    def from_project(cls, app: WSGIApplication, project: Project) -> ErrorPages:
        return cls(app, debug=project.debug)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            return self.app(environ, start_response)
        except HTTPException as exc:
            return exc(environ, start_response)
        except Exception:
            return self.error(environ, start_response, sys.exc_info())

    def error(self, environ: WSGIEnvironment, start_response: StartResponse, exc_info: Any) -> Iterable[bytes]:
        """Log an unhandled exception and answer 500."""
        from robaccia.debug import describe, render_page
        from robaccia.util import loggable

        summary = describe(exc_info[1])
        # NOTE: an exception's message can carry request data: the traceback is
        # escaped like any request value, and indented, so no line of it can pass
        # for a log line of its own.
        trace = "".join(traceback.format_exception(*exc_info)).rstrip("\n")
        trace = "\n".join("    " + loggable(line, limit=10_000) for line in trace.split("\n"))
        logger.error("Unhandled error on %s %s%s\n%s", loggable(environ.get("REQUEST_METHOD", "")),
                     loggable(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")),
                     f": {loggable(summary)}" if summary else "", trace)
        if not self.debug:
            return InternalServerError()(
                environ, lambda status, headers, _=None: start_response(status, headers, exc_info)
            )
        page = render_page(environ, exc_info)
        start_response("500 Internal Server Error", [("Content-Type", "text/html; charset=utf-8"),
                                                     ("Content-Length", str(len(page)))], exc_info)
        return [page]

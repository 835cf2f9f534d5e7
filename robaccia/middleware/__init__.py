"""The project's middlewares: small WSGI middlewares, one job each.

A project lists them in ``settings.MIDDLEWARE``, outermost first; the project
loader composes them around the routes (``run``, ``serve``, ``runtests`` and
the test client all load a project the same way, so a ``dispatcher.py`` never
has to). Without the setting, :data:`DEFAULT_MIDDLEWARE` applies:

=============================  ===================================================
:class:`ErrorPages`            an unhandled exception becomes a 500 page (a debug
                               page under ``run``), logged; never internals
:class:`AllowedHosts`          400 for a Host the site is not (``ALLOWED_HOSTS``)
:class:`SecurityHeaders`       X-Frame-Options, X-Content-Type-Options,
                               Referrer-Policy and a Content-Security-Policy on
                               every response, error pages included; with
                               ``HTTPS`` on, Strict-Transport-Security and a
                               redirect from ``http://``
:class:`FlashMessages`         ``Request.flash()`` messages, kept in a signed cookie
:class:`CSRFProtection`        refuses unsafe requests from other sites and POSTs
                               without this browser's form token
=============================  ===================================================

Each takes the app it wraps and its options (``CSRFProtection(app, secret)``),
and ``from_project(app, project)`` reads them from the project::

    >>> from robaccia.testing import call
    >>> def app(environ, start_response):
    ...     start_response('200 OK', [('Content-Type', 'text/plain')])
    ...     return [b'changed']
    >>> guarded = CSRFProtection(app, 's' * 32)
    >>> call(guarded, 'POST', '/things/', {'name': 'x'}, headers={'Cookie': 'a=b'})[0]
    '403 Forbidden'
    >>> call(guarded, 'POST', '/things/', json={'name': 'x'})[2]
    b'changed'

They cooperate through the :class:`~robaccia.request.Request`: the CSRF
protection mints the form token a page asks for, the flash store reads and
writes its cookie, and the headers they add are sent with whatever response
the request gets.

One module per job: :mod:`~robaccia.middleware.steps` (:class:`Step`,
:class:`Steps`, :func:`compose`, :data:`DEFAULT_MIDDLEWARE`),
:mod:`~robaccia.middleware.errorpages`, :mod:`~robaccia.middleware.hosts`,
:mod:`~robaccia.middleware.headers` (security headers, HTTPS, cookie
attributes), :mod:`~robaccia.middleware.flash` and
:mod:`~robaccia.middleware.csrf`. Their names are re-exported here, and
``settings.MIDDLEWARE`` names them from here (``"robaccia.middleware.ErrorPages"``).
"""

from __future__ import annotations

from robaccia.middleware.csrf import CSRFProtection, csrf_token
from robaccia.middleware.errorpages import ErrorPages
from robaccia.middleware.errorpages import logger as logger
from robaccia.middleware.flash import FlashMessages
from robaccia.middleware.headers import SECURITY_HEADERS, SecurityHeaders
from robaccia.middleware.headers import cookie_flags as cookie_flags
from robaccia.middleware.hosts import LOOPBACK_HOSTS as LOOPBACK_HOSTS
from robaccia.middleware.hosts import AllowedHosts
from robaccia.middleware.hosts import request_host as request_host
from robaccia.middleware.steps import _CHECKED_METHODS as _CHECKED_METHODS  # robaccia.project imports it
from robaccia.middleware.steps import DEFAULT_MIDDLEWARE, Step, Steps, compose

__all__ = [
    "AllowedHosts",
    "CSRFProtection",
    "Step",
    "Steps",
    "DEFAULT_MIDDLEWARE",
    "ErrorPages",
    "FlashMessages",
    "SECURITY_HEADERS",
    "SecurityHeaders",
    "compose",
    "csrf_token",
]

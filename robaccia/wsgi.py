"""The project as a WSGI application, for any WSGI server: ``robaccia.wsgi:application``.

It serves the project in the folder named by ``ROBACCIA_PROJECT``, else the
current folder (or the project above it)::

    cd myproject && waitress-serve robaccia.wsgi:application   # waitress comes with robaccia
    gunicorn --chdir myproject robaccia.wsgi:application       # or any other WSGI server

``robaccia-admin serve`` runs it this way::

    >>> import os, tempfile
    >>> from robaccia import scaffold
    >>> from robaccia.testing import call
    >>> os.environ['ROBACCIA_PROJECT'] = str(scaffold.create_project('shop', tempfile.mkdtemp()))
    >>> import robaccia.wsgi
    >>> call(robaccia.wsgi.application, 'GET', '/static/robaccia.css')[0]
    '200 OK'
    >>> del os.environ['ROBACCIA_PROJECT']

The routes and middlewares are
built when ``application`` is first looked up, so a broken project stops the
server at start, with the reason, instead of failing its first request.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["application"]  # noqa: F822 (made on first use, by __getattr__)


def __getattr__(name: str) -> Any:
    if name != "application":
        raise AttributeError(name)
    from robaccia.project import load_project

    project = load_project(os.environ.get("ROBACCIA_PROJECT") or ".").build()
    globals()["application"] = project
    return project

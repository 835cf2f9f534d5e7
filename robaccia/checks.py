"""Deployment checks: what would be unsafe in production, each with a stable id.

    >>> import types
    >>> settings = types.SimpleNamespace(DEBUG=True, SECRET_KEY='x', MAX_BODY_SIZE=0)
    >>> [f.id for f in check_settings(settings)]
    ['R001', 'R002', 'R006']
    >>> [f.id for f in check_settings(settings, deploy=True)]
    ['R001', 'R002', 'R006', 'R007', 'R008', 'R010']

R007 to R010 concern a deployment: ``check --deploy`` reports them.


========  ==========================================================
R001      DEBUG is on (tracebacks shown to visitors)
R002      SECRET_KEY missing, short, or a well-known placeholder
R003      a Jinja2 environment with autoescape off
R004      the development server configured to bind beyond loopback
R005      a protective middleware missing from MIDDLEWARE
R006      no request body limits (MAX_BODY_SIZE / MAX_FIELDS)
R007      ALLOWED_HOSTS names no host (``serve`` refuses to start)
R008      HTTPS off: no redirect from http://, no HSTS, cookies not Secure
R009      HSTS shorter than six months, or off
R010      no TRUSTED_PROXY: ``serve`` faces clients alone (no TLS, no
          per-client limits), or HTTPS on without the proxy that says so
========  ==========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robaccia.util import is_loopback

__all__ = ["Finding", "check_project", "check_settings"]

_WEAK = {"secret", "changeme", "change-me", "dev", "development", "test",
         "test-secret-key-not-for-production"}
_MAX_SANE_BODY = 100 * 1024 * 1024
_HALF_YEAR = 15768000


@dataclass(frozen=True)
class Finding:
    """One problem found, with a stable id and what to do about it."""

    id: str
    message: str

    def __str__(self) -> str:
        return f"{self.id} {self.message}"


def check_settings(settings: Any, deploy: bool = False) -> list[Finding]:
    """Check a settings module (or any object with the same attributes); ``deploy`` adds R007 to R010."""
    found = []
    if getattr(settings, "DEBUG", False):
        found.append(Finding("R001", "DEBUG is on: visitors would see tracebacks. "
                                     "Unset ROBACCIA_DEBUG in production."))
    key = str(getattr(settings, "SECRET_KEY", "") or "")
    if len(key) < 32 or key.lower() in _WEAK or len(set(key)) < 10:
        found.append(Finding("R002", "SECRET_KEY is missing or weak: use at least 32 random "
                                     "characters (ROBACCIA_SECRET_KEY)."))
    host = str(getattr(settings, "RUN_HOST", "127.0.0.1"))
    if not is_loopback(host):
        found.append(Finding("R004", f"RUN_HOST is {host}: the development server would be "
                                     "reachable from other machines. Use robaccia-admin serve."))
    body = getattr(settings, "MAX_BODY_SIZE", None)
    fields = getattr(settings, "MAX_FIELDS", None)
    if not isinstance(body, int) or not 0 < body <= _MAX_SANE_BODY or not isinstance(fields, int) \
            or fields <= 0:
        found.append(Finding("R006", "Request body limits are missing: set MAX_BODY_SIZE "
                                     f"(at most {_MAX_SANE_BODY} bytes) and MAX_FIELDS."))
    if deploy:
        found.extend(_deployment(settings))
    return found


def _deployment(settings: Any) -> list[Finding]:
    found = []
    if not getattr(settings, "ALLOWED_HOSTS", None):
        found.append(Finding("R007", "ALLOWED_HOSTS names no host: serve refuses to start. Set "
                                     "ROBACCIA_ALLOWED_HOSTS to the names the site is reached by."))
    https = bool(getattr(settings, "HTTPS", False))
    if not https:
        found.append(Finding("R008", "HTTPS is off: no redirect from http://, no HSTS, cookies not "
                                     "Secure. Serve over TLS and set ROBACCIA_HTTPS=1."))
    else:
        seconds = getattr(settings, "HSTS_SECONDS", 0)
        if not isinstance(seconds, int) or seconds < _HALF_YEAR:
            found.append(Finding("R009", f"HSTS_SECONDS is {seconds!r}: browsers keep to HTTPS only "
                                         f"that long. Use at least {_HALF_YEAR} (six months)."))
    if not getattr(settings, "TRUSTED_PROXY", None):
        found.append(Finding("R010", "No TRUSTED_PROXY: serve faces clients alone. It holds slow "
                                     "clients, but has no TLS and no per-client connection or rate "
                                     "limits: run it behind nginx or Caddy and set "
                                     "ROBACCIA_TRUSTED_PROXY to that proxy's address." +
                                     (" With HTTPS on and no proxy, every request is redirected "
                                      "again." if https else "")))
    return found


def check_project(root: Path, settings: Any, app: Any = None) -> list[Finding]:
    """Check a project folder: its settings and source files; given the app (``--deploy``), more."""
    found = check_settings(settings, deploy=app is not None)
    pattern = re.compile(r"autoescape\s*=\s*(False|0|None)\b")
    for path in sorted(root.rglob("*.py")):
        # NOTE: only the parts below the project count: a project that itself
        # lives under a dot-folder or a "tests" folder is still checked.
        if any(part.startswith(".") or part in ("__pycache__", "tests")
               for part in path.relative_to(root).parts):
            continue
        if pattern.search(path.read_text(errors="replace")):
            found.append(Finding("R003", f"{path.relative_to(root)} creates a Jinja2 environment "
                                         "with autoescape off: keep autoescape=True."))
    if app is not None:
        from robaccia import middleware as shipped
        from robaccia.middleware import DEFAULT_MIDDLEWARE

        middleware = [m if isinstance(m, str) else f"{m.__module__}.{m.__qualname__}"
                      for m in getattr(settings, "MIDDLEWARE", DEFAULT_MIDDLEWARE)]
        for needed, what in (("robaccia.middleware.CSRFProtection", "forms can be forged from other sites"),
                             ("robaccia.middleware.SecurityHeaders", "pages can be framed and sniffed"),
                             ("robaccia.middleware.ErrorPages", "errors reach the server's own pages")):
            # NOTE: a class listed itself is named by the submodule that defines it
            # (robaccia.middleware.csrf.CSRFProtection): either name counts.
            cls = getattr(shipped, needed.rpartition(".")[2])
            if needed not in middleware and f"{cls.__module__}.{cls.__qualname__}" not in middleware:
                found.append(Finding("R005", f"MIDDLEWARE lacks {needed}: {what}."))
    return sorted(found, key=lambda f: f.id)

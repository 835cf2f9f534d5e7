"""The production server: ``robaccia-admin serve``, on waitress, in worker processes.

Waitress reads each request whole, with its own event loop, before a worker
thread sees it: a client that sends its headers a byte at a time holds a
socket, never a thread, so slow clients cannot stall the site (slowloris).
``serve`` binds the socket once and forks ``--workers`` processes that each
run waitress on it with ``--threads`` threads, restarts a worker that dies,
and on SIGTERM or Ctrl-C lets the requests in progress finish::

    >>> from robaccia.production import Options
    >>> Options(workers=2, threads=4).connection_limit
    1000

Before it starts it checks what would make it fail later: the project loads,
it has a secret key, and ALLOWED_HOSTS names the site (unless DEBUG).
Requests are logged to the ``robaccia.request`` logger through the
project's LOGGING, with what the client sent escaped. What a reverse proxy
still does better is listed in the README ("Deploying").
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robaccia.errors import RobacciaError
from robaccia.util import loggable

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from robaccia.project import Project

__all__ = ["AccessLog", "EscapedMessages", "Options", "check_project", "serve"]

request_log = logging.getLogger("robaccia.request")


class ServeError(RobacciaError):
    """The project cannot be served as it is."""


@dataclass(frozen=True)
class Options:
    """How ``serve`` runs.

    :param workers: worker processes.
    :param threads: request threads per worker.
    :param channel_timeout: seconds an idle connection is kept.
    :param connection_limit: connections per worker (more wait in the backlog).
    :param max_body: the largest body waitress reads (the project's limit answers first).
    :param trusted_proxy: the address of the reverse proxy whose X-Forwarded-* headers count.
    """

    workers: int = 2
    threads: int = 4
    channel_timeout: int = 30
    connection_limit: int = 1000
    max_body: int = 1024 * 1024
    trusted_proxy: str | None = None


class AccessLog:
    """Log each request as one line: client, request line, status, size (escaped)."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen: list[str] = []

        def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen.append(status)
            return start_response(status, headers, exc_info)

        body = self.app(environ, respond)
        try:
            size = 0
            for chunk in body:
                size += len(chunk)
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            target = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                target += "?" + environ["QUERY_STRING"]
            request_log.info('%s "%s %s %s" %s %d', loggable(environ.get("REMOTE_ADDR", "-")),
                             loggable(environ.get("REQUEST_METHOD", "")), loggable(target),
                             loggable(environ.get("SERVER_PROTOCOL", "")),
                             seen[-1].split(" ", 1)[0] if seen else "-", size)


class EscapedMessages(logging.Filter):
    """Escape a logger's messages as the access log escapes request values.

    Waitress's own messages quote the client's path as it came ("Client
    disconnected while serving /a<LF>b"): each worker puts this on waitress's
    loggers, so no request can start a log line of its own.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = loggable(record.getMessage()), None
        return True


def check_project(project: Project) -> None:
    """Refuse, in one sentence, what would make every request (or a deployment) fail.

    :raises ServeError: no secret key, no ALLOWED_HOSTS outside debug, routes that do not load.
    """
    try:
        project.secret()
    except RobacciaError as exc:
        raise ServeError(f"{exc} (a fresh checkout has none: the file is not in version control).") \
            from None
    if not project.allowed_hosts and not project.debug:
        raise ServeError("ALLOWED_HOSTS names no host: set the names this site is reached by, e.g. "
                         "ROBACCIA_ALLOWED_HOSTS=example.com,www.example.com (settings.py reads it).")
    if project.https and not project.setting("TRUSTED_PROXY", None):
        raise ServeError("HTTPS is on but TRUSTED_PROXY is not set: serve speaks plain HTTP, so every "
                         "request would be redirected to https:// again. Set ROBACCIA_TRUSTED_PROXY to "
                         "the address of the proxy that terminates TLS.")
    try:
        project.build()
    except RobacciaError:
        raise
    except Exception as exc:
        raise ServeError(f"The project does not load: {type(exc).__name__}: {exc}") from exc


def listen(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """Bind and listen once, before the workers fork (they share the socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno == 98 else f"cannot be used ({exc.strerror})"
        raise ServeError(f"Port {port} on {host} {reason}; choose another with --port.") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def _work(project: Project, sock: socket.socket, options: Options) -> None:
    """One worker process: waitress on the shared socket until SIGTERM."""
    import waitress

    from robaccia.server import configure_logging

    configure_logging(project.root)
    for name in ("waitress", "waitress.queue"):  # NOTE: a logger's filters do not see its children's records
        logging.getLogger(name).addFilter(EscapedMessages())
    engine = project.__dict__.get("_engine")
    if engine is not None:
        engine.dispose(close=False)  # NOTE: never use the parent's pooled connections
    proxy = {}
    if options.trusted_proxy:
        proxy = {"trusted_proxy": options.trusted_proxy, "trusted_proxy_count": 1,
                 "trusted_proxy_headers": {"x-forwarded-proto", "x-forwarded-host", "x-forwarded-for"}}
    server = waitress.create_server(
        AccessLog(project), sockets=[sock], threads=options.threads, ident="robaccia",
        channel_timeout=options.channel_timeout, connection_limit=options.connection_limit,
        asyncore_use_poll=True, max_request_body_size=options.max_body + 1,  # NOTE: waitress refuses >= its limit
        clear_untrusted_proxy_headers=True, expose_tracebacks=False, **proxy,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us, with SIGTERM
    server.run()  # waitress lets the requests in progress finish on SystemExit


def serve(project: Project, host: str, port: int, options: Options) -> None:
    """Serve ``project`` until SIGTERM or Ctrl-C: ``options.workers`` processes, restarted if they die."""
    check_project(project)
    sock = listen(host, port)
    print(f"Serving {project.name} with waitress on http://{'[' + host + ']' if ':' in host else host}:"
          f"{port}/ ({options.workers} workers x {options.threads} threads). Press Ctrl-C to stop.",
          flush=True)
    workers: dict[int, float] = {}
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            code = 0
            try:
                _work(project, sock, options)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
            except BaseException:
                logging.getLogger("robaccia.production").exception("The worker stopped")
                code = 1
            finally:
                os._exit(code)
        workers[pid] = time.monotonic()

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(options.workers):
        spawn()
    quick_deaths = 0
    deadline = None
    while workers:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if stopping:
                deadline = deadline or time.monotonic() + 10
                if time.monotonic() > deadline:
                    for child in workers:  # still busy after 10 s: no longer
                        os.kill(child, signal.SIGKILL)
            time.sleep(0.1)
            continue
        started = workers.pop(pid, None)
        if stopping or started is None:
            continue
        quick_deaths = quick_deaths + 1 if time.monotonic() - started < 2 else 0
        if quick_deaths >= 5:
            stop(signal.SIGTERM, None)
            print("Workers keep stopping as they start: see logs/robaccia.log.", file=sys.stderr, flush=True)
            continue
        spawn()
    sock.close()
    print("Stopped.", flush=True)


def main(root: Path, host: str, port: int, workers: int | None, threads: int) -> None:
    """What ``robaccia-admin serve`` runs: the project at ``root``, debug off."""
    from robaccia.project import load_project

    os.environ["ROBACCIA_DEBUG"] = "0"
    project = load_project(root)
    options = Options(workers=workers or (os.cpu_count() or 1) + 1, threads=threads,
                      max_body=project.limits.max_body,
                      trusted_proxy=project.setting("TRUSTED_PROXY", None) or None)
    serve(project, host, port, options)

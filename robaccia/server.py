"""The development server: threaded, loopback by default, reloading on changes.

``robaccia-admin run`` starts :func:`run`. The parent process watches the
project's Python files, templates and settings and restarts a child process
that serves the app whenever one changes; Ctrl-C stops both. A project that
fails to load in the child (settings.py, dbconfig.py, dispatcher.py or a model
raises) is served as a debug page saying which file and line, until the next
save restarts it. Each request is logged to the console and to ``logs/``
(through the project's LOGGING setting). ``python -m robaccia.server ROOT
HOST PORT`` is the child.

    >>> from robaccia.server import is_loopback
    >>> is_loopback('127.0.0.1'), is_loopback('0.0.0.0')
    (True, False)
"""

from __future__ import annotations

import logging
import logging.config
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from robaccia.errors import RobacciaError
from robaccia.util import is_loopback, loggable

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ServerError", "check_port", "is_loopback", "load_app", "run"]

request_log = logging.getLogger("robaccia.request")


class ServerError(RobacciaError):
    """The server cannot start."""


class LoadError(ServerError):
    """The project could not be loaded (under ``run``: the debug page of every request)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def check_port(host: str, port: int) -> None:
    """Fail with one clear sentence if ``host:port`` cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "is already in use" if exc.errno == 98 else f"cannot be used ({exc.strerror})"
            raise ServerError(f"Port {port} on {host} {reason}; choose another with --port.") from None


def configure_logging(root: Path) -> None:
    """Apply the project's LOGGING setting (the library itself configures none)."""
    (root / "logs").mkdir(exist_ok=True)
    import settings  # the project's, on sys.path

    config = getattr(settings, "LOGGING", None)
    if config:
        logging.config.dictConfig(config)
    else:
        logging.basicConfig(level=logging.INFO)


def load_app(root: Path) -> WSGIApplication:
    """Load the project (routes, middlewares) and return it as a WSGI app."""
    from robaccia.project import load_project

    return load_project(root).build()


#: Seconds a stopping server waits for the requests it is still answering.
DRAIN_SECONDS = 5.0


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # NOTE: socketserver's default backlog of 5 resets bursts of connections.
    request_queue_size = 128

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._busy = 0
        self._idle = threading.Condition()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._idle:
            self._busy += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        """Wait (a bounded time) for the requests in progress, and their log lines."""
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout)


class _Handler(WSGIRequestHandler):
    # NOTE: a client that stops sending holds its thread for at most this long.
    timeout = 30

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        # NOTE: wsgiref gives a request that sent no Content-Type "text/plain"; waitress (serve)
        # leaves it out, as PEP 3333 allows. A bodiless DELETE must not look like a text body.
        if self.headers.get("Content-Type") is None:
            environ.pop("CONTENT_TYPE", None)
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        # NOTE: the request line is the client's: no control character reaches the log raw
        request_log.info("%s %s", self.client_address[0], loggable(format % args))


def serve_forever(root: Path, host: str, port: int, broken_page: bool = False) -> None:
    """Serve the project in this process until interrupted.

    ``broken_page``: a project that fails to load (settings.py, dbconfig.py,
    dispatcher.py, a model) is served as a debug page that says why, instead
    of not at all; the reloader starts a new process when a file is saved.
    """
    # NOTE: resolved before the chdir: a relative root (demo's) names another folder after it.
    root = root.resolve()
    os.chdir(root)
    try:
        configure_logging(root)
        app = load_app(root)
    except Exception:
        if not broken_page:
            raise
        app = BrokenProject(root, sys.exc_info())
    server = make_server(host, port, app, server_class=_Server, handler_class=_Handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        # NOTE: answered requests may still be writing their log line; "Stopped."
        # comes after them, not in the middle.
        server.drain()
        server.server_close()


class BrokenProject:
    """The app of a project that could not be loaded: every page is the debug page saying why.

    Only the development server's child serves it (debug is always on under
    ``run``); the stylesheet comes from the project's static/ folder.
    """

    def __init__(self, root: Path, exc_info: Any) -> None:
        from robaccia.debug import hint_for

        self.root = root.resolve()
        error = exc_info[1]
        where = self._where(error)
        message = f"{type(error).__name__}: {error}"
        fix = f"Fix {where.split(',')[0]} and save" if where else "Fix it and save"
        hint = " ".join(filter(None, (
            hint_for(error, self.root),
            f"{fix}: the development server loads the project again when a file changes.")))
        wrapped = LoadError(f"The project could not be loaded: {where + ': ' if where else ''}{message}", hint)
        wrapped.__cause__ = error
        self.exc_info = (LoadError, wrapped, None)
        # NOTE: the terminal says it too, in one place, with the whole traceback.
        logging.getLogger("robaccia.server").error("%s", wrapped, exc_info=exc_info)

    def _where(self, error: BaseException) -> str:
        """The project file (and line) the error comes from: 'settings.py, line 3'."""
        filename, lineno = getattr(error, "filename", None), getattr(error, "lineno", None)
        if isinstance(error, SyntaxError) and filename and lineno:
            candidates = [(str(filename), int(lineno))]
        else:
            candidates = []
            tb = error.__traceback__
            while tb is not None:
                candidates.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
                tb = tb.tb_next
        from robaccia.debug import _is_library

        for name, line in reversed(candidates):
            try:
                path = Path(name).resolve()
            except OSError:
                continue
            if path.is_relative_to(self.root) and path.suffix == ".py" and not _is_library(name):
                return f"{path.relative_to(self.root).as_posix()}, line {line}"
        return ""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        from robaccia.debug import render_page

        if environ.get("PATH_INFO") == "/static/robaccia.css":
            css = self.root / "static" / "robaccia.css"
            if css.is_file():
                body = css.read_bytes()
                start_response("200 OK", [("Content-Type", "text/css; charset=utf-8"),
                                          ("Content-Length", str(len(body)))])
                return [body]
        page = render_page(environ, self.exc_info, root=self.root,
                           stylesheet=environ.get("SCRIPT_NAME", "") + "/static/robaccia.css")
        start_response("500 Internal Server Error", [("Content-Type", "text/html; charset=utf-8"),
                                                     ("Content-Length", str(len(page))),
                                                     ("Cache-Control", "no-store")])
        return [page]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _watched(root: Path) -> Iterator[Path]:
    for pattern in ("*.py", "views/*.py", "models/*.py", "templates/**/*", "static/**/*"):
        yield from root.glob(pattern)


def _snapshot(root: Path) -> dict[Path, float]:
    state = {}
    for path in _watched(root):
        try:
            state[path] = path.stat().st_mtime
        except OSError:
            continue
    return state


def run(root: Path, host: str = "127.0.0.1", port: int = 8080, reload: bool = True) -> None:
    """Run the development server (debug on), reloading on changes."""
    root = root.resolve()
    check_port(host, port)
    env = dict(os.environ, ROBACCIA_DEBUG="1", PYTHONUNBUFFERED="1")
    mode = "debug, reloading on changes" if reload else "debug"
    print(f"Serving {root.name} on http://{host}:{port}/ ({mode}). Press Ctrl-C to stop.", flush=True)
    if not is_loopback(host):
        print(f"Warning: {host} is reachable from other machines, and debug pages show "
              "tracebacks. Use robaccia-admin serve for anything public.", flush=True)
    command = [sys.executable, "-m", "robaccia.server", str(root), host, str(port)]
    if not reload:
        os.environ.update(env)
        serve_forever(root, host, port)
        print("Stopped.")
        return
    # NOTE: SIGTERM stops the child too, as Ctrl-C does; otherwise it outlives us.
    signal.signal(signal.SIGTERM, _interrupt)
    child = subprocess.Popen(command, env=env)
    state = _snapshot(root)
    try:
        while True:
            time.sleep(0.5)
            now = _snapshot(root)
            if now != state:
                changed = sorted(str(p.relative_to(root)) for p in set(now) ^ set(state)
                                 | {p for p in now if state.get(p) != now[p]})
                print(f"Changed: {', '.join(changed[:3])}; restarting.", flush=True)
                state = now
                _stop(child)
                child = subprocess.Popen(command, env=env)
    except KeyboardInterrupt:
        _stop(child)
        print("Stopped.", flush=True)


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


if __name__ == "__main__":
    serve_forever(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), broken_page=True)

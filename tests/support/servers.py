"""The one server launcher of the tests: ``robaccia-admin run`` or ``serve``, for real."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import Client
from .projects import project_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[Any], timeout: float = 15, group: bool = False) -> None:
    """Stop a server process: terminate, then kill if it does not exit in time.

    ``group``: the process leads its own session; afterwards whatever is left
    of its group (a reloader's child, say) is killed too.
    """
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


@dataclass
class Server:
    """A project being served: its address, its process and the file its output goes to."""

    root: Path
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def client(self, **options: Any) -> Client:
        """A new browser of this server (see :class:`support.client.Client`)."""
        return Client(self.base, **options)


def _wait_until_serving(process: subprocess.Popen[bytes], port: int, log: Path, name: str,
                        timeout: float = 30) -> None:
    """Wait until *this* server answers its front page (not another one on a reused port)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                if response.status == 200 and name.encode() in response.read():
                    return
            finally:
                conn.close()
        time.sleep(0.1)
    raise AssertionError(f"server did not start in {timeout}s:\n{log.read_text()[-3000:]}")


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def served(root: Path, command: str = "run", *, database_url: str | None = None, workers: int = 2,
           reload: bool = False, extra_args: tuple[str, ...] = (), log: Path | None = None,
           signals: bool = False, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Serve a project; yield the :class:`Server` once it answers its front page.

    ``command`` is ``run`` (the development server, ``--no-reload`` unless
    ``reload``) or ``serve`` (gunicorn, ``--workers``). The output goes to
    ``log`` (default: logs/server-<port>.log in the project): a pipe nobody
    reads fills up after ~64 KiB of access log and then blocks every worker.
    ``signals``: the test will signal the server itself, so it runs in its own
    session with Ctrl-C at its default (even where this test runs with SIGINT
    ignored), and at the end its whole process group is stopped.
    The server is stopped at the end (terminated, killed after 15 s).
    """
    port = free_port()
    args = [sys.executable, "-m", "robaccia", command, "--port", str(port)]
    if command == "run":
        args += [] if reload else ["--no-reload"]
    else:
        args += ["--workers", str(workers)]
    args += list(extra_args)
    if log is None:
        log = root / "logs" / f"server-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = (
        {"preexec_fn": _sigint_default, "start_new_session": True} if signals else {}
    )
    with open(log, "w") as out:
        process = subprocess.Popen(args, cwd=root, env=project_env(database_url, **(env or {})),
                                   stdout=out, stderr=subprocess.STDOUT, **options)
        try:
            _wait_until_serving(process, port, log, root.name)
            yield Server(root, f"http://127.0.0.1:{port}", process, log)
        finally:
            stop(process, group=signals)

"""HTTPS done right, graded by the MDN HTTP Observatory.

A project configured for production (``ROBACCIA_HTTPS=1``,
``ROBACCIA_TRUSTED_PROXY=127.0.0.1``, ``ROBACCIA_ALLOWED_HOSTS=localhost``) is
served by ``serve`` (plain HTTP, waitress) behind a reverse proxy written
here, the way nginx would front it:

* https://localhost/ (port 443) terminates TLS with a certificate made for
  the test (openssl, self-signed, for ``localhost``) and forwards each request
  with ``X-Forwarded-Proto: https``, ``X-Forwarded-For`` and ``X-Forwarded-Host``;
* http://localhost/ (port 80) forwards the same way with ``X-Forwarded-Proto: http``;
  robaccia itself redirects that to https://.

The Observatory (``@mdn/mdn-http-observatory`` from node_modules, through its
JavaScript API in node) then scans ``localhost`` as it scans any site, and
must grade it A+. It has no port option (its ``scan()`` always asks ports 80
and 443), hence those ports on 127.0.0.1 (the tests run as root in CI; a
laptop without the right to bind them skips). It trusts the test's
certificate through ``NODE_EXTRA_CA_CERTS``, so that TLS counts as valid: with
an untrusted certificate it would mark the redirection and HSTS as invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import free_port, make_project, missing, project_env, stop

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
OBSERVATORY = REPO / "node_modules" / "@mdn" / "mdn-http-observatory"
OUTPUT = Path(__file__).resolve().parent / "output" / "thirdparty" / "observatory.json"
HOST = "localhost"  # resolves to 127.0.0.1; the name the certificate and ALLOWED_HOSTS give
HTTP_PORT, HTTPS_PORT = 80, 443  # the Observatory's scan() asks these and no others


# --- a certificate -------------------------------------------------------------------------------


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (and its key), valid for two days."""
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("the openssl command is not installed (it makes the test's certificate)")
    cert, key = folder / "localhost.pem", folder / "localhost-key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
                    "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST},IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


# --- the reverse proxy ---------------------------------------------------------------------------


_HOP_BY_HOP = (b"connection:", b"keep-alive:", b"proxy-connection:", b"te:", b"upgrade:",
               b"x-forwarded-", b"forwarded:")


class ReverseProxy:
    """A TLS-terminating reverse proxy in front of ``serve``, as nginx would be configured.

    Each listener (port, TLS context or None) forwards a client's request to
    the backend with the client's own X-Forwarded-* headers removed and the
    proxy's added: the scheme it was received on, the client's address and its
    Host. Like nginx's default upstream, one request per backend connection
    (``Connection: close``); the answer is relayed unchanged and the client's
    connection closed after it.
    """

    def __init__(self, backend: int, listeners: list[tuple[int, ssl.SSLContext | None]]) -> None:
        self.backend = backend
        self.listeners = listeners
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="reverse-proxy", daemon=True)
        self.servers: list[asyncio.base_events.Server] = []
        self.requests: list[str] = []

    def __enter__(self) -> ReverseProxy:
        self.thread.start()
        try:
            for port, context in self.listeners:
                future = asyncio.run_coroutine_threadsafe(self._listen(port, context), self.loop)
                self.servers.append(future.result(timeout=10))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        async def close() -> None:
            for server in self.servers:
                server.close()
                await server.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _listen(self, port: int, context: ssl.SSLContext | None) -> asyncio.base_events.Server:
        scheme = b"https" if context else b"http"

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self._forward(reader, writer, scheme)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
                pass  # the client went away or spoke no HTTP: nothing to answer
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

        return await asyncio.start_server(handle, "127.0.0.1", port, ssl=context, reuse_address=True)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scheme: bytes) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
        request_line, *lines = head[:-4].split(b"\r\n")
        kept = [line for line in lines if not line.lower().startswith(_HOP_BY_HOP)]
        host = next((line.split(b":", 1)[1].strip() for line in kept if line.lower().startswith(b"host:")), b"")
        peer = str(writer.get_extra_info("peername")[0]).encode()
        self.requests.append(f"{scheme.decode()} {request_line.decode('latin-1')}")
        forwarded = [request_line, *kept, b"X-Forwarded-Proto: " + scheme, b"X-Forwarded-For: " + peer,
                     b"X-Forwarded-Host: " + host, b"Connection: close"]
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend)
        try:
            up_writer.write(b"\r\n".join(forwarded) + b"\r\n\r\n")
            await up_writer.drain()

            async def body() -> None:  # whatever the client sends next (a request body)
                while chunk := await reader.read(65536):
                    up_writer.write(chunk)
                    await up_writer.drain()

            sending = asyncio.ensure_future(body())
            try:
                while chunk := await asyncio.wait_for(up_reader.read(65536), timeout=30):
                    writer.write(chunk)
                    await writer.drain()
            finally:
                sending.cancel()
        finally:
            up_writer.close()


# --- the production-configured project -----------------------------------------------------------


@contextlib.contextmanager
def serve_for_production(root: Path) -> Iterator[int]:
    """``serve`` the project configured for HTTPS behind a proxy at 127.0.0.1; yield its port.

    (support.served waits for a plain 200 from /, which a site that redirects
    plain HTTP and answers only to localhost rightly refuses: it is asked here
    the way the proxy will ask it.)
    """
    port = free_port()
    env = project_env(ROBACCIA_HTTPS="1", ROBACCIA_TRUSTED_PROXY="127.0.0.1", ROBACCIA_ALLOWED_HOSTS=HOST)
    log = root / "logs" / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "robaccia", "serve", "--port", str(port),
                                    "--workers", "2"], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"serve exited ({process.returncode}):\n{log.read_text()[-3000:]}")
                with contextlib.suppress(OSError, http.client.HTTPException):
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    try:
                        conn.request("GET", "/", headers={"Host": HOST, "X-Forwarded-Proto": "https",
                                                          "X-Forwarded-For": "127.0.0.1",
                                                          "X-Forwarded-Host": HOST})
                        if conn.getresponse().status == 200:
                            break
                    finally:
                        conn.close()
                if time.monotonic() > deadline:
                    raise AssertionError(f"serve did not answer in 30 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
            yield port
        finally:
            stop(process)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ReverseProxy]]:
    """The project, served for production behind the proxy on ports 80 and 443; the certificate."""
    folder = tmp_path_factory.mktemp("https")
    cert, key = make_certificate(folder)
    root = make_project(folder, "jinja2", name="secured",
                        views={"employees": ["name:string:required", "title:string"]}, createdb=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with serve_for_production(root) as backend:
        try:
            proxy = ReverseProxy(backend, [(HTTPS_PORT, context), (HTTP_PORT, None)]).__enter__()
        except PermissionError:
            missing(f"binding ports {HTTP_PORT} and {HTTPS_PORT} needs root (the Observatory scans no other)")
        except OSError as exc:
            missing(f"ports {HTTP_PORT} and {HTTPS_PORT} on 127.0.0.1 are not free: {exc}")
        try:
            yield cert, proxy
        finally:
            proxy.__exit__()


# --- the Observatory ------------------------------------------------------------------------------


SCAN = """
import { scan } from "@mdn/mdn-http-observatory";
try {
  console.log(JSON.stringify(await scan(process.env.OBSERVATORY_HOST)));
} catch (e) {
  console.log(JSON.stringify({ error: String(e && e.message || e) }));
  process.exitCode = 2;
}
"""


def observatory(host: str, ca: Path) -> dict[str, Any]:
    """Scan ``host`` with the Observatory (trusting ``ca``); return its result."""
    node = shutil.which("node")
    if node is None:
        missing("node is not installed (the Observatory runs on it)")
    if not (OBSERVATORY / "package.json").exists():
        missing(f"{OBSERVATORY.relative_to(REPO)} is missing: bash scripts/tools.sh")
    if not (OBSERVATORY / "conf" / "hsts-preload.json").exists():
        missing("the Observatory has no conf/hsts-preload.json: bash scripts/tools.sh writes it")
    env = project_env(NODE_EXTRA_CA_CERTS=str(ca), OBSERVATORY_HOST=host)
    result = subprocess.run([node, "--input-type=module", "-e", SCAN], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=180)
    try:
        report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"the Observatory printed no result (exit {result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}") from None
    assert "error" not in report, f"the Observatory could not scan {host}: {report['error']}\n{result.stderr[-2000:]}"
    return report


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html or "")).strip()


def describe(report: dict[str, Any]) -> str:
    """The grade, then one line per test: passed or not, its points, its result and why."""
    scan = report["scan"]
    lines = [f"grade {scan['grade']}, score {scan['score']} ({scan['testsPassed']} of "
             f"{scan['testsQuantity']} tests passed, HTTP {scan['statusCode']})"]
    for name, test in sorted(report["tests"].items(), key=lambda item: item[1].get("scoreModifier", 0)):
        mark = "pass" if test.get("pass") else "FAIL"
        lines.append(f"  {mark} {name}: {test.get('scoreModifier', 0):+d} {test.get('result')} "
                     f"(expected {test.get('expectation')}): {_text(test.get('scoreDescription', ''))}")
    return "\n".join(lines)


def test_the_observatory_grades_a_production_project_behind_tls_a_plus(site: tuple[Path, ReverseProxy]) -> None:
    cert, proxy = site
    report = observatory(HOST, cert)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(report, indent=2) + "\n")
    summary = describe(report)
    # it scanned this site, over both schemes, through the proxy
    assert any(r.startswith("https GET / ") for r in proxy.requests), proxy.requests
    assert any(r.startswith("http GET / ") for r in proxy.requests), proxy.requests
    lost = [line for line in summary.splitlines()[1:] if " FAIL " in f" {line} " or ": -" in line]
    assert report["scan"]["grade"] == "A+", (f"the MDN HTTP Observatory on https://{HOST}/ (report: {OUTPUT}):\n"
                                             f"{summary}\n\nlost points:\n" + "\n".join(lost))

"""Security battery, transport and trust boundaries: slow clients, host names, forwarded
headers and what a request can write into the logs.

Every test talks to the battery's project (security_support.build_project, plus a
view whose handler raises) served for real: ``serve --workers 2`` (waitress) and
``run`` (the development server), each launched with the environment the test is
about (ALLOWED_HOSTS, TRUSTED_PROXY, HTTPS). Requests go over raw sockets where
http.client would refuse or fix what is sent. What each test counts is published
with security_support.record_figure under a ``transport_*`` key.

Issue 13, items 1 (slowloris), 7 (forms without an id, under serve), 14 (host
headers and DNS rebinding), 15 (forwarded headers and off-site redirects),
16 (log injection) and 17 (serve applies LOGGING).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from security_support import (
    Project,
    RawResult,
    Site,
    build_project,
    raw_exchange,
    record_audit,
    record_figure,
)
from support import Client, admin, free_port, project_env, read_page, served

BOOM_VIEW = '''\
import robaccia
from robaccia import DefaultCollection


class Collection(DefaultCollection):
    def list(self, environ, start_response):
        raise RuntimeError("kaboom-transport")


app = Collection("html", robaccia.find_renderer("html"))
'''

# A route (after the default one) that takes its time: a client can leave while it runs.
SLOW_ROUTE = '''

def _slow(environ, start_response):
    import time

    time.sleep(0.6)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slow"]


app.addregex(r"/slow/", GET=_slow)
'''

LOOPBACK = "localhost,127.0.0.1,[::1]"
Headers = Sequence[tuple[str, str | bytes]]
# A log record as the project's LOGGING writes it: "2026-01-31 12:00:00,123 INFO name: message".
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


# --- servers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    built = build_project(tmp_path_factory.mktemp("transport"))
    (built.root / "views" / "boom.py").write_text(BOOM_VIEW)
    dispatcher = built.root / "dispatcher.py"
    dispatcher.write_text(dispatcher.read_text() + SLOW_ROUTE)
    return built


@contextlib.contextmanager
def launch(project: Project, command: str = "serve", *, hosts: str = LOOPBACK, proxy: str = "",
           https: bool = False, wait_host: str | None = None,
           wait_headers: dict[str, str] | None = None) -> Iterator[Site]:
    """Serve the project with these settings (support.served); yield it as a battery Site.

    A site for example.com refuses Host 127.0.0.1: it is waited on through ``wait_host``
    (with ``wait_headers``) instead.
    """
    env = {"ROBACCIA_ALLOWED_HOSTS": hosts, "ROBACCIA_TRUSTED_PROXY": proxy,
           "ROBACCIA_HTTPS": "1" if https else "0"}
    with served(project.root, command, env=env, wait_host=wait_host,
                wait_headers=wait_headers) as server:
        yield Site(server.base, project, debug=command == "run", process=server.process,
                   log=server.log)


@pytest.fixture(scope="module")
def serve_site(project: Project) -> Iterator[Site]:
    """serve --workers 2, ALLOWED_HOSTS the loopback names, no proxy."""
    with launch(project, "serve") as site:
        yield site
    record_audit()


@pytest.fixture(scope="module")
def run_site(project: Project) -> Iterator[Site]:
    """run, with ALLOWED_HOSTS empty: the development server's default (the loopback names)."""
    with launch(project, "run", hosts="") as site:
        yield site


# --- raw requests -------------------------------------------------------------------------------


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def send(site: Site, method: str | bytes, target: str | bytes, *,
         host: str | bytes | None = None, headers: Headers = (),
         body: bytes = b"", version: bytes = b"HTTP/1.1", timeout: float = 10,
         audit: bool = True) -> RawResult:
    """One request over a raw socket, exactly as given (host None: 127.0.0.1:port; b"-": no Host)."""
    lines = [_bytes(method) + b" " + _bytes(target) + b" " + version]
    if host != b"-":
        lines.append(b"Host: " + _bytes(host if host is not None else f"127.0.0.1:{site.port}"))
    lines.append(b"Connection: close")
    for name, value in headers:
        lines.append(name.encode("latin-1") + b": " + _bytes(value))
    if body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return raw_exchange(site, b"\r\n".join(lines) + b"\r\n\r\n" + body, timeout=timeout, audit=audit)


def header(result: RawResult, name: str) -> str | None:
    for key, value in result.headers:
        if key.lower() == name.lower():
            return value
    return None


def headers_named(result: RawResult, name: str) -> list[str]:
    return [value for key, value in result.headers if key.lower() == name.lower()]


def on_site(url: str) -> bool:
    """An absolute path on this site: never ``//host``, ``/\\host``, a scheme or a control character."""
    return (url.startswith("/") and not url.startswith(("//", "/\\"))
            and not any(c in url for c in "\r\n\t\\\x00"))


def sane_cache_control(value: str | None) -> bool:
    """A redirect a shared cache keeps at most a day, or not at all."""
    if value is None:
        return False
    directives = {d.strip().split("=", 1)[0].lower(): d.strip() for d in value.split(",")}
    if {"no-store", "private", "no-cache"} & directives.keys():
        return True
    age = directives.get("max-age", "").partition("=")[2]
    return age.isdigit() and int(age) <= 86400 and "public" not in directives


def employees_named(project: Project, name: str) -> list[int]:
    with project.sqlite() as conn:
        table = project.views["html"]
        return [row[0] for row in conn.execute(f"SELECT id FROM {table} WHERE name = ?", (name,))]


def count_rows(project: Project, role: str) -> int:
    with project.sqlite() as conn:
        return int(conn.execute(f"SELECT count(*) FROM {project.views[role]}").fetchone()[0])


def form_body(browser: Client, **fields: str) -> bytes:
    return urlencode({**fields, "_csrf": browser.token}).encode()


def form_headers(browser: Client, *extra: tuple[str, str | bytes]) -> list[tuple[str, str | bytes]]:
    browser.token  # noqa: B018 (the token page sets the cookie sent here)
    return [("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", browser.cookie_header()),
            *extra]


# --- 1. slow clients ------------------------------------------------------------------------------


def _slowloris(site: Site, clients: int, seconds: float, interval: float = 2.0) -> dict[str, Any]:
    """Hold ``clients`` connections that send a header byte every ``interval`` s; time normal requests.

    Returns the figures: slow clients still held by the server at the end, the
    normal requests made meanwhile and the worst time one of them took.
    """
    slow: list[socket.socket] = []
    dropped: set[int] = set()
    for i in range(clients):
        sock = socket.create_connection(("127.0.0.1", site.port), timeout=5)
        sock.sendall(f"GET /{site.view('html')}/ HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\n"
                     f"X-Slow-{i}: ".encode())
        slow.append(sock)
    stopping = threading.Event()

    def drip() -> None:
        while not stopping.wait(interval):
            for i, sock in enumerate(slow):
                if i not in dropped:
                    try:
                        sock.sendall(b"a")
                    except OSError:
                        dropped.add(i)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    normal = Client(site.base, keep_cookies=False, timeout=10)
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.monotonic() + seconds
    n = 0
    try:
        time.sleep(0.3)  # every slow client is connected and has begun its request
        while time.monotonic() < deadline:
            n += 1
            for method, path, body in (("GET", f"/{site.view('html')}/", None),
                                       ("POST", f"/{site.view('json')}/", {"count": n})):
                start = time.monotonic()
                try:
                    answer = normal.request(method, path, json_body=body)
                    if answer.status != (201 if body else 200):
                        failures.append(f"{method} {path}: {answer.status}")
                except AssertionError as exc:  # support.TransportError: no answer at all
                    failures.append(f"{method} {path}: {exc}")
                latencies.append(time.monotonic() - start)
            time.sleep(0.05)
    finally:
        stopping.set()
        dripper.join()
        held = 0
        for i, sock in enumerate(slow):
            sock.setblocking(False)
            try:
                sock.recv(1)  # an answer or the end: the server gave up on this client
            except BlockingIOError:
                held += i not in dropped
            except OSError:
                pass
            sock.close()
    assert not failures, failures[:5]
    return {"slow_clients": clients, "slow_clients_held": held, "seconds": seconds,
            "byte_interval_s": interval, "normal_requests": len(latencies),
            "worst_normal_latency_ms": round(max(latencies) * 1000, 1),
            "median_normal_latency_ms": round(sorted(latencies)[len(latencies) // 2] * 1000, 1)}


def test_serve_holds_slow_clients_and_answers_everyone_else(project: Project, serve_site: Site) -> None:
    figures = _slowloris(serve_site, clients=24, seconds=6)  # 12 per worker, at least 10x the workers
    record_figure("transport_slow_clients_serve", workers=2, **figures,
                  summary=f"serve --workers 2: {figures['slow_clients_held']} of {figures['slow_clients']} "
                          f"slow clients held for {figures['seconds']} s (a header byte every 2 s); "
                          f"{figures['normal_requests']} normal requests meanwhile (GET list, POST JSON), "
                          f"worst {figures['worst_normal_latency_ms']} ms")
    assert figures["slow_clients_held"] == figures["slow_clients"], figures
    assert figures["worst_normal_latency_ms"] < 1000, figures
    # What serve does not protect (TLS, per-client connection limits) is reported for a deployment.
    check = admin("check", "--deploy", cwd=project.root, env=project_env(), check=False)
    r010 = [line for line in check.stdout.splitlines() if line.startswith("R010 ")]
    assert r010 and "no TLS" in r010[0] and "per-client connection" in r010[0], check.stdout


def test_run_holds_slow_clients_and_answers_everyone_else(run_site: Site) -> None:
    figures = _slowloris(run_site, clients=64, seconds=6)
    record_figure("transport_slow_clients_run", **figures,
                  summary=f"run: {figures['slow_clients_held']} of {figures['slow_clients']} slow clients "
                          f"held for {figures['seconds']} s; {figures['normal_requests']} normal requests "
                          f"meanwhile, worst {figures['worst_normal_latency_ms']} ms")
    assert figures["slow_clients_held"] == figures["slow_clients"], figures
    assert figures["worst_normal_latency_ms"] < 1000, figures


# --- 2. host headers ------------------------------------------------------------------------------


def test_dns_rebinding_cannot_read_or_write_through_the_dev_server(project: Project, run_site: Site) -> None:
    site, port = run_site, run_site.port
    html, api = f"/{site.view('html')}/", f"/{site.view('json')}/"
    browser = site.client()  # a real visitor's token and cookie: the attacker's page could not have them
    secret = f"secret-{uuid.uuid4().hex[:8]}"
    made = send(site, "POST", html, headers=form_headers(browser, ("Origin", site.origin)),
                body=form_body(browser, name=secret))
    assert made.status == 303, made.raw[:300]
    member = str(header(made, "Location"))
    counters = count_rows(project, "json")
    attackers = [f"rebind.attacker.example:{port}", "rebind.attacker.example",
                 f"127.0.0.1.rebind.attacker.example:{port}", f"localhost.attacker.example:{port}",
                 f"attacker.example.:{port}", f"127.0.0.2:{port}", f"0.0.0.0:{port}",
                 f"[::ffff:127.0.0.1]:{port}", f"2130706433:{port}", f"localhost:{port}.attacker.example"]
    tried, refused, leaked = 0, 0, []
    for n, host in enumerate(attackers):
        # what the attacker's page can do once its name resolves to 127.0.0.1: same-origin, to it
        same_origin = [("Origin", f"http://{host}"), ("Sec-Fetch-Site", "same-origin")]
        attempts = [
            send(site, "GET", html, host=host, headers=same_origin),
            send(site, "GET", member, host=host, headers=same_origin),
            send(site, "GET", api, host=host, headers=same_origin),
            send(site, "POST", html, host=host, headers=form_headers(browser, *same_origin),
                 body=form_body(browser, name=f"rebound-{n}")),
            send(site, "POST", api, host=host, headers=[("Content-Type", "application/json"), *same_origin],
                 body=json.dumps({"count": 666}).encode()),
            send(site, "POST", member, host=host, headers=form_headers(browser, *same_origin),
                 body=form_body(browser, name=f"rebound-{n}", _method="PUT")),
            send(site, "POST", member, host=host, headers=form_headers(browser, *same_origin),
                 body=form_body(browser, _method="DELETE")),
        ]
        for answer in attempts:
            tried += 1
            refused += answer.status == 400
            if secret.encode() in answer.body:
                leaked.append(host)
        assert [a.status for a in attempts] == [400] * len(attempts), (host, [a.status for a in attempts])
    written = sum(len(employees_named(project, f"rebound-{n}")) for n in range(len(attackers)))
    assert not leaked and written == 0
    assert count_rows(project, "json") == counters
    assert len(employees_named(project, secret)) == 1  # neither changed nor deleted
    # The names the development server is reached by still work, reads and writes.
    loopback = [f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost", "127.0.0.1",
                f"LOCALHOST:{port}", f"localhost.:{port}"]
    for n, host in enumerate(loopback):
        page = send(site, "GET", html, host=host)
        assert page.status == 200 and secret.encode() in page.body, (host, page.status)
        made = send(site, "POST", html, host=host,
                    headers=form_headers(browser, ("Origin", f"http://{host}")),
                    body=form_body(browser, name=f"loopback-{n}"))
        assert made.status == 303 and len(employees_named(project, f"loopback-{n}")) == 1, (host, made.status)
    record_figure("transport_dns_rebinding_run", attacker_hosts=len(attackers), requests=tried,
                  answered_400=refused, rows_read=len(leaked), rows_written=written,
                  loopback_names_served=len(loopback),
                  summary=f"run, ALLOWED_HOSTS default: {tried} reads and writes from {len(attackers)} "
                          f"rebound host names with a matching Origin: {refused} answered 400, "
                          f"{len(leaked)} read, {written} written; {len(loopback)} loopback names served")


def _malformed_hosts(name: str) -> list[bytes]:
    """Host values near ``name`` that are not a host name with a port."""
    raw = name.encode()
    return [b"", b" ", raw + b":80a", raw + b":abc", raw + b":" + b"9" * 50, raw + b":-1", raw + b":0x50",
            raw + ":８０".encode(), raw + ":٨٠".encode(), raw + b":80:80", raw + b" evil.example",
            raw + b"@evil.example", b"evil.example#" + raw, raw + b"/evil", raw + b",evil.example",
            raw + b";evil.example", b"[" + raw + b"]", b"a" * 5000, b"a" * 64 + b"." + raw,
            b"a" * 70000, "é".encode() + raw, "ｅｘａｍｐｌｅ.com".encode(), raw.replace(b".", "。".encode()),
            raw + b"\x00", raw + b"\xff", b"[::1", b"[::1]x", b"[::1]:80a", b"evil.example\\" + raw,
            b"%65xample.com", b"_" + raw]


def test_serve_answers_only_its_allowed_hosts(project: Project) -> None:
    with launch(project, hosts="example.com", wait_host="example.com") as exact, \
            launch(project, hosts=".example.com", wait_host="www.example.com") as domain:
        cases = [
            (exact, {"example.com": 200, f"example.com:{exact.port}": 200, "EXAMPLE.com": 200,
                    "example.com.": 200, "www.example.com": 400, "127.0.0.1": 400,
                    f"127.0.0.1:{exact.port}": 400, "localhost": 400, "evil.example": 400,
                    "example.com.evil.example": 400, "evilexample.com": 400, "xn--exmple-cua.com": 400}),
            (domain, {"example.com": 200, "www.example.com": 200, f"a.b.example.com:{domain.port}": 200,
                     "WWW.Example.COM": 200, "evilexample.com": 400, "example.com.evil.example": 400,
                     "example.co": 400, "127.0.0.1": 400, "localhost": 400, "evil.example": 400}),
        ]
        answered: dict[int, int] = {}
        for site, expected in cases:
            for host, status in expected.items():
                got = send(site, "GET", f"/{site.view('html')}/", host=host).status
                assert got == status, (site.port, host, got)
                answered[got] = answered.get(got, 0) + 1
        malformed = 0
        for site, name in ((exact, "example.com"), (domain, "www.example.com")):
            for bad in _malformed_hosts(name):
                got = send(site, "GET", f"/{site.view('html')}/", host=bad).status
                assert got == 400, (site.port, bad[:60], got)
                malformed += 1
            for second in (name, "evil.example"):  # two Host headers
                assert send(site, "GET", "/", host=name, headers=[("Host", second)]).status == 400
                malformed += 1
            assert send(site, "GET", "/", host=b"-").status == 400  # HTTP/1.1 without Host
            malformed += 1
    # and without ALLOWED_HOSTS, serve does not start (as test_cli checks word for word)
    refused = admin("serve", "--port", str(free_port()), cwd=project.root, check=False,
                    env=project_env(ROBACCIA_ALLOWED_HOSTS=""))
    assert refused.returncode == 1 and refused.stdout == "", (refused.stdout, refused.stderr)
    assert refused.stderr.startswith("Error: ALLOWED_HOSTS names no host") and refused.stderr.count("\n") == 1
    record_figure("transport_allowed_hosts_serve", named_hosts_served=answered.get(200, 0),
                  other_hosts_refused=answered.get(400, 0), malformed_hosts=malformed,
                  malformed_answered_400=malformed, server_errors=0, starts_without_allowed_hosts=False,
                  summary=f"serve with ALLOWED_HOSTS example.com / .example.com: {answered.get(200, 0)} "
                          f"allowed names served, {answered.get(400, 0)} other names 400; {malformed} "
                          "malformed Host values (letters or non-ASCII digits in the port, huge, "
                          "unicode, empty, userinfo, two Host headers, none): all 400, 0 5xx; without ALLOWED_HOSTS "
                          "serve refuses to start (one line, exit 1)")


# --- 3. forwarded headers and redirects -----------------------------------------------------------


FORWARDED = [
    ("SCRIPT_NAME", "//evil.example"),
    ("SCRIPT_NAME", "https://evil.example/app"),
    ("Script-Name", "//evil.example"),
    ("X-Script-Name", "//evil.example"),
    ("X-Forwarded-Prefix", "//evil.example"),
    ("X-Forwarded-Prefix", "https://evil.example/"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Server", "evil.example"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Scheme", "https"),
    ("X-Forwarded-Ssl", "on"),
    ("X-Forwarded-Port", "443"),
    ("X-Forwarded-For", "203.0.113.7"),
    ("Forwarded", "for=203.0.113.7;host=evil.example;proto=https"),
    ("X-Original-URL", "//evil.example/employees/"),
    ("X-Rewrite-URL", "//evil.example/employees/"),
]


def _forwarded_change_nothing(site: Site, project: Project, browser: Client,
                              sets: list[list[tuple[str, str | bytes]]]) -> dict[str, int]:
    """Every way a URL or a cookie leaves the server, with each set of headers added: unchanged."""
    html, api = site.view("html"), site.view("json")
    for _ in range(2):  # a list with a next page: a Link header
        send(site, "POST", f"/{api}/", headers=[("Content-Type", "application/json")], body=b'{"count": 1}')
    tally = {"requests": 0, "creates": 0}
    for extra in sets:
        label = (site.port, extra[:2])
        slash = send(site, "GET", f"/{html}", headers=extra)
        assert slash.status == 301 and header(slash, "Location") == f"/{html}/", (label, slash.raw[:300])
        assert sane_cache_control(header(slash, "Cache-Control")), label
        form = send(site, "GET", f"/{html}/;new_form", headers=extra)
        assert form.status == 200, (label, form.status)
        urls = read_page(form.body).urls
        assert urls and all(on_site(u) and "evil" not in u for u in urls), (label, urls)
        cookies = headers_named(form, "Set-Cookie")
        assert cookies and not any("secure" in c.lower() for c in cookies), (label, cookies)
        listing = send(site, "GET", f"/{api}/?limit=1", headers=extra)
        links = re.findall(r"<([^>]*)>", header(listing, "Link") or "")
        assert listing.status == 200 and links and all(on_site(u) and "evil" not in u for u in links), \
            (label, links)
        created = send(site, "POST", f"/{api}/", headers=[("Content-Type", "application/json"), *extra],
                       body=b'{"count": 1}')
        assert created.status == 201, (label, created.status)
        assert re.fullmatch(rf"/{api}/\d+", str(header(created, "Location"))), (label, created.headers)
        name = f"forwarded-{uuid.uuid4().hex[:8]}"
        posted = send(site, "POST", f"/{html}/", headers=form_headers(browser, *extra),
                      body=form_body(browser, name=name))
        location = str(header(posted, "Location"))
        assert posted.status == 303 and re.fullmatch(rf"/{html}/\d+", location), (label, posted.status, location)
        assert sane_cache_control(header(posted, "Cache-Control")), (label, posted.headers)
        assert not any("secure" in c.lower() for c in headers_named(posted, "Set-Cookie")), label
        assert employees_named(project, name) == [int(location.rsplit("/", 1)[1])]
        assert name.encode() in send(site, "GET", location).body
        tally["requests"] += 6
        tally["creates"] += 2
    return tally


def test_forwarded_headers_from_an_untrusted_client_change_nothing(
        project: Project, serve_site: Site, run_site: Site) -> None:
    sets: list[list[tuple[str, str | bytes]]] = [[pair] for pair in FORWARDED]
    sets.append(list(FORWARDED))  # all at once
    totals = {"requests": 0, "creates": 0}
    for site in (serve_site, run_site):
        for key, value in _forwarded_change_nothing(site, project, site.client(), sets).items():
            totals[key] += value
    # serve with a proxy elsewhere: 127.0.0.1 is not it, so its X-Forwarded-* do not count either
    with launch(project, proxy="10.0.0.9") as elsewhere:
        for key, value in _forwarded_change_nothing(elsewhere, project, elsewhere.client(), sets).items():
            totals[key] += value
    record_figure("transport_forwarded_headers", header_sets=len(sets), servers=3, **totals,
                  offsite_urls=0, secure_cookies=0,
                  summary=f"{len(FORWARDED)} forwarded headers (SCRIPT_NAME, X-Forwarded-Prefix/-Host/"
                          f"-Proto/..., Forwarded), alone and together, from a client that is not the "
                          f"proxy, to serve, run and serve with TRUSTED_PROXY elsewhere: {totals['requests']}"
                          f" requests, 0 off-site Location/Link/page URLs, 0 Secure cookies, "
                          f"{totals['creates']} creates all answered with their own row")


HOSTILE_PATHS = ["//evil.example/employees", "//evil.example/employees/", "///evil.example/employees",
                 "////evil.example/employees/", "/\\evil.example/employees", "/%5Cevil.example/employees",
                 "//evil.example/%2e%2e/employees", "/%2F%2Fevil.example/employees",
                 "/%2f%2fevil.example/employees/", "//evil.example", "//evil.example/", "//employees",
                 "//employees/", "/employees//", "/./employees", "/employees/./", "/employees/../employees",
                 "https://evil.example/employees", "http://evil.example/employees/",
                 "//evil.example/employees/;new_form", "/employees/%2F%2Fevil.example",
                 "/employees/..%2F..%2F%2Fevil.example", "//127.0.0.1/employees", "/employees/%0D%0ALocation:x",
                 "/employees/;%2F%2Fevil.example", "//evil.example?x=/employees/", "/employees?//evil.example"]


def test_hostile_paths_never_redirect_off_site_nor_fail_after_a_write(
        project: Project, serve_site: Site, run_site: Site) -> None:
    tally = {"requests": 0, "redirects": 0, "creates": 0, "committed": 0, "refused": 0}
    for site in (serve_site, run_site):
        browser = site.client()
        for path in HOSTILE_PATHS:
            target = path.replace("employees", site.view("html"))
            got = send(site, "GET", target)
            location = header(got, "Location")
            assert got.status is not None and got.status < 500, (site.port, path, got.status)
            assert location is None or on_site(location), (site.port, path, location)
            if 300 <= got.status < 400:
                tally["redirects"] += 1
                assert sane_cache_control(header(got, "Cache-Control")), (site.port, path, got.headers)
            name = f"shape-{uuid.uuid4().hex[:8]}"
            posted = send(site, "POST", target, headers=form_headers(browser),
                          body=form_body(browser, name=name))
            rows = employees_named(project, name)
            location = header(posted, "Location")
            tally["requests"] += 2
            tally["creates"] += 1
            if posted.status == 303:  # written: then answered with the row, on this site
                tally["committed"] += 1
                assert location is not None and on_site(location), (site.port, path, location)
                assert rows == [int(location.rsplit("/", 1)[1])], (site.port, path, location, rows)
                assert sane_cache_control(header(posted, "Cache-Control")), (site.port, path)
            else:  # refused before writing
                tally["refused"] += 1
                assert posted.status is not None and 400 <= posted.status < 500, (site.port, path, posted.status)
                assert rows == [] and (location is None or on_site(location)), (site.port, path, rows)
    record_figure("transport_hostile_paths", paths=len(HOSTILE_PATHS), servers=2, **tally,
                  offsite_locations=0, committed_then_failed=0,
                  summary=f"{len(HOSTILE_PATHS)} //host, backslash, encoded-slash and absolute-URI paths "
                          f"to serve and run, GET and HTML create ({tally['requests']} requests): 0 off-site "
                          f"Location, {tally['redirects']} redirects all with Cache-Control; "
                          f"{tally['committed']} creates written and redirected to their row, "
                          f"{tally['refused']} refused with nothing written, 0 written then failed")


def test_https_behind_the_trusted_proxy(project: Project) -> None:
    html, api = f"/{project.views['html']}/", f"/{project.views['json']}/"
    https = [("X-Forwarded-Proto", "https")]
    with launch(project, proxy="127.0.0.1") as proxied, \
            launch(project, proxy="127.0.0.1", https=True, wait_headers=dict(https)) as secure:
        # HTTPS off, the proxy trusted: a request it says came over TLS gets Secure cookies
        browser = proxied.client()
        over_tls = send(proxied, "GET", f"{html};new_form", headers=https)
        plain = send(proxied, "GET", f"{html};new_form")
        assert all("; Secure" in c for c in headers_named(over_tls, "Set-Cookie")), over_tls.headers
        assert not any("Secure" in c for c in headers_named(plain, "Set-Cookie")), plain.headers
        assert header(plain, "Strict-Transport-Security") is None
        flashed = send(proxied, "POST", html, headers=form_headers(browser, *https),
                       body=form_body(browser, name="over tls"))
        assert flashed.status == 303 and headers_named(flashed, "Set-Cookie"), flashed.headers
        assert all("; Secure" in c for c in headers_named(flashed, "Set-Cookie")), flashed.headers
        # even the trusted proxy cannot move the site: prefixes are ignored, other hosts refused
        for extra in (("SCRIPT_NAME", "//evil.example"), ("X-Forwarded-Prefix", "//evil.example")):
            moved = send(proxied, "GET", html.rstrip("/"), headers=[extra, *https])
            assert (moved.status, header(moved, "Location")) == (301, html), (extra, moved.headers)
        assert send(proxied, "GET", html, headers=[("X-Forwarded-Host", "evil.example")]).status == 400
        assert send(proxied, "GET", html, headers=[("X-Forwarded-Host", "localhost")]).status == 200

        # HTTPS on: plain http is redirected to the same host and path, unsafe methods keep theirs
        redirects = 0
        counters = count_rows(project, "json")
        for method, target, host, status, expected in [
            ("GET", html, None, 301, f"https://127.0.0.1{html}"),
            ("GET", f"{html}?limit=1&sort=-name", None, 301, f"https://127.0.0.1{html}?limit=1&sort=-name"),
            ("GET", f"{html}1;edit_form", None, 301, f"https://127.0.0.1{html}1;edit_form"),
            ("HEAD", html, None, 301, f"https://127.0.0.1{html}"),
            ("GET", "/", f"localhost:{secure.port}", 301, "https://localhost/"),
            ("GET", "/static/robaccia.css", "[::1]", 301, "https://[::1]/static/robaccia.css"),
            ("GET", "//evil.example/employees", None, 301, None),
            ("GET", "/%2F%2Fevil.example/", None, 301, None),
            ("POST", api, None, 308, f"https://127.0.0.1{api}"),
            ("PUT", f"{api}1", None, 308, f"https://127.0.0.1{api}1"),
            ("PATCH", f"{api}1", None, 308, f"https://127.0.0.1{api}1"),
            ("DELETE", f"{api}1", None, 308, f"https://127.0.0.1{api}1"),
            ("POST", html, None, 308, f"https://127.0.0.1{html}"),
        ]:
            body = b'{"count": 5}' if method in ("POST", "PUT", "PATCH") else b""
            got = send(secure, method, target, host=host, body=body,
                       headers=[("Content-Type", "application/json")] if body else [])
            location = str(header(got, "Location"))
            assert got.status == status, (method, target, got.status)
            parts = urlsplit(location)
            assert parts.scheme == "https" and parts.netloc == (host or "127.0.0.1").split(f":{secure.port}")[0]
            assert on_site(location[len(f"https://{parts.netloc}"):]), location
            assert expected is None or location == expected, (target, location)
            assert sane_cache_control(header(got, "Cache-Control")), got.headers
            redirects += 1
        assert count_rows(project, "json") == counters  # nothing was written over plain http
        # over TLS (the proxy says so): served, with HSTS and Secure cookies
        page = send(secure, "GET", f"{html};new_form", headers=https)
        assert page.status == 200
        assert header(page, "Strict-Transport-Security") == "max-age=63072000; includeSubDomains"
        cookies = headers_named(page, "Set-Cookie")
        assert cookies and all("; Secure" in c for c in cookies), cookies
        created = send(secure, "POST", api, headers=[("Content-Type", "application/json"), *https],
                       body=b'{"count": 9}')
        assert created.status == 201 and header(created, "Strict-Transport-Security"), created.headers
        assert count_rows(project, "json") == counters + 1
        assert send(secure, "GET", html, headers=[*https, ("X-Forwarded-Host", "evil.example")]).status == 400
    record_figure("transport_https_trusted_proxy", plain_http_redirects=redirects, offsite_redirects=0,
                  writes_over_plain_http=0,
                  summary=f"serve, TRUSTED_PROXY=127.0.0.1: X-Forwarded-Proto https gives Secure cookies "
                          f"(CSRF and flash); with HTTPS=1, {redirects} plain-http requests redirected to "
                          "https://same-host/same-path (301 GET/HEAD, 308 unsafe methods, 0 writes, 0 "
                          "off-site) and HSTS on https responses")


def test_forms_without_an_id_are_4xx_under_serve(serve_site: Site) -> None:
    paths = [f"/{serve_site.view(role)}/;{noun}" for role in ("html", "json", "skey", "jkey")
             for noun in ("edit_form", "delete_form")]
    statuses = {path: send(serve_site, "GET", path).status for path in paths}
    record_figure("transport_forms_without_id_serve", requests=len(paths),
                  answered_4xx=sum(400 <= (s or 0) < 500 for s in statuses.values()),
                  summary=f"serve: GET /view/;edit_form and ;delete_form without an id on {len(paths) // 2} "
                          f"views: {sorted(set(map(str, statuses.values())))}, 0 5xx")
    assert all(s is not None and 400 <= s < 500 for s in statuses.values()), statuses


# --- 4, 5. logs -----------------------------------------------------------------------------------


def _hostile_requests(tag: str) -> list[tuple[str, bytes, bytes]]:
    """(nonce, method, target): control characters and non-UTF-8 bytes where the request line is logged."""
    cases = [
        (b"GET", b"/employees/{n}%0AFORGED{n} 200"),
        (b"GET", b"/employees/{n}%0D%0AFORGED{n}"),
        (b"GET", b"/employees/{n}%0A2026-01-01%2000:00:00,000%20INFO%20robaccia.request:%20FORGED{n}"),
        (b"GET", b"/employees/{n}%0DFORGED{n}"),
        (b"GET", b"/employees/{n}%1B[31mRED%07%00"),
        (b"GET", b"/employees/?q={n}%0AFORGED{n}%0D%1B[2J"),
        (b"GET", b"/employees/?q={n}\x1b[2J\x07"),
        (b"GET", b"/employees/{n}\x1b[31mRED\x07"),
        (b"GET", b"/employees/{n}\x1b]0;title\x07"),
        (b"GET", b"/employees/{n}\rFORGED{n}"),
        (b"GET", b"/employees/{n}\x00\x7f\x0b\x0c\t"),
        (b"GET", b"/employees/{n}\xff\xfe\xc3\x28\x9b\x85"),
        (b"GET", b"/employees/{n}%FF%FE%C3%28%9B%85%C2%85%E2%80%A8"),
        (b"G\x1bET{n}", b"/employees/"),
        (b"GET\x07{n}", b"/employees/"),
        (b"GE\x85T{n}", b"/employees/"),
        (b"{n}\x1b[2J", b"/employees/"),
    ]
    out = []
    for i, (method, target) in enumerate(cases):
        nonce = f"{tag}{i:02d}q"
        out.append((nonce, method.replace(b"{n}", nonce.encode()), target.replace(b"{n}", nonce.encode())))
    return out


def _read_logs(paths: list[Path]) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in paths}


def _check_clean(logs: dict[Path, bytes], nonces: list[str]) -> int:
    """No raw control character or invalid UTF-8 in any log; every line naming a request is a record."""
    lines = 0
    for path, raw in logs.items():
        bad = re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", raw)
        assert bad is None, (path.name, raw[max(0, bad.start() - 80):bad.end() + 40])
        text = raw.decode("utf-8")  # raw non-UTF-8 bytes would fail here
        bad_text = re.search("[\x80-\x9f\u2028\u2029]", text)
        assert bad_text is None, (path.name, text[max(0, bad_text.start() - 80):bad_text.end() + 40])
        for line in text.splitlines():
            if any(nonce in line for nonce in nonces):
                lines += 1
                assert RECORD.match(line), (path.name, line[:200])
            # FORGED<nonce> follows its nonce in the same value: on a line of its own, it was forged
            for forged in re.finditer(r"FORGED(\w+q)", line):
                assert forged.group(1) in line[:forged.start()], (path.name, line[:200])
    return lines


def _wait_for(logs: list[Path], nonces: list[str], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        texts = [p.read_bytes() for p in logs]
        if all(all(n.encode() in t for t in texts) for n in nonces):
            return
        time.sleep(0.1)


def test_control_characters_from_requests_never_reach_the_logs_raw(
        project: Project, serve_site: Site, run_site: Site) -> None:
    logfile = project.root / "logs" / "robaccia.log"
    figures: dict[str, Any] = {}
    for site, kind in ((run_site, "run"), (serve_site, "serve")):
        tag = f"{kind}{uuid.uuid4().hex[:6]}"
        cases = _hostile_requests(tag)
        by_app: list[str] = []  # answered by the project (its headers): its access line must be there
        statuses = []
        for nonce, method, target in cases:
            got = send(site, method, target.replace(b"employees", site.view("html").encode()))
            statuses.append(got.status)
            assert got.status is not None and got.status < 500, (nonce, got.status)
            if header(got, "X-Frame-Options"):
                by_app.append(nonce)
        assert site.log is not None
        _wait_for([logfile, site.log], by_app)
        logs = _read_logs([logfile, site.log])
        nonces = [nonce for nonce, _, _ in cases]
        lines = _check_clean(logs, nonces)
        assert len(by_app) >= 8, (kind, statuses)  # most reach the app, and its log lines
        for nonce in by_app:
            for path, raw in logs.items():
                found = [line for line in raw.decode().splitlines() if nonce in line]
                assert len(found) == 1, (path.name, nonce, found)  # one request, one line
        figures[kind] = {"requests": len(cases), "reached_the_app": len(by_app), "lines_logged": lines,
                         "raw_control_characters": 0, "forged_lines": 0}
    record_figure("transport_log_injection", **figures,
                  summary=f"{len(_hostile_requests('x'))} requests with CR, LF, ESC, BEL, NUL, C1 and "
                          f"non-UTF-8 bytes in the path, query and method (raw and %-encoded), to serve "
                          f"({figures['serve']['reached_the_app']} reached the app) and run "
                          f"({figures['run']['reached_the_app']}): console and logs/robaccia.log have 0 raw "
                          "control characters, 0 forged lines; each logged request is one line")


def test_a_client_that_leaves_mid_request_is_logged_escaped(
        project: Project, serve_site: Site, run_site: Site) -> None:
    """The server's own messages about a request (waitress: "Client disconnected while serving <path>")."""
    logfile = project.root / "logs" / "robaccia.log"
    lines: dict[str, int] = {}
    for site, kind in ((serve_site, "serve"), (run_site, "run")):
        nonce = f"left{kind}{uuid.uuid4().hex[:6]}q"
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", site.port), timeout=5) as sock:
                sock.sendall(f"GET /slow/{nonce}%0AFORGED{nonce}%1B[31m%07 HTTP/1.1\r\n"
                             f"Host: 127.0.0.1:{site.port}\r\n\r\n".encode())
                time.sleep(0.2)  # the route is running: leave, with a reset
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(1)
        assert site.log is not None
        if kind == "serve":
            _wait_for([logfile, site.log], ["Client disconnected while serving /slow/" + nonce])
        lines[kind] = _check_clean(_read_logs([logfile, site.log]), [nonce])
        if kind == "serve":
            assert "Client disconnected while serving /slow/" + nonce in site.log.read_text()
    record_figure("transport_client_left_logged", clients=3, lines_logged=lines, raw_control_characters=0,
                  summary=f"3 clients reset their connection while a request with CR, LF, ESC and BEL in "
                          f"its path runs: serve logs {lines['serve']} lines (access and waitress's 'Client "
                          f"disconnected while serving'), all escaped; run logs {lines['run']}")


def test_serve_logs_unhandled_errors_through_the_projects_logging(project: Project, serve_site: Site) -> None:
    logfile = project.root / "logs" / "robaccia.log"
    answer = send(serve_site, "GET", "/boom/", audit=False)  # a 500 on purpose: not one for the audit
    assert answer.status == 500 and b"Internal Server Error" in answer.body
    for internal in (b"Traceback", b"kaboom", b"RuntimeError", b".py", str(project.root).encode()):
        assert internal not in answer.body
    error = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ERROR robaccia\.middleware: Unhandled error "
                       r"on GET /boom/: RuntimeError: kaboom-transport\n    Traceback \(most recent call last\):",
                       re.M)
    access = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO robaccia\.request: 127\.0\.0\.1 "
                        r'"GET /boom/ HTTP/1\.1" 500 \d+$', re.M)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not access.search(logfile.read_text()):
        time.sleep(0.1)
    assert serve_site.log is not None
    for path in (logfile, serve_site.log):  # the file handler and the console handler of LOGGING
        text = path.read_text()
        assert error.search(text), (path.name, text[-2000:])
        assert access.search(text), (path.name, text[-2000:])
    record_figure("transport_serve_logging", error_logged_with_time_and_level=True,
                  traceback_in_log=True, traceback_in_response=False,
                  summary="serve: an unhandled error in a view is logged to logs/robaccia.log and the "
                          "console with timestamp, level and traceback (the project's LOGGING); the "
                          "client gets the plain 500 page")


def test_request_data_in_an_exception_message_reaches_the_log_escaped() -> None:
    """A view that puts request data in its exception's message cannot forge a log line or
    colour a terminal through the traceback (it is escaped and indented like any request value)."""
    import logging

    from robaccia.middleware import ErrorPages
    from robaccia.testing import call

    def raises(environ: Any, start_response: Any) -> Any:
        raise ValueError("bad filter " + environ["QUERY_STRING"])

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    logger = logging.getLogger("robaccia.middleware")
    logger.addHandler(handler)
    try:
        status = call(ErrorPages(raises), "GET", "/x", query="a\x1b[2J\x07\n2026-01-01 00:00:00,000 INFO forged")[0]
    finally:
        logger.removeHandler(handler)
    assert status == "500 Internal Server Error"
    (text,) = records
    assert "\x1b" not in text and "\x07" not in text
    assert all(line.startswith(("Unhandled error", "    ")) for line in text.split("\n"))
    assert "bad filter a\\x1b[2J\\x07 2026-01-01" in text.split("\n")[0]  # the summary: one line
    assert "\n    2026-01-01 00:00:00,000 INFO forged" in text  # the message's own line, indented

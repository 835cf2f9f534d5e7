"""Many workers, one database: lost updates, a database restart, per-request state.

* Two ``robaccia-admin serve`` instances (waitress, 2 workers each) on two
  ports share one PostgreSQL database. 50 client threads alternate between
  them, each reading a counter and writing it back plus one with If-Match,
  retrying on 412 a bounded number of times: the final value must equal the
  number of successful updates. The same run without If-Match must lose
  updates (repeated a few times until it does), while one with If-Match
  beside it loses none: the check is what prevents them.
* PostgreSQL is stopped for a few seconds under steady load and started
  again (always, in a finally): meanwhile every answer is 503 with
  Retry-After, not a 500 or a hang; afterwards requests succeed without a
  server restart, and every write answered 2xx is in the database.
* Concurrent creates and updates through threaded servers (the dev server
  on SQLite, waitress threads on PostgreSQL), a unique nonce in every field:
  every row holds exactly one client's values.

All marked slow. PostgreSQL missing: skipped, or failed with
ROBACCIA_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from security_support import (
    AUDIT,
    Project,
    Site,
    build_project,
    drop_tables,
    record_audit,
    record_figure,
    serving,
    unique_prefix,
)
from support import POSTGRES_URL, TransportError, database_problem, missing, require_postgres

pytestmark = pytest.mark.slow

CLIENTS = 50
MAX_RETRIES = 400
RUN_SECONDS = 120
LOSS_ROUNDS = 5  # races run without If-Match until one loses an update


@pytest.fixture(scope="module")
def pg_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    url = require_postgres()
    project = build_project(tmp_path_factory.mktemp("scaleout"), "genshi", url, unique_prefix("o"))
    try:
        yield project
    finally:
        drop_tables(url, list(project.views.values()))
        record_audit()


@pytest.fixture(scope="module")
def two_sites(pg_project: Project) -> Iterator[tuple[Site, Site]]:
    with (
        serving(pg_project, "serve", workers=2) as first,
        serving(pg_project, "serve", workers=2) as second,
    ):
        yield first, second


def pg_engine() -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(POSTGRES_URL, connect_args={"connect_timeout": 5}, poolclass=NullPool)


def start_threads(
    target: Any, count: int, failures: list[str], lock: threading.Lock
) -> list[threading.Thread]:
    """Start ``count`` daemon threads running target(i); an exception becomes a failure."""

    def run(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # noqa: B036 - reported, never lost with the thread
            with lock:
                failures.append(f"thread {i}: {type(exc).__name__}: ...{str(exc)[-200:]}")

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads


# --- lost updates ---------------------------------------------------------------------------------


def _counter_race(sites: tuple[Site, Site], if_match: bool, updates: int) -> dict[str, Any]:
    view = sites[0].view("json")
    created = sites[0].client().request("POST", f"/{view}/", json_body={"count": 0})
    assert created.status == 201, created.text
    location = str(created.header("Location"))
    stats = {"successes": 0, "precondition_failed": 0, "attempts": 0, "gave_up": 0}
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)
    deadline = time.monotonic() + RUN_SECONDS

    def client(i: int) -> None:
        browsers = [site.client() for site in sites]
        for browser in browsers:
            browser.timeout = 30
        try:
            barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            pass
        for _ in range(updates):
            for attempt in range(MAX_RETRIES):
                if time.monotonic() > deadline:
                    with lock:
                        stats["gave_up"] += 1
                    return
                reader = browsers[(i + attempt) % 2]
                writer = browsers[(i + attempt + 1) % 2]
                try:
                    current = reader.request("GET", location)
                    if current.status != 200:
                        with lock:
                            errors.append(f"GET {current.status}")
                        continue
                    value = current.json()["count"]
                    headers = {"If-Match": str(current.header("ETag"))} if if_match else {}
                    answer = writer.request(
                        "PUT", location, json_body={"count": value + 1}, headers=headers
                    )
                except TransportError as exc:
                    with lock:
                        errors.append(str(exc)[:200])
                    continue
                with lock:
                    stats["attempts"] += 1
                    if answer.status == 200:
                        stats["successes"] += 1
                    elif answer.status == 412:
                        stats["precondition_failed"] += 1
                    else:
                        errors.append(f"PUT {answer.status}")
                if answer.status == 200:
                    break
            else:
                with lock:
                    stats["gave_up"] += 1

    start = time.monotonic()
    threads = start_threads(client, CLIENTS, errors, lock)
    for thread in threads:
        thread.join(timeout=RUN_SECONDS + 60)
    assert not any(t.is_alive() for t in threads), "client threads did not finish"
    final = sites[1].client().request("GET", location).json()["count"]
    return dict(
        stats,
        final=final,
        errors=errors,
        seconds=round(time.monotonic() - start, 1),
        lost=stats["successes"] - final,
    )


def test_no_lost_updates_with_if_match(two_sites: tuple[Site, Site]) -> None:
    result = _counter_race(two_sites, if_match=True, updates=2)
    record_figure(
        "lost_updates_with_if_match",
        clients=CLIENTS,
        servers="2 x serve (2 workers) on one PostgreSQL",
        **{k: v for k, v in result.items() if k != "errors"},
        errors=len(result["errors"]),
        summary=f"{CLIENTS} clients x 2 updates over 2 servers: {result['successes']} successful "
        f"updates, final value {result['final']}, lost updates {result['lost']}; "
        f"{result['precondition_failed']} 412s in {result['attempts']} attempts "
        f"({result['seconds']} s)",
    )
    assert result["errors"] == [], result["errors"][:10]
    assert result["successes"] > 0
    assert result["final"] == result["successes"]


def test_lost_updates_without_if_match_are_shown(two_sites: tuple[Site, Site]) -> None:
    """Without If-Match the same clients lose updates; with it, on the same servers, none.

    Every unconditional PUT is answered 200, yet the counter ends below the
    number of answers: two clients read the same value and both write it plus
    one. The race runs again (at most LOSS_ROUNDS times) until it loses an
    update, and it must: a server that let no update be lost here would make
    the If-Match test above prove nothing. Then the same race with If-Match
    loses none and is answered 412s: the check, not luck, kept every update.
    """
    updates = 2
    rounds: list[dict[str, Any]] = []
    for _ in range(LOSS_ROUNDS):
        blind = _counter_race(two_sites, if_match=False, updates=updates)
        rounds.append(blind)
        assert blind["errors"] == [], blind["errors"][:10]
        # Every read-modify-write was acknowledged: nothing refused, nothing retried.
        assert (blind["successes"], blind["attempts"]) == (CLIENTS * updates, CLIENTS * updates)
        assert (blind["precondition_failed"], blind["gave_up"]) == (0, 0)
        assert 1 <= blind["final"] <= blind["successes"]
        if blind["lost"] > 0:
            break
    guarded = _counter_race(two_sites, if_match=True, updates=updates)
    record_figure(
        "lost_updates_without_if_match",
        clients=CLIENTS,
        rounds=len(rounds),
        lost_per_round=[r["lost"] for r in rounds],
        **{k: v for k, v in blind.items() if k != "errors"},
        errors=len(blind["errors"]),
        with_if_match={k: v for k, v in guarded.items() if k != "errors"},
        summary=f"without If-Match: {blind['successes']} updates answered 200, final value "
        f"{blind['final']}: {blind['lost']} lost updates (round {len(rounds)} of at most "
        f"{LOSS_ROUNDS}); the same race with If-Match: {guarded['successes']} updates, final "
        f"value {guarded['final']}, {guarded['precondition_failed']} 412s",
    )
    assert blind["lost"] > 0, f"no update lost in {len(rounds)} rounds of {CLIENTS} clients"
    assert guarded["errors"] == [], guarded["errors"][:10]
    assert guarded["successes"] > 0
    assert guarded["final"] == guarded["successes"]
    assert guarded["precondition_failed"] > 0


# --- the database goes away -----------------------------------------------------------------------


def _pg_cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    local = urlsplit(POSTGRES_URL).hostname in ("127.0.0.1", "localhost", "::1")
    if not versions or shutil.which("pg_ctlcluster") is None or os.geteuid() != 0 or not local:
        missing(
            "pg_ctlcluster (as root) and a PostgreSQL URL on this machine are needed to "
            "stop and start PostgreSQL"
        )
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def _pg_reachable() -> bool:
    return database_problem(POSTGRES_URL, timeout=2) is None


@contextlib.contextmanager
def postgres_stopped(cluster: list[str]) -> Iterator[dict[str, float]]:
    """Stop PostgreSQL; always start it again and wait until it answers."""
    times: dict[str, float] = {}
    try:
        times["stopping"] = time.monotonic()
        subprocess.run(
            [*cluster, "stop", "-m", "fast"], check=True, timeout=60, capture_output=True
        )
        times["down"] = time.monotonic()
        yield times
    finally:
        times["starting"] = time.monotonic()
        subprocess.run([*cluster, "start"], check=False, timeout=120, capture_output=True)
        for _ in range(120):
            if _pg_reachable():
                break
            time.sleep(0.5)
        times["up"] = time.monotonic()


def test_database_restart_under_load(two_sites: tuple[Site, Site]) -> None:
    cluster = _pg_cluster()
    view = two_sites[0].view("json")
    records: list[dict[str, Any]] = []
    lock = threading.Lock()
    stop = threading.Event()
    base = 10**9 + (uuid.uuid4().int % 10**6) * 1000
    counter = iter(range(base, base + 10**6))

    def load(i: int) -> None:
        browser = two_sites[i % 2].client()
        browser.timeout = 20
        n = 0
        while not stop.is_set() and n < 5000:
            n += 1
            started = time.monotonic()
            nonce = None
            try:
                if n % 2:
                    response = browser.request("GET", f"/{view}/?limit=5")
                else:
                    with lock:
                        nonce = next(counter)
                    response = browser.request("POST", f"/{view}/", json_body={"count": nonce})
                status, retry = response.status, response.header("Retry-After")
            except TransportError as exc:
                status, retry = None, None
                with lock:
                    records.append({"error": str(exc)[:200]})
            with lock:
                records.append(
                    {
                        "start": started,
                        "end": time.monotonic(),
                        "status": status,
                        "retry_after": retry,
                        "nonce": nonce,
                        "site": i % 2,
                    }
                )
            time.sleep(0.02)

    thread_failures: list[str] = []
    threads = start_threads(load, 6, thread_failures, lock)
    try:
        time.sleep(2)
        with postgres_stopped(cluster) as times:
            time.sleep(4)
        deadline = time.monotonic() + 30
        recovered = None
        while time.monotonic() < deadline and recovered is None:
            time.sleep(0.2)
            with lock:
                after = [
                    r
                    for r in records
                    if r.get("start", 0) >= times["up"] and r.get("status") and r["status"] < 300
                ]
            if after:
                recovered = min(r["end"] for r in after)
        time.sleep(3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert _pg_reachable(), "PostgreSQL did not come back"
    done = [r for r in records if "status" in r]
    transport_errors = [r["error"] for r in records if "error" in r]
    hung = [r for r in done if r["status"] is None]
    server_errors = [r for r in done if r["status"] and r["status"] >= 500 and r["status"] != 503]
    unavailable = [r for r in done if r["status"] == 503]
    without_retry_after = [r for r in unavailable if not r["retry_after"]]
    while_down = [r for r in done if r["start"] >= times["down"] and r["end"] <= times["starting"]]
    down_ok = [r for r in while_down if r["status"] == 503 and r["retry_after"]]
    assert recovered is not None, "no request succeeded after PostgreSQL came back"
    late = [r for r in done if r["start"] >= recovered + 1.0]
    late_failures = [r for r in late if r["status"] is None or r["status"] >= 300]
    acknowledged = {r["nonce"] for r in done if r["nonce"] is not None and r["status"] == 201}
    engine = pg_engine()
    try:
        from sqlalchemy import text

        with engine.connect() as conn:
            stored = {
                row[0]
                for row in conn.execute(
                    text(f'SELECT "count" FROM "{view}" WHERE "count" >= :low'), {"low": base}
                )
            }
    finally:
        engine.dispose()
    missing = acknowledged - stored
    record_figure(
        "database_restart",
        requests=len(done),
        while_down=len(while_down),
        while_down_503_with_retry_after=len(down_ok),
        server_errors=len(server_errors),
        hung=len(hung) + len(transport_errors),
        responses_503=len(unavailable),
        recovery_seconds=round(recovered - times["up"], 2),
        failures_after_recovery=len(late_failures),
        writes_acknowledged=len(acknowledged),
        acknowledged_writes_missing=len(missing),
        summary=f"PostgreSQL stopped {times['starting'] - times['down']:.1f} s under load from 6 "
        f"clients on 2 servers: {len(done)} requests, {len(while_down)} while down, all "
        f"503 + Retry-After: {len(down_ok) == len(while_down)}; 0 restarts; first 2xx "
        f"{recovered - times['up']:.2f} s after it answered again, {len(late_failures)} "
        f"failures after that; {len(acknowledged)} writes answered 201, {len(missing)} "
        "missing",
    )
    assert not thread_failures, thread_failures[:5]
    assert not transport_errors and not hung, (transport_errors + hung)[:5]
    assert not server_errors, server_errors[:5]
    assert not without_retry_after, without_retry_after[:5]
    assert while_down and len(down_ok) == len(while_down), [r["status"] for r in while_down][:20]
    assert recovered - times["up"] <= 10
    assert not late_failures, late_failures[:5]
    assert not missing, sorted(missing)[:10]
    assert all(site.process is not None and site.process.poll() is None for site in two_sites)


# --- per-request state under threads --------------------------------------------------------------


def _nonce_race(site: Site, fetch_rows: Any, clients: int = 16, rounds: int = 10) -> dict[str, Any]:
    """Concurrent create / read / update, a nonce in every field; then check every row.

    A request lost to a transport error (connection reset) is not retried: its
    nonce is "unacknowledged", and a row holding it is fine as long as it holds
    nothing else.
    """
    view = site.view("html")
    allowed: dict[int, set[int]] = {}  # row id -> the nonces it may hold
    unacknowledged: set[int] = set()
    problems: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)
    counts = {"requests": 0, "resets": 0}

    def fields(nonce: int) -> list[tuple[str, str]]:
        return [("name", f"n{nonce}"), ("title", f"t{nonce}"), ("office_number", str(nonce))]

    def send(browser: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            counts["requests"] += 1
        try:
            return browser.request(*args, **kwargs)
        except TransportError:
            with lock:
                counts["resets"] += 1
            return None

    def client(i: int) -> None:
        browser = site.client()
        browser.timeout = 30
        token = browser.token
        try:
            barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            pass
        for r in range(rounds):
            first = 1_000_000 + i * 10_000 + r * 10
            created = send(browser, "POST", f"/{view}/", form=fields(first) + [("_csrf", token)])
            if created is None:
                with lock:
                    unacknowledged.add(first)
                continue
            if created.status != 303:
                with lock:
                    problems.append(f"create {created.status}")
                continue
            location = str(created.header("Location"))
            id = int(location.rsplit("/", 1)[1])
            with lock:
                if id in allowed:
                    problems.append(f"id {id} given to two creates")
                allowed[id] = {first}
            shown = send(browser, "GET", location)
            if shown is not None and (
                shown.status != 200
                or f"n{first}" not in shown.text
                or shown.header("Content-Type") != "text/html; charset=utf-8"
            ):
                with lock:
                    problems.append(
                        f"client {i} read {location}: {shown.status}, own nonce shown: "
                        f"{f'n{first}' in shown.text}"
                    )
            second = first + 1
            updated = send(
                browser,
                "POST",
                location,
                form=fields(second) + [("_method", "PUT"), ("_csrf", token)],
            )
            with lock:
                if updated is None:
                    allowed[id] = {first, second}
                elif updated.status != 303 or updated.header("Location") != location:
                    problems.append(
                        f"update {updated.status} {updated.header('Location')} != {location}"
                    )
                else:
                    allowed[id] = {second}

    start = time.monotonic()
    threads = start_threads(client, clients, problems, lock)
    for thread in threads:
        thread.join(timeout=180)
    assert not any(t.is_alive() for t in threads)
    rows = fetch_rows(view)

    def consistent(row: Any) -> int | None:
        """The one nonce a row holds in every field, or None when fields disagree."""
        nonce = row[2]
        return nonce if row == (f"n{nonce}", f"t{nonce}", nonce) else None

    mixed = 0
    for id, nonces in allowed.items():
        row = rows.get(id)
        if row is None or consistent(row) not in nonces:
            mixed += 1
            problems.append(f"row {id}: {row} (expected one of {sorted(nonces)})")
    ours = {id for id, row in rows.items() if row[2] is not None and row[2] >= 1_000_000}
    strays = [id for id in ours - set(allowed) if consistent(rows[id]) not in unacknowledged]
    problems += [f"row {id} created by no client: {rows[id]}" for id in sorted(strays)[:5]]
    return {
        "requests": counts["requests"],
        "connection_resets": counts["resets"],
        "rows": len(allowed),
        "mixed_rows": mixed,
        "stray_rows": len(strays),
        "problems": problems,
        "seconds": round(time.monotonic() - start, 1),
    }


def _sqlite_rows(project: Project) -> Any:
    def fetch(view: str) -> dict[int, tuple[Any, ...]]:
        with project.sqlite() as conn:
            return {
                r[0]: (r[1], r[2], r[3])
                for r in conn.execute(f'SELECT id, name, title, office_number FROM "{view}"')
            }

    return fetch


def _pg_rows(view: str) -> dict[int, tuple[Any, ...]]:
    from sqlalchemy import text

    engine = pg_engine()
    try:
        with engine.connect() as conn:
            return {
                r[0]: (r[1], r[2], r[3])
                for r in conn.execute(text(f'SELECT id, name, title, office_number FROM "{view}"'))
            }
    finally:
        engine.dispose()


def _record_nonces(name: str, server: str, result: dict[str, Any]) -> None:
    record_figure(
        name,
        server=server,
        **{k: v for k, v in result.items() if k != "problems"},
        problems=len(result["problems"]),
        summary=f"{server}: {result['requests']} concurrent creates, reads and updates "
        f"(16 clients, "
        f"a nonce in every field): {result['mixed_rows']} rows mixing clients' values, "
        f"{result['stray_rows']} stray rows, {len(result['problems'])} problems, "
        f"{result['connection_resets']} connections reset",
    )


def test_threaded_dev_server_keeps_requests_apart(tmp_path: Path) -> None:
    project = build_project(tmp_path, "jinja2")
    with serving(project, "run") as site:
        result = _nonce_race(site, _sqlite_rows(project))
    _record_nonces("per_request_state_dev_server_sqlite", "threaded dev server, SQLite", result)
    assert not result["problems"], result["problems"][:10]


def test_gthread_workers_keep_requests_apart(pg_project: Project) -> None:
    with serving(pg_project, "serve", extra_args=("--threads", "8"), workers=2) as site:
        result = _nonce_race(site, _pg_rows)
    _record_nonces(
        "per_request_state_gthread_postgresql", "serve: 2 workers x 8 threads, PostgreSQL", result
    )
    assert not result["problems"], result["problems"][:10]
    assert result["connection_resets"] == 0


def test_dev_server_accepts_concurrent_posts(tmp_path: Path) -> None:
    project = build_project(tmp_path, "jinja2")
    with serving(project, "run") as site:
        failures: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(48)

        def client(i: int) -> None:
            browser = site.client()
            token = browser.token
            barrier.wait(timeout=60)
            for r in range(3):
                browser.request(
                    "POST", f"/{site.view('html')}/", form=[("name", f"c{i}-{r}"), ("_csrf", token)]
                )

        for thread in start_threads(client, 48, failures, lock):
            thread.join(timeout=120)
    record_figure(
        "dev_server_concurrent_posts",
        clients=48,
        posts=144,
        clients_reset=len(failures),
        summary=f"threaded dev server: 48 clients x 3 concurrent POSTs, {len(failures)} "
        "clients had a connection reset",
    )
    assert not failures, failures[:3]


def test_audit_so_far() -> None:
    assert not AUDIT.leaks, AUDIT.leaks[:5]
    assert not AUDIT.server_errors, AUDIT.server_errors[:5]

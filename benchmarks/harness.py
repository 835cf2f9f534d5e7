"""Calling WSGI apps in process: fresh environs, verification, interleaved timing."""

from __future__ import annotations

import gc
import io
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from common import BY_KEY, Context, Scenario, base_environ
from robaccia_apps import app_for

from robaccia.testing import call

Case = tuple[str, str]  # (scenario key, contestant)


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return _write


def _write(data: bytes) -> None:
    pass


class Harness:
    """The apps of one process, each built once and shared by the scenarios that use it."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._apps: dict[tuple[str, str], Any] = {}
        self._bases: dict[str, tuple[dict[str, Any], bytes]] = {}

    def app(self, scenario: str, contestant: str) -> Any:
        key = (contestant, BY_KEY[scenario].app)
        if key not in self._apps:
            self._apps[key] = app_for(contestant, key[1], self.ctx)
        return self._apps[key]

    def environs(self, scenario: str, n: int) -> list[dict[str, Any]]:
        """n fresh environs for this scenario's request, as a server would make them."""
        if scenario not in self._bases:
            self._bases[scenario] = base_environ(BY_KEY[scenario], self.ctx)
        base, body = self._bases[scenario]
        return [dict(base, **{"wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr})
                for _ in range(n)]

    def call(self, scenario: str, contestant: str) -> tuple[str, list[tuple[str, str]], bytes]:
        """Serve one request of a scenario; return its status, headers and body."""
        return call(self.app(scenario, contestant), environ=self.environs(scenario, 1)[0])


def from_environment() -> Any:
    """The app gunicorn serves in run.py's HTTP phase: ``harness:from_environment()``."""
    harness = Harness(Context.load(os.environ["BENCH_CONTEXT"]))
    return harness.app(os.environ["BENCH_SCENARIO"], os.environ["BENCH_CONTESTANT"])


def run_batch(app: Any, envs: list[dict[str, Any]]) -> int:
    """Serve every environ, consuming and closing each body; return nanoseconds."""
    start_response = _start_response
    t0 = time.perf_counter_ns()
    for env in envs:
        result = app(env, start_response)
        for _ in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return time.perf_counter_ns() - t0


class VerificationError(AssertionError):
    pass


def verify(h: Harness, scenario: Scenario) -> tuple[bytes, dict[str, int]]:
    """Check that every contestant answers with the expected status and raw's exact body.

    Returns raw's body and the body length per contestant.
    """
    reference: bytes | None = None
    sizes = {}
    for contestant in scenario.contestants:
        for _ in range(2):  # the first call may warm caches; check the steady answer
            status, headers, body = h.call(scenario.key, contestant)
        where = f"{scenario.key}/{contestant}"
        if int(status.split()[0]) != scenario.expect:
            raise VerificationError(f"{where}: status {status!r}, expected {scenario.expect}; "
                                    f"body {body[:300]!r}")
        if scenario.expect == 303:
            location = next((v for k, v in headers if k.lower() == "location"), "")
            if "/employees/" not in location or not location.rsplit("/", 1)[1].isdigit():
                raise VerificationError(f"{where}: Location {location!r}")
        if reference is None:
            reference = body
        elif body != reference:
            at = next((i for i, (a, b) in enumerate(zip(body, reference, strict=False)) if a != b),
                      min(len(body), len(reference)))
            raise VerificationError(
                f"{where}: body differs from raw's at byte {at} ({len(body)} vs "
                f"{len(reference)} bytes):\n  {contestant}: {body[max(0, at - 60):at + 60]!r}\n"
                f"  raw: {reference[max(0, at - 60):at + 60]!r}")
        sizes[contestant] = len(body)
    assert reference is not None
    return reference, sizes


@dataclass
class Timing:
    samples: dict[Case, list[float]] = field(default_factory=dict)  # µs/request per batch
    seconds: float = 0.0

    def stats(self, case: Case) -> tuple[float, float]:
        """min and median µs/request over the rounds."""
        return min(self.samples[case]), statistics.median(self.samples[case])


def time_cases(h: Harness, cases: list[Case], rounds: int, target_s: float,
               progress: Any = None) -> Timing:
    """Interleaved, shuffled rounds: each round runs one batch of every case in a new order."""
    timing = Timing()
    start = time.perf_counter()
    batch = {}
    for scenario, contestant in cases:  # warm up and size each case's batch to ~target_s
        app, n, spent = h.app(scenario, contestant), 4, 0.0
        while spent < 0.05 and n <= 256:
            ns = run_batch(app, h.environs(scenario, n))
            spent += ns / 1e9
            per, n = ns / n / 1e9, n * 2
        batch[(scenario, contestant)] = int(max(3, min(2000, target_s / max(per, 1e-7))))
        timing.samples[(scenario, contestant)] = []
    gc.collect()
    gc.freeze()  # everything built so far is permanent: collections see only new garbage
    rng = random.Random(7)
    order = list(cases)
    for r in range(rounds):
        rng.shuffle(order)
        for case in order:
            envs = h.environs(case[0], batch[case])
            app = h.app(*case)
            gc.collect()
            timing.samples[case].append(run_batch(app, envs) / len(envs) / 1000)
        if progress and (r + 1) % 5 == 0:
            progress(f"  round {r + 1}/{rounds}")
    timing.seconds = time.perf_counter() - start
    return timing

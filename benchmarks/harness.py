"""Calling WSGI apps in process: fresh environs, verification, interleaved timing."""

from __future__ import annotations

import gc
import io
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from common import SCENARIOS, Context, Scenario, base_environ
from robaccia_apps import scenario_app

from robaccia.testing import call

Case = tuple[str, str]  # (scenario key, contestant)


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return _write


def _write(data: bytes) -> None:
    pass


class Harness:
    """The apps of one process, each built once and shared by the scenarios that use it."""

    def __init__(self, ctx: Context, scenarios: list[Scenario] | None = None) -> None:
        self.ctx = ctx
        self.scenarios = {s.key: s for s in (scenarios or SCENARIOS)}
        self._apps: dict[tuple[str, str], Any] = {}
        self._bases: dict[str, tuple[dict[str, Any], bytes]] = {}

    def app(self, scenario: str, contestant: str) -> Any:
        s = self.scenarios[scenario]
        key = (contestant, s.app)
        if key not in self._apps:
            self._apps[key] = scenario_app(contestant, s, self.ctx)
        return self._apps[key]

    def environs(self, scenario: str, n: int) -> list[dict[str, Any]]:
        """n fresh environs for this scenario's request, as a server would make them."""
        if scenario not in self._bases:
            self._bases[scenario] = base_environ(self.scenarios[scenario], self.ctx)
        base, body = self._bases[scenario]
        errors = sys.stderr
        out = []
        for _ in range(n):
            env = dict(base)
            env["wsgi.input"] = io.BytesIO(body)
            env["wsgi.errors"] = errors
            out.append(env)
        return out

    def call(self, scenario: str, contestant: str) -> tuple[str, list[tuple[str, str]], bytes]:
        """Serve one request of a scenario; return its status, headers and body."""
        app = self.app(scenario, contestant)
        return call(app, environ=self.environs(scenario, 1)[0])


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


def verify(h: Harness, scenario: Scenario) -> dict[str, int]:
    """Check that every contestant answers with the expected status and raw's exact body.

    Returns the body length per contestant.
    """
    reference: bytes | None = None
    sizes = {}
    for contestant in scenario.contestants:
        for _ in range(2):  # the first call may warm caches; check the steady answer
            status, headers, body = h.call(scenario.key, contestant)
        code = int(status.split()[0])
        if code != scenario.expect:
            raise VerificationError(f"{scenario.key}/{contestant}: status {status!r}, expected "
                                    f"{scenario.expect}; body {body[:300]!r}")
        if scenario.expect == 303:
            location = next((v for k, v in headers if k.lower() == "location"), "")
            tail = location.rsplit("/employees/", 1)[-1]
            if "/employees/" not in location or not tail.isdigit():
                raise VerificationError(f"{scenario.key}/{contestant}: Location {location!r}")
        if reference is None:
            reference = body
        elif body != reference:
            at = next((i for i, (a, b) in enumerate(zip(body, reference, strict=False)) if a != b),
                      min(len(body), len(reference)))
            raise VerificationError(
                f"{scenario.key}/{contestant}: body differs from raw's at byte {at} "
                f"({len(body)} vs {len(reference)} bytes):\n  {contestant}: "
                f"{body[max(0, at - 60):at + 60]!r}\n  raw: {reference[max(0, at - 60):at + 60]!r}")
        sizes[contestant] = len(body)
    return sizes


@dataclass
class Timing:
    samples: dict[Case, list[float]] = field(default_factory=dict)  # µs/request per batch
    batch: dict[Case, int] = field(default_factory=dict)
    seconds: float = 0.0

    def stats(self, case: Case) -> tuple[float, float]:
        values = self.samples[case]
        return min(values), statistics.median(values)


def calibrate(h: Harness, case: Case, target_s: float, max_batch: int) -> tuple[int, float]:
    """Warm a case up and choose its batch size; return (batch, µs/request estimate)."""
    scenario, contestant = case
    app = h.app(scenario, contestant)
    n, spent = 4, 0.0
    per = 0.0
    while spent < 0.05 and n <= 256:
        envs = h.environs(scenario, n)
        ns = run_batch(app, envs)
        per = ns / n / 1e9
        spent += ns / 1e9
        n *= 2
    batch = int(max(3, min(max_batch, target_s / max(per, 1e-7))))
    return batch, per * 1e6


def time_cases(h: Harness, cases: list[Case], rounds: int, target_s: float,
               max_batch: int = 2000, seed: int = 7, progress: Any = None) -> Timing:
    """Interleaved, shuffled rounds: each round runs one batch of every case in a new order."""
    timing = Timing()
    start = time.perf_counter()
    for case in cases:
        timing.batch[case], _ = calibrate(h, case, target_s, max_batch)
        timing.samples[case] = []
    gc.collect()
    gc.freeze()  # everything built so far is permanent: collections see only new garbage
    rng = random.Random(seed)
    order = list(cases)
    for r in range(rounds):
        rng.shuffle(order)
        for case in order:
            scenario, contestant = case
            envs = h.environs(scenario, timing.batch[case])
            app = h.app(scenario, contestant)
            gc.collect()
            ns = run_batch(app, envs)
            timing.samples[case].append(ns / len(envs) / 1000)
        if progress:
            progress(r + 1, rounds)
    timing.seconds = time.perf_counter() - start
    return timing

"""Turn one run into the console summary, RESULTS.md and baseline.json."""

from __future__ import annotations

import datetime
import json
import platform
import statistics
from dataclasses import dataclass
from typing import Any

from common import Scenario
from harness import Timing

PEERS = ("falcon", "bottle", "pyramid", "flask", "django")  # "sa" is a baseline, not a peer
NAMES = {"raw": "raw WSGI", "sa": "raw WSGI + SQLAlchemy Core", "falcon": "Falcon",
         "bottle": "Bottle", "pyramid": "Pyramid", "flask": "Flask", "django": "Django",
         "robaccia": "robaccia"}


@dataclass
class Run:
    argv: list[str]
    started: float
    finished: float
    load: tuple[tuple[float, float, float], tuple[float, float, float]]
    machine: dict[str, str]
    scenarios: list[Scenario]
    timing: Timing
    sizes: dict[str, dict[str, int]]
    instructions: dict[tuple[str, str], float]
    cg_note: str
    http: dict[tuple[str, str], dict[str, Any]]
    http_note: str
    http_seconds: int
    http_rounds: int
    baseline: dict[str, Any] | None
    rounds: int
    batch_ms: float

    def has(self, scenario: str, contestant: str = "robaccia") -> bool:
        return (scenario, contestant) in self.timing.samples

    def median(self, scenario: str, contestant: str) -> float:
        return self.timing.stats((scenario, contestant))[1]

    def minimum(self, scenario: str, contestant: str) -> float:
        return self.timing.stats((scenario, contestant))[0]

    def instr(self, scenario: str, contestant: str) -> float | None:
        return self.instructions.get((scenario, contestant))

    def base_instr(self, scenario: str, contestant: str) -> float | None:
        if not self.baseline:
            return None
        value = self.baseline.get("instructions", {}).get(f"{scenario}/{contestant}")
        return float(value) if value is not None else None


def label(scenario: Scenario, contestant: str) -> str:
    if contestant not in ("raw", "sa"):
        return NAMES[contestant]
    if contestant == "sa":
        name = "raw WSGI + SQLAlchemy Core"
    elif scenario.key in ("plumbing", "convention"):
        return "raw WSGI"
    else:
        name = "raw WSGI + " + ("psycopg" if scenario.app == "deep_pg" else "sqlite3")
    if scenario.key.startswith("genshi"):
        name += " + cached Genshi"
    elif scenario.key.startswith("html"):
        name += " + Template.render"
    return name


def _n(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def _delta(now: float | None, before: float | None) -> str:
    if now is None or before is None or before == 0:
        return "–"
    change = (now - before) / before * 100
    return f"{change:+.1f}%"


# --- targets ---------------------------------------------------------------------------


@dataclass
class Verdict:
    target: str
    met: bool | None  # None: not measured in this run
    measured: str


def _faster(run: Run, scenario: str, rivals: tuple[str, ...], what: str) -> Verdict:
    if not run.has(scenario):
        return Verdict(what, None, "not run")
    mine = run.median(scenario, "robaccia")
    rivals = tuple(r for r in rivals if run.has(scenario, r))
    best = min(rivals, key=lambda r: run.median(scenario, r))
    ratio = mine / run.median(scenario, best)
    mins = run.minimum(scenario, "robaccia") / run.minimum(scenario, best)
    text = (f"robaccia {mine:,.1f} µs vs fastest peer {NAMES[best]} "
            f"{run.median(scenario, best):,.1f} µs (median): {ratio:.2f}× (min: {mins:.2f}×")
    i_mine, i_best = run.instr(scenario, "robaccia"), run.instr(scenario, best)
    if i_mine and i_best:
        text += f"; instructions: {i_mine / i_best:.2f}×"
    return Verdict(what, ratio < 1.0, text + ")")


def _within(run: Run, scenario: str, limit: float, what: str, base: str) -> Verdict:
    if not run.has(scenario) or not run.has(scenario, base):
        return Verdict(what, None, "not run")
    ratio = run.median(scenario, "robaccia") / run.median(scenario, base)
    mins = run.minimum(scenario, "robaccia") / run.minimum(scenario, base)
    text = f"{ratio:.2f}× (median; min: {mins:.2f}×"
    i_mine, i_base = run.instr(scenario, "robaccia"), run.instr(scenario, base)
    if i_mine and i_base:
        text += f"; instructions: {i_mine / i_base:.2f}×"
    return Verdict(what, ratio <= limit, text + f"); limit {limit}×")


def _deep(run: Run, db: str, what: str) -> Verdict:
    first, deep = f"deep_{db}_first", f"deep_{db}_deep"
    if not (run.has(first) and run.has(deep)):
        return Verdict(what, None, "not run")
    ratio = run.median(deep, "robaccia") / run.median(first, "robaccia")
    mins = run.minimum(deep, "robaccia") / run.minimum(first, "robaccia")
    deep_us, first_us = run.median(deep, "robaccia"), run.median(first, "robaccia")
    return Verdict(what, ratio <= 1.5, f"{deep_us:,.1f} vs {first_us:,.1f} µs: {ratio:.2f}× "
                                       f"(min: {mins:.2f}×); limit 1.5×")


def targets(run: Run) -> list[Verdict]:
    out = [_faster(run, "plumbing", ("falcon",), "Plumbing: faster than Falcon")]
    i_mine, i_raw = run.instr("plumbing", "robaccia"), run.instr("plumbing", "raw")
    if i_mine and i_raw:
        out.append(Verdict("Plumbing: ≤ 1.6× raw WSGI in instructions", i_mine / i_raw <= 1.6,
                           f"{i_mine:,.0f} vs {i_raw:,.0f} instructions: {i_mine / i_raw:.2f}×"))
    else:
        out.append(Verdict("Plumbing: ≤ 1.6× raw WSGI in instructions", None, "not counted"))
    out.append(_faster(run, "convention", ("falcon",), "Convention route: faster than Falcon"))
    out += [
        _faster(run, "json_member", PEERS, "JSON member: faster than every peer"),
        _faster(run, "html_member", PEERS, "HTML member (Jinja2): faster than every peer"),
        _faster(run, "html_list", PEERS, "List page (Jinja2): faster than every peer"),
        _faster(run, "create", PEERS, "Create: faster than every peer"),
    ]
    for key, limit, what in (
        ("html_member", 1.2, "Jinja2 member page: ≤ 1.2× Template.render + query"),
        ("html_list", 1.2, "Jinja2 list page: ≤ 1.2× Template.render + query"),
        ("genshi_member", 1.1, "Genshi member page: ≤ 1.1× bare cached Genshi + query"),
        ("genshi_list", 1.1, "Genshi list page: ≤ 1.1× bare cached Genshi + query"),
    ):
        out.append(_within(run, key, limit, what + " (SQLAlchemy Core, as robaccia)", "sa"))
        out.append(_within(run, key, limit, what + " (sqlite3 DB-API)", "raw"))
    out += [
        _deep(run, "sqlite", "Deep page ≤ 1.5× first page, SQLite"),
        _deep(run, "pg", "Deep page ≤ 1.5× first page, PostgreSQL"),
    ]
    return out


def _mark(v: Verdict) -> str:
    return {True: "met", False: "MISSED", None: "not measured"}[v.met]


# --- rows -------------------------------------------------------------------------------


def rows(run: Run, s: Scenario) -> list[list[str]]:
    raw_med = run.median(s.key, "raw")
    raw_i = run.instr(s.key, "raw")
    out = []
    for c in s.contestants:
        lo, med = run.minimum(s.key, c), run.median(s.key, c)
        ins = run.instr(s.key, c)
        out.append([label(s, c), _n(lo), _n(med), _n(1e6 / med, 0), _ratio(med, raw_med),
                    _n(ins, 0), _ratio(ins, raw_i), _delta(ins, run.base_instr(s.key, c))])
    return out


HEAD = ["contestant", "min µs", "median µs", "req/s per core", "× raw (median)",
        "instructions/req", "× raw (instr.)", "instr. vs baseline"]


def _table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def _text_table(head: list[str], body: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths, strict=True)))
    return "\n".join([fmt(head), *(fmt(r) for r in body)])


def _http_rows(run: Run, s: Scenario) -> list[list[str]]:
    raw = run.http.get((s.key, "raw"), {}).get("rps")
    out = []
    for c in s.contestants:
        r = run.http.get((s.key, c))
        if not r:
            continue
        rounds = ", ".join(f"{x:,.0f}" for x in r.get("runs", []))
        out.append([label(s, c), _n(r.get("rps"), 0), rounds, _n(r.get("latency_ms"), 2),
                    _ratio(r.get("rps"), raw), str(r.get("errors", 0))])
    return out


HTTP_HEAD = ["contestant", "req/s (best)", "req/s per round", "mean latency ms (best)",
             "× raw (req/s)", "errors"]


# --- outputs ---------------------------------------------------------------------------


def console(run: Run) -> str:
    parts = [""]
    for s in run.scenarios:
        parts.append(f"== {s.title}  [body {run.sizes[s.key]['raw']} bytes]")
        parts.append(_text_table(HEAD, rows(run, s)))
        parts.append("")
    if run.http:
        parts.append("== over HTTP (gunicorn, 1 sync worker; wrk -t1 -c2)")
        for s in run.scenarios:
            body = _http_rows(run, s)
            if body:
                parts.append(f"-- {s.key}")
                parts.append(_text_table(HTTP_HEAD, body))
        parts.append("")
    parts.append("== targets")
    for v in targets(run):
        parts.append(f"{_mark(v):<13} {v.target}: {v.measured}")
    if run.baseline:
        changes = [(k, run.instructions[k], run.base_instr(*k)) for k in run.instructions
                   if run.base_instr(*k)]
        if changes:
            parts.append("")
            parts.append("== instructions vs baseline.json (robaccia)")
            for (scenario, contestant), now, before in changes:
                if contestant == "robaccia":
                    parts.append(f"{scenario:<20} {now:>12,.0f}  {_delta(now, before)}")
    if run.cg_note:
        parts.append(f"instruction counts: {run.cg_note}")
    if run.http_note:
        parts.append(f"HTTP: {run.http_note}")
    return "\n".join(parts)


def markdown(run: Run) -> str:
    when = datetime.datetime.fromtimestamp(run.started, datetime.UTC)
    minutes = (run.finished - run.started) / 60
    (l1, _, _), (e1, _, _) = run.load
    out = [
        "# robaccia benchmarks: results",
        "",
        f"Generated by `{' '.join(run.argv)}` on {when:%Y-%m-%d %H:%M} UTC "
        f"({minutes:.1f} minutes). **Do not edit by hand**: run the benchmark again "
        "(`make bench`, or `python benchmarks/run.py --http`). How it works: "
        "[README.md](README.md).",
        "",
        "## Machine and versions",
        "",
        _table(["", ""], [[k, v] for k, v in run.machine.items()]),
        "",
        f"Load average (1 min) at the start {l1:.2f}, at the end {e1:.2f}"
        + (" — **the machine was busy: times are noisy (instruction counts are not)**."
           if max(l1, e1) > 1.5 else "."),
        "",
        "## Method",
        "",
        f"- One process, every contestant side by side: {run.rounds} interleaved rounds; each "
        f"round runs one batch (~{run.batch_ms:.0f} ms) of every contestant × scenario in a new "
        "random order. Each request gets a fresh environ (built before the batch, as a server "
        "would); the body is consumed and `close()` called. µs/request is the batch time over "
        "its size; **min** and **median** are over the rounds. req/s per core = 10⁶ / median. "
        "× raw divides by raw WSGI's median in the same run.",
        "- Instructions per request: callgrind, in worker processes (`cg_worker.py`): two runs "
        "of n₁ and n₂ requests fenced by dumps; (Ir₂ − Ir₁) / (n₂ − n₁). Start-up and the fences "
        "cancel. Client side only: the PostgreSQL server's work is not counted.",
        "- Before timing, every contestant's answer to every scenario is checked: same status "
        "and the same body as raw WSGI's, byte for byte (create: 303, empty body, Location "
        "`/employees/<id>`).",
        "- robaccia is used as a user gets it: projects made by `robaccia-admin createproject` "
        "+ `addmodelview` in a scratch folder, their generated `dispatcher.py`, views, "
        "settings and project middleware (CSRF, security headers) unchanged. HTML requests "
        "carry the project's CSRF cookie, as a browser's would after its first visit; the "
        "create form carries the token too.",
        "- Peers: one small app per scenario, written as each framework's documentation shows, "
        "with SQLAlchemy Core as its tutorial shows it (the same SQL statements as robaccia, the "
        "default pool, reads in `engine.connect()`, the insert in `engine.begin()`), the same "
        "template files rendered with jinja2 (or Genshi) directly and the same validation on "
        "create. Django runs with no middleware and no apps. robaccia's own choices are part of "
        "what is measured: its statements compiled once and run on the pool's DB-API connection "
        "(`robaccia/prepared.py`, with SQLAlchemy's type conversions and exceptions), autocommit "
        "reads on PostgreSQL, a ping for a pooled server connection that sat idle, CSRF, ETags "
        "and flash cookies.",
        "- Baselines: **raw WSGI** routes by hand and uses the DB-API driver (sqlite3, psycopg) "
        "directly: the limit. **raw WSGI + SQLAlchemy Core** is the same hand-written app on the "
        "peers' SQLAlchemy code: the difference between a framework and it is the framework's "
        "own overhead.",
        "- Data: 200 employees in a SQLite file on tmpfs (WAL); 1,000,000 rows for the keyset "
        "pages in a cached SQLite file and in PostgreSQL (table `benchdeep`).",
        "",
        "## Targets",
        "",
        "Verdicts use the median µs; the min and instruction ratios are shown beside it.",
        "",
        _table(["target", "verdict", "measured"],
               [[v.target, _mark(v), v.measured] for v in targets(run)]),
        "",
        "## In process, per scenario",
        "",
    ]
    for s in run.scenarios:
        out += [f"### {s.title}", ""]
        detail = f"`{s.method} {s.path}{'?' + s.query if s.query else ''}`, response body " \
                 f"{run.sizes[s.key]['raw']:,} bytes (status {s.expect})."
        out += [detail + (" " + s.note if s.note else ""), "", _table(HEAD, rows(run, s)), ""]
    if run.cg_note:
        out += [f"Instruction counts: {run.cg_note}.", ""]
    out += ["## Over HTTP", ""]
    if run.http:
        out += [f"Informative: every app under its own gunicorn (1 sync worker, so every request "
                f"is a new connection), all started first; then {run.http_rounds} rounds, each "
                f"driving every app in a new random order with `wrk -t1 -c2 "
                f"-d{run.http_seconds}s` on 127.0.0.1; the best round counts. Servers and wrk "
                "are pinned to different cores where taskset exists. raw WSGI is the ceiling. "
                "A new connection and gunicorn's own work per request cost far more than most "
                "apps here: differences of a few tens of percent are within the noise (compare "
                "the rounds).", ""]
        for s in run.scenarios:
            body = _http_rows(run, s)
            if body:
                out += [f"### {s.title}", "", _table(HTTP_HEAD, body), ""]
    if run.http_note:
        out += [f"{run.http_note[0].upper()}{run.http_note[1:]}.", ""]
    return "\n".join(out)


def baseline_json(run: Run) -> str:
    counts = {f"{s}/{c}": round(v) for (s, c), v in sorted(run.instructions.items())}
    doc = {
        "about": "Instructions per request (callgrind) from benchmarks/run.py --save-baseline; "
                 "each run prints its change against these.",
        "python": platform.python_version(),
        "generated": datetime.datetime.fromtimestamp(run.finished, datetime.UTC)
        .strftime("%Y-%m-%d"),
        "instructions": counts,
    }
    return json.dumps(doc, indent=2) + "\n"


def spread(values: list[float]) -> float:
    return statistics.pstdev(values) / statistics.mean(values) if len(values) > 1 else 0.0

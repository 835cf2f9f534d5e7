"""Turn one run into the targets' verdicts, the console summary, RESULTS.md and baseline.json."""

from __future__ import annotations

import datetime
import json
import platform
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
    load: tuple[float, float]  # 1-minute load average at the start and at the end
    machine: dict[str, str]
    scenarios: list[Scenario]
    timing: Timing
    sizes: dict[str, dict[str, int]]
    instructions: dict[tuple[str, str], float]
    cg_note: str
    http: dict[tuple[str, str], dict[str, Any]]
    http_note: str
    http_seconds: int
    baseline: dict[str, Any] | None
    rounds: int
    batch_ms: float

    def has(self, scenario: str, contestant: str = "robaccia") -> bool:
        return (scenario, contestant) in self.timing.samples

    def minimum(self, scenario: str, contestant: str) -> float:
        return self.timing.stats((scenario, contestant))[0]

    def median(self, scenario: str, contestant: str) -> float:
        return self.timing.stats((scenario, contestant))[1]

    def instr(self, scenario: str, contestant: str) -> float | None:
        return self.instructions.get((scenario, contestant))

    def base_instr(self, scenario: str, contestant: str) -> float | None:
        value = (self.baseline or {}).get("instructions", {}).get(f"{scenario}/{contestant}")
        return float(value) if value is not None else None


def label(scenario: Scenario, contestant: str) -> str:
    if contestant not in ("raw", "sa") or "sa" not in scenario.contestants:
        return NAMES[contestant]
    name = NAMES["sa"] if contestant == "sa" else "raw WSGI + " + (
        "psycopg" if scenario.app == "deep_pg" else "sqlite3")
    kind = scenario.key.split("_")[0]
    return name + {"genshi": " + cached Genshi", "html": " + Template.render"}.get(kind, "")


def _n(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}×"


def _delta(now: float | None, before: float | None) -> str:
    return "–" if now is None or not before else f"{(now - before) / before * 100:+.1f}%"


# --- targets ----------------------------------------------------------------------------


@dataclass
class Verdict:
    target: str
    met: bool | None  # None: not measured in this run
    measured: str

    @property
    def mark(self) -> str:
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]


def _versus(run: Run, scenario: str, other: str) -> tuple[float, str]:
    """robaccia's median over another contestant's, and the text that shows it."""
    ratio = run.median(scenario, "robaccia") / run.median(scenario, other)
    mins = run.minimum(scenario, "robaccia") / run.minimum(scenario, other)
    text = f"{ratio:.2f}× (median; min: {mins:.2f}×"
    i_mine, i_other = run.instr(scenario, "robaccia"), run.instr(scenario, other)
    if i_mine and i_other:
        text += f"; instructions: {i_mine / i_other:.2f}×"
    return ratio, text + ")"


def _faster(run: Run, scenario: str, rivals: tuple[str, ...], what: str) -> Verdict:
    if not run.has(scenario):
        return Verdict(what, None, "not run")
    best = min((r for r in rivals if run.has(scenario, r)), key=lambda r: run.median(scenario, r))
    ratio, text = _versus(run, scenario, best)
    return Verdict(what, ratio < 1.0, f"robaccia {run.median(scenario, 'robaccia'):,.1f} µs vs "
                   f"{NAMES[best]} {run.median(scenario, best):,.1f} µs: {text}")


def _within(run: Run, scenario: str, base: str, limit: float, what: str) -> Verdict:
    if not run.has(scenario):
        return Verdict(what, None, "not run")
    ratio, text = _versus(run, scenario, base)
    return Verdict(what, ratio <= limit, f"{text}; limit {limit}×")


def _deep(run: Run, db: str, what: str) -> Verdict:
    first, deep = f"deep_{db}_first", f"deep_{db}_deep"
    if not (run.has(first) and run.has(deep)):
        return Verdict(what, None, "not run")
    deep_us, first_us = run.median(deep, "robaccia"), run.median(first, "robaccia")
    mins = run.minimum(deep, "robaccia") / run.minimum(first, "robaccia")
    return Verdict(what, deep_us / first_us <= 1.5, f"{deep_us:,.1f} vs {first_us:,.1f} µs: "
                   f"{deep_us / first_us:.2f}× (min: {mins:.2f}×); limit 1.5×")


def targets(run: Run) -> list[Verdict]:
    what = "Plumbing: ≤ 1.6× raw WSGI in instructions"
    i_mine, i_raw = run.instr("plumbing", "robaccia"), run.instr("plumbing", "raw")
    out = [
        _faster(run, "plumbing", ("falcon",), "Plumbing: faster than Falcon"),
        Verdict(what, i_mine / i_raw <= 1.6, f"{i_mine:,.0f} vs {i_raw:,.0f} instructions: "
                f"{i_mine / i_raw:.2f}×") if i_mine and i_raw else Verdict(what, None, "not counted"),
        _faster(run, "convention", ("falcon",), "Convention route: faster than Falcon"),
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
        out.append(_within(run, key, "sa", limit, what + " (SQLAlchemy Core, as robaccia)"))
        out.append(_within(run, key, "raw", limit, what + " (sqlite3 DB-API)"))
    out.append(_deep(run, "sqlite", "Deep page ≤ 1.5× first page, SQLite"))
    out.append(_deep(run, "pg", "Deep page ≤ 1.5× first page, PostgreSQL"))
    return out


# --- why a target stays missed ---------------------------------------------------------------


def notes(run: Run, verdicts: list[Verdict]) -> list[str]:
    """What a missed target measures and where the rest goes, from this run's own counts."""
    missed = {v.target for v in verdicts if v.met is False}
    out = []
    raw, falcon, mine = (run.instr("plumbing", c) for c in ("raw", "falcon", "robaccia"))
    if "Plumbing: ≤ 1.6× raw WSGI in instructions" in missed and raw and falcon and mine:
        out.append(
            f"- **Plumbing ≤ 1.6× raw WSGI in instructions** has been missed by every run since "
            f"the benchmarks began (7.1× to 11.0×). raw WSGI answers from one function of a few "
            f"lines: {raw:,.0f} instructions with the harness's own loop, so 1.6× leaves "
            f"{0.6 * raw:,.0f} instructions for routing, a request object and the middlewares, "
            f"less than one regex match and a few dict writes cost in CPython 3.11. Falcon "
            f"takes {falcon / raw:.1f}× ({falcon:,.0f}); robaccia "
            f"{mine / raw:.1f}× ({mine:,.0f}). The anatomy below shows where the convention "
            f"route's instructions go.")
    sa, raw_page, page = (run.instr("html_member", c) for c in ("sa", "raw", "robaccia"))
    json_raw, json_mine = run.instr("json_member", "raw"), run.instr("json_member", "robaccia")
    if ("Jinja2 member page: ≤ 1.2× Template.render + query (sqlite3 DB-API)" in missed
            and sa and raw_page and page):
        text = (f"- **Jinja2 member page ≤ 1.2× Template.render + a sqlite3 query**: the bare "
                f"page costs {raw_page:,.0f} instructions and robaccia's {page:,.0f} "
                f"({page / raw_page:.2f}×); the same render with SQLAlchemy Core's query, as the "
                f"peers make it, costs {sa:,.0f} ({sa / raw_page:.2f}×). robaccia reads the row "
                f"through SQLAlchemy's pool (a checkout, a reset and a checkin per query) and "
                f"answers through its request path (routing, the middlewares, the page's "
                f"context, ETag and security headers)")
        if json_raw and json_mine:
            text += (f"; without a template, the JSON member page shows that part alone: "
                     f"{json_mine:,.0f} against {json_raw:,.0f} for raw WSGI on sqlite3")
        out.append(text + ".")
    return out


def anatomy(run: Run) -> list[list[str]]:
    """The convention route's instructions with fewer middlewares (robaccia_apps.ANATOMY)."""
    full = run.instr("convention", "robaccia")
    if not full:
        return []

    def count(c: str) -> float | None:
        return run.instr("convention", c)

    rows = [["as generated (ErrorPages, AllowedHosts, SecurityHeaders, FlashMessages, "
             "CSRFProtection)", _n(full, 0), ""]]
    for variant, step in (("robaccia-no-hosts", "AllowedHosts"),
                          ("robaccia-no-headers", "SecurityHeaders"),
                          ("robaccia-no-flash", "FlashMessages"),
                          ("robaccia-no-csrf", "CSRFProtection")):
        if (n := count(variant)) is not None:
            rows.append([f"without {step}", _n(n, 0), f"{step}: {full - n:,.0f}"])
    only, bare = count("robaccia-error-pages-only"), count("robaccia-no-middleware")
    if only is not None:
        rows.append(["ErrorPages only", _n(only, 0), f"the four steps: {full - only:,.0f}"])
    if bare is not None:
        rows.append(["no middleware (project, routes, views/hello.py)", _n(bare, 0),
                     f"ErrorPages: {only - bare:,.0f}" if only is not None else ""])
    for peer in ("falcon", "raw"):
        if (n := count(peer)) is not None:
            rows.append([NAMES[peer], _n(n, 0), ""])
    return rows if len(rows) > 1 else []


# --- tables -----------------------------------------------------------------------------

HEAD = ["contestant", "min µs", "median µs", "req/s per core", "× raw (median)",
        "instructions/req", "× raw (instr.)", "instr. vs baseline"]
HTTP_HEAD = ["contestant", "req/s", "mean latency ms", "× raw (req/s)", "errors"]


def _table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])


def rows(run: Run, s: Scenario) -> list[list[str]]:
    raw_med, raw_i = run.median(s.key, "raw"), run.instr(s.key, "raw")
    out = []
    for c in s.contestants:
        med, ins = run.median(s.key, c), run.instr(s.key, c)
        out.append([label(s, c), _n(run.minimum(s.key, c)), _n(med), _n(1e6 / med, 0),
                    _ratio(med, raw_med), _n(ins, 0), _ratio(ins, raw_i),
                    _delta(ins, run.base_instr(s.key, c))])
    return out


def http_rows(run: Run, s: Scenario) -> list[list[str]]:
    raw = run.http.get((s.key, "raw"), {}).get("rps")
    return [[label(s, c), _n(r.get("rps"), 0), _n(r.get("latency_ms"), 2),
             _ratio(r.get("rps"), raw), str(r["errors"])]
            for c in s.contestants if (r := run.http.get((s.key, c)))]


def _scenario_tables(run: Run, markdown: bool) -> list[str]:
    out = []
    for s in run.scenarios:
        detail = (f"`{s.method} {s.path}{'?' + s.query if s.query else ''}`, response body "
                  f"{run.sizes[s.key]['raw']:,} bytes (status {s.expect}). {s.note}")
        out += [f"### {s.title}", "", detail.strip(), ""] if markdown else [f"== {s.title}"]
        out += [_table(HEAD, rows(run, s)), ""]
    return out


def console(run: Run) -> str:
    out = ["", *_scenario_tables(run, markdown=False), "== targets"]
    verdicts = targets(run)
    out += [f"{v.mark:<13} {v.target}: {v.measured}" for v in verdicts]
    out += notes(run, verdicts)
    if parts := anatomy(run):
        out += ["== anatomy of the convention route (instructions)"]
        out += [f"{n:>12}  {what}{'  ' + cost if cost else ''}" for what, n, cost in parts]
    for name, note in (("instruction counts", run.cg_note), ("HTTP", run.http_note)):
        if note:
            out.append(f"{name}: {note}")
    return "\n".join(out)


def markdown(run: Run) -> str:
    when = datetime.datetime.fromtimestamp(run.started, datetime.UTC)
    busy = max(run.load) > 1.5
    verdicts = targets(run)
    out = [
        "# robaccia benchmarks: results",
        "",
        f"Generated by `{' '.join(run.argv)}` on {when:%Y-%m-%d %H:%M} UTC "
        f"({(run.finished - run.started) / 60:.1f} minutes). **Do not edit by hand**: run the "
        "benchmark again (`make bench`). What is compared and how: [README.md](README.md).",
        "",
        "## Machine and versions",
        "",
        _table(["", ""], [[k, v] for k, v in run.machine.items()]),
        "",
        f"Load average (1 min) at the start {run.load[0]:.2f}, at the end {run.load[1]:.2f}"
        + (" — **the machine was busy: times are noisy (instruction counts are not)**."
           if busy else "."),
        "",
        "## Method, in short",
        "",
        f"- Every answer checked first: same status and the same body as raw WSGI's, byte for "
        f"byte. Then {run.rounds} interleaved rounds in one process, each running one batch "
        f"(~{run.batch_ms:.0f} ms) of every contestant × scenario in a new random order; min and "
        "median µs/request over the rounds; req/s per core = 10⁶ / median; × raw divides by raw "
        "WSGI's median in the same run.",
        "- Instructions per request: callgrind, (Ir₂ − Ir₁) / (n₂ − n₁) over two runs of "
        "different lengths; client side only (not the PostgreSQL server's work).",
        "- robaccia as `createproject` + `addmodelview` generate it, middleware included; the "
        "peers as their documentation shows, in production configuration, on SQLAlchemy Core "
        "and the same template files. raw WSGI (DB-API driver) is the limit; raw WSGI + "
        "SQLAlchemy Core is a framework without its own overhead.",
        "",
        "## Targets",
        "",
        "Verdicts use the median µs; the min and instruction ratios are shown beside it.",
        "",
        _table(["target", "verdict", "measured"], [[v.target, v.mark, v.measured]
                                                   for v in verdicts]),
        "",
    ]
    if said := notes(run, verdicts):
        out += ["Targets still missed:", "", *said, ""]
    if parts := anatomy(run):
        out += ["### Anatomy of the convention route (instructions per request)", "",
                "The same request (1b) through the generated project with fewer of its default "
                "middlewares, counted by callgrind in the same run:", "",
                _table(["robaccia with", "instructions/req", "what the part costs"], parts), ""]
    out += ["## In process, per scenario", "", *_scenario_tables(run, markdown=True)]
    if run.cg_note:
        out += [f"Instruction counts: {run.cg_note}.", ""]
    out += ["## Over HTTP", ""]
    if run.http:
        out += [f"Informative: every app under its own gunicorn (1 sync worker: every request "
                f"is a new connection), then `wrk -t1 -c2 -d{run.http_seconds}s` on each in "
                "a random order, server and wrk on different cores. A new connection and "
                "gunicorn's own work cost more than most apps here: differences of a few tens "
                "of percent are noise.", ""]
        for s in run.scenarios:
            if body := http_rows(run, s):
                out += [f"### {s.title}", "", _table(HTTP_HEAD, body), ""]
    if run.http_note:
        out += [f"{run.http_note[0].upper()}{run.http_note[1:]}.", ""]
    return "\n".join(out)


def baseline_json(run: Run) -> str:
    return json.dumps({
        "about": "Instructions per request (callgrind) from benchmarks/run.py --save-baseline; "
                 "each run prints its change against these.",
        "python": platform.python_version(),
        "generated": datetime.datetime.fromtimestamp(run.finished, datetime.UTC)
        .strftime("%Y-%m-%d"),
        "instructions": {f"{s}/{c}": round(v) for (s, c), v in sorted(run.instructions.items())},
    }, indent=2) + "\n"

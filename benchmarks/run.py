"""Benchmark robaccia side by side with raw WSGI, Falcon, Bottle, Pyramid, Flask and Django.

    python benchmarks/run.py                  # in process + instruction counts: RESULTS.md
    python benchmarks/run.py --http           # ... and over HTTP (gunicorn + wrk)
    python benchmarks/run.py --save-baseline  # ... and rewrite baseline.json

Scaffolds robaccia projects with robaccia-admin, checks that every contestant
answers every scenario with the same body, byte for byte, then times them in
interleaved rounds, counts their instructions with callgrind (cg_worker.py) and,
with --http, drives each under gunicorn with wrk. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, OUTPUT, REPO, SCENARIOS, Context, Scenario  # noqa: E402

REQUIREMENTS = BENCH_DIR / "requirements.txt"
BASELINE = BENCH_DIR / "baseline.json"
RESULTS = BENCH_DIR / "RESULTS.md"
HTTP_SCENARIOS = ("plumbing", "convention", "json_member", "html_member")
CG_TIMEOUT = 480  # seconds for the callgrind phase


def log(message: str) -> None:
    print(message, flush=True)


def check_peers() -> None:
    """Stop unless the peers are installed at the versions requirements.txt pins."""
    wrong = []
    for line in REQUIREMENTS.read_text().splitlines():
        name, _, want = line.split("#", 1)[0].strip().partition("==")
        if want:
            have = _version(name)
            if have != want:
                wrong.append(f"{name} {have} (pinned: {want})")
    if wrong:
        raise SystemExit("the peers are not at their pinned versions: " + ", ".join(wrong)
                         + f"\ninstall them: {sys.executable} -m pip install -r {REQUIREMENTS}")


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "missing"


def _tool_version(args: list[str], pattern: str) -> str:
    if shutil.which(args[0]) is None:
        return "not installed"
    out = subprocess.run(args, capture_output=True, text=True, timeout=10)
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


def machine(pg_version: str | None) -> dict[str, str]:
    import sqlite3

    cpuinfo = Path("/proc/cpuinfo")
    cpu = re.findall(r"model name\s*:\s*(.*)", cpuinfo.read_text()) if cpuinfo.exists() else []
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    if subprocess.run([*git, "status", "--porcelain", "--", "robaccia"], capture_output=True,
                      text=True).stdout.strip():
        commit += " (robaccia/ has uncommitted changes)"
    info = {
        "CPU": f"{cpu[0] if cpu else platform.processor()}, {os.cpu_count()} cores",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "robaccia": f"{_version('robaccia')} at commit {commit}",
    }
    for dist in ("falcon", "bottle", "pyramid", "flask", "django", "SQLAlchemy", "Jinja2",
                 "Genshi", "psycopg", "gunicorn"):
        info[dist] = _version(dist)
    info["SQLite"] = sqlite3.sqlite_version
    info["PostgreSQL"] = pg_version or "not reachable"
    info["valgrind"] = _tool_version(["valgrind", "--version"], r"valgrind-([\w.]+)")
    info["wrk"] = _tool_version(["wrk", "--version"], r"wrk (\S+)")
    return info


def prepare(keep: bool) -> tuple[Context, str | None]:
    """Scaffold the projects and make the data in a scratch folder (on tmpfs when there is one)."""
    import data
    import robaccia_apps

    shm = Path("/dev/shm")
    work = tempfile.mkdtemp(prefix="robaccia-bench-",
                            dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None)
    pg_version = data.pg_available()
    ctx = Context(workdir=work, main_db=f"{work}/main.sqlite", deep_db=str(OUTPUT / "deep.sqlite"),
                  pg=pg_version is not None)
    log(f"work folder {work}{' (kept)' if keep else ''}")
    robaccia_apps.scaffold(ctx)
    data.seed_main(ctx.main_db)
    built, seconds = data.ensure_deep_sqlite(ctx.deep_db)
    log(f"SQLite {ctx.deep_db}: 1,000,000 rows {'built' if built else 'cached'} ({seconds:.1f}s)")
    if ctx.pg:
        built, seconds = data.ensure_deep_pg()
        log(f"PostgreSQL table benchdeep: 1,000,000 rows {'built' if built else 'cached'} "
            f"({seconds:.1f}s)")
    else:
        log("PostgreSQL is not reachable at 127.0.0.1:5432: its scenarios are skipped")
    robaccia_apps.harvest_csrf(ctx)
    ctx.save()
    return ctx, pg_version


def chosen(ctx: Context, only: str | None) -> list[Scenario]:
    keys = set(only.split(",")) if only else {s.key for s in SCENARIOS}
    out = [s for s in SCENARIOS if s.key in keys and (ctx.pg or s.app != "deep_pg")]
    if not out:
        raise SystemExit(f"no scenario among {sorted(keys)}; known: {[s.key for s in SCENARIOS]}")
    return out


# --- instructions (callgrind) ------------------------------------------------------------


def count_instructions(ctx: Context, cases: list[tuple[str, str]],
                       medians: dict[tuple[str, str], float]
                       ) -> tuple[dict[tuple[str, str], float], str]:
    """Run cg_worker.py under callgrind, two workers in parallel; return Ir/request per case."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        return {}, "not counted: valgrind is not installed"
    # Per case: about 25 ms of native work between the two runs (n1 and n2 requests).
    plan = {}
    for case in cases:
        diff = int(max(5, min(100, 25_000 / max(medians[case], 1.0))))
        plan[case] = [*case, max(10, min(50, diff)), diff // 5 + 2, diff // 5 + 2 + diff]
    # Two workers, each with whole contestants (it imports only their frameworks), balanced.
    cost: dict[str, float] = {}
    for case, (_, contestant, _, n1, n2) in plan.items():
        cost[contestant] = cost.get(contestant, 0.0) + (n1 + n2) * medians[case]
    groups: list[list[str]] = [[], []]
    loads = [0.0, 0.0]
    for contestant in sorted(cost, key=cost.__getitem__, reverse=True):
        i = loads.index(min(loads))
        groups[i].append(contestant)
        loads[i] += cost[contestant]
    folder = Path(ctx.workdir) / "callgrind"
    folder.mkdir(exist_ok=True)
    workers = []
    for i, group in enumerate(g for g in groups if g):
        (folder / f"plan{i}.json").write_text(json.dumps([p for c, p in plan.items()
                                                          if c[1] in group]))
        args = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-before=getppid",
                f"--callgrind-out-file={folder}/w{i}.%p", sys.executable,
                str(BENCH_DIR / "cg_worker.py"), str(Path(ctx.workdir) / "context.json"),
                str(folder / f"plan{i}.json"), str(folder / f"result{i}.json")]
        workers.append((i, subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                            stderr=open(folder / f"w{i}.log", "w"),
                                            start_new_session=True)))
    deadline = time.monotonic() + CG_TIMEOUT
    counts: dict[tuple[str, str], float] = {}
    problems = []
    for i, proc in workers:
        try:
            proc.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            problems.append(f"worker {i} ran out of time ({CG_TIMEOUT}s)")
            continue
        if proc.returncode != 0:
            problems.append(f"worker {i} failed (see {folder}/w{i}.log)")
            continue
        result = json.loads((folder / f"result{i}.json").read_text())
        pid, segments = result["pid"], result["segments"]
        dumps = sorted(folder.glob(f"w{i}.{pid}.*"), key=lambda p: int(p.suffix[1:]))
        if len(dumps) != len(segments):
            problems.append(f"worker {i}: {len(dumps)} dumps for {len(segments)} fences")
            continue
        # Dump k holds what ran before fence k: the segment after fence k is in dump k + 1,
        # or in the final file for the last fence.
        runs: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}
        for label, path in zip(segments, [*dumps[1:], folder / f"w{i}.{pid}"], strict=True):
            if label != "between":
                scenario, contestant, tag, n = label.split("|")
                totals = re.search(r"^(?:summary|totals): (\d+)", path.read_text(), re.M)
                assert totals is not None, path
                runs.setdefault((scenario, contestant), {})[tag] = (int(n), int(totals.group(1)))
        for case, r in runs.items():
            (n1, ir1), (n2, ir2) = r["n1"], r["n2"]
            counts[case] = (ir2 - ir1) / (n2 - n1)
    if os.environ.get("BENCH_KEEP_CALLGRIND") != "1":  # set it to keep the dumps for a look
        for path in folder.glob("w*.*"):
            if not path.name.endswith(".log"):
                path.unlink()
    return counts, "; ".join(problems)


# --- over HTTP (gunicorn + wrk) ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(s: Scenario, port: int, proc: subprocess.Popen[bytes], headers: dict[str, str],
             reference: bytes) -> bool:
    """Wait until a server listens; warm it up and check its answer over the wire."""
    import http.client

    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            for _ in range(20):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request(s.method, s.path, headers=headers)
                response = conn.getresponse()
                body = response.read()
                conn.close()
            return response.status == s.expect and body == reference
        except OSError:  # not listening yet
            time.sleep(0.1)
    return False


def _parse_wrk(text: str) -> dict[str, Any]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    latency = re.search(r"^\s+Latency\s+([\d.]+)(us|ms|s)\b", text, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        text)
    return {"rps": float(rps.group(1)) if rps else None,
            "latency_ms": float(latency.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[
                latency.group(2)] if latency else None,
            "errors": (int(bad.group(1)) if bad else 0)
            + (sum(int(g) for g in sockets.groups()) if sockets else 0)}


def over_http(ctx: Context, scenarios: list[Scenario], seconds: int,
              references: dict[str, bytes]) -> tuple[dict[tuple[str, str], dict[str, Any]], str]:
    """Serve every app under its own gunicorn (all started first); drive each with wrk."""
    if shutil.which("wrk") is None:
        return {}, "not measured: wrk is not installed"
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    results: dict[tuple[str, str], dict[str, Any]] = {}
    problems = []
    servers = []
    try:
        for s in scenarios:
            for contestant in s.contestants if s.key in HTTP_SCENARIOS else ():
                port = _free_port()
                env = dict(os.environ, BENCH_CONTEXT=str(Path(ctx.workdir) / "context.json"),
                           BENCH_SCENARIO=s.key, BENCH_CONTESTANT=contestant)
                env.pop("ROBACCIA_DEBUG", None)
                args = [*(["taskset", "-c", "1"] if pin else []), sys.executable, "-m",
                        "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}", "--chdir",
                        str(BENCH_DIR), "--log-level", "warning", "harness:from_environment()"]
                with open(Path(ctx.workdir) / f"gunicorn-{s.key}-{contestant}.log", "wb") as out:
                    proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
                servers.append((s, contestant, port, proc))
        random.Random(11).shuffle(servers)
        log(f"  {len(servers)} servers started; wrk {seconds}s on each")
        for s, contestant, port, proc in servers:
            headers = {"Accept": s.accept}
            if s.cookie:
                headers["Cookie"] = ctx.cookies[s.cookie]
            if not _answers(s, port, proc, headers, references[s.key]):
                problems.append(f"{s.key}/{contestant}: no server, or another answer over HTTP")
                continue
            args = [*(["taskset", "-c", "0"] if pin else []), "wrk", "-t1", "-c2",
                    f"-d{seconds}s", "--timeout", "5s"]
            for name, value in headers.items():
                args += ["-H", f"{name}: {value}"]
            out = subprocess.run([*args, f"http://127.0.0.1:{port}{s.path}"],
                                 capture_output=True, text=True, timeout=seconds + 30)
            results[(s.key, contestant)] = stats = _parse_wrk(out.stdout)
            log(f"  http {s.key:<12} {contestant:<9} {stats['rps'] or 0:>9.0f} req/s")
    finally:
        for _, _, _, proc in servers:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return results, "; ".join(problems)


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", action="store_true", help="also measure over HTTP")
    parser.add_argument("--http-seconds", type=int, default=4,
                        help="wrk duration per app (default 4)")
    parser.add_argument("--rounds", type=int, default=25, help="timed rounds (default 25)")
    parser.add_argument("--batch-ms", type=float, default=20.0,
                        help="duration of one timed batch (default 20 ms)")
    parser.add_argument("--only", help="comma-separated scenario keys (a partial run)")
    parser.add_argument("--no-callgrind", action="store_true", help="skip instruction counts")
    parser.add_argument("--save-baseline", action="store_true",
                        help="write this run's instruction counts to baseline.json")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--results", type=Path, help="where to write the report (default: "
                        "RESULTS.md for a full run, output/RESULTS-partial.md otherwise)")
    args = parser.parse_args(argv)

    started, load_start = time.time(), os.getloadavg()[0]
    if load_start > 1.5:
        log(f"note: the machine is busy (load {load_start:.1f} on {os.cpu_count()} cores): "
            "times will be noisy; instruction counts are not")
    check_peers()
    import harness
    import report
    import robaccia_apps

    ctx, pg_version = prepare(args.keep)
    try:
        scenarios = chosen(ctx, args.only)
        h = harness.Harness(ctx)
        sizes, references = {}, {}
        for s in scenarios:
            references[s.key], sizes[s.key] = harness.verify(h, s)
        log("every contestant answers every scenario with the same body, byte for byte")

        cases = [(s.key, c) for s in scenarios for c in s.contestants]
        log(f"timing {len(cases)} cases: {args.rounds} interleaved rounds, "
            f"~{args.batch_ms:.0f} ms batches")
        timing = harness.time_cases(h, cases, args.rounds, args.batch_ms / 1000, progress=log)
        log(f"timed in {timing.seconds:.0f}s")

        instructions: dict[tuple[str, str], float] = {}
        cg_note = "not run (--no-callgrind)"
        if not args.no_callgrind:
            t = time.perf_counter()
            log("counting instructions with callgrind (2 workers)...")
            medians = {c: timing.stats(c)[1] for c in cases}
            # The anatomy: the convention route again, with fewer middlewares (counted only).
            anatomy = [("convention", v) for v in robaccia_apps.ANATOMY] \
                if ("convention", "robaccia") in medians else []
            medians.update({c: medians[("convention", "robaccia")] for c in anatomy})
            instructions, cg_note = count_instructions(ctx, cases + anatomy, medians)
            log(f"counted in {time.perf_counter() - t:.0f}s" + (f" ({cg_note})" if cg_note else ""))

        http: dict[tuple[str, str], dict[str, Any]] = {}
        http_note = "not run (pass --http)"
        if args.http:
            t = time.perf_counter()
            log("over HTTP: gunicorn (1 sync worker) + wrk")
            http, http_note = over_http(ctx, scenarios, args.http_seconds, references)
            log(f"HTTP phase in {time.perf_counter() - t:.0f}s")

        run = report.Run(
            argv=["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])],
            started=started, finished=time.time(), load=(load_start, os.getloadavg()[0]),
            machine=machine(pg_version), scenarios=scenarios, timing=timing, sizes=sizes,
            instructions=instructions, cg_note=cg_note, http=http, http_note=http_note,
            http_seconds=args.http_seconds,
            baseline=json.loads(BASELINE.read_text()) if BASELINE.exists() else None,
            rounds=args.rounds, batch_ms=args.batch_ms)
        print(report.console(run), flush=True)
        partial = bool(args.only or args.no_callgrind)
        target = args.results or (OUTPUT / "RESULTS-partial.md" if partial else RESULTS)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(report.markdown(run))
        log(f"wrote {target}")
        if args.save_baseline and instructions:
            BASELINE.write_text(report.baseline_json(run))
            log(f"wrote {BASELINE}")
        elif args.save_baseline:
            log("no instruction counts in this run: baseline.json left alone")
    finally:
        if not args.keep:
            shutil.rmtree(ctx.workdir, ignore_errors=True)
    log(f"total {time.time() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

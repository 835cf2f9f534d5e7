"""Benchmark robaccia side by side with raw WSGI, Falcon, Bottle, Pyramid, Flask and Django.

    python benchmarks/run.py            # in process + instruction counts; writes RESULTS.md
    python benchmarks/run.py --http     # ... and over HTTP (gunicorn, one worker, driven by wrk)

One run scaffolds a robaccia project with robaccia-admin into a scratch folder,
checks that every contestant answers each scenario with the same body, byte
for byte, then measures them all in the same process, interleaved:

* time: shuffled rounds, one batch of fresh environs per contestant and
  scenario per round; minimum and median µs/request over the rounds, and the
  ratio to raw WSGI of the same run;
* instructions: callgrind counts two runs of different lengths per case in
  worker processes (cg_worker.py); the difference divided by the difference
  in requests is the cost of one request, start-up excluded;
* over HTTP (--http): each app under gunicorn (one sync worker) and wrk, a
  few seconds each, on 127.0.0.1.

RESULTS.md is written from the run (never edit it by hand), and the
instruction counts are compared with baseline.json (--save-baseline rewrites
it). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, OUTPUT, REPO, SCENARIOS, Context, Scenario  # noqa: E402

REQUIREMENTS = BENCH_DIR / "requirements.txt"
BASELINE = BENCH_DIR / "baseline.json"
RESULTS = BENCH_DIR / "RESULTS.md"
HTTP_SCENARIOS = ("plumbing", "json_member", "html_member")
CG_TIMEOUT = 480  # seconds for the callgrind phase
CG_FENCE = "getppid"


def log(message: str) -> None:
    print(message, flush=True)


# --- the peers, pinned ----------------------------------------------------------------


def pinned() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def ensure_peers(install: bool) -> None:
    """Install the pinned peers into this interpreter's environment when they differ."""
    from importlib.metadata import PackageNotFoundError, version

    wrong = []
    for name, want in pinned().items():
        try:
            have = version(name)
        except PackageNotFoundError:
            have = None
        if have != want:
            wrong.append(f"{name} {have or 'missing'} (want {want})")
    if not wrong:
        return
    if not install:
        raise SystemExit("peers not at their pinned versions: " + ", ".join(wrong)
                         + f"\ninstall them: {sys.executable} -m pip install -r {REQUIREMENTS}")
    log("installing the pinned peers: " + ", ".join(wrong))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
                   check=True, timeout=600)


def ensure_tool(command: str, package: str) -> bool:
    """Install a Debian package for a missing command when we may (root with apt-get)."""
    if shutil.which(command):
        return True
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    log(f"{command} is missing: apt-get install -y {package}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for steps in ([["apt-get", "install", "-y", package]],
                  [["apt-get", "update"], ["apt-get", "install", "-y", package]]):
        try:
            if all(subprocess.run(step, capture_output=True, env=env, timeout=600).returncode == 0
                   for step in steps):
                break
        except (OSError, subprocess.TimeoutExpired):
            pass
    return shutil.which(command) is not None


# --- machine and versions ------------------------------------------------------------


def _command_version(args: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


def machine(pg_version: str | None) -> dict[str, str]:
    import sqlite3
    from importlib.metadata import version

    import peers

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "robaccia"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit += " (robaccia/ has uncommitted changes)" if dirty else ""
    except OSError:
        commit = "unknown"
    info = {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()} "
                  f"({sys.executable})",
        "robaccia": f"{version('robaccia')} at commit {commit}",
    }
    for name, ver in peers.versions().items():
        info[name] = ver
    for dist in ("SQLAlchemy", "Jinja2", "Genshi", "psycopg", "gunicorn", "WebOb", "Werkzeug"):
        try:
            info[dist] = version(dist)
        except Exception:
            info[dist] = "missing"
    info["SQLite"] = sqlite3.sqlite_version
    info["PostgreSQL"] = pg_version or "not reachable"
    info["valgrind"] = _command_version(["valgrind", "--version"], r"valgrind-([\w.]+)")
    info["wrk"] = _command_version(["wrk", "--version"], r"wrk (\S+)")
    return info


# --- setting the stage ----------------------------------------------------------------


def prepare(keep: bool) -> tuple[Context, str | None]:
    import data
    import robaccia_apps

    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    work = tempfile.mkdtemp(prefix="robaccia-bench-", dir=parent)
    pg_version = data.pg_available()
    ctx = Context(workdir=work, main_db=f"{work}/main.sqlite", deep_db=str(OUTPUT / "deep.sqlite"),
                  pg=pg_version is not None)
    log(f"work folder {work}{' (kept)' if keep else ''}")
    t = time.perf_counter()
    robaccia_apps.scaffold(ctx)
    data.seed_main(ctx.main_db)
    log(f"scaffolded 3 projects with robaccia-admin and seeded employees in "
        f"{time.perf_counter() - t:.1f}s")
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
    keys = set(only.split(",")) if only else None
    out = []
    for s in SCENARIOS:
        if keys is not None and s.key not in keys:
            continue
        if s.app == "deep_pg" and not ctx.pg:
            continue
        out.append(s)
    if keys is not None and not out:
        raise SystemExit(f"no scenario among {sorted(keys)}; known: {[s.key for s in SCENARIOS]}")
    return out


# --- instructions (callgrind) ---------------------------------------------------------


def _summary(path: Path) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise ValueError(f"no summary in {path}")


def _cg_plan(cases: list[tuple[str, str]], medians: dict[tuple[str, str], float]
             ) -> list[list[Any]]:
    """(scenario, contestant, warm, n1, n2) per case: about 25 ms of native work counted."""
    plan = []
    for case in cases:
        per = max(medians.get(case, 100.0), 1.0)
        diff = int(max(5, min(100, 25_000 / per)))
        n1 = max(2, diff // 5)
        warm = max(10, min(50, diff))  # uninstrumented: cheap
        plan.append([case[0], case[1], warm, n1, n1 + diff])
    return plan


def count_instructions(ctx: Context, cases: list[tuple[str, str]],
                       medians: dict[tuple[str, str], float], workers: int = 2
                       ) -> tuple[dict[tuple[str, str], float], str]:
    """Run cg_worker.py under callgrind (in parallel workers); return Ir/request per case."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        return {}, "valgrind (with callgrind_control) is not installed: no instruction counts"
    real_python = os.path.realpath(sys.executable)
    python = sys.executable if Path(sys.executable).is_file() else real_python
    # Group by contestant (each worker imports only its frameworks), balanced by cost.
    cost: dict[str, float] = {}
    for scenario, contestant, _, n1, n2 in _cg_plan(cases, medians):
        cost[contestant] = (cost.get(contestant, 0.0)
                            + (n1 + n2) * medians.get((scenario, contestant), 100.0))
    groups: list[list[str]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for contestant in sorted(cost, key=cost.get, reverse=True):  # type: ignore[arg-type]
        i = loads.index(min(loads))
        groups[i].append(contestant)
        loads[i] += cost[contestant]
    folder = Path(ctx.workdir) / "callgrind"
    folder.mkdir(exist_ok=True)
    procs = []
    for i, group in enumerate(g for g in groups if g):
        plan = _cg_plan([c for c in cases if c[1] in group], medians)
        (folder / f"plan{i}.json").write_text(json.dumps(plan))
        args = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--dump-before={CG_FENCE}",
                f"--callgrind-out-file={folder}/w{i}.%p", python, str(BENCH_DIR / "cg_worker.py"),
                str(Path(ctx.workdir) / "context.json"), str(folder / f"plan{i}.json"),
                str(folder / f"result{i}.json")]
        procs.append((i, plan, subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                                stderr=open(folder / f"w{i}.log", "w"),
                                                start_new_session=True)))
    deadline = time.monotonic() + CG_TIMEOUT
    counts: dict[tuple[str, str], float] = {}
    problems = []
    # Each worker builds its apps uninstrumented, says it is ready, and spins until told
    # to go: switch its instrumentation on in between.
    waiting = {i: proc for i, _, proc in procs}
    while waiting and time.monotonic() < deadline:
        for i, proc in list(waiting.items()):
            if (folder / f"result{i}.json.ready").exists():
                subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)],
                               capture_output=True, timeout=60)
                (folder / f"result{i}.json.go").touch()
                del waiting[i]
            elif proc.poll() is not None:
                del waiting[i]
        time.sleep(0.05)
    for i, _, proc in procs:
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
        # Dump k holds what ran before fence k; the segment after fence k is in dump k + 1
        # (or the final file for the last fence).
        files = dumps[1:] + [folder / f"w{i}.{pid}"]
        runs: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}
        for label, path in zip(segments, files, strict=True):
            if label == "between":
                continue
            scenario, contestant, tag, n = label.split("|")
            runs.setdefault((scenario, contestant), {})[tag] = (int(n), _summary(path))
        for case, r in runs.items():
            (n1, ir1), (n2, ir2) = r["n1"], r["n2"]
            counts[case] = (ir2 - ir1) / (n2 - n1)
    if os.environ.get("BENCH_KEEP_CALLGRIND") != "1":  # set it to keep the dumps for a look
        for path in folder.glob("w*.*"):
            if not path.name.endswith(".log"):
                path.unlink()
    return counts, "; ".join(problems)


# --- over HTTP (gunicorn + wrk) --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


@contextmanager
def _gunicorn(ctx: Context, scenario: str, contestant: str, port: int,
              cpu: str | None) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ, BENCH_CONTEXT=str(Path(ctx.workdir) / "context.json"),
               BENCH_SCENARIO=scenario, BENCH_CONTESTANT=contestant)
    env.pop("ROBACCIA_DEBUG", None)
    args = [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync",
            "--bind", f"127.0.0.1:{port}", "--chdir", str(BENCH_DIR), "--log-level", "warning",
            "--timeout", "30", "wsgi_target:application"]
    if cpu is not None:
        args = ["taskset", "-c", cpu, *args]
    log_file = open(Path(ctx.workdir) / f"gunicorn-{scenario}-{contestant}.log", "wb")
    proc = subprocess.Popen(args, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        log_file.close()


def _parse_wrk(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else None
    m = re.search(r"^\s+Latency\s+([\d.]+)(us|ms|s)\b", text, re.M)
    if m:
        out["latency_ms"] = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["bad"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    return out


def _check_over_http(s: Scenario, port: int, headers: dict[str, str], reference: bytes) -> bool:
    """Warm a server up and check its answer over the wire."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(20):
            conn.request(s.method, s.path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.will_close:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    finally:
        conn.close()
    return response.status == s.expect and body == reference


def over_http(ctx: Context, scenarios: list[Scenario], seconds: int, rounds: int,
              references: dict[str, bytes]) -> tuple[dict[tuple[str, str], dict[str, Any]], str]:
    """Serve every app under its own gunicorn; drive each with wrk in shuffled rounds."""
    import random

    if shutil.which("wrk") is None:
        return {}, "wrk is not installed (as root: apt-get install -y wrk)"
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    cases = [(s, c) for s in scenarios if s.key in HTTP_SCENARIOS for c in s.contestants]
    results: dict[tuple[str, str], dict[str, Any]] = {}
    problems = []
    with ExitStack() as stack:
        servers = {}
        for s, contestant in cases:  # all at once: they start in parallel, then sit idle
            port = _free_port()
            proc = stack.enter_context(_gunicorn(ctx, s.key, contestant, port,
                                                 "1" if pin else None))
            servers[(s.key, contestant)] = (port, proc)
        ready = []
        for s, contestant in cases:
            port, proc = servers[(s.key, contestant)]
            headers = {"Accept": s.accept}
            if s.cookie:
                headers["Cookie"] = ctx.cookies[s.cookie]
            if not _wait_port(port, proc, timeout=120):
                problems.append(f"{s.key}/{contestant}: gunicorn did not start")
            elif not _check_over_http(s, port, headers, references[s.key]):
                problems.append(f"{s.key}/{contestant}: a different answer over HTTP")
            else:
                ready.append((s, contestant, port, headers))
        log(f"  {len(ready)} servers up; {rounds} shuffled rounds of {seconds}s each")
        rng = random.Random(11)
        for _ in range(rounds):
            rng.shuffle(ready)
            for s, contestant, port, headers in ready:
                args = ["wrk", "-t1", "-c2", f"-d{seconds}s", "--timeout", "5s"]
                for name, value in headers.items():
                    args += ["-H", f"{name}: {value}"]
                args.append(f"http://127.0.0.1:{port}{s.path}")
                if pin:
                    args = ["taskset", "-c", "0", *args]
                try:
                    out = subprocess.run(args, capture_output=True, text=True,
                                         timeout=seconds + 30)
                except subprocess.TimeoutExpired:
                    problems.append(f"{s.key}/{contestant}: wrk timed out")
                    continue
                stats = _parse_wrk(out.stdout)
                key = (s.key, contestant)
                previous = results.get(key)
                runs = (previous or {}).get("runs", []) + [stats.get("rps") or 0.0]
                errors = (previous or {}).get("errors", 0) + stats["bad"] + stats["socket_errors"]
                if previous is None or (stats.get("rps") or 0) > (previous.get("rps") or 0):
                    results[key] = stats
                results[key]["runs"] = runs
                results[key]["errors"] = errors
    for s, contestant in cases:
        r = results.get((s.key, contestant))
        if r:
            log(f"  http {s.key:<12} {contestant:<9} {r.get('rps') or 0:>9.0f} req/s (best of "
                + ", ".join(f"{x:.0f}" for x in r["runs"]) + ")")
    return results, "; ".join(problems)


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", action="store_true",
                        help="also measure over HTTP: gunicorn (1 worker) + wrk on 127.0.0.1")
    parser.add_argument("--http-seconds", type=int, default=3,
                        help="wrk duration per app and round (default 3)")
    parser.add_argument("--http-rounds", type=int, default=2,
                        help="shuffled wrk rounds over all apps; the best counts (default 2)")
    parser.add_argument("--rounds", type=int, default=25, help="timed rounds (default 25)")
    parser.add_argument("--batch-ms", type=float, default=20.0,
                        help="target duration of one timed batch (default 20 ms)")
    parser.add_argument("--only", help="comma-separated scenario keys (a partial run)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 3 rounds, short batches, no instruction counts")
    parser.add_argument("--no-callgrind", action="store_true", help="skip instruction counts")
    parser.add_argument("--save-baseline", action="store_true",
                        help="write this run's instruction counts to baseline.json")
    parser.add_argument("--no-install", action="store_true",
                        help="fail instead of installing the pinned peers")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--results", type=Path,
                        help="where to write the report (default: RESULTS.md for a full run, "
                             "output/RESULTS-partial.md otherwise)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batch_ms, args.no_callgrind = 3, 5.0, True

    started = time.time()
    load_start = os.getloadavg()
    if load_start[0] > 1.5:
        log(f"note: the machine is busy (load {load_start[0]:.1f} on {os.cpu_count()} cores): "
            "times will be noisy; instruction counts are not")
    ensure_peers(not args.no_install)
    import harness
    import report
    import robaccia_apps

    ctx, pg_version = prepare(args.keep)
    try:
        scenarios = chosen(ctx, args.only)
        h = harness.Harness(ctx, scenarios)
        sizes, references = {}, {}
        for s in scenarios:
            sizes[s.key] = harness.verify(h, s)
            references[s.key] = h.call(s.key, "raw")[2]
        log("every contestant answers every scenario with the same body, byte for byte")

        cases = [(s.key, c) for s in scenarios for c in s.contestants]
        log(f"timing {len(cases)} cases: {args.rounds} interleaved rounds, "
            f"~{args.batch_ms:.0f} ms batches")

        def progress(done: int, total: int) -> None:
            if done % 5 == 0 or done == total:
                log(f"  round {done}/{total}")

        timing = harness.time_cases(h, cases, args.rounds, args.batch_ms / 1000,
                                    progress=progress)
        log(f"timed in {timing.seconds:.0f}s")
        medians = {c: timing.stats(c)[1] for c in cases}

        instructions: dict[tuple[str, str], float] = {}
        cg_note = "not run (--no-callgrind)" if args.no_callgrind else ""
        if not args.no_callgrind:
            ensure_tool("valgrind", "valgrind")
            t = time.perf_counter()
            log("counting instructions with callgrind (2 workers)...")
            instructions, cg_note = count_instructions(ctx, cases, medians)
            log(f"counted in {time.perf_counter() - t:.0f}s"
                + (f" ({cg_note})" if cg_note else ""))

        http: dict[tuple[str, str], dict[str, Any]] = {}
        http_note = "not run (pass --http)"
        if args.http:
            ensure_tool("wrk", "wrk")
            t = time.perf_counter()
            log(f"over HTTP: gunicorn (1 sync worker) + wrk, {args.http_rounds} rounds of "
                f"{args.http_seconds}s per app")
            http, http_note = over_http(ctx, scenarios, args.http_seconds, args.http_rounds,
                                        references)
            log(f"HTTP phase in {time.perf_counter() - t:.0f}s")

        baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else None
        run = report.Run(
            argv=["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])],
            started=started, finished=time.time(), load=(load_start, os.getloadavg()),
            machine=machine(pg_version), scenarios=scenarios, timing=timing, sizes=sizes,
            instructions=instructions, cg_note=cg_note, http=http, http_note=http_note,
            http_seconds=args.http_seconds, http_rounds=args.http_rounds, baseline=baseline,
            rounds=args.rounds, batch_ms=args.batch_ms)
        print(report.console(run), flush=True)
        partial = bool(args.only or args.quick or args.no_callgrind)
        target = args.results or (OUTPUT / "RESULTS-partial.md" if partial else RESULTS)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(report.markdown(run))
        log(f"wrote {target}")
        if args.save_baseline:
            if not instructions:
                log("no instruction counts in this run: baseline.json left alone")
            else:
                BASELINE.write_text(report.baseline_json(run))
                log(f"wrote {BASELINE}")
    finally:
        if not args.keep:
            robaccia_apps.remove(ctx)
    log(f"total {time.time() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Count instructions per request under callgrind (run.py runs it; not by hand).

    valgrind --tool=callgrind --instr-atstart=no --dump-before=getppid \\
        --callgrind-out-file=OUT.%p python cg_worker.py CONTEXT.json PLAN.json RESULT.json

The worker starts without instrumentation (imports and app building run at
near native speed), builds every app of its plan and serves each case's
warm-up requests, then switches its own instrumentation on with
``callgrind_control -i on`` (spinning meanwhile: callgrind takes commands
while its process runs).

Then, for each case (scenario, contestant, warm, n1, n2), it serves a run of
``n1`` and a run of ``n2`` requests, each fenced by a call of ``os.getppid()``:
callgrind dumps its counters before every such call (``--dump-before=getppid``),
so each run lands in a dump of its own. run.py takes
(Ir(n2 run) - Ir(n1 run)) / (n2 - n1): what a run costs besides its requests
(the fences, the loop) cancels, and start-up is never counted. Nothing that
serves these requests calls getppid; run.py checks the number of dumps.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

from common import Context
from harness import Harness, run_batch


def main() -> None:
    ctx = Context.load(sys.argv[1])
    plan = json.loads(Path(sys.argv[2]).read_text())
    h = Harness(ctx)
    for scenario, contestant, warm, _, _ in plan:
        run_batch(h.app(scenario, contestant), h.environs(scenario, warm))
    gc.collect()
    gc.freeze()

    switch = subprocess.Popen(["callgrind_control", "-i", "on", str(os.getpid())],
                              stdout=subprocess.DEVNULL)
    while switch.poll() is None:
        sum(range(2000))
    if switch.returncode != 0:
        raise SystemExit("callgrind_control could not switch instrumentation on")

    segments: list[str] = []  # what ran after each fence

    def fence(label: str) -> None:
        os.getppid()
        segments.append(label)

    for scenario, contestant, _, n1, n2 in plan:
        app = h.app(scenario, contestant)
        for tag, n in (("n1", n1), ("n2", n2)):
            envs = h.environs(scenario, n)
            gc.collect()
            fence(f"{scenario}|{contestant}|{tag}|{n}")
            run_batch(app, envs)
            fence("between")
    Path(sys.argv[3]).write_text(json.dumps({"segments": segments, "pid": os.getpid()}))


if __name__ == "__main__":
    main()

"""Count instructions per request under callgrind (run by run.py, not by hand).

    valgrind --tool=callgrind --instr-atstart=no --dump-before=getppid \\
        --callgrind-out-file=OUT.%p python cg_worker.py CONTEXT.json PLAN.json RESULT.json

The worker starts without instrumentation (imports and app building run at
near native speed), builds every app of its plan and serves each case's
warm-up requests, then writes ``RESULT.json.ready`` and spins until
``RESULT.json.go`` exists: run.py switches instrumentation on in between
(``callgrind_control -i on PID``).

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
import sys
from pathlib import Path

from common import Context
from harness import Harness, run_batch


def main() -> None:
    ctx = Context.load(sys.argv[1])
    plan = json.loads(Path(sys.argv[2]).read_text())
    result = Path(sys.argv[3])
    h = Harness(ctx)
    for scenario, contestant, warm, _, _ in plan:
        run_batch(h.app(scenario, contestant), h.environs(scenario, warm))
    gc.collect()
    gc.freeze()

    ready, go = Path(f"{result}.ready"), Path(f"{result}.go")
    ready.write_text(str(os.getpid()))
    while not go.exists():  # busy, not asleep: callgrind takes commands while running
        sum(range(2000))

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
    result.write_text(json.dumps({"segments": segments, "pid": os.getpid()}))


if __name__ == "__main__":
    main()

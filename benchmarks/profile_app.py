"""Profile one contestant on one scenario with cProfile, to see where the time goes.

    python benchmarks/profile_app.py convention                  # robaccia
    python benchmarks/profile_app.py html_list --contestant falcon --sort cumulative

Sets the stage as run.py does, serves a warm-up, then ``-n`` requests under
cProfile, and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BY_KEY  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=sorted(BY_KEY))
    parser.add_argument("--contestant", default="robaccia")
    parser.add_argument("-n", type=int, default=2000, help="profiled requests")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()

    import harness
    from run import prepare

    ctx, _ = prepare(keep=False)
    try:
        h = harness.Harness(ctx)
        app = h.app(args.scenario, args.contestant)
        harness.run_batch(app, h.environs(args.scenario, 50))
        envs = h.environs(args.scenario, args.n)
        profile = cProfile.Profile()
        profile.enable()
        harness.run_batch(app, envs)
        profile.disable()
        stats = pstats.Stats(profile)
        print(f"{args.contestant} / {args.scenario}: {args.n} requests; "
              f"{getattr(stats, 'total_tt', 0.0) / args.n * 1e6:.1f} µs/request under the profiler")
        stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
    finally:
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

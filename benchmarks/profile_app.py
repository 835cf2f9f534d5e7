"""Profile one contestant on one scenario with cProfile (to find where the time goes).

    python benchmarks/profile_app.py json_member                 # robaccia
    python benchmarks/profile_app.py html_list --contestant flask -n 500 --sort cumulative

Sets the stage as run.py does (scaffolded projects, same data), serves a
warm-up, then ``-n`` requests under cProfile, and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
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
    parser.add_argument("--save", type=Path, help="also save the raw profile here")
    args = parser.parse_args()

    import harness
    import robaccia_apps
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
        if args.save:
            stats.dump_stats(str(args.save))
    finally:
        robaccia_apps.remove(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())

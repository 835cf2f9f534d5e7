"""Time template matching on hostile paths: it should grow linearly with length.

Run: python benchmarks/dispatch_redos.py

For the default route of a generated dispatcher.py and for one realistic
template per built-in range, match adversarial paths (some that match, most
that do not) of about 1 KiB, 2 KiB and 4094 bytes with the rule a
:class:`Dispatcher` compiled, and print the best time of several runs. A
growth ratio 4k/1k near 4 means linear time; a quadratic matcher would show
about 16. For contrast, the naive original-style regex (greedy ``[^/]+`` for
id and noun, ``$`` at the end) is timed on ``/v/;;;...;/``, the path the
template compiler guards against.
"""

from __future__ import annotations

import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run from a checkout without installing: make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robaccia.wsgidispatcher import Dispatcher, template2regex

SIZES = (1024, 2048, 4094)
REPEATS = 9
MIN_SAMPLE = 0.005  # seconds: loop a fast match until one sample takes this long

DEFAULT = "/{view:word}/[{id:unreserved}][;{noun:unreserved}]"  # as dispatcher.py has it
NAIVE = r"^/(?P<view>[a-zA-Z0-9]+)/((?P<id>[^/]+))?(;(?P<noun>[^/]+))?$"


def fill(total: int, fixed: int, parts: int = 1) -> int:
    """Repeat count so that ``fixed`` characters plus ``parts`` runs make ``total``."""
    return max(1, (total - fixed) // parts)


# template -> (shape label, path builder, should it match?)
CASES: list[tuple[str, list[tuple[str, Callable[[int], str], bool]]]] = [
    (DEFAULT, [
        ("/v/a..a;b..b/", lambda L: "/v/" + "a" * fill(L, 5, 2) + ";" + "b" * fill(L, 5, 2) + "/", False),
        ("/v/;;;...;/", lambda L: "/v/" + ";" * fill(L, 4) + "/", False),
        ("/-..-/y", lambda L: "/" + "-" * fill(L, 3) + "/y", False),
        ("/v/a..a;b..b", lambda L: "/v/" + "a" * fill(L, 4, 2) + ";" + "b" * fill(L, 4, 2), True),
        ("/v..v/", lambda L: "/" + "v" * fill(L, 2) + "/", True),
    ]),
    ("/tags/{tag:word}/posts/", [
        ("/tags/a_a..a/posts/", lambda L: "/tags/" + "a_" * fill(L, 13, 2) + "/posts/", True),
        ("/tags/a_a..a!", lambda L: "/tags/" + "a_" * fill(L, 7, 2) + "!", False),
    ]),
    ("/{lang:alpha}/docs/", [
        ("/aa..a/docs/", lambda L: "/" + "a" * fill(L, 7) + "/docs/", True),
        ("/aa..a1/docs/", lambda L: "/" + "a" * fill(L, 8) + "1/docs/", False),
    ]),
    ("/archive/{year:digits}/{month:digits}/", [
        ("/archive/1..1/2..2/", lambda L: f"/archive/{'1' * fill(L, 11, 2)}/{'2' * fill(L, 11, 2)}/", True),
        ("/archive/1..1/2..2x", lambda L: f"/archive/{'1' * fill(L, 11, 2)}/{'2' * fill(L, 11, 2)}x", False),
    ]),
    ("/{view:alnum}/", [
        ("/a1a1..a1/", lambda L: "/" + "a1" * fill(L, 2, 2) + "/", True),
        ("/a1a1..a1-", lambda L: "/" + "a1" * fill(L, 2, 2) + "-", False),
    ]),
    ("/download/{name:segment}.tar.gz", [
        ("/download/a.a..tar.gz", lambda L: "/download/" + "a." * fill(L, 16, 2) + "tar.gz", True),
        ("/download/.tar.tar...gx", lambda L: "/download/" + ".tar" * fill(L, 17, 4) + ".tar.gx", False),
    ]),
    ("/pkg/{name:unreserved}/{version:unreserved}", [
        ("/pkg/a-..a-/1...1.", lambda L: "/pkg/" + "a-" * fill(L, 6, 4) + "/" + "1." * fill(L, 6, 4), True),
        ("/pkg/a-..a-/1...1.;", lambda L: "/pkg/" + "a-" * fill(L, 7, 4) + "/" + "1." * fill(L, 7, 4) + ";",
         False),
    ]),
    ("/{path:any}/raw", [
        ("/a/a/../raw", lambda L: "/" + "a/" * fill(L, 4, 2) + "raw", True),
        ("/-..-/y", lambda L: "/" + "-" * fill(L, 3) + "/y", False),
        ("/r/r/../rax", lambda L: "/" + "r/" * fill(L, 4, 2) + "rax", False),
    ]),
]


def best_time(match: Callable[[str], object], path: str, repeats: int = REPEATS) -> float:
    """Best time of one match, in seconds."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            match(path)
        if time.perf_counter() - start >= MIN_SAMPLE or loops >= 1 << 16:
            break
        loops *= 2
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            match(path)
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def dispatcher_rule(template: str) -> Callable[[str], object]:
    """The matcher the Dispatcher compiled for ``template``."""
    d = Dispatcher()
    d.add(template, lambda environ, start_response: [])
    return d.routes[0].regex.match  # type: ignore[union-attr]  # the compiled rule, no WSGI


def row(template: str, shape: str, times: list[float], note: str = "") -> str:
    cells = "".join(f"{t * 1e6:>12.1f}" for t in times)
    return f"{template:<52} {shape:<24}{cells}{times[-1] / times[0]:>9.2f}  {note}"


def main() -> None:
    started = time.perf_counter()
    print(f"Python {platform.python_version()} ({platform.python_implementation()}) on {sys.platform}")
    print(f"best of {REPEATS}; times in microseconds per match; path lengths ~ {SIZES}\n")
    header = f"{'template':<52} {'path shape':<24}" + "".join(f"{f'µs @{n}':>12}" for n in SIZES) + f"{'4k/1k':>9}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for template, shapes in CASES:
        match = dispatcher_rule(template)
        for shape, build, should_match in shapes:
            times = []
            for size in SIZES:
                path = build(size)
                if (match(path) is not None) != should_match:
                    raise SystemExit(f"{template} on {shape}: expected match={should_match}")
                times.append(best_time(match, path))
            worst = max(worst, times[-1] / times[0])
            print(row(template, shape, times, "match" if should_match else "no match"))
    print(f"\ncompiled default template: {template2regex(DEFAULT)}")
    print(f"naive original-style regex: {NAIVE}")
    naive = re.compile(NAIVE).match
    times = [best_time(naive, "/v/" + ";" * fill(size, 4) + "/", repeats=3) for size in SIZES]
    print(row("naive [^/]+ id/noun (re directly)", "/v/;;;...;/", times, "no match"))
    ours = dispatcher_rule(DEFAULT)
    times = [best_time(ours, "/v/" + ";" * fill(size, 4) + "/") for size in SIZES]
    print(row(DEFAULT, "/v/;;;...;/", times, "no match"))
    print(f"\nlargest 4k/1k growth over compiled templates: {worst:.2f} (linear ~ 4, quadratic ~ 16)")
    print(f"total run time: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

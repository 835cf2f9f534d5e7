"""The app gunicorn serves in the HTTP phase of run.py (one contestant, one scenario).

    BENCH_CONTEXT=... BENCH_SCENARIO=json_member BENCH_CONTESTANT=flask \\
        gunicorn --chdir benchmarks wsgi_target:application
"""

from __future__ import annotations

import os

from common import Context
from harness import Harness

_harness = Harness(Context.load(os.environ["BENCH_CONTEXT"]))
application = _harness.app(os.environ["BENCH_SCENARIO"], os.environ["BENCH_CONTESTANT"])

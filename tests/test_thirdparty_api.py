"""The JSON API as third-party clients see it: openapi-spec-validator and schemathesis.

A project with a JSON view holding a field of every type (required and unique
ones among them) is served by ``serve --workers 2``, and both tools read the
document the server publishes at /openapi.json:

* openapi-spec-validator: the document is valid OpenAPI (its own version's
  meta-schema and rules);
* schemathesis 4, as a user runs it (its CLI, in a subprocess): every check
  (``--checks all``, none excluded), every phase including the stateful one
  (the links between operations), a fixed seed and a bounded number of
  examples per operation. No request is shaped for it: no header is added.

Its report is kept in tests/output/thirdparty/schemathesis/ (the console
output and the JSON report); a failure quotes the console report verbatim.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from support import Server, make_project, missing, served

pytestmark = pytest.mark.slow

OUTPUT = Path(__file__).resolve().parent / "output" / "thirdparty" / "schemathesis"
# Every field type; required and unique ones among them.
FIELDS = ["name:string:required:unique", "body:text", "count:integer:required", "ratio:float",
          "price:decimal", "active:boolean", "day:date", "at:datetime", "mail:email:unique", "site:url"]
SEED = 20261130
MAX_EXAMPLES = 300  # per operation and phase: about two minutes on a busy two-core machine
PHASES = "examples,coverage,fuzzing,stateful"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = make_project(tmp_path_factory.mktemp("api"), name="inventory", views={"items": FIELDS},
                        kind="json", createdb=True)
    with served(root, "serve", workers=2) as server:
        yield server


def test_openapi_document_is_valid(api: Server) -> None:
    try:
        from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator
    except ImportError:
        missing("openapi-spec-validator is not installed (pip install -e '.[test]')")
    response = api.client(keep_cookies=False).request("GET", "/openapi.json")
    assert response.status == 200, response.text[:500]
    document: dict[str, Any] = response.json()
    version = str(document.get("openapi", ""))
    validator = {"3.0": OpenAPIV30SpecValidator, "3.1": OpenAPIV31SpecValidator}.get(version[:3])
    assert validator is not None, f"openapi: {version!r} is not a version the validator knows"
    errors = [f"at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
              for e in validator(document).iter_errors()]
    assert not errors, f"openapi-spec-validator ({version}):\n" + "\n".join(errors)
    assert {"/items/", "/items/{id}"} <= set(document["paths"]), sorted(document["paths"])


def _schemathesis_version() -> str:
    try:
        version = metadata.version("schemathesis")
    except metadata.PackageNotFoundError:
        missing("schemathesis is not installed (pip install -e '.[test]')")
    if int(version.split(".")[0]) < 4:
        missing(f"schemathesis {version} is installed; these options need 4.x (pip install -e '.[test]')")
    return version


def test_schemathesis_finds_no_failure_with_every_check_and_the_stateful_phase(api: Server,
                                                                              tmp_path: Path) -> None:
    version = _schemathesis_version()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    report = OUTPUT / "report.json"
    report.unlink(missing_ok=True)
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{api.base}/openapi.json",
               "--checks", "all", "--phases", PHASES, "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES),
               "--continue-on-failure", "--request-timeout", "20", "--output-truncate", "false",
               "--report", "json", "--report-json-path", str(report)]
    # NOTE: run in a scratch folder: schemathesis keeps state (.schemathesis/) where it runs.
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "NO_COLOR": "1"})
    console = result.stdout + result.stderr
    (OUTPUT / "console.txt").write_text(console)
    # The failure report verbatim: from the FAILURES banner (or ERRORS) to the end.
    start = min((i for i in (console.find("= FAILURES ="), console.find("= ERRORS =")) if i >= 0),
                default=0)
    verbatim = console[console.rfind("\n", 0, start) + 1:] if start else console[-6000:]
    where = f"schemathesis {version}, seed {SEED}, {MAX_EXAMPLES} examples (report in {OUTPUT})"
    assert report.exists(), f"{where}: no JSON report, exit {result.returncode}:\n{console[-6000:]}"
    run = json.loads(report.read_text())
    assert run["complete"] and not run["errors"], f"{where}: the run did not complete cleanly:\n{verbatim}"
    assert not run["failures"] and result.returncode == 0, f"{where}:\n{verbatim}"

    # It tested what it was meant to: every operation, every phase but examples (the
    # document gives none), the links between operations, and a fair number of cases.
    assert run["operations"]["tested"] == run["operations"]["total"] >= 5, run["operations"]
    statuses = {name: phase["status"] for name, phase in run["phases"].items()}
    assert all(statuses[p] == "success" for p in ("coverage", "fuzzing", "stateful")), statuses
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", console)
    assert links and int(links.group(1)) > 0, f"the stateful phase followed no link:\n{console[-3000:]}"
    assert run["test_cases"]["generated"] >= 500, run["test_cases"]

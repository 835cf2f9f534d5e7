"""The JSON API as third-party clients see it: openapi-spec-validator (schemathesis to follow).

A project with a JSON view holding a field of every type (required and unique
ones among them) is served by ``serve --workers 2``; openapi-spec-validator
reads the document the server publishes at /openapi.json, which must be valid
OpenAPI (its own version's meta-schema and rules).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support import Server, make_project, missing, served

pytestmark = pytest.mark.slow

# Every field type; required and unique ones among them.
FIELDS = ["name:string:required:unique", "body:text", "count:integer:required", "ratio:float",
          "price:decimal", "active:boolean", "day:date", "at:datetime", "mail:email:unique", "site:url"]


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

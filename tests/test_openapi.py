"""The OpenAPI document of JSON views, and schemathesis against the live server."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Date, Integer, MetaData, Numeric, String, Table
from support import make_project, served

from robaccia import DefaultModelCollection, render
from robaccia.fields import SOME_TEXT
from robaccia.openapi import document

FIELDS = ["name:string:required:unique", "count:integer", "price:decimal", "active:boolean",
          "born:date", "note:text"]


class Things(DefaultModelCollection):
    def list(self, environ, start_response):
        pass

    def retrieve(self, environ, start_response):
        pass

    def delete(self, environ, start_response):
        pass


def test_document_describes_columns_paging_and_only_handled_methods():
    table = Table("things", MetaData(), Column("id", Integer, primary_key=True),
                  Column("name", String(40), nullable=False), Column("born", Date),
                  Column("price", Numeric(8, 2)))
    doc = document("demo", {"things": Things("json", render, None, table),
                            "pages": Things("html", render, None, table)})
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/things/", "/things/{id}"}  # the html view is not an API
    assert set(doc["paths"]["/things/"]) == {"get"}  # no create handler, no POST
    assert set(doc["paths"]["/things/{id}"]) == {"parameters", "get", "delete"}
    props = doc["components"]["schemas"]["things"]["properties"]
    # a NOT NULL string must hold more than white space, as the server requires
    assert props["name"] == {"type": "string", "maxLength": 40, "pattern": SOME_TEXT, "minLength": 1}
    assert props["born"] == {"type": ["string", "null"], "format": "date"}
    # digits before and after the point as Numeric(8, 2) holds them
    assert props["price"] == {"type": ["string", "null"], "format": "decimal",
                              "pattern": "^-?[0-9]{1,6}(?:\\.[0-9]{1,2})?$", "minLength": 1}
    assert props["id"]["type"] == "integer" and props["id"]["readOnly"] is True
    params = {p["name"] for p in doc["paths"]["/things/"]["get"]["parameters"]}
    assert params == {"limit", "sort", "after", "before"}
    get_one = doc["paths"]["/things/{id}"]["get"]["responses"]
    assert "ETag" in get_one["200"]["headers"]
    assert "application/problem+json" in get_one["404"]["content"]


@pytest.mark.slow
def test_served_document_and_problem_json_errors(tmp_path):
    root = make_project(tmp_path, views={"counters": FIELDS}, kind="json", cli=True, createdb=True)
    with served(root, "serve") as server:
        http = server.client(keep_cookies=False)
        response = http.request("GET", "/openapi.json")
        assert response.status == 200 and response.header("Content-Type") == "application/json"
        doc = response.json()
        assert "/counters/" in doc["paths"]
        # errors raised before the view runs still speak the view's language
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        for method, path, expected, body, headers in [
                ("GET", "/counters/%C2%84", 404, None, {}),
                ("POST", "/counters/", 403, "count=1", form),
                # an API client's DELETE needs no Content-Type (and no token): the row is absent
                ("DELETE", "/counters/1", 404, None, {})]:
            response = http.request(method, path, body, headers)
            assert response.status == expected
            assert response.header("Content-Type") == "application/problem+json"
            assert response.json()["status"] == expected

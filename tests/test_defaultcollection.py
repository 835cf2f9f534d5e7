"""Tests for robaccia.defaultcollection: handlers that return template variables."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Recorder, read_page

from robaccia import render
from robaccia.defaultcollection import DefaultCollection, OddResult, template_name
from robaccia.errors import NotFound
from robaccia.renderers import Templates
from robaccia.request import Request
from robaccia.testing import call, make_environ


class MyColl(DefaultCollection):
    def list(self, environ: Any, start_response: Any) -> None:
        return None

    def retrieve(self, environ: Any, start_response: Any) -> None:
        return None

    def update(self, environ: Any, start_response: Any) -> list[bytes]:
        start_response("300 Multiple Choices", [("location", "http://example.org")])
        return [b"Look over there."]


class Greeter(DefaultCollection):
    def list(self, environ: Any, start_response: Any) -> dict[str, Any]:
        return {"name": environ.get("QUERY_STRING") or "world"}

    def retrieve(self, environ: Any, start_response: Any) -> Any:
        if environ["robaccia.request"].id == "missing":
            raise NotFound("No such greeting.")
        return None

    def get_edit_form(self, environ: Any, start_response: Any) -> Any:
        return ["not a dict", "so returned as it is"]


def env(method: str, **routing: Any) -> dict[str, Any]:
    return make_environ(method, "/", **{"wsgiorg.routing_args": ((), routing)})


# --- the 2007 tests ----------------------------------------------------------------------


def test_none(recorder: Recorder) -> None:
    environ = env("GET", view="fred")
    status, _, _ = call(MyColl("html", recorder), environ=environ)
    assert status == "200 OK"
    assert recorder.last["template"] == "fred/list.html"
    assert recorder.last["environ"] is environ
    assert recorder.last["vars"] == {}


def test_none_retrieve(recorder: Recorder) -> None:
    status, _, _ = call(MyColl("json", recorder), environ=env("GET", id="1", view="barney"))
    assert status == "200 OK"
    assert recorder.last["template"] == "barney/retrieve.json"
    assert recorder.last["vars"] == {"id": "1"}


def test_update(recorder: Recorder) -> None:
    status, headers, body = call(MyColl("html", recorder), environ=env("PUT", id="1", view="fred"))
    assert status == "300 Multiple Choices"
    assert headers == [("location", "http://example.org")]
    assert body == b"Look over there."
    assert recorder.calls == []


# --- behaviour -----------------------------------------------------------------------------


def test_template_name() -> None:
    assert template_name(env("GET", view="fred"), "list", "html") == "fred/list.html"
    assert template_name(env("GET"), "list", "json") == "./list.json"


def test_no_view_uses_the_template_folder_itself(recorder: Recorder) -> None:
    call(MyColl("html", recorder), environ=env("GET"))
    assert recorder.last["template"] == "./list.html"


def test_dict_result_is_rendered_as_json() -> None:
    status, headers, body = call(Greeter("json", render), environ=env("GET", view="greeter"))
    assert status == "200 OK"
    assert dict(headers)["Content-Type"] == "application/json"
    assert json.loads(body) == {"name": "world"}


def test_none_on_a_member_gives_the_id() -> None:
    status, _, body = call(Greeter("json", render), environ=env("GET", view="greeter", id="7"))
    assert status == "200 OK"
    assert json.loads(body) == {"id": "7"}


def test_dict_result_is_rendered_with_each_engine(templates: Templates) -> None:
    environ = env("GET", view="greeter", **{})
    environ["QUERY_STRING"] = "<script>alert(1)</script>"
    Request.of(environ).templates = templates
    status, headers, body = call(Greeter("html", render), environ=environ)
    assert status == "200 OK"
    assert dict(headers)["Content-Type"] == "text/html; charset=utf-8"
    assert b"<script>" not in body
    assert read_page(body).ids["greeting"] == "Hello <script>alert(1)</script>!"


def test_member_template_gets_the_id(templates: Templates) -> None:
    environ = env("GET", view="greeter", id="42")
    Request.of(environ).templates = templates
    _, _, body = call(Greeter("html", render), environ=environ)
    assert read_page(body).ids["item"] == "Item 42"


def test_a_list_without_start_response_is_an_odd_result_named(recorder: Recorder) -> None:
    """The 2007 code passed anything else through to the server, which failed
    anonymously; now the error names the handler and what it may return."""
    app = Greeter("html", recorder)
    with pytest.raises(OddResult) as raised:
        app(env("GET", view="greeter", id="1", noun="edit_form"), lambda s, h, e=None: None)
    assert "Greeter.get_edit_form returned ['not a dict', 'so returned as it is'] (a list)" in str(raised.value)
    assert "a dict (rendered with templates/greeter/get_edit_form.html)" in raised.value.hint
    assert recorder.calls == []


def test_error_raised_by_a_json_handler_is_problem_json() -> None:
    status, headers, body = call(Greeter("json", render), environ=env("GET", view="greeter", id="missing"))
    assert status == "404 Not Found"
    assert dict(headers)["Content-Type"] == "application/problem+json"
    assert json.loads(body)["detail"] == "No such greeting."


def test_error_raised_by_an_html_handler_is_a_page() -> None:
    status, headers, body = call(Greeter("html", render), environ=env("GET", view="greeter", id="missing"))
    assert status == "404 Not Found"
    assert dict(headers)["Content-Type"] == "text/html; charset=utf-8"
    assert b"No such greeting." in body


def test_method_without_a_handler_is_405(recorder: Recorder) -> None:
    status, headers, _ = call(MyColl("html", recorder), environ=env("DELETE", view="fred", id="1"))
    assert status == "405 Method Not Allowed"
    assert dict(headers)["Allow"] == "GET, HEAD, PUT, OPTIONS"
    assert recorder.calls == []


def test_one_instance_serves_different_requests(recorder: Recorder) -> None:
    app = MyColl("json", recorder)
    call(app, environ=env("GET", view="a", id="1"))
    call(app, environ=env("GET", view="b"))
    assert [(c["template"], c["vars"]) for c in recorder.calls] == [
        ("a/retrieve.json", {"id": "1"}),
        ("b/list.json", {}),
    ]

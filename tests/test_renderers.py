"""Tests for robaccia.renderers: choosing, finding and rendering templates."""

from __future__ import annotations

import datetime
import decimal
import enum
import inspect
import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import INPUT, TEMPLATES, read_page

import robaccia
from robaccia import renderers
from robaccia.renderers import TemplateConfigError, Templates, configure, find_renderer, render, to_json
from robaccia.request import Request
from robaccia.testing import call, make_environ


class StartResponse:
    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status, self.headers = status, headers
        return lambda data: None

    @property
    def header(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers}


@pytest.fixture
def default_templates() -> Any:
    """Restore the module's default Templates after a test that configures it."""
    saved = renderers._default
    yield
    renderers._default = saved


def render_with(templates: Templates | None, name: str, vars: dict[str, Any],
                **kw: Any) -> tuple[StartResponse, bytes]:
    environ = make_environ("GET", "/")
    if templates is not None:
        Request.of(environ).templates = templates
    sr = StartResponse()
    body = b"".join(render(environ, sr, name, vars, **kw))
    return sr, body


# --- the 2007 test ----------------------------------------------------------------


def test_render_template_paths(default_templates: Any) -> None:
    sr = StartResponse()
    assert render({}, sr, "list.json", {"a": 1}) == [b'{"a": 1}']
    assert sr.status == "200 OK"
    configure(str(TEMPLATES))
    sr = StartResponse()
    assert render({}, sr, "list.html", {"a": 1}) == [b"<html><body><p>Hello World!</p></body></html>"]
    assert sr.header["content-type"] == "text/html; charset=utf-8"


def test_environ_templates_take_precedence_over_configured(default_templates: Any) -> None:
    configure(str(TEMPLATES / "jinja2"), "jinja2")
    genshi = Templates(str(TEMPLATES))
    _, body = render_with(genshi, "list.html", {})
    assert body == b"<html><body><p>Hello World!</p></body></html>"


def test_configure_returns_the_templates_used(default_templates: Any) -> None:
    templates = configure(str(TEMPLATES / "jinja2"), "jinja2")
    assert templates.engine == "jinja2"
    sr = StartResponse()
    body = b"".join(render({}, sr, "greeter/list.html", {"name": "Ada"}))
    assert read_page(body).ids["greeting"] == "Hello Ada!"


# --- representations ----------------------------------------------------------------


def test_json_serialises_vars_with_json_content_type() -> None:
    vars = {"name": "<script>alert('x')</script>", "n": [1, 2.5, None, True]}
    sr, body = render_with(None, "fred/list.json", vars)
    assert sr.status == "200 OK"
    assert sr.header["content-type"] == "application/json"
    assert json.loads(body) == vars
    assert sr.header["content-length"] == str(len(body))


def test_json_ignores_the_template_file_even_if_missing() -> None:
    _, body = render_with(Templates(str(TEMPLATES)), "no/such/template.json", {"a": 1})
    assert json.loads(body) == {"a": 1}


def test_json_serialises_column_types() -> None:
    vars = {
        "d": datetime.date(2024, 2, 29),
        "dt": datetime.datetime(2024, 2, 29, 13, 45, 1),
        "t": datetime.time(7, 30),
        "price": decimal.Decimal("12.30"),
        "u": uuid.UUID(int=1),
        "colour": enum.Enum("Colour", "red green").green,
    }
    _, body = render_with(None, "fred/retrieve.json", vars)
    assert json.loads(body) == {
        "d": "2024-02-29",
        "dt": "2024-02-29T13:45:01Z",  # a naive datetime is UTC, and says so
        "t": "07:30:00",
        "price": "12.30",
        "u": "00000000-0000-0000-0000-000000000001",
        "colour": "green",
    }


def test_json_refuses_values_it_cannot_represent() -> None:
    with pytest.raises(TypeError):
        to_json({"x": object()})


def test_html_content_type_and_length(templates: Templates) -> None:
    sr, body = render_with(templates, "greeter/list.html", {"name": "Ada"})
    assert sr.header["content-type"] == "text/html; charset=utf-8"
    assert sr.header["content-length"] == str(len(body))
    assert read_page(body).ids["greeting"] == "Hello Ada!"


@pytest.mark.parametrize("value", ["<script>alert(1)</script>", '"><script>x</script>', "a & b"])
def test_html_escapes_values_in_text_and_attributes(templates: Templates, value: str) -> None:
    _, body = render_with(templates, "greeter/list.html", {"name": value})
    assert b"<script>" not in body
    assert b"a & b" not in body
    page = read_page(body)
    # What the user sees is exactly the value, in the text and in the attribute.
    assert page.ids["greeting"] == f"Hello {value}!"
    assert page.attrs["greeting"]["title"] == value


def test_html_is_utf8(templates: Templates) -> None:
    _, body = render_with(templates, "greeter/list.html", {"name": "Łukasz ☃"})
    assert "Hello Łukasz ☃!".encode() in body


def test_status_and_extra_headers_pass_through(templates: Templates) -> None:
    sr, _ = render_with(templates, "greeter/retrieve.html", {"id": "7"},
                        headers=[("ETag", '"abc"')], status="201 Created")
    assert sr.status == "201 Created"
    assert sr.header["etag"] == '"abc"'


def test_given_content_type_replaces_the_default() -> None:
    sr, _ = render_with(None, "x/list.json", {}, headers=[("content-type", "application/vnd.x+json")])
    assert [v for k, v in sr.headers if k.lower() == "content-type"] == ["application/vnd.x+json"]


def test_headers_do_not_leak_between_responses(templates: Templates) -> None:
    given = [("ETag", '"one"'), ("X-Extra", "1")]
    first, _ = render_with(templates, "greeter/list.html", {"name": "a"}, headers=given)
    second, _ = render_with(templates, "greeter/list.html", {"name": "a"})
    third, _ = render_with(None, "greeter/list.json", {"name": "a"})
    assert "etag" in first.header
    assert "etag" not in second.header and "x-extra" not in second.header
    assert "etag" not in third.header and "x-extra" not in third.header
    assert third.header["content-type"] == "application/json"
    assert given == [("ETag", '"one"'), ("X-Extra", "1")]  # the caller's list is untouched
    # and no mutable default is hiding in the signature
    for param in inspect.signature(render).parameters.values():
        assert not isinstance(param.default, (list, dict, set))


class FakeProject:
    """What a project adds to every page's context."""

    def __init__(self, templates: Templates, chrome: dict[str, Any]) -> None:
        self.templates = templates
        self.chrome = chrome

    def template_context(self, request: Any) -> dict[str, Any]:
        return dict(self.chrome)


def test_vars_are_not_modified(templates: Templates) -> None:
    vars = {"name": "Ada"}
    environ = make_environ("GET", "/")
    Request.of(environ).project = FakeProject(templates, {"project": "p", "nav": []})  # type: ignore[assignment]
    render(environ, StartResponse(), "greeter/list.html", vars)
    assert vars == {"name": "Ada"}


def test_request_context_is_available_and_vars_win(templates: Templates) -> None:
    environ = make_environ("GET", "/")
    Request.of(environ).project = FakeProject(templates, {"name": "ctx", "id": "9"})  # type: ignore[assignment]
    page = read_page(b"".join(render(environ, StartResponse(), "greeter/retrieve.html", {})))
    assert page.ids["item"] == "Item 9"
    page = read_page(b"".join(render(environ, StartResponse(), "greeter/list.html", {"name": "Ada"})))
    assert page.ids["greeting"] == "Hello Ada!"


def test_used_as_a_wsgi_response(templates: Templates) -> None:
    def app(environ: Any, start_response: Any) -> Any:
        Request.of(environ).templates = templates
        return render(environ, start_response, "greeter/retrieve.html", {"id": "42"})

    status, headers, body = call(app)
    assert status == "200 OK"
    assert read_page(body).ids["item"] == "Item 42"


# --- finding renderers and templates -----------------------------------------------------


def test_find_renderer() -> None:
    assert robaccia.find_renderer("html") is robaccia.render
    assert find_renderer("json") is render
    with pytest.raises(TemplateConfigError):
        find_renderer("xml")


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="mako"):
        Templates(str(TEMPLATES), "mako")


def test_template_folder_is_absolute_not_the_working_directory(
    templates: Templates, engine_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(INPUT.parent)
    relative = Templates(os.path.join("input", "templates", engine_name), engine_name)
    assert os.path.isabs(relative.directory)
    monkeypatch.chdir(tmp_path)  # a folder with no templates in it
    _, body = render_with(relative, "greeter/retrieve.html", {"id": "3"})
    assert read_page(body).ids["item"] == "Item 3"


def test_missing_template_is_an_error_not_an_empty_page(templates: Templates) -> None:
    with pytest.raises(Exception, match="nothere"):
        render_with(templates, "greeter/nothere.html", {})


def _copy_set(engine_name: str, tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES / engine_name / "greeter", folder / "greeter")
    return folder


def _rewrite(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))
    later = path.stat().st_mtime + 10
    os.utime(path, (later, later))


def test_compiled_templates_are_cached_without_debug(engine_name: str, tmp_path: Path) -> None:
    folder = _copy_set(engine_name, tmp_path)
    templates = Templates(str(folder), engine_name)
    first = templates.render("greeter/list.html", {"name": "Ada"})
    _rewrite(folder / "greeter" / "list.html", "Hello", "Goodbye")
    assert templates.render("greeter/list.html", {"name": "Ada"}) == first


def test_debug_rereads_changed_templates(engine_name: str, tmp_path: Path) -> None:
    folder = _copy_set(engine_name, tmp_path)
    templates = Templates(str(folder), engine_name, debug=True)
    assert b"Hello Ada!" in templates.render("greeter/list.html", {"name": "Ada"})
    _rewrite(folder / "greeter" / "list.html", "Hello", "Goodbye")
    assert b"Goodbye Ada!" in templates.render("greeter/list.html", {"name": "Ada"})


def test_loader_is_built_once(engine_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if engine_name == "genshi":
        import genshi.template

        cls: Any = genshi.template.TemplateLoader
    else:
        import jinja2

        cls = jinja2.FileSystemLoader
    built = []
    original = cls.__init__

    def counting(self: Any, *a: Any, **kw: Any) -> None:
        built.append(1)
        original(self, *a, **kw)

    monkeypatch.setattr(cls, "__init__", counting)
    templates = Templates(str(TEMPLATES / engine_name), engine_name)
    for i in range(5):
        _, body = render_with(templates, "greeter/retrieve.html", {"id": str(i)})
        assert read_page(body).ids["item"] == f"Item {i}"
    assert len(built) == 1


def test_concurrent_renders_each_get_their_own_vars(templates: Templates) -> None:
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for _ in range(20):
                _, body = render_with(templates, "greeter/list.html", {"name": f"user{n}"})
                results[n] = read_page(body).ids["greeting"]
                assert results[n] == f"Hello user{n}!"
        except BaseException as exc:  # report in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {n: f"Hello user{n}!" for n in range(8)}

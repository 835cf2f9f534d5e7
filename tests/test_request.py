"""robaccia.request: one request object per request, what it reads and what it builds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from webob.cookies import parse_cookie

from robaccia.request import Request, UnsafeURLError, _parse_cookies, site_path
from robaccia.testing import make_environ
from robaccia.wsgidispatcher import DEFAULT_ROUTE, Dispatcher


def webob_first(header: str) -> dict[str, str]:
    """What WebOb's parser reads, the first of a repeated name kept."""
    jar: dict[str, str] = {}
    for key, value in parse_cookie(header):
        jar.setdefault(key.decode(), value.decode())
    return jar


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC_-.0123456789$", min_size=1, max_size=8)
_values = st.text(alphabet="abcXYZ019!#$%&'*+-.^_`|~=:/?@\" ,\\", max_size=12)


@settings(max_examples=500)
@given(st.lists(st.tuples(_names, _values), max_size=5), st.sampled_from(["; ", ";", " ; ", ";  "]))
def test_cookies_read_as_webob_reads_them(pairs: list[tuple[str, str]], sep: str) -> None:
    """The shortcut for plain headers gives what WebOb's parser gives, for any header."""
    header = sep.join(f"{k}={v}" for k, v in pairs)
    assert _parse_cookies(header) == webob_first(header)


@pytest.mark.parametrize("header", [
    "a=1; robaccia_csrf=\xe9\xff; b=2",  # latin-1 bytes that are not UTF-8
    "x=\u0100; a=1; b=2",  # more than a WSGI header can hold
    "a=1; a=2; b=2",
    'a="1"; b="2"',
])
def test_a_hostile_cookie_hides_no_other(header: str) -> None:
    request = Request(make_environ(headers={"Cookie": header}))
    assert request.cookie("a") == "1" and request.cookie("b") == "2"
    assert request.cookie("robaccia_csrf") in (None, "")


def test_one_request_per_environ_and_routing_read_from_it() -> None:
    environ = make_environ("GET", "/e/7;edit_form",
                           **{"wsgiorg.routing_args": ((), {"view": "e", "id": "7", "noun": "edit_form"})})
    request = Request.of(environ)
    assert Request.of(environ) is request and environ["robaccia.request"] is request
    assert (request.view, request.id, request.noun) == ("e", "7", "edit_form")


def test_urls_are_built_from_the_matched_route_under_script_name() -> None:
    seen = {}

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        request = Request.of(environ)
        seen.update(collection=request.collection_url, member=request.member_url(5),
                    noun=request.member_url(5, "edit_form"), odd=request.member_url("a.b~c"),
                    static=request.static_url("robaccia.css"), named=request.url_for("about"))
        start_response("200 OK", [])
        return []

    routes = Dispatcher()
    routes.add("/about", GET=app, name="about")
    routes.add(DEFAULT_ROUTE, app)
    for _ in range(2):  # the second time from the route's shapes
        routes(make_environ("GET", "/employees/3", SCRIPT_NAME="/app"), lambda s, h, e=None: None)
        assert seen == {"collection": "/app/employees/", "member": "/app/employees/5",
                        "noun": "/app/employees/5;edit_form", "odd": "/app/employees/a.b~c",
                        "static": "/app/static/robaccia.css", "named": "/app/about"}


@pytest.mark.parametrize("url", ["//evil.example/x", "/\\evil", "http://evil.example/", "/a\r\nb",
                                 "/a b", "", "relative", "/\x00"])
def test_no_url_that_leaves_the_site_is_emitted(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        site_path(url)


def test_headers_for_the_response_and_the_personal_mark() -> None:
    sent = {}

    def server_start_response(status, headers, exc_info=None):  # type: ignore[no-untyped-def]
        sent.update(status=status, headers=headers)

    request = Request(make_environ())
    respond = request.hook(server_start_response)
    request.add_header("Set-Cookie", "a=1")
    request.always_send([("X-Frame-Options", "DENY")], frozenset({"x-frame-options"}))
    request.personal = True
    respond("200 OK", [("Content-Type", "text/plain"), ("x-frame-options", "SAMEORIGIN")])
    assert sent["headers"] == [("Content-Type", "text/plain"), ("X-Frame-Options", "DENY"),
                               ("Set-Cookie", "a=1"), ("Cache-Control", "private, no-store"),
                               ("Vary", "Cookie")]

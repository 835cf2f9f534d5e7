"""The middlewares one by one, through WSGI: CSRF refusals that speak to their client, HTTPS."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robaccia.middleware import CSRFProtection, FlashMessages, SecurityHeaders
from robaccia.request import Request
from robaccia.testing import call, make_environ

SECRET = "s" * 40


def changed(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"changed"]


def with_token(environ: Any, start_response: Any) -> list[bytes]:
    """A page that shows a form (it asks for this browser's token)."""
    token = Request.of(environ).csrf_token
    start_response("200 OK", [("Content-Type", "text/html")])
    return [token.encode()]


# --- CSRF: who is told what ----------------------------------------------------------------------


def test_a_bodiless_delete_without_cookies_needs_no_token() -> None:
    """An API client's DELETE carries no credentials to abuse, and no Content-Type."""
    guarded = CSRFProtection(changed, SECRET)
    for headers in ({}, {"Content-Length": "0"}, {"Accept": "application/json"}):
        assert call(guarded, "DELETE", "/api/1", headers=headers)[2] == b"changed"


@pytest.mark.parametrize(("headers", "told"), [
    # an API client that keeps cookies (a requests.Session) is told what an API client sends
    ({"Cookie": "session=1", "Accept": "application/json"}, "Send Content-Type: application/json"),
    ({"Cookie": "session=1"}, "Send Content-Type: application/json"),
    # a browser is told to reload its page
    ({"Cookie": "session=1", "Sec-Fetch-Mode": "navigate", "Accept": "text/html"},
     "The form has expired"),
    ({"Cookie": "session=1", "Accept": "text/html,application/xhtml+xml"}, "The form has expired"),
])
def test_a_refused_unsafe_request_is_told_what_its_kind_of_client_must_send(
        headers: dict[str, str], told: str) -> None:
    guarded = CSRFProtection(changed, SECRET)
    status, _, body = call(guarded, "DELETE", "/api/1", headers=headers)
    assert status == "403 Forbidden"
    assert told in body.decode()


def test_a_json_body_needs_no_token_even_with_cookies() -> None:
    guarded = CSRFProtection(changed, SECRET)
    status, _, body = call(guarded, "POST", "/api/", json={"a": 1}, headers={"Cookie": "session=1"})
    assert (status, body) == ("200 OK", b"changed")


# --- HTTPS ----------------------------------------------------------------------------------------


def https_site(app: Any = changed, **options: Any) -> Any:
    return SecurityHeaders(app, https=True, **options)


@pytest.mark.parametrize(("method", "status"), [("GET", "301 Moved Permanently"),
                                                ("HEAD", "301 Moved Permanently"),
                                                ("POST", "308 Permanent Redirect"),
                                                ("DELETE", "308 Permanent Redirect")])
def test_plain_http_is_redirected_to_the_same_address_over_https(method: str, status: str) -> None:
    environ = make_environ(method, "/employees/3", query="a=1&b=%20",
                           headers={"Host": "Example.com:8080"})
    got, headers, body = call(https_site(), environ=environ)
    assert got == status and body == b""
    assert dict(headers)["Location"] == "https://example.com/employees/3?a=1&b=%20"


@pytest.mark.parametrize("path", ["//evil.example/x", "/\\evil.example", "/a\r\nSet-Cookie: x=1"])
def test_the_https_redirect_never_leaves_the_site(path: str) -> None:
    environ = make_environ("GET", path, headers={"Host": "example.com"})
    status, headers, _ = call(https_site(), environ=environ)
    location = dict(headers)["Location"]
    assert status == "301 Moved Permanently"
    assert location.startswith("https://example.com/") and not location.startswith("https://example.com//")
    assert "\r" not in location and "\n" not in location


def test_a_host_that_is_no_host_name_is_not_redirected() -> None:
    environ = make_environ("GET", "/", headers={"Host": "evil.example/path@x"})
    assert call(https_site(), environ=environ)[0] == "400 Bad Request"


def test_over_https_responses_carry_hsts_and_are_not_redirected() -> None:
    environ = make_environ("GET", "/", headers={"Host": "example.com"}, **{"wsgi.url_scheme": "https"})
    status, headers, body = call(https_site(), environ=environ)
    assert (status, body) == ("200 OK", b"changed")
    assert dict(headers)["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"
    short = call(https_site(hsts_seconds=600, hsts_subdomains=False), environ=make_environ(
        "GET", "/", **{"wsgi.url_scheme": "https"}))[1]
    assert dict(short)["Strict-Transport-Security"] == "max-age=600"


def test_without_https_there_is_no_redirect_and_no_hsts() -> None:
    status, headers, _ = call(SecurityHeaders(changed), "GET", "/")
    assert status == "200 OK" and "Strict-Transport-Security" not in dict(headers)


def test_cookies_are_secure_on_a_request_that_came_over_tls() -> None:
    """Behind a trusted proxy, X-Forwarded-Proto: https makes wsgi.url_scheme https (serve)."""
    site = FlashMessages(CSRFProtection(with_token, SECRET), SECRET)
    plain = call(site, "GET", "/employees/;new_form")[1]
    tls = call(site, environ=make_environ("GET", "/employees/;new_form", **{"wsgi.url_scheme": "https"}))[1]
    plain_cookie = next(v for k, v in plain if k == "Set-Cookie")
    tls_cookie = next(v for k, v in tls if k == "Set-Cookie")
    assert "; Secure" not in plain_cookie and tls_cookie.endswith("; Secure")
    assert "HttpOnly" in tls_cookie and "SameSite=Lax" in tls_cookie
    # and always, when the site says it is served over HTTPS
    always = FlashMessages(CSRFProtection(with_token, SECRET, secure_cookies=True), SECRET)
    assert next(v for k, v in call(always, "GET", "/")[1] if k == "Set-Cookie").endswith("; Secure")


def test_every_response_with_this_browsers_token_is_private() -> None:
    """The token page is private whether or not it also sets the cookie (a cache would share it)."""
    site = CSRFProtection(with_token, SECRET)
    first = call(site, "GET", "/employees/;new_form")[1]
    cookie = next(v for k, v in first if k == "Set-Cookie").split(";")[0]
    again = dict(call(site, "GET", "/employees/;new_form", headers={"Cookie": cookie})[1])
    for headers in (dict(first), again):
        assert headers["Cache-Control"] == "private, no-store" and headers["Vary"] == "Cookie"


# --- hosts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "protocol", "status"), [
    ({"Host": "localhost"}, "HTTP/1.1", "200 OK"),
    ({"Host": "[::1]:8080"}, "HTTP/1.1", "200 OK"),
    ({"Host": ""}, "HTTP/1.1", "400 Bad Request"),  # empty: not SERVER_NAME's
    ({"Host": "   "}, "HTTP/1.1", "400 Bad Request"),
    ({"Host": "[::1"}, "HTTP/1.1", "400 Bad Request"),  # an unclosed bracket is no address
    ({"Host": "[::1]x"}, "HTTP/1.1", "400 Bad Request"),
    ({}, "HTTP/1.1", "400 Bad Request"),  # HTTP/1.1 requires Host (RFC 9112)
    ({}, "HTTP/1.0", "200 OK"),  # HTTP/1.0 may leave it out: the server's name
])
def test_the_host_a_request_names_must_be_one_the_site_answers_to(
        headers: dict[str, str], protocol: str, status: str) -> None:
    from robaccia.middleware import AllowedHosts

    environ = make_environ("GET", "/", headers=headers, SERVER_PROTOCOL=protocol, SERVER_NAME="localhost")
    if "Host" not in headers:
        environ.pop("HTTP_HOST", None)
    assert call(AllowedHosts(changed), environ=environ)[0] == status


def test_a_name_longer_than_dns_allows_is_refused_even_under_a_wildcard() -> None:
    from robaccia.middleware import AllowedHosts

    site = AllowedHosts(changed, [".example.com"])
    fits = "a." * 100 + "example.com"
    too_long = "a." * 2000 + "example.com"
    assert call(site, environ=make_environ("GET", "/", headers={"Host": fits}))[0] == "200 OK"
    assert call(site, environ=make_environ("GET", "/", headers={"Host": too_long}))[0] == "400 Bad Request"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["localhost", "LOCALHOST:8000", "127.0.0.1:8000", "[::1]:80", "[::1", "",
                                 " ", "example.com", "a.example.com.", "evil.com", "localhost:99999",
                                 "localhost:x", "a..example.com", None]), min_size=1, max_size=30),
       st.integers(min_value=1, max_value=4))
def test_a_host_gets_the_same_verdict_every_time(hosts: list[str | None], room: int) -> None:
    """The verdicts AllowedHosts keeps (a few here, to overflow) are the ones it would work out anew."""
    from robaccia.middleware import AllowedHosts

    kept = AllowedHosts(changed, ["localhost", ".example.com"])
    kept.MAX_VERDICTS = room
    for host in hosts:
        environ = make_environ("GET", "/", headers={} if host is None else {"Host": host})
        if host is None:
            environ.pop("HTTP_HOST", None)
        fresh = AllowedHosts(changed, ["localhost", ".example.com"])
        assert call(kept, environ=dict(environ))[0] == call(fresh, environ=dict(environ))[0]

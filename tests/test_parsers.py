"""Tests for robaccia.parsers: reading request bodies within limits."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import robaccia
from robaccia.errors import HTTPError
from robaccia.parsers import (
    LengthRequired,
    Limits,
    find_parser,
    form_parser,
    json_parser,
    parse_body,
    read_body,
)
from robaccia.testing import call, make_environ

FORM = "application/x-www-form-urlencoded"


def status_of(environ: dict[str, Any], limits: Limits = Limits(), default: Any = None) -> int:
    """Parse the body; return 200, or the HTTP status the parser raised."""
    try:
        parse_body(environ, default, limits)
    except HTTPError as exc:
        # the error is also the response the client gets
        status, headers, _ = call(exc, environ=make_environ())
        assert status.startswith(str(exc.code))
        return exc.code
    return 200


def multipart(parts: list[tuple[str, str, str | None]], boundary: str = "XyZzY") -> tuple[bytes, str]:
    """Build a multipart/form-data body from (name, value, filename) parts."""
    out = []
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n")
        if filename:
            out.append("Content-Type: text/plain\r\n")
        out.append(f"\r\n{value}\r\n")
    out.append(f"--{boundary}--\r\n")
    return "".join(out).encode(), f"multipart/form-data; boundary={boundary}"


def raw_environ(body: bytes, content_type: str | None = FORM, **extra: Any) -> dict[str, Any]:
    environ = make_environ("POST", "/v/", body, content_type=content_type)
    environ.update(extra)
    return environ


# --- package names ----------------------------------------------------------------------


def test_public_names() -> None:
    assert robaccia.form_parser is form_parser
    assert robaccia.json_parser is json_parser
    assert robaccia.find_parser is find_parser
    assert robaccia.Limits is Limits
    assert find_parser("html") is form_parser
    assert find_parser("json") is json_parser
    assert find_parser("atom") is None


# --- url-encoded forms ---------------------------------------------------------------------


def test_form_fields_are_decoded() -> None:
    environ = make_environ("POST", "/v/", {"name": "Łukasz & co", "note": "1+1=2"})
    assert parse_body(environ) == {"name": "Łukasz & co", "note": "1+1=2"}


def test_blank_form_fields_are_kept() -> None:
    assert form_parser(b"name=Ada&title=&empty") == {"name": "Ada", "title": "", "empty": ""}
    assert parse_body(make_environ("POST", "/v/", {"title": ""})) == {"title": ""}


def test_repeated_field_keeps_one_value_not_a_concatenation() -> None:
    assert form_parser(b"a=1&a=2") == {"a": "2"}


def test_form_parser_accepts_text() -> None:
    assert form_parser("a=%C3%A9") == {"a": "é"}


@pytest.mark.parametrize("body", [b"a=%FF%FE", b"name=caf\xc3\xa9", b"a=\xff"])
def test_form_that_is_not_utf8_or_not_percent_encoded_is_400(body: bytes) -> None:
    assert status_of(raw_environ(body)) == 400


def test_form_without_content_type_uses_the_default_parser() -> None:
    environ = raw_environ(b"a=1&b=", content_type=None)
    assert parse_body(environ, form_parser) == {"a": "1", "b": ""}
    environ = raw_environ(b'{"a": 1}', content_type=None)
    assert parse_body(environ, json_parser) == {"a": 1}


def test_content_type_parameters_and_case_are_ignored() -> None:
    environ = raw_environ(b"a=1", content_type="Application/X-WWW-Form-Urlencoded; charset=UTF-8")
    assert parse_body(environ) == {"a": "1"}


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=8))
def test_any_form_round_trips(values: dict[str, str]) -> None:
    body = urlencode(values)
    assert parse_body(make_environ("POST", "/v/", body, content_type=FORM)) == values


# --- multipart ------------------------------------------------------------------------------


def test_multipart_fields_and_files() -> None:
    body, ctype = multipart([("name", "Ada", None), ("title", "", None), ("cv", "hello file", "cv.txt")])
    values = parse_body(raw_environ(body, ctype))
    assert values["name"] == "Ada"
    assert values["title"] == ""  # blank kept
    assert values["cv"].filename == "cv.txt"
    assert values["cv"].file.read() == b"hello file"


def test_multipart_without_boundary_is_400() -> None:
    body, _ = multipart([("name", "Ada", None)])
    assert status_of(raw_environ(body, "multipart/form-data")) == 400


def test_multipart_part_count_limit_is_413() -> None:
    body, ctype = multipart([(f"f{i}", "x", None) for i in range(6)])
    assert status_of(raw_environ(body, ctype), Limits(max_fields=5)) == 413
    assert status_of(raw_environ(body, ctype), Limits(max_fields=6)) == 200


# --- JSON ----------------------------------------------------------------------------------------


def test_json_object() -> None:
    environ = make_environ("POST", "/v/", json={"name": "Ada", "n": 2, "x": None})
    assert parse_body(environ) == {"name": "Ada", "n": 2, "x": None}


def test_json_suffix_types_are_json() -> None:
    environ = raw_environ(b'{"a": [1]}', "application/merge-patch+json")
    assert parse_body(environ) == {"a": [1]}


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"a": 1', b'{"a": "\xff"}', b"[1, 2]", b'"text"', b"3", b"null", b"\xef\xbb"],
)
def test_malformed_json_is_400(body: bytes) -> None:
    assert status_of(raw_environ(body, "application/json")) == 400


def test_deeply_nested_json_is_400_not_a_crash() -> None:
    body = b'{"a": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    assert status_of(raw_environ(body, "application/json"), Limits(max_body=10**6)) == 400


def test_json_member_limit_is_413() -> None:
    body = json.dumps({f"k{i}": i for i in range(11)}).encode()
    assert status_of(raw_environ(body, "application/json"), Limits(max_fields=10)) == 413
    assert status_of(raw_environ(body, "application/json"), Limits(max_fields=11)) == 200


# --- content types ---------------------------------------------------------------------------


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "image/png"])
def test_unsupported_content_type_is_415(ctype: str) -> None:
    assert status_of(raw_environ(b"<a/>", ctype)) == 415


def test_body_without_content_type_and_no_default_is_415() -> None:
    assert status_of(raw_environ(b"a=1", content_type=None)) == 415


def test_empty_body_is_an_empty_dict() -> None:
    assert parse_body(make_environ("POST", "/v/", b"", content_type=FORM)) == {}
    assert parse_body(make_environ("POST", "/v/", content_type="application/json")) == {}
    assert parse_body(make_environ("POST", "/v/")) == {}


# --- limits and lengths ---------------------------------------------------------------------------


def test_body_over_the_size_limit_is_413_before_reading() -> None:
    class Exploding(io.BytesIO):
        def read(self, *args: Any) -> bytes:
            raise AssertionError("the body was read")

    environ = raw_environ(b"", **{"CONTENT_LENGTH": "101", "wsgi.input": Exploding()})
    assert status_of(environ, Limits(max_body=100)) == 413


def test_body_at_the_size_limit_is_read() -> None:
    body = b"a=" + b"x" * 98
    assert status_of(raw_environ(body), Limits(max_body=100)) == 200


def test_field_count_limit_is_413() -> None:
    body = "&".join(f"f{i}=" for i in range(11)).encode()
    assert status_of(raw_environ(body), Limits(max_fields=10)) == 413
    assert parse_body(raw_environ(body), limits=Limits(max_fields=11))["f10"] == ""


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "0x10", "١٢", "1 2", "99999999999999999999999"])
def test_bad_content_length_is_400(length: str) -> None:
    environ = raw_environ(b"a=1", CONTENT_LENGTH=length)
    assert status_of(environ) == 400


def test_body_shorter_than_content_length_is_400() -> None:
    assert status_of(raw_environ(b"a=1", CONTENT_LENGTH="10")) == 400


@pytest.mark.parametrize("length", [3, "3", " 3 "])
def test_content_length_as_int_or_padded_string(length: Any) -> None:
    assert parse_body(raw_environ(b"a=1&b=2", CONTENT_LENGTH=length)) == {"a": "1"}


def test_chunked_without_input_terminated_is_411() -> None:
    environ = raw_environ(b"a=1", HTTP_TRANSFER_ENCODING="chunked")
    del environ["CONTENT_LENGTH"]
    assert status_of(environ) == 411
    with pytest.raises(LengthRequired):
        read_body(environ)


def test_chunked_with_input_terminated_is_read() -> None:
    environ = raw_environ(b"a=1&b=", HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input_terminated": True})
    del environ["CONTENT_LENGTH"]
    assert parse_body(environ) == {"a": "1", "b": ""}


def test_chunked_with_input_terminated_is_limited() -> None:
    environ = raw_environ(b"a=" + b"x" * 200, HTTP_TRANSFER_ENCODING="chunked",
                          **{"wsgi.input_terminated": True})
    del environ["CONTENT_LENGTH"]
    assert status_of(environ, Limits(max_body=100)) == 413


def test_body_is_read_once_and_left_readable() -> None:
    environ = make_environ("POST", "/v/", {"a": "1"})
    first = parse_body(environ)
    assert parse_body(environ) is first
    assert read_body(environ) == b"a=1"
    assert environ["wsgi.input"].read() == b"a=1"  # an app further on can still read it


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(list("ab=&+%2041C3A9;é ")), max_size=40))
def test_form_parser_decodes_as_parse_qsl(text: str) -> None:
    """Forms decode exactly as the standard library's rules say, bad UTF-8 included."""
    try:
        expected: Any = dict(parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict"))
    except UnicodeDecodeError:
        expected = "400"
    try:
        got: Any = form_parser(text)
    except HTTPError as exc:
        got = str(exc.code)
    assert got == expected

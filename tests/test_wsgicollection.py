"""Tests for robaccia.wsgicollection.

They port the 2007 ``tests/test_collection.py`` (TestDispatcher,
TestDispatcherMisses, TestUrlVars) and the verified table of reference
section 5.1. Where we depart on purpose the test says so: a resource that
exists but has no handler for the method answers 405 with Allow (the original
said 404), HEAD is served by the GET handler without a body, and OPTIONS
answers 200 with Allow.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

# The repository root is not installed in the virtualenv; make it importable.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from robaccia.testing import call, make_environ
from robaccia.wsgicollection import Collection
from robaccia.wsgidispatcher import Dispatcher

BLOG_REGEX = r"/blog/(?P<id>\w+)?(;(?P<noun>\w+))?"
NO_VARS = b"Environment variables for wsgicollection.Collection not provided via WSGI."


class Recording(Collection):
    """A collection whose handlers record their names in ``self.called``."""

    def __init__(self) -> None:
        self.called: dict[str, bool] = {}
        self.environs: list[dict[str, Any]] = []

    def _ok(self, environ, start_response, name="_ok"):
        self.called[name] = True
        self.environs.append(dict(environ))
        start_response("200 Ok", [("Content-Type", "text/plain")])
        return [b"Dispatched correctly."]


class MyColl(Recording):
    def list(self, environ, start_response):
        return self._ok(environ, start_response, "list")

    def create(self, environ, start_response):
        return self._ok(environ, start_response, "create")

    def retrieve(self, environ, start_response):
        return self._ok(environ, start_response, "retrieve")

    def update(self, environ, start_response):
        return self._ok(environ, start_response, "update")

    def delete(self, environ, start_response):
        return self._ok(environ, start_response, "delete")

    def get_create_form(self, environ, start_response):
        return self._ok(environ, start_response, "get_create_form")

    def post_create_form(self, environ, start_response):
        return self._ok(environ, start_response, "post_create_form")


class ListDelete(Recording):
    def list(self, environ, start_response):
        return self._ok(environ, start_response, "list")

    def delete(self, environ, start_response):
        return self._ok(environ, start_response, "delete")


class UrlVarsColl(ListDelete):
    def get_new_form(self, environ, start_response):
        return self._ok(environ, start_response, "get_new_form")


class Section51(Recording):
    """The collection of the verified table in reference section 5.1."""

    def list(self, environ, start_response):
        return self._ok(environ, start_response, "list")

    def retrieve(self, environ, start_response):
        return self._ok(environ, start_response, "retrieve")

    def get_edit_form(self, environ, start_response):
        return self._ok(environ, start_response, "get_edit_form")

    def delete_thing(self, environ, start_response):
        return self._ok(environ, start_response, "delete_thing")


def blog(collection: Collection) -> Dispatcher:
    d = Dispatcher()
    d.addregex(BLOG_REGEX, _ANY_=collection)
    return d


def direct(
    collection: Collection, method: str, named: dict[str, Any] | None, **extra: Any
):
    """Call the collection itself with the given routing_args (None: no key)."""
    environ = make_environ(method, "/", **extra)
    if named is not None:
        environ["wsgiorg.routing_args"] = ((), named)
    return call(collection, environ=environ)


def allow(headers: list[tuple[str, str]]) -> str:
    return dict(headers)["Allow"]


# --- test_collection.py: TestDispatcher ----------------------------------------


def test_retrieve():
    c = MyColl()
    assert call(blog(c), "GET", "/blog/1")[0] == "200 Ok"
    assert c.called == {"retrieve": True}


def test_update():
    c = MyColl()
    assert call(blog(c), "PUT", "/blog/1")[0] == "200 Ok"
    assert c.environs[0]["wsgiorg.routing_args"][1]["id"] == "1"
    assert c.called == {"update": True}


def test_delete():
    c = MyColl()
    assert call(blog(c), "DELETE", "/blog/1")[0] == "200 Ok"
    assert c.called == {"delete": True}


def test_list():
    c = MyColl()
    status, _, body = call(blog(c), "GET", "/blog/")
    assert (status, body) == ("200 Ok", b"Dispatched correctly.")
    assert c.called == {"list": True}


def test_create():
    c = MyColl()
    assert call(blog(c), "POST", "/blog/")[0] == "200 Ok"
    assert c.called == {"create": True}


def test_create_form():
    c = MyColl()
    assert call(blog(c), "GET", "/blog/;create_form")[0] == "200 Ok"
    assert c.called == {"get_create_form": True}


def test_create_form_on_entry():
    c = MyColl()
    status, _, _ = call(blog(c), "POST", "/blog/1;create_form")
    assert status == "200 Ok"
    assert c.called == {"post_create_form": True}


def test_missing():
    # a noun with no handler for any method: 404, as in 2007
    c = MyColl()
    status, _, body = call(blog(c), "POST", "/blog/1;no_create_form")
    assert status == "404 Not Found"
    assert b"Not Found" in body
    assert c.called == {}


def test_ok():
    # '_ok' exists on the collection but is never reachable from a URL
    c = MyColl()
    status, _, _ = call(blog(c), "GET", "/blog/1;_ok")
    assert status == "404 Not Found"
    assert c.called == {}


def test_noun_handler_for_other_method_is_405():
    # DEPARTURE: the original answered 404
    c = MyColl()
    status, headers, _ = call(blog(c), "PUT", "/blog/1;create_form")
    assert status == "405 Method Not Allowed"
    assert allow(headers) == "GET, HEAD, POST, OPTIONS"
    assert c.called == {}


def test_post_on_entry_is_405():
    # DEPARTURE: the original answered 404
    c = MyColl()
    status, headers, _ = call(blog(c), "POST", "/blog/1")
    assert status == "405 Method Not Allowed"
    assert allow(headers) == "GET, HEAD, PUT, DELETE, OPTIONS"
    assert c.called == {}


# --- TestDispatcherMisses --------------------------------------------------------


def test_misses_missing():
    # DEPARTURE: 405 with Allow (the original answered 404)
    c = ListDelete()
    status, headers, _ = call(blog(c), "POST", "/blog/")
    assert status == "405 Method Not Allowed"
    assert allow(headers) == "GET, HEAD, OPTIONS"
    assert c.called == {}


def test_misses_list():
    c = ListDelete()
    assert call(blog(c), "GET", "/blog/")[0] == "200 Ok"
    assert c.called == {"list": True}


def test_misses_list_miss():
    c = ListDelete()
    status, _, _ = call(blog(c), "GET", "/fredblog/")
    assert status == "404 Not Found"
    assert c.called == {}


def test_misses_member_with_only_delete():
    c = ListDelete()
    status, headers, _ = call(blog(c), "GET", "/blog/1")
    assert status == "405 Method Not Allowed"
    assert allow(headers) == "DELETE, OPTIONS"


def test_no_handler_for_any_method_is_404():
    class ListOnly(Recording):
        def list(self, environ, start_response):
            return self._ok(environ, start_response, "list")

    c = ListOnly()
    for method in ("GET", "PUT", "DELETE", "POST", "OPTIONS"):
        assert call(blog(c), method, "/blog/1")[0] == "404 Not Found", method
        assert call(blog(c), method, "/blog/;nothing")[0] == "404 Not Found", method
    assert c.called == {}


# --- TestUrlVars -------------------------------------------------------------------


def test_urlvars_miss():
    # DEPARTURE: the original answered 404
    c = UrlVarsColl()
    status, headers, _ = direct(c, "POST", {})
    assert status == "405 Method Not Allowed"
    assert allow(headers) == "GET, HEAD, OPTIONS"
    assert c.called == {}


def test_urlvars_list():
    c = UrlVarsColl()
    assert direct(c, "GET", {})[0] == "200 Ok"
    assert c.called == {"list": True}


def test_urlvars_delete():
    c = UrlVarsColl()
    assert direct(c, "DELETE", {"id": "1"})[0] == "200 Ok"
    assert c.called == {"delete": True}


def test_urlvars_nouns():
    c = UrlVarsColl()
    assert direct(c, "GET", {"id": "2", "noun": "new_form"})[0] == "200 Ok"
    assert c.called == {"get_new_form": True}


def test_urlvars_preconditions_fail():
    c = UrlVarsColl()
    status, headers, body = direct(c, "GET", None)
    assert status == "500 Internal Server Error"
    assert dict(headers)["Content-Type"] == "text/plain"
    assert body == NO_VARS
    assert c.called == {}


# --- the verified table of reference 5.1 ------------------------------------------


@pytest.mark.parametrize(
    "method, named, handler",
    [
        ("GET", {}, "list"),
        ("GET", {"id": None, "noun": None}, "list"),
        ("GET", {"id": "", "noun": ""}, "list"),
        ("GET", {"id": "1"}, "retrieve"),
        ("GET", {"id": "1", "noun": "edit_form"}, "get_edit_form"),
        ("GET", {"noun": "edit_form"}, "get_edit_form"),
        ("DELETE", {"noun": "thing"}, "delete_thing"),
        ("DELETE", {"id": "7", "noun": "thing"}, "delete_thing"),
    ],
)
def test_section_5_1_dispatched(method, named, handler):
    c = Section51()
    status, _, body = direct(c, method, named)
    assert (status, body) == ("200 Ok", b"Dispatched correctly.")
    assert c.called == {handler: True}
    seen = c.environs[0]
    assert seen["robaccia.request"].handler == handler
    assert seen["robaccia.request"].id == (named.get("id") or None)
    assert seen["robaccia.request"].noun == (named.get("noun") or None)


@pytest.mark.parametrize(
    "method, named, status, allowed",
    [
        # DEPARTURES: 405 with Allow where the original answered 404
        ("PUT", {}, "405 Method Not Allowed", "GET, HEAD, OPTIONS"),
        ("POST", {"id": "1"}, "405 Method Not Allowed", "GET, HEAD, OPTIONS"),
        ("get", {}, "405 Method Not Allowed", "GET, HEAD, OPTIONS"),  # case-sensitive
        ("GET", {"noun": "thing"}, "405 Method Not Allowed", "DELETE, OPTIONS"),
        # as in 2007
        (
            "GET",
            {"noun": "Edit_Form"},
            "404 Not Found",
            None,
        ),  # nouns are case-sensitive
        ("", {"noun": "ok"}, "404 Not Found", None),  # never reaches '_ok'
        ("GET", {"noun": "_ok"}, "404 Not Found", None),
    ],
)
def test_section_5_1_refused(method, named, status, allowed):
    c = Section51()
    got_status, headers, _ = direct(c, method, named)
    assert got_status == status
    if allowed is not None:
        assert allow(headers) == allowed
    assert c.called == {}


def test_section_5_1_head_uses_get_handler_without_body():
    # DEPARTURE: the original answered 404 to HEAD
    c = Section51()
    status, headers, body = direct(c, "HEAD", {})
    assert status == "200 Ok"
    assert dict(headers)["Content-Type"] == "text/plain"
    assert body == b""
    assert c.called == {"list": True}
    assert c.environs[0]["robaccia.request"].handler == "list"


def test_head_without_get_handler_is_405():
    c = Section51()
    status, headers, body = direct(c, "HEAD", {"noun": "thing"})
    assert status == "405 Method Not Allowed"
    assert allow(headers) == "DELETE, OPTIONS"
    assert body == b""
    assert c.called == {}


def test_head_through_the_dispatcher():
    c = MyColl()
    status, _, body = call(blog(c), "HEAD", "/blog/1")
    assert (status, body) == ("200 Ok", b"")
    assert c.called == {"retrieve": True}


def test_head_with_a_generator_handler():
    # A generator calls start_response only when iterated (PEP 3333).
    closed = []

    class Gen(Collection):
        def list(self, environ, start_response):
            try:
                start_response("200 OK", [("Content-Type", "text/plain")])
                yield b"one"
                yield b"two"
            finally:
                closed.append(True)

    assert direct(Gen(), "HEAD", {}) == (
        "200 OK",
        [("Content-Type", "text/plain")],
        b"",
    )
    assert closed == [True]
    assert direct(Gen(), "GET", {})[2] == b"onetwo"


@pytest.mark.parametrize(
    "named, allowed",
    [
        ({}, "GET, HEAD, OPTIONS"),
        ({"id": "1"}, "GET, HEAD, OPTIONS"),
        ({"noun": "edit_form"}, "GET, HEAD, OPTIONS"),
        ({"noun": "thing"}, "DELETE, OPTIONS"),
    ],
)
def test_options_answers_allow(named, allowed):
    c = Section51()
    status, headers, body = direct(c, "OPTIONS", named)
    assert status == "200 OK"
    assert allow(headers) == allowed
    assert body == b""
    assert c.called == {}


def test_options_on_the_full_collection():
    c = MyColl()
    status, headers, _ = call(blog(c), "OPTIONS", "/blog/")
    assert status == "200 OK"
    assert allow(headers) == "GET, HEAD, POST, OPTIONS"
    status, headers, _ = call(blog(c), "OPTIONS", "/blog/1")
    assert allow(headers) == "GET, HEAD, PUT, DELETE, OPTIONS"


def test_options_without_handlers_is_404():
    c = Section51()
    assert direct(c, "OPTIONS", {"noun": "nothing"})[0] == "404 Not Found"


def test_selector_vars_fallback():
    c = Section51()
    status, _, _ = direct(c, "GET", None, **{"selector.vars": {"id": "2"}})
    assert status == "200 Ok"
    assert c.called == {"retrieve": True}
    assert c.environs[0]["robaccia.request"].id == "2"


def test_routing_args_win_over_selector_vars():
    c = Section51()
    status, _, _ = direct(c, "GET", {}, **{"selector.vars": {"id": "2"}})
    assert status == "200 Ok"
    assert c.called == {"list": True}


def test_underscore_and_non_callable_names_are_never_dispatched():
    class Odd(Collection):
        retrieve = "not callable"

        def _secret(self, environ, start_response):  # pragma: no cover - must not run
            raise AssertionError("dispatched a private name")

        def list(self, environ, start_response):
            start_response("200 OK", [])
            return [b"list"]

    d = blog(Odd())
    assert call(d, "GET", "/blog/1")[0] == "404 Not Found"
    assert call(d, "GET", "/blog/;_secret")[0] == "404 Not Found"
    assert call(d, "", "/blog/;secret")[0] == "404 Not Found"
    assert call(d, "GET", "/blog/")[2] == b"list"


def test_noun_wins_over_id():
    c = MyColl()
    assert call(blog(c), "GET", "/blog/1;create_form")[0] == "200 Ok"
    assert c.called == {"get_create_form": True}


def test_default_project_template_route():
    c = MyColl()
    d = Dispatcher()
    d.add("/{view:alnum}/[{id:unreserved}][;{noun:unreserved}]", c)
    assert call(d, "GET", "/people/")[0] == "200 Ok"
    assert call(d, "PUT", "/people/a.b-c")[0] == "200 Ok"
    assert call(d, "GET", "/people/;create_form")[0] == "200 Ok"
    assert call(d, "GET", "/people")[0] == "404 Not Found"
    assert [e["robaccia.request"].handler for e in c.environs] == [
        "list",
        "update",
        "get_create_form",
    ]
    assert c.environs[1]["robaccia.request"].id == "a.b-c"


# --- one instance, many threads -----------------------------------------------------


class Echo(Collection):
    """Handlers answer with what the environ says about their own request."""

    def _echo(self, environ, start_response):
        before = (
            environ["robaccia.request"].handler,
            environ["robaccia.request"].id,
            environ["robaccia.request"].noun,
        )
        time.sleep(0)  # give other threads the chance to run in between
        time.sleep(0.00005)
        after = (
            environ["robaccia.request"].handler,
            environ["robaccia.request"].id,
            environ["robaccia.request"].noun,
        )
        body = "|".join(str(x) for x in after).encode()
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("X-Same", str(before == after))]
        )
        return [body]

    def list(self, environ, start_response):
        return self._echo(environ, start_response)

    def retrieve(self, environ, start_response):
        return self._echo(environ, start_response)

    def update(self, environ, start_response):
        return self._echo(environ, start_response)

    def get_edit_form(self, environ, start_response):
        return self._echo(environ, start_response)

    def post_comment(self, environ, start_response):
        return self._echo(environ, start_response)


def test_one_instance_serves_many_threads():
    threads_n, rounds = 12, 150
    collection = Echo()
    d = Dispatcher()
    d.add("/{view:alnum}/[{id:unreserved}][;{noun:unreserved}]", collection)
    barrier = threading.Barrier(threads_n)
    failures: list[str] = []
    counts = [0] * threads_n

    def requests_for(t: int, i: int):
        id_, noun = f"t{t}-r{i}", f"n{t}_{i}"
        return [
            ("GET", "/people/", "list|None|None"),
            ("GET", f"/people/{id_}", f"retrieve|{id_}|None"),
            ("PUT", f"/people/{id_}", f"update|{id_}|None"),
            ("GET", f"/people/{id_};edit_form", f"get_edit_form|{id_}|edit_form"),
            ("POST", f"/people/{id_};comment", f"post_comment|{id_}|comment"),
            ("GET", f"/people/;edit_form{noun}", None),  # no such handler: 404
        ]

    def worker(t: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(rounds):
                if i % 25 == 0:
                    barrier.wait(timeout=30)  # line the threads up again
                for method, path, expected in requests_for(t, i):
                    status, headers, body = call(d, method, path)
                    if expected is None:
                        if status != "404 Not Found":
                            failures.append(f"{t}: {method} {path} -> {status}")
                    elif (status, body.decode(), dict(headers).get("X-Same")) != (
                        "200 OK",
                        expected,
                        "True",
                    ):
                        failures.append(f"{t}: {method} {path} -> {status} {body!r}")
                    counts[t] += 1
        except Exception as exc:  # noqa: BLE001 - any error in a thread is a failure
            failures.append(f"{t}: {exc!r}")

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(old_interval)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert counts == [rounds * 6] * threads_n

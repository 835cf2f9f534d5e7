"""Tests for robaccia.uritemplate: building URLs back from templates.

Matching is tested with the dispatcher (test_wsgidispatcher.py); here, what
:meth:`Template.expand` builds, and that it always matches again.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robaccia.testing import call
from robaccia.uritemplate import RouteBuildError, Template
from robaccia.wsgidispatcher import DEFAULT_ROUTE, Dispatcher, InvalidArgumentError

SERVICE = "/service/[{ctype:alpha}[/[{id:unreserved}/]]][;{noun}]"


@pytest.mark.parametrize(("values", "path"), [
    ({"view": "employees"}, "/employees/"),
    ({"view": "employees", "id": 7}, "/employees/7"),
    ({"view": "employees", "id": "a.b~c"}, "/employees/a.b~c"),
    ({"view": "employees", "noun": "new_form"}, "/employees/;new_form"),
    ({"view": "employees", "id": 3, "noun": "edit_form"}, "/employees/3;edit_form"),
    ({"view": "employees", "id": None, "noun": None}, "/employees/"),
])
def test_default_route_expands(values, path):
    t = Template(DEFAULT_ROUTE)
    assert t.expand(**values) == path
    assert {k: v for k, v in t.match(path).items() if v is not None} == {
        k: str(v) for k, v in values.items() if v is not None}


@pytest.mark.parametrize(("values", "path"), [
    ({}, "/service/"),
    ({"ctype": "entry"}, "/service/entry"),
    ({"ctype": "entry", "id": "12"}, "/service/entry/12/"),
    ({"noun": "service_document"}, "/service/;service_document"),
    ({"ctype": "entry", "id": "12", "noun": "media"}, "/service/entry/12/;media"),
])
def test_nested_optional_parts_are_written_only_with_their_values(values, path):
    assert Template(SERVICE).expand(**values) == path


def test_an_optional_part_without_captures_is_left_out():
    assert Template("/endpoint[/]").expand() == "/endpoint"


def test_values_are_percent_encoded_where_the_range_allows_it():
    t = Template("/files/{name}/{rest:any}")
    assert t.expand(name="a b/c", rest="x y/z") == "/files/a%20b%2Fc/x%20y/z"
    assert t.match("/files/a%20b%2Fc/x%20y/z") == {"name": "a%20b%2Fc", "rest": "x%20y/z"}


@pytest.mark.parametrize("bad", ["a b", "a/b", "é", "1;2"])
def test_a_value_the_range_cannot_match_is_refused(bad):
    with pytest.raises(RouteBuildError, match="cannot be the {id}"):
        Template(DEFAULT_ROUTE).expand(view="employees", id=bad)


def test_missing_and_unknown_values_are_refused():
    with pytest.raises(RouteBuildError, match="needs a value for {view}"):
        Template(DEFAULT_ROUTE).expand(id=1)
    with pytest.raises(RouteBuildError, match="has no idd"):
        Template(DEFAULT_ROUTE).expand(view="v", idd=1)


def test_custom_ranges_are_checked_when_building():
    t = Template("/n/{x:real}", {"real": r"-?[0-9]+\.[0-9]+"})
    assert t.expand(x="1.5") == "/n/1.5"
    with pytest.raises(RouteBuildError):
        t.expand(x="1")


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
_unreserved = st.text(alphabet="abcXYZ019-._~", min_size=1, max_size=12)


@given(view=_word, id=st.none() | _unreserved, noun=st.none() | _unreserved)
def test_what_is_built_matches_back(view, id, noun):
    t = Template(DEFAULT_ROUTE)
    assert t.match(t.expand(view=view, id=id, noun=noun)) == {"view": view, "id": id, "noun": noun}


@given(name=st.text(min_size=1, max_size=20), rest=st.text(min_size=1, max_size=20))
def test_encoded_segments_match_back(name, rest):
    t = Template("/files/{name}/{rest:any}")
    path = t.expand(name=name, rest=rest)
    assert t.match(path) is not None
    assert path.isascii()


# --- named routes on a dispatcher ----------------------------------------------------


def ok(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]


def test_named_routes_build_their_paths():
    d = Dispatcher()
    d.add("/about", GET=ok, name="about")
    d.add("/reports/{year:digits}/", GET=ok, name="reports")
    d.add(DEFAULT_ROUTE, ok)
    assert d.url_for("about") == "/about"
    assert d.url_for("reports", year=2024) == "/reports/2024/"
    # the Gloves route is named "collection" when added without a name
    assert d.url_for("collection", view="employees", id=4) == "/employees/4"


def test_unknown_names_and_duplicates_are_errors():
    d = Dispatcher()
    d.add("/about", GET=ok, name="about")
    with pytest.raises(RouteBuildError, match="No route is named 'abuot'"):
        d.url_for("abuot")
    with pytest.raises(InvalidArgumentError, match="exists already"):
        d.add("/other", GET=ok, name="about")
    d.addregex(r"/x/(\d+)", ok, name="regex")
    with pytest.raises(RouteBuildError, match="cannot be built"):
        d.url_for("regex")


def test_the_matched_route_is_recorded_for_url_building():
    seen = {}

    def app(environ, start_response):
        seen.update(route=environ["robaccia.route"], routes=environ["robaccia.routes"])
        return ok(environ, start_response)

    inner = Dispatcher()
    inner.add(DEFAULT_ROUTE, app)
    outer = Dispatcher()
    outer.add("/api|", inner)
    call(outer, "GET", "/api/employees/3", SCRIPT_NAME="/mount")
    route, script = seen["route"]
    assert script == "/mount/api" and route.build({"view": "employees", "id": 9}) == "/employees/9"
    assert seen["routes"] == (outer, "/mount")

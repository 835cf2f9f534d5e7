"""Tests for robaccia.fields: what each column accepts and how forms show it."""

from __future__ import annotations

import datetime
import decimal
import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    Time,
)

from robaccia.fields import Field, Invalid, describe, validate


class Colour(enum.Enum):
    red = 1
    green = 2


def make_table() -> Table:
    return Table(
        "things", MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", String(10), nullable=False),
        Column("count", Integer),
        Column("small", SmallInteger),
        Column("big", BigInteger),
        Column("ratio", Float),
        Column("price", Numeric(6, 2)),
        Column("whole", Numeric(4, 0)),
        Column("bio", Text),
        Column("note", String),
        Column("active", Boolean, nullable=False),
        Column("born", Date),
        Column("seen", DateTime),
        Column("wakes", Time),
        Column("size", Enum("S", "M", "L", name="size")),
        Column("colour", Enum(Colour, name="colour")),
        Column("status", String(10), nullable=False, default="new"),
        Column("kind", String(10), nullable=False, server_default="a"),
    )


FIELDS = {f.name: f for f in describe(make_table())}


def convert(name: str, value: Any) -> Any:
    return FIELDS[name].convert(value)


def test_describe_keeps_column_order_and_inputs() -> None:
    fields = describe(make_table())
    assert [f.name for f in fields] == [c.name for c in make_table().columns]
    assert {f.name: f.input for f in fields} == {
        "id": "number", "name": "text", "count": "number", "small": "number", "big": "number",
        "ratio": "number", "price": "number", "whole": "number", "bio": "textarea", "note": "textarea",
        "active": "checkbox", "born": "date", "seen": "datetime-local", "wakes": "time",
        "size": "select", "colour": "select", "status": "text", "kind": "text",
    }


def test_field_details_for_forms() -> None:
    assert FIELDS["name"].maxlength == 10
    assert FIELDS["price"].step == "0.01"
    assert FIELDS["whole"].step == "1"
    assert FIELDS["ratio"].step == "any"
    assert FIELDS["size"].choices == ("S", "M", "L")
    assert FIELDS["colour"].choices == ("red", "green")
    assert FIELDS["seen"].label == "Seen"


def test_label_comes_from_column_info() -> None:
    t = Table("t", MetaData(), Column("id", Integer, primary_key=True),
              Column("dob", Date, info={"label": "Date of birth"}), Column("first_name", String(5)))
    assert [f.label for f in describe(t)] == ["Id", "Date of birth", "First name"]


def test_required_is_not_null_without_default() -> None:
    required = {f.name for f in FIELDS.values() if f.required}
    # a NOT NULL boolean is never missing: an unchecked box is False
    assert required == {"name"}


def test_autoincrement_primary_key_is_not_writable() -> None:
    assert not FIELDS["id"].writable
    assert FIELDS["id"].primary_key
    t = Table("t", MetaData(), Column("code", String(5), primary_key=True), Column("n", Integer))
    code = describe(t)[0]
    assert code.writable and code.required


# --- conversions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, raw, expected",
    [
        ("count", "42", 42),
        ("count", " -7 ", -7),
        ("count", 5, 5),
        ("count", 5.0, 5),
        ("small", "32767", 32767),
        ("big", "9223372036854775807", 2**63 - 1),
        ("ratio", "2.5", 2.5),
        ("ratio", 3, 3.0),
        ("price", "12.34", decimal.Decimal("12.34")),
        ("price", "-1234.5", decimal.Decimal("-1234.5")),
        ("price", 1.25, decimal.Decimal("1.25")),
        ("whole", "9999", decimal.Decimal("9999")),
        ("name", "Ada", "Ada"),
        ("name", "x" * 10, "x" * 10),
        ("bio", "long " * 1000, "long " * 1000),
        ("active", "on", True),
        ("active", "true", True),
        ("active", True, True),
        ("active", "off", False),
        ("active", "", False),
        ("active", False, False),
        ("born", "2024-02-29", datetime.date(2024, 2, 29)),
        ("seen", "2024-02-29T13:45", datetime.datetime(2024, 2, 29, 13, 45)),
        ("seen", "2024-02-29 13:45:10", datetime.datetime(2024, 2, 29, 13, 45, 10)),
        ("seen", "2024-02-29T13:45:00+02:00", datetime.datetime(2024, 2, 29, 11, 45)),
        ("wakes", "07:30", datetime.time(7, 30)),
        ("wakes", "07:30:15", datetime.time(7, 30, 15)),
        ("size", "M", "M"),
        ("colour", "green", Colour.green),
    ],
)
def test_valid_values_convert_to_column_values(name: str, raw: Any, expected: Any) -> None:
    value = convert(name, raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    "name, raw, message",
    [
        ("count", "abc", "whole number"),
        ("count", "1.5", "whole number"),
        ("count", "1e3", "whole number"),
        ("count", True, "whole number"),
        ("count", "2147483648", "between"),
        ("small", "40000", "between"),
        ("big", "9223372036854775808", "between"),
        ("count", [1], "text"),
        ("ratio", "nan", "finite"),
        ("ratio", "inf", "finite"),
        ("ratio", "1e999", "finite"),
        ("ratio", "x", "number"),
        ("price", "1.234", "2 decimal places"),
        ("price", "12345", "4 digits"),
        ("price", "NaN", "finite"),
        ("price", "abc", "number"),
        ("name", "x" * 11, "10 characters"),
        ("name", "a\x00b", "NUL"),
        ("name", {"a": 1}, "text"),
        ("active", "maybe", "yes or no"),
        ("born", "2023-02-29", "date"),
        ("born", "29/02/2024", "date"),
        ("seen", "yesterday", "date and time"),
        ("wakes", "25:00", "time"),
        ("size", "XL", "S, M, L"),
        ("colour", "blue", "red, green"),
    ],
)
def test_invalid_values_say_what_to_enter(name: str, raw: Any, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        convert(name, raw)


def test_file_upload_is_not_text() -> None:
    class Upload:
        filename = "x.txt"

    with pytest.raises(Invalid, match="File"):
        convert("name", Upload())


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_any_integer_in_range_round_trips(n: int) -> None:
    assert convert("count", str(n)) == n


@settings(max_examples=80, deadline=None)
@given(st.decimals(min_value=-9999, max_value=9999, places=2, allow_nan=False, allow_infinity=False))
def test_any_two_place_decimal_round_trips(d: decimal.Decimal) -> None:
    assert convert("price", str(d)) == d


# --- validate --------------------------------------------------------------------------------


def validate_form(values: dict[str, Any], creating: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    return validate(list(FIELDS.values()), values, creating=creating, form=True)


def validate_json(values: dict[str, Any], creating: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    return validate(list(FIELDS.values()), values, creating=creating, form=False)


def test_required_field_missing_or_blank_on_create() -> None:
    for values in ({}, {"name": ""}, {"name": "   "}):
        _, errors = validate_form(values)
        assert errors == {"name": "This field is required."}
    _, errors = validate_json({"name": None, "active": True})
    assert errors == {"name": "This field is required."}


def test_a_not_null_boolean_without_default_is_required_in_json() -> None:
    """A form's unchecked box is "no"; a JSON body that leaves the field out says nothing,
    and the database would refuse the NULL: 422 for the field, not a 409 from the database."""
    _, errors = validate_json({"name": "Ada"})
    assert errors == {"active": "This field is required."}
    clean, errors = validate_form({"name": "Ada"})
    assert errors == {} and clean["active"] is False


def test_fields_with_defaults_may_be_left_out() -> None:
    clean, errors = validate_json({"name": "Ada", "active": True})
    assert errors == {}
    assert clean == {"name": "Ada", "active": True}  # the database fills in status and kind
    clean, errors = validate_form({"name": "Ada", "status": ""})
    assert errors == {}
    assert "status" not in clean


def test_not_null_column_cannot_be_blanked_on_update() -> None:
    _, errors = validate_form({"name": "", "status": ""}, creating=False)
    assert errors == {"name": "This field is required.", "status": "This field is required."}


def test_blank_clears_a_nullable_column() -> None:
    clean, errors = validate_form({"name": "Ada", "count": "", "born": " ", "bio": ""}, creating=False)
    assert errors == {}
    assert clean["count"] is None and clean["born"] is None and clean["bio"] is None
    clean, errors = validate_json({"count": None}, creating=False)
    assert clean == {"count": None} and errors == {}


def test_missing_fields_are_left_alone_on_update() -> None:
    clean, errors = validate_json({"count": 3}, creating=False)
    assert clean == {"count": 3}
    assert errors == {}


def test_unchecked_checkbox_in_a_form_is_false() -> None:
    clean, _ = validate_form({"name": "Ada"}, creating=False)
    assert clean["active"] is False
    clean, _ = validate_form({"name": "Ada", "active": "on"}, creating=False)
    assert clean["active"] is True


def test_json_leaves_a_missing_boolean_alone() -> None:
    clean, _ = validate_json({"name": "Ada"}, creating=False)
    assert "active" not in clean


def test_unknown_keys_ignored_from_forms_refused_from_json() -> None:
    clean, errors = validate_form({"name": "Ada", "bogus": "1", "_csrf": "t"})
    assert errors == {}
    assert "bogus" not in clean and "_csrf" not in clean
    clean, errors = validate_json({"name": "Ada", "active": True, "bogus": "1"})
    assert errors == {"bogus": "Unknown field."}


def test_autoincrement_primary_key_is_never_written() -> None:
    """A form's stray id is ignored; a JSON body that sets it is told (the schema forbids it)."""
    for creating in (True, False):
        clean, errors = validate_form({"id": "500", "name": "Ada"}, creating=creating)
        assert "id" not in clean and errors == {}
        clean, errors = validate_json({"id": 500, "name": "Ada", "active": True}, creating=creating)
        assert "id" not in clean
        assert errors == {"id": "The server sets this field: leave it out."}


# --- JSON says exactly what the published schema says -------------------------------------------

@pytest.mark.parametrize(("field", "value", "message"), [
    ("name", 0, "Send this value as a JSON string."),
    ("name", -2.5995e16, "Send this value as a JSON string."),
    ("name", True, "Send this value as a JSON string."),
    ("count", "5", "Send a whole number."),
    ("count", 1.5, "Send a whole number."),
    ("count", True, "Send a whole number."),
    ("ratio", "1.5", "Send a number."),
    ("price", 1.5, "Send this value as a JSON string."),
    ("price", "1e3", 'Enter a number as a string, such as "12.50", with at most 4 digits before '
                     "and at most 2 after the point."),
    ("price", "1.234", "Use at most 2 decimal places."),
    ("price", " 1.5", 'Enter a number as a string, such as "12.50", with at most 4 digits before '
                      "and at most 2 after the point."),
    ("active", "true", "Send true or false."),
    ("active", 1, "Send true or false."),
    ("born", "20210228", "Enter a date (YYYY-MM-DD)."),
    ("born", "2021-02-30", "Enter a date (YYYY-MM-DD)."),
    ("seen", "2021-02-03T04:05:06", "Enter a date and time with its offset, such as "
                                    "2026-11-30T09:30:00Z."),
    ("name", "   ", "This field is required."),
    ("name", "a\x00b", "Remove the NUL character."),
    ("size", "", "Choose one of: S, M, L."),
])
def test_json_values_of_another_type_or_shape_are_refused(field: str, value: Any, message: str) -> None:
    _, errors = validate_json({"name": "Ada", "active": True, field: value})
    assert errors == {field: message}
    # a form is text, and lenient where the JSON type was the problem
    if isinstance(value, str) and field in ("count", "ratio", "active"):
        assert field not in validate_form({"name": "Ada", field: value})[1]


def test_json_values_the_schema_allows_are_stored() -> None:
    clean, errors = validate_json({"name": "Ada", "active": False, "count": 5.0, "ratio": 7,
                                   "price": "-12.50", "born": "2021-02-28",
                                   "seen": "2021-02-03t04:05:06.5+01:00", "bio": "", "note": None})
    assert errors == {}
    assert clean["count"] == 5 and clean["ratio"] == 7.0 and str(clean["price"]) == "-12.50"
    assert clean["seen"].isoformat() == "2021-02-03T03:05:06.500000"  # stored as UTC
    assert clean["bio"] is None and clean["note"] is None  # blank clears a nullable column


def test_every_field_schema_is_what_the_server_checks() -> None:
    """The published pattern is the server's own: a value matches it exactly when it is accepted."""
    import re as regex

    fields = {f.name: f for f in describe(make_table())}
    assert fields["name"].schema == {"type": "string", "maxLength": 10, "minLength": 1,
                                     "pattern": fields["name"].schema["pattern"]}
    pattern = regex.compile(fields["price"].schema["pattern"])
    for text in ("0", "-1", "9999.99", "12.5", "1.234", "12345", "1e3", "+1", ".5", "1.", "00001"):
        accepted = "price" not in validate_json({"name": "Ada", "active": True, "price": text})[1]
        assert accepted is bool(pattern.search(text)), text


def test_natural_primary_key_required_on_create_and_fixed_on_update() -> None:
    t = Table("codes", MetaData(), Column("code", String(5), primary_key=True, autoincrement=False),
              Column("label", String(20)))
    fields = describe(t)
    _, errors = validate(fields, {"label": "x"}, creating=True, form=True)
    assert errors == {"code": "This field is required."}
    clean, errors = validate(fields, {"code": "AB", "label": "x"}, creating=True, form=True)
    assert clean == {"code": "AB", "label": "x"} and errors == {}
    clean, errors = validate(fields, {"code": "ZZ", "label": "y"}, creating=False, form=True)
    assert clean == {"label": "y"} and errors == {}


def test_every_error_is_reported_and_nothing_invalid_is_clean() -> None:
    clean, errors = validate_form({"name": "x" * 11, "count": "many", "born": "soon", "ratio": "1.5"})
    assert set(errors) == {"name", "count", "born"}
    assert clean == {"ratio": 1.5, "active": False}


# --- formatting ----------------------------------------------------------------------------------


def test_html_value_and_display() -> None:
    seen = FIELDS["seen"]
    assert seen.html_value(datetime.datetime(2024, 2, 29, 13, 45)) == "2024-02-29T13:45:00"
    assert seen.display(datetime.datetime(2024, 2, 29, 13, 45, 10)) == "2024-02-29 13:45"
    assert FIELDS["born"].html_value(datetime.date(2024, 2, 29)) == "2024-02-29"
    assert FIELDS["wakes"].html_value(datetime.time(7, 30)) == "07:30:00"
    assert FIELDS["colour"].html_value(Colour.red) == "red"
    assert FIELDS["count"].html_value(None) == ""
    assert FIELDS["count"].html_value("typed text") == "typed text"
    assert FIELDS["active"].display(True) == "Yes"
    assert FIELDS["active"].display(False) == "No"
    assert FIELDS["price"].display(decimal.Decimal("1.50")) == "1.50"


def test_checked() -> None:
    active: Field = FIELDS["active"]
    assert active.checked(True) and active.checked("on") and active.checked(1)
    assert not active.checked(False) and not active.checked("") and not active.checked(None)

"""Fields: what a table's columns accept from a request, and how forms show them.

:func:`describe` reads a SQLAlchemy ``Table`` once and returns a
:class:`Field` per column: its HTML input (type, step, maxlength, choices,
required) and a converter from request values to column values::

    >>> from sqlalchemy import Column, Integer, MetaData, String, Table
    >>> t = Table('people', MetaData(), Column('id', Integer, primary_key=True),
    ...           Column('name', String(20), nullable=False), Column('age', Integer))
    >>> fields = describe(t)
    >>> [(f.name, f.input, f.required, f.writable) for f in fields]
    [('id', 'number', False, False), ('name', 'text', True, True), ('age', 'number', False, True)]
    >>> validate(fields, {'name': 'Ada', 'age': 'x'}, creating=True, form=True)
    ({'name': 'Ada'}, {'age': 'Enter a whole number.'})
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import math
import re
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import types as sqltypes
from sqlalchemy.schema import Column, Table

__all__ = ["Field", "Invalid", "describe", "validate"]

_INT = re.compile(r"[+-]?[0-9]+\Z")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ADDRESSABLE = re.compile(r"[A-Za-z0-9._~-]+\Z")
#: A key given by the client: what the URL template's {id} matches.
KEY = r"^[A-Za-z0-9._~-]+$"
_INT_RANGES = {
    sqltypes.SmallInteger: 2**15,
    sqltypes.BigInteger: 2**63,
    sqltypes.Integer: 2**31,
}
#: The most characters a list shows of one value (the member page shows all).
EXCERPT = 200
_TRUE = {"on", "true", "1", "yes", "y", "t", "checked"}
_FALSE = {"", "off", "false", "0", "no", "n", "f"}


class Invalid(ValueError):
    """Values that cannot be written; the messages are for the user.

    ``Invalid("Enter a number.")`` refuses one value (a converter's message);
    ``Invalid({"name": "Taken.", None: "Check the form."})`` refuses fields by
    name, ``None`` for the form as a whole.
    """

    def __init__(self, errors: str | Mapping[str | None, str]) -> None:
        if isinstance(errors, str):
            self.errors: dict[str | None, str] = {None: errors}
            super().__init__(errors)
        else:
            self.errors = {k: str(v) for k, v in errors.items()}
            super().__init__("; ".join(f"{k}: {v}" if k else v for k, v in self.errors.items()))


Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class Field:
    """One column as a form field and a validator."""

    name: str
    label: str
    input: str
    required: bool
    nullable: bool
    writable: bool
    primary_key: bool
    convert: Converter
    maxlength: int | None = None
    step: str | None = None
    choices: tuple[str, ...] = ()
    comparable: bool = True
    #: The column must get a value on create (NOT NULL, no default). Unlike
    #: ``required`` (what a form marks), true for a NOT NULL checkbox too:
    #: a form sends it unchecked, a JSON body must name it.
    needed: bool = False
    #: The JSON Schema of a value (null aside): what a JSON body must send, as
    #: ``/openapi.json`` publishes it and :func:`validate` checks it.
    schema: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False, compare=False)
    #: What a JSON string must match beyond the published schema (formats), and the message.
    strict: re.Pattern[str] | None = dataclasses.field(default=None, hash=False, compare=False)
    mismatch: str = "Enter a valid value."

    @property
    def long(self) -> bool:
        """True when a value can be too long to show whole in a list (text, long strings)."""
        return self.input == "textarea" or (self.maxlength or 0) > EXCERPT

    def excerpt(self, value: Any) -> str:
        """Format a value for a list cell: its first :data:`EXCERPT` characters at most."""
        text = self.display(value)
        if len(text) <= EXCERPT:
            return text
        return text[:EXCERPT].rstrip() + "\u2026"

    def html_value(self, value: Any) -> str:
        """Format a column value (or what the user typed) for an input."""
        if value is None:
            return ""
        if isinstance(value, datetime.datetime):
            return value.isoformat(timespec="seconds" if not value.microsecond else "auto")
        if isinstance(value, (datetime.date, datetime.time)):
            return value.isoformat()
        if isinstance(value, enum.Enum):
            return str(value.name)
        return str(value)

    def display(self, value: Any) -> str:
        """Format a column value for reading."""
        kind = type(value)
        if kind is str:  # PERF: the common cases first, on every list cell
            return value  # type: ignore[no-any-return]
        if kind is int:
            return str(value)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "Yes" if value else "No"
        if isinstance(value, datetime.datetime):
            return value.isoformat(sep=" ", timespec="minutes")
        return self.html_value(value)

    def checked(self, value: Any) -> bool:
        """Tell whether a checkbox for this value is checked."""
        if isinstance(value, str):
            return value.strip().lower() in _TRUE
        return bool(value)


def _text(value: Any) -> str:
    if isinstance(value, str):
        if "\x00" in value:
            raise Invalid("Remove the NUL character.")
        if not value.isascii() and _SURROGATE.search(value):
            raise Invalid("Remove the invalid character (a lone surrogate).")
        return value
    if hasattr(value, "filename"):
        raise Invalid("File uploads are not accepted here.")
    if isinstance(value, (dict, list, bool)) or value is None:
        raise Invalid("Enter text.")
    return str(value)


def _integer(bound: int) -> Converter:
    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise Invalid("Enter a whole number.")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            text = _text(value).strip()
            if not _INT.match(text) or len(text) > 25:
                raise Invalid("Enter a whole number.")
            value = int(text)
        if not -bound <= value < bound:
            raise Invalid(f"Enter a number between {-bound} and {bound - 1}.")
        return value

    return convert


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise Invalid("Enter a number.")
    try:
        number = float(value if isinstance(value, (int, float)) else _text(value).strip())
    except (ValueError, OverflowError):
        raise Invalid("Enter a number.") from None
    if not math.isfinite(number):
        raise Invalid("Enter a finite number.")
    return number


def _numeric(precision: int | None, scale: int | None) -> Converter:
    shape = re.compile(decimal_pattern(precision, scale))

    def convert(value: Any) -> decimal.Decimal:
        if isinstance(value, bool):
            raise Invalid("Enter a number.")
        text = repr(value) if isinstance(value, float) else _text(value).strip()
        if len(text) > 201:
            raise Invalid("Enter a shorter number.")
        try:
            number = decimal.Decimal(text)
        except decimal.InvalidOperation:
            raise Invalid("Enter a number.") from None
        if not number.is_finite():
            raise Invalid("Enter a finite number.")
        if isinstance(value, str) and shape.search(text):
            return number
        if scale is not None:
            _, digits, exponent = number.as_tuple()
            if isinstance(exponent, int) and -exponent > scale:
                raise Invalid(f"Use at most {scale} decimal places.")
            if precision is not None:
                whole = len(digits) + exponent if isinstance(exponent, int) else len(digits)
                if whole > precision - scale:
                    raise Invalid(f"Use at most {precision - scale} digits before the point.")
        return number

    return convert


def _string(length: int | None) -> Converter:
    def convert(value: Any) -> str:
        text = _text(value)
        if length is not None and len(text) > length:
            raise Invalid(f"Use at most {length} characters.")
        return text

    return convert


# NOTE: each of these patterns is published in /openapi.json as it is written
# here, and a JSON body is checked with it (re.search), so a client that
# validates against the document and the server never disagree. Character
# classes leave out NUL, which no database column stores. (A lone surrogate is
# no character: the JSON parser refuses a body holding one, before any field.)
_CHAR = r"[^\x00]"
_VISIBLE = r"[^\s\x00]"
#: Any text (a nullable column: blank means null).
ANY_TEXT = f"^{_CHAR}*$"
#: Text with something besides white space (a column that cannot be null).
SOME_TEXT = f"^{_CHAR}*{_VISIBLE}{_CHAR}*$"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
#: local@domain.tld, as the HTML email input accepts it.
EMAIL = rf'^[^@\s<>()\[\],;:\\"\x00]+@{_LABEL}(?:\.{_LABEL})+$'
#: An absolute http or https address with a host.
URL = r"^https?://[^\s/?#@\x00]+(?:[/?#][^\s\x00]*)?$"
#: A time of day, to the microsecond (every string it matches is a valid time).
TIME = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?$"
# RFC 3339, as JSON Schema's "date" and "date-time" formats are (an offset is required).
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
                        r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})\Z")


def decimal_pattern(precision: int | None, scale: int | None) -> str:
    r"""The pattern of a decimal's text: digits before and after the point, as the column holds them.

        >>> decimal_pattern(12, 2)
        '^-?[0-9]{1,10}(?:\\.[0-9]{1,2})?$'
    """
    if not precision:
        return r"^-?[0-9]{1,100}(?:\.[0-9]{1,100})?$"
    whole = f"[0-9]{{1,{max(precision - (scale or 0), 1)}}}"
    return f"^-?{whole}" + (f"(?:\\.[0-9]{{1,{scale}}})?" if scale else "") + "$"


def _matching(pattern: str, message: str, length: int | None) -> Converter:
    """Text that matches ``pattern`` once stripped (forms), at most ``length`` characters."""
    compiled = re.compile(pattern)

    def convert(value: Any) -> str:
        text = _text(value).strip()
        if (length is not None and len(text) > length) or not compiled.search(text):
            raise Invalid(message)
        return text

    return convert


_EMAIL_MESSAGE = "Enter an email address, such as ada@example.com."
_URL_MESSAGE = "Enter a web address that starts with http:// or https://."


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise Invalid("Choose yes or no.")


def _iso(kind: type, message: str) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, kind) and not (kind is datetime.date and isinstance(value, datetime.datetime)):
            return value
        text = _text(value).strip().upper()  # NOTE: RFC 3339 allows t and z
        if len(text) > 40:
            raise Invalid(message)
        try:
            parsed = kind.fromisoformat(text)  # type: ignore[attr-defined]
            if isinstance(parsed, datetime.datetime) and parsed.tzinfo is not None:
                # NOTE: naive columns store UTC wall time; aware input is converted
                # (which can leave the calendar: 0001-01-01T00:00+01:00).
                parsed = parsed.astimezone(datetime.UTC).replace(tzinfo=None)
        except (ValueError, OverflowError):
            raise Invalid(message) from None
        return parsed

    return convert


def _choice(choices: tuple[str, ...], enum_class: Any) -> Converter:
    def convert(value: Any) -> Any:
        text = _text(value)
        if text not in choices:
            raise Invalid("Choose one of: " + ", ".join(choices) + ".")
        return enum_class[text] if enum_class is not None else text

    return convert


def _column_field(column: Column[Any], autoincrement_pk: bool) -> Field:
    ctype = column.type
    label = column.info.get("label") or column.name.replace("_", " ").capitalize()
    has_default = (
        column.default is not None or column.server_default is not None or autoincrement_pk
    )
    required = needed = not column.nullable and not has_default
    kw: dict[str, Any] = {}
    kind = column.info.get("type")
    comparable = True
    text_pattern = ANY_TEXT if column.nullable else SOME_TEXT
    if isinstance(ctype, sqltypes.Boolean):
        # An unchecked box is "no", so a NOT NULL boolean is never "missing" from a form.
        required = False
        kw.update(input="checkbox", convert=_boolean, schema={"type": "boolean"})
    elif isinstance(ctype, sqltypes.Enum):
        choices = tuple(ctype.enums)
        kw.update(input="select", choices=choices, convert=_choice(choices, ctype.enum_class),
                  schema={"type": "string", "enum": list(choices)})
    elif isinstance(ctype, sqltypes.Integer):
        bound = next(b for t, b in _INT_RANGES.items() if isinstance(ctype, t))
        kw.update(input="number", step="1", convert=_integer(bound),
                  schema={"type": "integer", "minimum": -bound, "maximum": bound - 1})
    elif isinstance(ctype, sqltypes.Float):
        comparable = False  # NOTE: single-precision columns do not round-trip
        kw.update(input="number", step="any", convert=_float,
                  schema={"type": "number", "minimum": -sys.float_info.max, "maximum": sys.float_info.max})
    elif isinstance(ctype, sqltypes.Numeric):
        scale = ctype.scale
        step = "1" if scale == 0 else ("0." + "0" * (scale - 1) + "1" if scale else "any")
        # NOTE: decimals travel as strings, so that no digit is lost to a float.
        kw.update(input="number", step=step, convert=_numeric(ctype.precision, scale),
                  schema={"type": "string", "format": "decimal",
                          "pattern": decimal_pattern(ctype.precision, scale)},
                  mismatch=_decimal_message(ctype.precision, scale))
    elif isinstance(ctype, sqltypes.DateTime):
        kw.update(input="datetime-local", step="1", convert=_iso(datetime.datetime, "Enter a date and time."),
                  schema={"type": "string", "format": "date-time"}, strict=_DATE_TIME,
                  mismatch="Enter a date and time with its offset, such as 2026-11-30T09:30:00Z.")
    elif isinstance(ctype, sqltypes.Date):
        kw.update(input="date", convert=_iso(datetime.date, "Enter a date (YYYY-MM-DD)."),
                  schema={"type": "string", "format": "date"}, strict=_DATE,
                  mismatch="Enter a date (YYYY-MM-DD).")
    elif isinstance(ctype, sqltypes.Time):
        kw.update(input="time", step="1", convert=_matching(TIME, "Enter a time (HH:MM).", None),
                  schema={"type": "string", "pattern": TIME}, mismatch="Enter a time (HH:MM).")
        kw["convert"] = _then(kw["convert"], datetime.time.fromisoformat)
    elif kind in ("email", "url") and isinstance(ctype, sqltypes.String):
        pattern, message = (EMAIL, _EMAIL_MESSAGE) if kind == "email" else (URL, _URL_MESSAGE)
        length = min(ctype.length or 254, 254) if kind == "email" else ctype.length
        schema: dict[str, Any] = {"type": "string", "pattern": pattern}
        if length:
            schema["maxLength"] = length
        kw.update(input=kind, maxlength=ctype.length, convert=_matching(pattern, message, length),
                  schema=schema, mismatch=message)
    elif isinstance(ctype, sqltypes.Text) or (
        isinstance(ctype, sqltypes.String) and ctype.length is None
    ):
        kw.update(input="textarea", convert=_string(getattr(ctype, "length", None)),
                  schema={"type": "string", "pattern": text_pattern})
    elif isinstance(ctype, sqltypes.String):
        kw.update(input="text", maxlength=ctype.length, convert=_string(ctype.length),
                  schema={"type": "string", "pattern": text_pattern, "maxLength": ctype.length})
    else:
        comparable = False
        kw.update(input="text", convert=_text, schema={"type": "string", "pattern": text_pattern})
    if column.primary_key and not autoincrement_pk and kw["schema"].get("type") == "string" \
            and "enum" not in kw["schema"]:
        kw["schema"] = dict(kw["schema"], pattern=KEY)
        kw["mismatch"] = "Use only letters, digits and . _ ~ - (it is part of the address)."
    if kw["schema"].get("pattern") not in (None, ANY_TEXT):
        kw["schema"] = dict(kw["schema"], minLength=1)  # what the pattern says, for generators
    if "pattern" in kw["schema"] and kw.get("strict") is None:
        kw["strict"] = re.compile(kw["schema"]["pattern"])
    return Field(
        name=column.name,
        label=str(label),
        required=required,
        nullable=bool(column.nullable),
        writable=not autoincrement_pk,
        primary_key=bool(column.primary_key),
        comparable=comparable,
        needed=needed,
        **kw,
    )


def _decimal_message(precision: int | None, scale: int | None) -> str:
    if not precision:
        return 'Enter a number as a string, such as "12.50".'
    whole = max(precision - (scale or 0), 1)
    places = f" and at most {scale} after the point" if scale else ""
    return f'Enter a number as a string, such as "12.50", with at most {whole} digits before{places}.'


def _then(first: Converter, second: Callable[[Any], Any]) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, datetime.time):
            return value
        try:
            return second(first(value))
        except ValueError as exc:
            if isinstance(exc, Invalid):
                raise
            raise Invalid("Enter a time (HH:MM).") from None

    return convert


_JSON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int, float),
                                           "number": (int, float), "boolean": (bool,)}
_JSON_MESSAGES = {"string": "Send this value as a JSON string.", "integer": "Send a whole number.",
                  "number": "Send a number.", "boolean": "Send true or false."}


def json_value(field: Field, value: Any) -> Any:
    """Convert a value from a JSON body: its JSON type must be the schema's, strings must match.

    Forms are lenient (every form value is text); JSON is not: ``{"count": "5"}``
    and ``{"name": 0}`` are refused, as the published schema says.
    """
    kind = field.schema.get("type")
    if kind is not None:
        if isinstance(value, bool) is not (kind == "boolean") or not isinstance(value, _JSON_TYPES[kind]) \
                or (kind == "integer" and isinstance(value, float) and not value.is_integer()):
            raise Invalid(_JSON_MESSAGES[kind])
        if field.strict is not None and isinstance(value, str) and not field.strict.search(value):
            if not value.strip() and not field.nullable:
                raise Invalid("This field is required.")
            field.convert(value)  # its message says what is wrong, when it has one
            raise Invalid(field.mismatch)
    return field.convert(value)


def describe(table: Table) -> list[Field]:
    """Return the fields of a table, in column order (described once per table and column set)."""
    shape = tuple(map(id, table.columns))
    known = _described.get(table)
    if known is None or known[0] != shape:
        auto = table.autoincrement_column
        known = _described[table] = (shape, tuple(_column_field(col, col is auto) for col in table.columns))
    return list(known[1])


# PERF: paging decodes a cursor with the fields of its table on every request.
_described: weakref.WeakKeyDictionary[Table, tuple[tuple[int, ...], tuple[Field, ...]]] = \
    weakref.WeakKeyDictionary()


def validate(
    fields: list[Field],
    values: Mapping[str, Any],
    *,
    creating: bool,
    form: bool,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Convert request values to column values.

    Only writable columns are written; a primary key only on create. Form
    bodies ignore unknown keys and read a missing checkbox as unchecked; JSON
    bodies reject unknown keys, values of another JSON type than the field's
    schema and the fields the server sets (an automatic key; a key on update).
    Blank values clear nullable columns.

    :returns: the clean values and the errors, by field name.
    """
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    known = set()
    for field in fields:
        known.add(field.name)
        if not field.writable or (field.primary_key and not creating):
            if not form and field.name in values:
                errors[field.name] = ("The server sets this field: leave it out." if not field.writable
                                      else "The key is part of the address and cannot change: leave it out.")
            continue
        if field.name in values:
            raw = values[field.name]
            if raw is None or (isinstance(raw, str) and raw.strip() == "" and (
                    field.input != "checkbox" if form else field.strict is not None and field.strict.search(raw))):
                if field.nullable and not field.primary_key:
                    clean[field.name] = None
                elif not form or not (creating and not field.needed and not field.primary_key):
                    errors[field.name] = "This field is required."
                continue
            try:
                clean[field.name] = field.convert(raw) if form else json_value(field, raw)
            except Invalid as exc:
                errors[field.name] = str(exc)
                continue
            key = clean[field.name]
            if field.primary_key and isinstance(key, str) and not _ADDRESSABLE.match(key):
                # a key the URL template cannot match could be created but never reached
                del clean[field.name]
                errors[field.name] = "Use only letters, digits and . _ ~ - (it is part of the address)."
        elif form and field.input == "checkbox":
            clean[field.name] = False
        elif creating and (field.needed or field.primary_key):
            errors[field.name] = "This field is required."
    if not form:
        for key in values:
            if key not in known:
                errors[str(key)[:100]] = "Unknown field."
    return clean, errors

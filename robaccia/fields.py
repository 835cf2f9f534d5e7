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

import datetime
import decimal
import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import types as sqltypes
from sqlalchemy.schema import Column, Table

__all__ = ["Field", "Invalid", "describe", "validate"]

_INT = re.compile(r"[+-]?[0-9]+\Z")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ADDRESSABLE = re.compile(r"[A-Za-z0-9._~-]+\Z")
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
    def convert(value: Any) -> decimal.Decimal:
        if isinstance(value, bool):
            raise Invalid("Enter a number.")
        text = repr(value) if isinstance(value, float) else _text(value).strip()
        if len(text) > 100:
            raise Invalid("Enter a shorter number.")
        try:
            number = decimal.Decimal(text)
        except decimal.InvalidOperation:
            raise Invalid("Enter a number.") from None
        if not number.is_finite():
            raise Invalid("Enter a finite number.")
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


_EMAIL = re.compile(r"[^@\s<>()\[\],;:\\\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+\Z")


def _email(length: int | None) -> Converter:
    """An address as the HTML email input accepts one: local@domain.tld (at most 254 characters)."""
    def convert(value: Any) -> str:
        text = _text(value).strip()
        if len(text) > min(length or 254, 254) or not _EMAIL.match(text):
            raise Invalid("Enter an email address, such as ada@example.com.")
        return text

    return convert


def _url(length: int | None) -> Converter:
    """An absolute http(s) URL with a host."""
    from urllib.parse import urlsplit

    def convert(value: Any) -> str:
        text = _text(value).strip()
        try:
            parts = urlsplit(text)
        except ValueError:
            parts = None
        if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
                or any(c.isspace() for c in text) or (length is not None and len(text) > length)):
            raise Invalid("Enter a web address that starts with http:// or https://.")
        return text

    return convert


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
        text = _text(value).strip()
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
    if isinstance(ctype, sqltypes.Boolean):
        # An unchecked box is "no", so a NOT NULL boolean is never "missing".
        required = False
        kw.update(input="checkbox", convert=_boolean)
    elif isinstance(ctype, sqltypes.Enum):
        choices = tuple(ctype.enums)
        kw.update(input="select", choices=choices, convert=_choice(choices, ctype.enum_class))
    elif isinstance(ctype, sqltypes.Integer):
        bound = next(b for t, b in _INT_RANGES.items() if isinstance(ctype, t))
        kw.update(input="number", step="1", convert=_integer(bound))
    elif isinstance(ctype, sqltypes.Float):
        comparable = False  # NOTE: single-precision columns do not round-trip
        kw.update(input="number", step="any", convert=_float)
    elif isinstance(ctype, sqltypes.Numeric):
        scale = ctype.scale
        step = "1" if scale == 0 else ("0." + "0" * (scale - 1) + "1" if scale else "any")
        kw.update(input="number", step=step, convert=_numeric(ctype.precision, scale))
    elif isinstance(ctype, sqltypes.DateTime):
        kw.update(input="datetime-local", step="1", convert=_iso(datetime.datetime, "Enter a date and time."))
    elif isinstance(ctype, sqltypes.Date):
        kw.update(input="date", convert=_iso(datetime.date, "Enter a date (YYYY-MM-DD)."))
    elif isinstance(ctype, sqltypes.Time):
        kw.update(input="time", step="1", convert=_iso(datetime.time, "Enter a time (HH:MM)."))
    elif kind in ("email", "url") and isinstance(ctype, sqltypes.String):
        checker = _email(ctype.length) if kind == "email" else _url(ctype.length)
        kw.update(input=kind, maxlength=ctype.length, convert=checker)
    elif isinstance(ctype, sqltypes.Text) or (
        isinstance(ctype, sqltypes.String) and ctype.length is None
    ):
        kw.update(input="textarea", convert=_string(getattr(ctype, "length", None)))
    elif isinstance(ctype, sqltypes.String):
        kw.update(input="text", maxlength=ctype.length, convert=_string(ctype.length))
    else:
        comparable = False
        kw.update(input="text", convert=_text)
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


def describe(table: Table) -> list[Field]:
    """Return the fields of a table, in column order."""
    auto = table.autoincrement_column
    return [_column_field(col, col is auto) for col in table.columns]


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
    bodies reject unknown keys. Blank values clear nullable columns.

    :returns: the clean values and the errors, by field name.
    """
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    known = set()
    for field in fields:
        known.add(field.name)
        if not field.writable or (field.primary_key and not creating):
            continue
        if field.name in values:
            raw = values[field.name]
            if raw is None or (isinstance(raw, str) and raw.strip() == "" and field.input != "checkbox"):
                if field.nullable and not field.primary_key:
                    clean[field.name] = None
                elif not (creating and not field.needed and not field.primary_key):
                    errors[field.name] = "This field is required."
                continue
            try:
                clean[field.name] = field.convert(raw)
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

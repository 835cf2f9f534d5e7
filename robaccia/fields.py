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
import enum
import re
import sys
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import types as sqltypes
from sqlalchemy.schema import Column, Table

from robaccia.converters import (
    ADDRESSABLE,
    ANY_TEXT,
    DATE,
    DATE_TIME,
    EMAIL,
    EMAIL_MESSAGE,
    KEY,
    SOME_TEXT,
    TIME,
    TRUE,
    URL,
    URL_MESSAGE,
    Converter,
    Invalid,
    as_text,
    boolean,
    choice,
    decimal_message,
    decimal_pattern,
    integer,
    iso,
    matching,
    number,
    numeric,
    string,
    then,
)

_URL = re.compile(URL)
_EMAIL = re.compile(EMAIL)

__all__ = ["ANY_TEXT", "EMAIL", "EXCERPT", "KEY", "SOME_TEXT", "TIME", "URL", "Field", "Invalid",
           "decimal_pattern", "describe", "json_value", "validate"]

#: The most characters a list shows of one value (the member page shows all).
EXCERPT = 200
#: Integer column types, by the bound of their values (-bound <= n < bound).
INT_RANGES = {
    sqltypes.SmallInteger: 2**15,
    sqltypes.BigInteger: 2**63,
    sqltypes.Integer: 2**31,
}

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

    def link(self, value: Any) -> str | None:
        """The address a member page links this value to, or None.

        Only ``url`` fields holding an http(s) address and ``email`` fields
        holding an address are links (a value written around the forms, such
        as ``javascript:...``, is shown as text)::

            >>> from sqlalchemy import Column, MetaData, String, Table
            >>> site, mail = describe(Table('t', MetaData(),
            ...     Column('site', String(200), info={'type': 'url'}),
            ...     Column('mail', String(200), info={'type': 'email'})))
            >>> site.link('https://example.com/shop'), site.link('javascript:alert(1)')
            ('https://example.com/shop', None)
            >>> mail.link('ada+x@example.com')
            'mailto:ada%2Bx@example.com'
        """
        if not isinstance(value, str):
            return None
        if self.input == "url" and _URL.match(value):
            return value
        if self.input == "email" and _EMAIL.match(value):
            return "mailto:" + quote(value, safe="@")
        return None

    def checked(self, value: Any) -> bool:
        """Tell whether a checkbox for this value is checked."""
        if isinstance(value, str):
            return value.strip().lower() in TRUE
        return bool(value)


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
        kw.update(input="checkbox", convert=boolean, schema={"type": "boolean"})
    elif isinstance(ctype, sqltypes.Enum):
        choices = tuple(ctype.enums)
        kw.update(input="select", choices=choices, convert=choice(choices, ctype.enum_class),
                  schema={"type": "string", "enum": list(choices)})
    elif isinstance(ctype, sqltypes.Integer):
        bound = next(b for t, b in INT_RANGES.items() if isinstance(ctype, t))
        kw.update(input="number", step="1", convert=integer(bound),
                  schema={"type": "integer", "minimum": -bound, "maximum": bound - 1})
    elif isinstance(ctype, sqltypes.Float):
        comparable = False  # NOTE: single-precision columns do not round-trip
        kw.update(input="number", step="any", convert=number,
                  schema={"type": "number", "minimum": -sys.float_info.max, "maximum": sys.float_info.max})
    elif isinstance(ctype, sqltypes.Numeric):
        scale = ctype.scale
        step = "1" if scale == 0 else ("0." + "0" * (scale - 1) + "1" if scale else "any")
        # NOTE: decimals travel as strings, so that no digit is lost to a float.
        kw.update(input="number", step=step, convert=numeric(ctype.precision, scale),
                  schema={"type": "string", "format": "decimal",
                          "pattern": decimal_pattern(ctype.precision, scale)},
                  mismatch=decimal_message(ctype.precision, scale))
    elif isinstance(ctype, sqltypes.DateTime):
        kw.update(input="datetime-local", step="1", convert=iso(datetime.datetime, "Enter a date and time."),
                  schema={"type": "string", "format": "date-time"}, strict=DATE_TIME,
                  mismatch="Enter a date and time with its offset, such as 2026-11-30T09:30:00Z.")
    elif isinstance(ctype, sqltypes.Date):
        kw.update(input="date", convert=iso(datetime.date, "Enter a date (YYYY-MM-DD)."),
                  schema={"type": "string", "format": "date"}, strict=DATE,
                  mismatch="Enter a date (YYYY-MM-DD).")
    elif isinstance(ctype, sqltypes.Time):
        kw.update(input="time", step="1", convert=matching(TIME, "Enter a time (HH:MM).", None),
                  schema={"type": "string", "pattern": TIME}, mismatch="Enter a time (HH:MM).")
        kw["convert"] = then(kw["convert"], datetime.time.fromisoformat)
    elif kind in ("email", "url") and isinstance(ctype, sqltypes.String):
        pattern, message = (EMAIL, EMAIL_MESSAGE) if kind == "email" else (URL, URL_MESSAGE)
        length = min(ctype.length or 254, 254) if kind == "email" else ctype.length
        schema: dict[str, Any] = {"type": "string", "pattern": pattern}
        if length:
            schema["maxLength"] = length
        kw.update(input=kind, maxlength=ctype.length, convert=matching(pattern, message, length),
                  schema=schema, mismatch=message)
    elif isinstance(ctype, sqltypes.Text) or (
        isinstance(ctype, sqltypes.String) and ctype.length is None
    ):
        kw.update(input="textarea", convert=string(getattr(ctype, "length", None)),
                  schema={"type": "string", "pattern": text_pattern})
    elif isinstance(ctype, sqltypes.String):
        kw.update(input="text", maxlength=ctype.length, convert=string(ctype.length),
                  schema={"type": "string", "pattern": text_pattern, "maxLength": ctype.length})
    else:
        comparable = False
        kw.update(input="text", convert=as_text, schema={"type": "string", "pattern": text_pattern})
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
    for field in fields:
        name = field.name  # PERF: read once; this runs for every field of every write
        if not field.writable or (field.primary_key and not creating):
            if not form and name in values:
                errors[name] = ("The server sets this field: leave it out." if not field.writable
                                else "The key is part of the address and cannot change: leave it out.")
            continue
        if name in values:
            raw = values[name]
            if raw is None or (isinstance(raw, str) and not raw.strip() and (
                    field.input != "checkbox" if form else field.strict is not None and field.strict.search(raw))):
                if field.nullable and not field.primary_key:
                    clean[name] = None
                elif not form or not (creating and not field.needed and not field.primary_key):
                    errors[name] = "This field is required."
                continue
            try:
                key = clean[name] = field.convert(raw) if form else json_value(field, raw)
            except Invalid as exc:
                errors[name] = str(exc)
                continue
            if field.primary_key and isinstance(key, str) and not ADDRESSABLE.match(key):
                # a key the URL template cannot match could be created but never reached
                del clean[name]
                errors[name] = "Use only letters, digits and . _ ~ - (it is part of the address)."
        elif form and field.input == "checkbox":
            clean[name] = False
        elif creating and (field.needed or field.primary_key):
            errors[name] = "This field is required."
    if not form:
        known = {field.name for field in fields}
        for key in values:
            if key not in known:
                errors[str(key)[:100]] = "Unknown field."
    return clean, errors

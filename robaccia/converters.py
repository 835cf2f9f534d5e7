r"""Converters: request values to column values, and the patterns JSON strings must match.

A converter takes what a form or a JSON body sent and returns the column's
value, or raises :class:`Invalid` with a message for the user. The patterns
are published in ``/openapi.json`` as they are written here and checked
against JSON strings (:mod:`robaccia.fields`)::

    >>> from robaccia.converters import decimal_pattern, integer
    >>> integer(2**31)(" 42 ")
    42
    >>> decimal_pattern(12, 2)
    '^-?[0-9]{1,10}(?:\\.[0-9]{1,2})?$'
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ANY_TEXT", "EMAIL", "KEY", "SOME_TEXT", "TIME", "URL", "Converter", "Invalid", "decimal_pattern"]

_INT = re.compile(r"[+-]?[0-9]+\Z")
_SURROGATE = re.compile("[\ud800-\udfff]")
ADDRESSABLE = re.compile(r"[A-Za-z0-9._~-]+\Z")
#: A key given by the client: what the URL template's {id} matches.
KEY = r"^[A-Za-z0-9._~-]+$"
TRUE = {"on", "true", "1", "yes", "y", "t", "checked"}
FALSE = {"", "off", "false", "0", "no", "n", "f"}



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


def as_text(value: Any) -> str:
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


def integer(bound: int) -> Converter:
    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise Invalid("Enter a whole number.")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            text = as_text(value).strip()
            if not _INT.match(text) or len(text) > 25:
                raise Invalid("Enter a whole number.")
            value = int(text)
        if not -bound <= value < bound:
            raise Invalid(f"Enter a number between {-bound} and {bound - 1}.")
        return int(value)

    return convert


def number(value: Any) -> float:
    if isinstance(value, bool):
        raise Invalid("Enter a number.")
    try:
        number = float(value if isinstance(value, (int, float)) else as_text(value).strip())
    except (ValueError, OverflowError):
        raise Invalid("Enter a number.") from None
    if not math.isfinite(number):
        raise Invalid("Enter a finite number.")
    return number


def numeric(precision: int | None, scale: int | None) -> Converter:
    shape = re.compile(decimal_pattern(precision, scale))

    def convert(value: Any) -> decimal.Decimal:
        if isinstance(value, bool):
            raise Invalid("Enter a number.")
        text = repr(value) if isinstance(value, float) else as_text(value).strip()
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


def string(length: int | None) -> Converter:
    def convert(value: Any) -> str:
        text = as_text(value)
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
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
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


def matching(pattern: str, message: str, length: int | None) -> Converter:
    """Text that matches ``pattern`` once stripped (forms), at most ``length`` characters."""
    compiled = re.compile(pattern)

    def convert(value: Any) -> str:
        text = as_text(value).strip()
        if (length is not None and len(text) > length) or not compiled.search(text):
            raise Invalid(message)
        return text

    return convert


EMAIL_MESSAGE = "Enter an email address, such as ada@example.com."
URL_MESSAGE = "Enter a web address that starts with http:// or https://."


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = as_text(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise Invalid("Choose yes or no.")


def iso(kind: type, message: str) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, kind) and not (kind is datetime.date and isinstance(value, datetime.datetime)):
            return value
        text = as_text(value).strip().upper()  # NOTE: RFC 3339 allows t and z
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


def choice(choices: tuple[str, ...], enum_class: Any) -> Converter:
    def convert(value: Any) -> Any:
        text = as_text(value)
        if text not in choices:
            raise Invalid("Choose one of: " + ", ".join(choices) + ".")
        return enum_class[text] if enum_class is not None else text

    return convert


def decimal_message(precision: int | None, scale: int | None) -> str:
    if not precision:
        return 'Enter a number as a string, such as "12.50".'
    whole = max(precision - (scale or 0), 1)
    places = f" and at most {scale} after the point" if scale else ""
    return f'Enter a number as a string, such as "12.50", with at most {whole} digits before{places}.'


def then(first: Converter, second: Callable[[Any], Any]) -> Converter:
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

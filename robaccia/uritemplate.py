"""URI templates: compile to a regex that matches in linear time, and expand to a URL.

The grammar is wsgidispatcher's (2007), kept whole::

    >>> from robaccia.uritemplate import Template
    >>> t = Template('/{view:alnum}/[{id:unreserved}][;{noun:unreserved}]')
    >>> t.match('/employees/7;edit_form')
    {'view': 'employees', 'id': '7', 'noun': 'edit_form'}
    >>> t.expand(view='employees', id=7)
    '/employees/7'
    >>> t.expand(view='employees')
    '/employees/'

``{name}``
    a named capture of one path segment (``[^/]+``).
``{name:range}``
    a named capture using a range: ``word``, ``alpha``, ``digits``, ``alnum``,
    ``segment``, ``unreserved``, ``any``, or one given as ``ranges={'name': regex}``.
``[...]``
    an optional part; optional parts nest.
a trailing ``|``
    the template need only match the start of the path.

Any other text is literal. Patterns are compiled with :data:`re.ASCII`.

Why matching stays linear
-------------------------
A backtracking regex engine can take quadratic or worse time when two
variable-length captures may both claim the same characters (``{a:any}-{b:any}``
on ``/-----...``). Each template is analysed when it is compiled: a capture
whose characters can never be confused with what follows it is made possessive
(it never gives back what it took), and a template in which a capture could
overlap a later capture is refused with :class:`InvalidTemplateError`. Custom
ranges are opaque regexes: they are never made possessive, and one may not be
followed by another capture it could overlap.

Expansion
---------
:meth:`Template.expand` is the inverse of matching: each capture gets its
value (percent-encoded where its range allows escapes, refused where no
encoding could match), and an optional part is written when every capture
directly inside it has a value and it holds at least one value. What it builds
always matches the template again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from robaccia.errors import RobacciaError

__all__ = [
    "DEFAULT_RANGES",
    "InvalidTemplateError",
    "RouteBuildError",
    "Template",
    "template2regex",
]

#: Built-in ranges: name -> (regex, the set of characters it can match or
#: None when any character may match).
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_RANGES: dict[str, tuple[str, frozenset[str] | None]] = {
    "word": (r"\w", _ALNUM | {"_"}),
    "alpha": (r"[a-zA-Z]", frozenset(c for c in _ALNUM if c.isalpha())),
    "digits": (r"\d", frozenset("0123456789")),
    "alnum": (r"[a-zA-Z0-9]", _ALNUM),
    "segment": (r"[^/]", None),  # everything but "/" (see _excludes)
    "unreserved": (r"[a-zA-Z\d\-\.\_\~]", _ALNUM | set("-._~")),
    "any": (r".", None),
}
#: The public view of the built-in ranges, as full regexes.
DEFAULT_RANGES: Mapping[str, str] = {name: rx + "+" for name, (rx, _) in _RANGES.items()}
#: Characters a range is known never to match, for ranges defined by exclusion.
_EXCLUDES = {"segment": frozenset("/")}
_DEFAULT_RANGE = "segment"


class InvalidTemplateError(RobacciaError, ValueError):
    """A URI template is malformed, names an unknown range or can overlap."""


# --- template parsing -----------------------------------------------------


@dataclass(eq=False)
class _Literal:
    text: str


@dataclass(eq=False)
class _Capture:
    name: str
    range: str
    regex: str  # the repeated unit for built-ins, the whole regex for custom
    chars: frozenset[str] | None  # None: unknown / unbounded
    excludes: frozenset[str] = frozenset()
    builtin: bool = True
    possessive: bool = False


@dataclass(eq=False)
class _Optional:
    items: list[_Node] = field(default_factory=list)


_Node = _Literal | _Capture | _Optional
_END = object()  # the end of the path
_ANYTHING = object()  # anything may follow (an open-ended template)


def _parse(template: str, ranges: Mapping[str, str]) -> tuple[list[_Node], bool]:
    open_ended = template.endswith("|")
    body = template[:-1] if open_ended else template
    stack: list[list[_Node]] = [[]]
    i = 0
    while i < len(body):
        c = body[i]
        if c == "{":
            end = body.find("}", i)
            if end < 0 or "{" in body[i + 1 : end]:
                raise InvalidTemplateError(f"Mismatched braces in {template!r}")
            stack[-1].append(_capture(body[i + 1 : end], template, ranges))
            i = end + 1
            continue
        if c == "[":
            opt = _Optional()
            stack[-1].append(opt)
            stack.append(opt.items)
        elif c == "]":
            if len(stack) == 1:
                raise InvalidTemplateError(f"Mismatched brackets in {template!r}")
            stack.pop()
        elif c == "}":
            raise InvalidTemplateError(f"Mismatched braces in {template!r}")
        else:
            items = stack[-1]
            if items and isinstance(items[-1], _Literal):
                items[-1].text += c
            else:
                items.append(_Literal(c))
        i += 1
    if len(stack) != 1:
        raise InvalidTemplateError(f"Mismatched brackets in {template!r}")
    return stack[0], open_ended


def _capture(spec: str, template: str, ranges: Mapping[str, str]) -> _Capture:
    name, _, range_name = spec.partition(":")
    range_name = range_name or _DEFAULT_RANGE
    if not name.isidentifier():
        raise InvalidTemplateError(f"Invalid capture name {name!r} in {template!r}")
    if range_name in ranges:
        return _Capture(name, range_name, ranges[range_name], None, builtin=False)
    if range_name in _RANGES:
        unit, chars = _RANGES[range_name]
        excludes = _EXCLUDES.get(range_name, frozenset())
        return _Capture(name, range_name, unit, chars, excludes)
    raise InvalidTemplateError(f"Unknown range {range_name!r} in {template!r}")


def _heads(items: list[_Node], start: int, after: list[object]) -> list[object]:
    """Return the nodes that can come first in ``items[start:]``, then ``after``."""
    found: list[object] = []
    for node in items[start:]:
        if not isinstance(node, _Optional):
            found.append(node)
            return found
        found.extend(h for h in _heads(node.items, 0, []) if h not in found)
    return found + [h for h in after if h not in found]


def _can_match(cap: _Capture, char: str) -> bool:
    if cap.chars is not None:
        return char in cap.chars
    return char not in cap.excludes


def _overlap(a: _Capture, b: _Capture) -> bool:
    if a.chars is not None:
        return any(_can_match(b, c) for c in a.chars)
    if b.chars is not None:
        return any(_can_match(a, c) for c in b.chars)
    return True


def _follows(items: list[_Node], after: list[object], out: dict[int, list[object]]) -> None:
    """Record, for every literal and capture, what can come right after it."""
    for i, node in enumerate(items):
        rest = _heads(items, i + 1, after)
        if isinstance(node, _Optional):
            _follows(node.items, rest, out)
        else:
            out[id(node)] = rest


def _analyse(items: list[_Node], open_ended: bool, template: str) -> None:
    """Mark safe captures possessive; refuse templates whose captures can overlap.

    A capture is possessive when nothing that may follow it starts with a
    character it can match: giving characters back could then never lead to a
    match, so forbidding it changes no result. A capture that is not
    possessive must not reach another capture it overlaps through literals it
    could itself swallow: that pair is what makes backtracking super-linear.
    """
    follow: dict[int, list[object]] = {}
    _follows(items, [_ANYTHING if open_ended else _END], follow)
    captures = [n for n in _walk(items) if isinstance(n, _Capture)]
    for cap in captures:
        heads = follow[id(cap)]
        safe = cap.builtin
        for head in heads:
            if head is _ANYTHING:
                safe = False
            elif isinstance(head, _Literal):
                safe = safe and not _can_match(cap, head.text[0])
            elif isinstance(head, _Capture):
                safe = safe and not _overlap(cap, head)
        cap.possessive = safe
        if safe:
            continue
        seen: set[int] = set()
        todo = list(heads)
        while todo:
            head = todo.pop()
            if id(head) in seen:
                continue
            seen.add(id(head))
            if isinstance(head, _Capture) and _overlap(cap, head):
                raise InvalidTemplateError(
                    f"Captures {{{cap.name}}} and {{{head.name}}} in {template!r} can "
                    "claim the same characters, which makes matching slow on hostile "
                    "paths; use narrower ranges or a separator neither can match"
                )
            if isinstance(head, _Literal) and all(_can_match(cap, c) for c in head.text):
                todo.extend(follow[id(head)])


def _walk(items: list[_Node]) -> Iterable[_Node]:
    for node in items:
        if isinstance(node, _Optional):
            yield from _walk(node.items)
        else:
            yield node


def _emit(items: list[_Node]) -> str:
    out = []
    for node in items:
        if isinstance(node, _Literal):
            out.append(re.escape(node.text))
        elif isinstance(node, _Capture):
            if not node.builtin:
                out.append(f"(?P<{node.name}>{node.regex})")
            else:
                out.append(f"(?P<{node.name}>{node.regex}{'++' if node.possessive else '+'})")
        else:
            out.append(f"(?:{_emit(node.items)})?")
    return "".join(out)


class RouteBuildError(RobacciaError, ValueError):
    """A URL cannot be built: an unknown route, a missing value or one its range refuses."""


#: Characters a value may keep unescaped, by range (the rest is percent-encoded).
_SAFE = {"segment": "!$&'()*+,;=:@-._~", "any": "/!$&'()*+,;=:@-._~"}
#: A value of only these characters needs no percent-encoding in any range.
_PLAIN = re.compile(r"[A-Za-z0-9._~-]*\Z").match


class _Checker:
    """How one capture's values are written: percent-encoded where allowed, then checked."""

    __slots__ = ("safe", "fullmatch")

    def __init__(self, cap: _Capture) -> None:
        self.safe = _SAFE.get(cap.range) if cap.builtin else None
        pattern = cap.regex if not cap.builtin else f"(?:{cap.regex})+"
        self.fullmatch = re.compile(pattern, re.ASCII).fullmatch


def _value(cap: _Capture, value: Any, template: str) -> str:
    text = value if type(value) is str else str(value)
    checker: _Checker = cap.checker  # type: ignore[attr-defined]
    if checker.safe is not None and not _PLAIN(text):
        text = quote(text, safe=checker.safe)
    if checker.fullmatch(text) is None:
        raise RouteBuildError(f"{value!r} cannot be the {{{cap.name}}} of {template!r}")
    return text


def _expand(items: list[_Node], values: Mapping[str, Any], template: str) -> tuple[str, bool]:
    """Write ``items``; report whether any capture was written."""
    out: list[str] = []
    wrote = False
    for node in items:
        if isinstance(node, _Literal):
            out.append(node.text)
        elif isinstance(node, _Capture):
            value = values.get(node.name)
            if value is None or value == "":
                raise RouteBuildError(f"{template!r} needs a value for {{{node.name}}}")
            out.append(_value(node, value, template))
            wrote = True
        else:
            direct: list[_Capture] = node.direct  # type: ignore[attr-defined]
            if any(values.get(n.name) in (None, "") for n in direct):
                continue
            text, inner = _expand(node.items, values, template)
            if direct or inner:
                out.append(text)
                wrote = True
    return "".join(out), wrote


def _prepare(items: list[_Node]) -> None:
    """Compile, once, what expansion needs of each node."""
    for node in items:
        if isinstance(node, _Capture):
            node.checker = _Checker(node)  # type: ignore[attr-defined]
        elif isinstance(node, _Optional):
            node.direct = [n for n in node.items if isinstance(n, _Capture)]  # type: ignore[attr-defined]
            _prepare(node.items)


class Template:
    """A compiled URI template: its regex, its variables, and expansion.

    :param template: the URI template.
    :param ranges: extra named ranges (name -> regex) on top of the built-ins.
    :raises InvalidTemplateError: for mismatched brackets or braces, an unknown
        range, or captures that could overlap.
    """

    def __init__(self, template: str, ranges: Mapping[str, str] | None = None) -> None:
        self.template = template
        self._items, self.open_ended = _parse(template, ranges or {})
        _analyse(self._items, self.open_ended, template)
        self.pattern = "^" + _emit(self._items) + ("" if self.open_ended else r"\Z")
        self.regex = re.compile(self.pattern, re.ASCII)
        #: The names of the captures, in order.
        self.variables = tuple(n.name for n in _walk(self._items) if isinstance(n, _Capture))
        self._names = frozenset(self.variables)
        _prepare(self._items)

    def checker(self, name: str) -> Callable[[str], Any] | None:
        """The fullmatch of the capture ``name`` (None if the template has no such capture)."""
        for node in _walk(self._items):
            if isinstance(node, _Capture) and node.name == name:
                return node.checker.fullmatch  # type: ignore[attr-defined, no-any-return]
        return None

    def match(self, path: str) -> dict[str, Any] | None:
        """Return the captures of a path the template matches (at its start, when open-ended)."""
        m = self.regex.match(path)
        return None if m is None else m.groupdict()

    def expand(self, **values: Any) -> str:
        """Build the path for these values (None leaves an optional part out).

        :raises RouteBuildError: a value is missing, unknown or cannot match.
        """
        if not self._names.issuperset(values):
            unknown = set(values) - self._names
            raise RouteBuildError(f"{self.template!r} has no {', '.join(sorted(unknown))}")
        return _expand(self._items, values, self.template)[0]

    def __repr__(self) -> str:
        return f"Template({self.template!r})"


def template2regex(template: str, ranges: Mapping[str, str] | None = None) -> str:
    """Compile a URI template to a regular expression string.

    :raises InvalidTemplateError: for mismatched brackets or braces, an unknown
        range, or captures that could overlap.

    >>> template2regex('/{view:alnum}/[{id:unreserved}]')
    '^/(?P<view>[a-zA-Z0-9]++)/(?:(?P<id>[a-zA-Z\\\\d\\\\-\\\\.\\\\_\\\\~]++))?\\\\Z'
    """
    return Template(template, ranges).pattern

"""Dispatch WSGI requests by URI template and request method.

A :class:`Dispatcher` holds an ordered list of rules. Each rule is a URI
template (or a regular expression) plus the application(s) that handle it;
the first rule whose path matches and whose methods include the request's
method wins::

    >>> from robaccia.wsgidispatcher import Dispatcher
    >>> def hello(environ, start_response):
    ...     args = environ['wsgiorg.routing_args'][1]
    ...     start_response('200 OK', [('Content-Type', 'text/plain')])
    ...     return [('Hello %s' % args['name']).encode()]
    >>> d = Dispatcher()
    >>> d.add('/hello/{name:alpha}', GET=hello)
    >>> from robaccia.testing import call
    >>> call(d, 'GET', '/hello/world')
    ('200 OK', [('Content-Type', 'text/plain')], b'Hello world')
    >>> call(d, 'POST', '/hello/world')[0]
    '405 Method Not Allowed'

Template grammar
----------------
``{name}``
    a named capture of one path segment (``[^/]+``).
``{name:range}``
    a named capture using a range: ``word``, ``alpha``, ``digits``, ``alnum``,
    ``segment``, ``unreserved``, ``any``, or one given to the dispatcher as
    ``Dispatcher(ranges={'name': regex})``.
``[...]``
    an optional part; optional parts nest.
a trailing ``|``
    the template need only match the start of the path.

Any other text is literal. A template with none of these is an exact string
match. Patterns are compiled with :data:`re.ASCII`, so ``\\d`` and ``\\w``
never match non-ASCII digits or letters.

Why matching stays linear
-------------------------
A backtracking regex engine can take quadratic or worse time when two
variable-length captures may both claim the same characters (``{a:any}-{b:any}``
on ``/-----...``). Each template is analysed when it is added: a capture whose
characters can never be confused with what follows it is made possessive (it
never gives back what it took), and a template in which a capture could
overlap a later capture is refused with :class:`InvalidTemplateError`. Custom
ranges are opaque regexes: they are never made possessive, and one may not be
followed by another capture it could overlap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from robaccia.errors import MethodNotAllowed, NotFound, RobacciaError

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "DEFAULT_RANGES",
    "Dispatcher",
    "DuplicateArgumentError",
    "InvalidArgumentError",
    "InvalidTemplateError",
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


class DuplicateArgumentError(RobacciaError, TypeError):
    """An application was given both positionally and by method name."""


class InvalidArgumentError(RobacciaError, TypeError):
    """More than one positional application was given."""


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


def template2regex(template: str, ranges: Mapping[str, str] | None = None) -> str:
    """Compile a URI template to a regular expression string.

    :param template: the URI template.
    :param ranges: extra named ranges (name -> regex) on top of the built-ins.
    :raises InvalidTemplateError: for mismatched brackets or braces, an unknown
        range, or captures that could overlap.

    >>> template2regex('/{view:alnum}/[{id:unreserved}]')
    '^/(?P<view>[a-zA-Z0-9]++)/(?:(?P<id>[a-zA-Z\\\\d\\\\-\\\\.\\\\_\\\\~]++))?\\\\Z'
    """
    items, open_ended = _parse(template, ranges or {})
    _analyse(items, open_ended, template)
    return "^" + _emit(items) + ("" if open_ended else r"\Z")


# --- dispatching ------------------------------------------------------------

_Matcher = Callable[[str], "tuple[list[Any], dict[str, Any], str] | None"]


@dataclass(frozen=True)
class _Rule:
    match: _Matcher
    apps: Mapping[str, WSGIApplication]


def _regex_matcher(regex: re.Pattern[str], positional: bool) -> _Matcher:
    def match(path: str) -> tuple[list[Any], dict[str, Any], str] | None:
        m = regex.match(path)
        if m is None:
            return None
        if positional:
            named = m.groupdict()
            named_idx = set(regex.groupindex.values())
            pos = [g for i, g in enumerate(m.groups(), 1) if i not in named_idx]
            return pos, named, m.group(0)
        return [], m.groupdict(), m.group(0)

    return match


def _string_matcher(text: str) -> _Matcher:
    def match(path: str) -> tuple[list[Any], dict[str, Any], str] | None:
        return ([], {}, path) if path == text else None

    return match


def drop_body(result: Iterable[bytes]) -> list[bytes]:
    """Answer a HEAD request from a GET response: run it, close it, send no body."""
    try:
        # A generator app calls start_response only when first iterated
        # (PEP 3333): take one chunk so it runs, then drop the body.
        next(iter(result), None)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return []


def _head_app(app: WSGIApplication) -> WSGIApplication:
    """Serve HEAD with a GET application, dropping the body."""

    def head(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return drop_body(app(environ, start_response))

    return head


class Dispatcher:
    """A WSGI application that routes by URI template and method.

    :param handle404: the application called when no rule matches.
    :param ranges: extra named ranges for this dispatcher's templates.
    """

    def __init__(
        self,
        handle404: WSGIApplication | None = None,
        ranges: Mapping[str, str] | None = None,
    ) -> None:
        self.handle404: WSGIApplication = handle404 or NotFound()
        self.ranges: dict[str, str] = dict(ranges or {})
        self._rules: list[_Rule] = []

    def add(self, template: str, *args: WSGIApplication, **methods: WSGIApplication) -> None:
        """Add a rule for a URI template.

        ``add(t, app)`` and ``add(t, _ANY_=app)`` handle every method;
        ``add(t, GET=a, POST=b)`` handles only the named methods.
        """
        apps = self._apps(args, methods)
        if "{" in template or "[" in template or template.endswith("|"):
            regex = re.compile(template2regex(template, self.ranges), re.ASCII)
            matcher = _regex_matcher(regex, positional=False)
        else:
            matcher = _string_matcher(template)
        self._rules.append(_Rule(matcher, apps))

    def addregex(self, regex: str, *args: WSGIApplication, **methods: WSGIApplication) -> None:
        """Add a rule for a regular expression, matched at the start of the path.

        Unnamed groups become positional routing arguments, named groups
        named ones.
        """
        apps = self._apps(args, methods)
        self._rules.append(_Rule(_regex_matcher(re.compile(regex), positional=True), apps))

    @staticmethod
    def _apps(
        args: tuple[WSGIApplication, ...], methods: dict[str, WSGIApplication]
    ) -> dict[str, WSGIApplication]:
        if len(args) > 1:
            raise InvalidArgumentError("Give at most one application positionally")
        if args and methods:
            raise DuplicateArgumentError(
                "Give the application either positionally or by method, not both"
            )
        apps = {"_ANY_": args[0]} if args else dict(methods)
        if not apps:
            raise InvalidArgumentError("No application given")
        if "GET" in apps and "HEAD" not in apps and "_ANY_" not in apps:
            apps["HEAD"] = _head_app(apps["GET"])
        return apps

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        allowed: list[str] = []
        for rule in self._rules:
            found = rule.match(path)
            if found is None:
                continue
            app = rule.apps.get(method) or rule.apps.get("_ANY_")
            if app is None:
                allowed.extend(m for m in rule.apps if m not in allowed)
                continue
            positional, named, matched = found
            old = environ.get("wsgiorg.routing_args")
            if old is None:
                environ["wsgiorg.routing_args"] = (positional, named)
            else:
                merged = dict(old[1])
                merged.update(named)
                environ["wsgiorg.routing_args"] = (list(old[0]) + positional, merged)
            if matched:
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + matched
                environ["PATH_INFO"] = path[len(matched) :]
            return app(environ, start_response)
        if allowed:
            return MethodNotAllowed(allowed)(environ, start_response)
        return self.handle404(environ, start_response)

"""RESTful collections: a WSGI app that calls a handler named after the request.

A :class:`Collection` reads ``id`` and ``noun`` from the routing arguments
(``wsgiorg.routing_args``, else ``selector.vars``) and calls the handler whose
name the request implies:

==========================  ============================
request                     handler
==========================  ============================
``GET    /people/``          ``list``
``POST   /people/``          ``create``
``GET    /people/1``         ``retrieve``
``PUT    /people/1``         ``update``
``DELETE /people/1``         ``delete``
``GET    /people/;new_form`` ``get_new_form``
``GET    /people/1;edit_form`` ``get_edit_form``
``POST   /people/1;comment`` ``post_comment``
==========================  ============================

With a noun the handler is ``<method>_<noun>`` whether or not there is an
id. These names are the collection protocol, fixed here. Handlers take
``(environ, start_response)``; what they need to know about the request is on
its :class:`~robaccia.request.Request` (``Request.of(environ)``: ``id``,
``noun``, ``handler``), never on ``self``, so one instance serves many
threads::

    >>> from robaccia.wsgicollection import Collection
    >>> from robaccia.wsgidispatcher import Dispatcher
    >>> from robaccia.request import Request
    >>> from robaccia.testing import call
    >>> class People(Collection):
    ...     def retrieve(self, environ, start_response):
    ...         start_response('200 OK', [('Content-Type', 'text/plain')])
    ...         return [b'person ' + Request.of(environ).id.encode()]
    >>> d = Dispatcher()
    >>> d.add('/people/[{id:unreserved}][;{noun:unreserved}]', People())
    >>> call(d, 'GET', '/people/7')[2]
    b'person 7'
    >>> status, headers, body = call(d, 'DELETE', '/people/7')
    >>> status, dict(headers)['Allow']
    ('405 Method Not Allowed', 'GET, HEAD, OPTIONS')

A resource with no handler for the method is 405 with ``Allow`` (the 2007
code answered 404); a name with no handler at all is 404. HEAD is served by
the GET handler without a body; OPTIONS answers with ``Allow``.

A class is served the handlers it defines, and those its own base classes
define; robaccia's default collections define a default for each protocol
name, which a subclass serves only if it names the handler itself (even as a
stub that returns None): delete the method, and the URI is no longer served.
Used directly, without a subclass, a default collection serves all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from robaccia.errors import HTTPException, MethodNotAllowed, NotFound
from robaccia.request import Request
from robaccia.util import drop_body

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

__all__ = ["COLLECTION_HANDLERS", "MEMBER_HANDLERS", "Collection", "routing_vars"]

#: Handlers for the collection URI (no id, no noun), by method.
COLLECTION_HANDLERS = {"GET": "list", "POST": "create"}
#: Handlers for a member URI (an id, no noun), by method.
MEMBER_HANDLERS = {"GET": "retrieve", "PUT": "update", "DELETE": "delete"}
#: Methods that may prefix a noun handler (``get_edit_form``).
NOUN_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_NONE: dict[str, str] = {}
#: The handler table of each collection class (see Collection._handlers).
_TABLES: dict[type, dict[Any, Any]] = {}
_NO_VARS = b"Environment variables for wsgicollection.Collection not provided via WSGI."


def routing_vars(environ: WSGIEnvironment) -> dict[str, Any] | None:
    """Return the named routing arguments, or None when there are none."""
    args = environ.get("wsgiorg.routing_args")
    if args is not None:
        return args[1]  # type: ignore[no-any-return]
    return environ.get("selector.vars")


def _served(cls: type) -> set[str]:
    """The public methods of ``cls`` that URIs reach (see the module docstring)."""
    direct = bool(cls.__dict__.get("_robaccia_library"))
    served = set()
    for name in dir(cls):
        if name.startswith("_") or not callable(getattr(cls, name, None)):
            continue
        owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
        if owner is not None and owner.__dict__.get("_robaccia_library") and not direct:
            continue  # a library default the subclass did not ask for
        served.add(name)
    return served


class Collection:
    """A WSGI application dispatching to handler methods by method, id and noun."""

    def _handlers(self) -> dict[Any, dict[str, str]]:
        """Return the handler table: for the collection, a member and each noun.

        Built once per class from its public methods (``_`` names and
        attributes that are not callable are never reachable from a URL).
        """
        cls = type(self)
        table = _TABLES.get(cls)
        if table is None:
            public = self._serve(_served(cls))
            nouns: dict[str, dict[str, str]] = {}
            ordered = sorted(public)
            for method in NOUN_METHODS:
                prefix = method.lower() + "_"
                for name in ordered:
                    if name.startswith(prefix) and len(name) > len(prefix):
                        nouns.setdefault(name[len(prefix):], {})[method] = name
            table = {
                False: {m: n for m, n in COLLECTION_HANDLERS.items() if n in public},
                True: {m: n for m, n in MEMBER_HANDLERS.items() if n in public},
                "nouns": nouns,
            }
            # PERF: computed once per class (kept by class, never on the instance,
            # and never a base class's: it describes the class, not a request).
            _TABLES[cls] = table
        return table

    def _serve(self, names: set[str]) -> set[str]:
        """Choose, among the public methods, the handlers to serve (all, here)."""
        return names

    def serves(self, name: str) -> bool:
        """Tell whether a handler name is served by this collection."""
        table: Any = self._handlers()
        return (name in table[False].values() or name in table[True].values()
                or any(name in by_method.values() for by_method in table["nouns"].values()))

    def _candidates(self, id: str | None, noun: str | None) -> dict[str, str]:
        """Map each method this resource handles to its handler name."""
        table = self._handlers()
        if noun:
            return table["nouns"].get(noun, {})  # type: ignore[return-value]
        return table[bool(id)]

    def resolve(self, environ: WSGIEnvironment) -> str | None:
        """Choose the handler name for a request, or None for OPTIONS.

        Sets the request's ``handler``.

        :raises NotFound: when nothing handles this id and noun.
        :raises MethodNotAllowed: when other methods do.
        """
        # PERF: this runs on every request: the table and the arguments are
        # read inline, without the helpers above.
        table: Any = _TABLES.get(type(self)) or self._handlers()
        args = environ.get("wsgiorg.routing_args")
        url_vars = args[1] if args is not None else (environ.get("selector.vars") or {})
        noun = url_vars.get("noun")
        handlers: dict[str, str]
        if noun:
            handlers = table["nouns"].get(noun, _NONE)
        else:
            handlers = table[True] if url_vars.get("id") else table[False]
        if not handlers:
            raise NotFound()
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "HEAD":
            method = "GET"
        name = handlers.get(method)
        request = environ.get("robaccia.request") or Request(environ)
        if name is None:
            if method == "OPTIONS":
                request.handler = None
                return None
            raise MethodNotAllowed(_allow(handlers))
        request.handler = name
        return name

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if "wsgiorg.routing_args" not in environ and "selector.vars" not in environ:
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(_NO_VARS)))],
            )
            return [_NO_VARS]
        result: Iterable[bytes]
        try:
            result = self.respond(environ, start_response)
        except HTTPException as exc:
            result = exc(environ, start_response)
        if environ.get("REQUEST_METHOD") == "HEAD":
            return drop_body(result)
        return result

    def respond(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """Resolve the handler, call it and finish its result."""
        name = self.resolve(environ)
        if name is None:
            request = Request.of(environ)
            allow = _allow(self._candidates(request.id, request.noun))
            start_response("200 OK", [("Allow", ", ".join(allow)), ("Content-Length", "0")])
            return []
        result = getattr(self, name)(environ, start_response)
        if type(self).finish is Collection.finish:
            return result  # PERF: nothing to finish for a plain collection
        return self.finish(environ, start_response, name, result)

    def finish(
        self, environ: WSGIEnvironment, start_response: StartResponse, name: str, result: Any
    ) -> Any:
        """Turn a handler's result into the response; the base returns it as it is."""
        return result


def _allow(handlers: dict[str, str]) -> list[str]:
    methods = list(handlers)
    if "GET" in methods:
        methods.insert(methods.index("GET") + 1, "HEAD")
    methods.append("OPTIONS")
    return methods

"""The contestants other than robaccia: raw WSGI (the limit) and five frameworks.

Each framework gets one small app per benchmark app id, written the way its
documentation shows (its own router, request and response objects) and
configured as for production: no debug mode (Flask's DEBUG off, Django's
DEBUG=False, Bottle and Pyramid as they come). None renders through its own
template machinery: the work behind the routes, pages included, is the same for
all of them (:class:`Logic`, on one jinja2 environment with auto_reload off).

App ids: ``plumbing`` and ``convention`` (a fixed body), ``json_member``,
``jinja2`` (member page, list page, create); raw WSGI also serves ``genshi``,
``deep_sqlite`` and ``deep_pg``, whose scenarios compare robaccia with the
baselines only.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from common import (
    DEEP_TABLE,
    FIXED_BODY,
    HTML_TYPE,
    JSON_TYPE,
    TEXT_TYPE,
    Context,
    RawStore,
    SAStore,
    Templates,
    after_param,
    list_context,
    member_context,
    member_location,
    page,
    to_json,
    validate_employee,
)

WSGIApp = Callable[..., Any]
#: The apps with a fixed body: app id -> the first segment of their paths.
FIXED = {"plumbing": "employees", "convention": "hello"}


class Logic:
    """The work behind every route, identical for every contestant."""

    def __init__(self, ctx: Context, kind: str = "sa") -> None:
        self.ctx = ctx
        self.kind = kind  # "sa" for the peers, "raw" for raw WSGI
        self.templates = Templates(ctx)
        self._stores: dict[str, Any] = {}

    def store(self, db: str) -> Any:
        store = self._stores.get(db)
        if store is None:
            if self.kind == "sa":
                store = SAStore(self.ctx.url(db), "employees" if db == "main" else DEEP_TABLE)
            else:
                store = RawStore(db, self.ctx.main_db if db == "main" else self.ctx.deep_db)
            self._stores[db] = store
        return store

    def member(self, app_id: str, pk: int) -> bytes | None:
        """The member page of an app: JSON, Jinja2 or Genshi (None: no such row)."""
        row = self.store("main").member(pk)
        if row is None:
            return None
        if app_id == "json_member":
            return to_json(row)
        if app_id == "jinja2":
            context = member_context(row, self.ctx.tokens["jinja2"], "benchjinja")
            return self.templates.get("jinja2", "employees/retrieve.html").render(context).encode()
        context = member_context(row, self.ctx.tokens["genshi"], "benchgenshi")
        template = self.templates.get("genshi", "employees/retrieve.html")
        return template.generate(**context).render("html", encoding="utf-8")  # type: ignore[no-any-return]

    def list_html(self, engine: str = "jinja2") -> bytes:
        context = list_context(self.store("main").page(None), self.ctx.tokens[engine],
                               "benchjinja" if engine == "jinja2" else "benchgenshi")
        template = self.templates.get(engine, "employees/list.html")
        if engine == "jinja2":
            return template.render(context).encode()  # type: ignore[no-any-return]
        return template.generate(**context).render("html", encoding="utf-8")  # type: ignore[no-any-return]

    def create(self, form: Any) -> tuple[str | None, dict[str, str]]:
        clean, errors = validate_employee(form)
        if errors:
            return None, errors
        return member_location(self.store("main").create(clean)), {}

    def deep(self, db: str, after: tuple[int, int] | None) -> bytes:
        found = page(self.store(db).page(after[0] if after else None), f"/{DEEP_TABLE}/", after)
        return to_json({"data": found["data"], "next": found["next"], "prev": found["prev"]})


def content_type(app_id: str) -> str:
    return JSON_TYPE if app_id == "json_member" else HTML_TYPE


# --- raw WSGI -----------------------------------------------------------------------------


def _respond(start_response: Any, status: str, ctype: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def build_raw(app_id: str, ctx: Context, kind: str = "raw") -> WSGIApp:
    """raw WSGI, routing by hand; kind "raw" reads with the DB-API driver, "sa" with SQLAlchemy."""
    logic = Logic(ctx, kind)

    def not_found(start_response: Any) -> list[bytes]:
        return _respond(start_response, "404 Not Found", TEXT_TYPE, b"Not Found")

    if app_id in FIXED:
        prefix = f"/{FIXED[app_id]}/"
        cut = len(prefix)

        def fixed(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            path = environ["PATH_INFO"]
            if environ["REQUEST_METHOD"] == "GET" and path.startswith(prefix) \
                    and path[cut:].isdigit():
                start_response("200 OK", [("Content-Type", TEXT_TYPE), ("Content-Length", "13")])
                return [FIXED_BODY]
            return not_found(start_response)
        return fixed

    if app_id in ("json_member", "jinja2", "genshi"):
        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            path = environ["PATH_INFO"]
            method = environ["REQUEST_METHOD"]
            if not path.startswith("/employees/"):
                return not_found(start_response)
            rest = path[11:]
            if not rest and method == "GET" and app_id != "json_member":
                return _respond(start_response, "200 OK", HTML_TYPE, logic.list_html(app_id))
            if not rest and method == "POST" and app_id == "jinja2":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                form = dict(parse_qsl(environ["wsgi.input"].read(length).decode("ascii"),
                                      keep_blank_values=True))
                location, errors = logic.create(form)
                if location is None:
                    return _respond(start_response, "422 Unprocessable Content", JSON_TYPE,
                                    to_json(errors))
                start_response("303 See Other", [("Location", location), ("Content-Length", "0")])
                return []
            if method != "GET" or not (rest.isdigit() and rest.isascii() and len(rest) < 19):
                return not_found(start_response)
            body = logic.member(app_id, int(rest))
            if body is None:
                return not_found(start_response)
            return _respond(start_response, "200 OK", content_type(app_id), body)
        return app

    if app_id in ("deep_sqlite", "deep_pg"):
        def deep(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            if environ["REQUEST_METHOD"] != "GET" or environ["PATH_INFO"] != f"/{DEEP_TABLE}/":
                return not_found(start_response)
            try:
                after = after_param(dict(parse_qsl(environ.get("QUERY_STRING", ""))).get("after"))
            except ValueError:
                return _respond(start_response, "400 Bad Request", TEXT_TYPE, b"Bad Request")
            return _respond(start_response, "200 OK", JSON_TYPE, logic.deep(app_id, after))
        return deep

    raise KeyError(app_id)


# --- the frameworks -------------------------------------------------------------------------


def build_falcon(app_id: str, ctx: Context) -> WSGIApp:
    import falcon

    logic = Logic(ctx)
    app = falcon.App()

    if app_id in FIXED:
        class Fixed:
            def on_get(self, req: Any, resp: Any, id: int) -> None:
                resp.content_type = TEXT_TYPE
                resp.data = FIXED_BODY
        app.add_route(f"/{FIXED[app_id]}/{{id:int}}", Fixed())
        return app

    class Member:
        def on_get(self, req: Any, resp: Any, id: int) -> None:
            body = logic.member(app_id, id)
            if body is None:
                raise falcon.HTTPNotFound()
            resp.content_type = content_type(app_id)
            resp.data = body

    class Employees:
        def on_get(self, req: Any, resp: Any) -> None:
            resp.content_type = HTML_TYPE
            resp.data = logic.list_html()

        def on_post(self, req: Any, resp: Any) -> None:
            location, errors = logic.create(req.get_media())
            if location is None:
                raise falcon.HTTPUnprocessableEntity(description=str(errors))
            resp.status = falcon.HTTP_303
            resp.location = location
            resp.data = b""

    app.add_route("/employees/{id:int}", Member())
    if app_id == "jinja2":
        app.add_route("/employees/", Employees())
    return app


def build_bottle(app_id: str, ctx: Context) -> WSGIApp:
    import bottle

    logic = Logic(ctx)
    app = bottle.Bottle(autojson=False)
    request, response = bottle.request, bottle.response

    if app_id in FIXED:
        @app.get(f"/{FIXED[app_id]}/<id:int>")
        def fixed(id: int) -> bytes:
            response.content_type = TEXT_TYPE
            return FIXED_BODY
        return app

    @app.get("/employees/<id:int>")
    def member(id: int) -> bytes:
        body = logic.member(app_id, id)
        if body is None:
            raise bottle.HTTPError(404)
        response.content_type = content_type(app_id)
        return body

    if app_id == "jinja2":
        @app.get("/employees/")
        def employees() -> bytes:
            response.content_type = HTML_TYPE
            return logic.list_html()

        @app.post("/employees/")
        def create() -> bytes:
            location, errors = logic.create(request.forms.decode())
            if location is None:
                bottle.abort(422, str(errors))
            response.status = 303
            response.set_header("Location", location)
            return b""
    return app


def build_pyramid(app_id: str, ctx: Context) -> WSGIApp:
    from pyramid.config import Configurator
    from pyramid.httpexceptions import HTTPNotFound, HTTPUnprocessableEntity
    from pyramid.response import Response

    logic = Logic(ctx)
    config = Configurator()

    if app_id in FIXED:
        def fixed(request: Any) -> Any:
            return Response(body=FIXED_BODY, content_type="text/plain", charset="utf-8")
        config.add_route("member", f"/{FIXED[app_id]}/{{id:\\d+}}")
        config.add_view(fixed, route_name="member", request_method="GET")
        return config.make_wsgi_app()

    def member(request: Any) -> Any:
        body = logic.member(app_id, int(request.matchdict["id"]))
        if body is None:
            raise HTTPNotFound()
        if app_id == "json_member":
            return Response(body=body, content_type=JSON_TYPE, charset=None)
        return Response(body=body, content_type="text/html", charset="utf-8")

    config.add_route("member", r"/employees/{id:\d+}")
    config.add_view(member, route_name="member", request_method="GET")
    if app_id == "jinja2":
        def employees(request: Any) -> Any:
            return Response(body=logic.list_html(), content_type="text/html", charset="utf-8")

        def create(request: Any) -> Any:
            location, errors = logic.create(request.POST)
            if location is None:
                raise HTTPUnprocessableEntity(str(errors))
            return Response(status=303, location=location)

        config.add_route("employees", "/employees/")
        config.add_view(employees, route_name="employees", request_method="GET")
        config.add_view(create, route_name="employees", request_method="POST")
    return config.make_wsgi_app()


def build_flask(app_id: str, ctx: Context) -> WSGIApp:
    import flask

    logic = Logic(ctx)
    app = flask.Flask(f"bench_{app_id}")
    app.config["DEBUG"] = False  # production, whatever FLASK_DEBUG says
    request, Response = flask.request, flask.Response

    if app_id in FIXED:
        @app.get(f"/{FIXED[app_id]}/<int:id>")
        def fixed(id: int) -> Any:
            return Response(FIXED_BODY, content_type=TEXT_TYPE)
        return app

    @app.get("/employees/<int:id>")
    def member(id: int) -> Any:
        body = logic.member(app_id, id)
        if body is None:
            flask.abort(404)
        return Response(body, content_type=content_type(app_id))

    if app_id == "jinja2":
        @app.get("/employees/")
        def employees() -> Any:
            return Response(logic.list_html(), content_type=HTML_TYPE)

        @app.post("/employees/")
        def create() -> Any:
            location, errors = logic.create(request.form)
            if location is None:
                flask.abort(422, str(errors))
            return Response(b"", status=303, headers={"Location": location})
    return app


def build_django(app_id: str, ctx: Context) -> WSGIApp:
    """Django with no middleware and no apps; one URLconf per app id."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(DEBUG=False, SECRET_KEY="benchmark-only-not-a-secret",
                           ALLOWED_HOSTS=["*"], ROOT_URLCONF="bench_django_urls_root",
                           MIDDLEWARE=[], INSTALLED_APPS=[], DATABASES={}, USE_TZ=True)
        root = sys.modules["bench_django_urls_root"] = types.ModuleType("bench_django_urls_root")
        root.urlpatterns = []  # type: ignore[attr-defined]
        django.setup(set_prefix=False)
    from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
    from django.http import Http404, HttpResponse, HttpResponseNotAllowed
    from django.urls import path

    logic = Logic(ctx)
    patterns: list[Any] = []

    if app_id in FIXED:
        def fixed(request: Any, pk: int) -> Any:
            return HttpResponse(FIXED_BODY, content_type=TEXT_TYPE)
        patterns.append(path(f"{FIXED[app_id]}/<int:pk>", fixed))
    else:
        def member(request: Any, pk: int) -> Any:
            if request.method != "GET":
                return HttpResponseNotAllowed(["GET"])
            body = logic.member(app_id, pk)
            if body is None:
                raise Http404()
            return HttpResponse(body, content_type=content_type(app_id))

        def employees(request: Any) -> Any:
            if request.method == "GET":
                return HttpResponse(logic.list_html(), content_type=HTML_TYPE)
            if request.method == "POST":
                location, errors = logic.create(request.POST)
                if location is None:
                    return HttpResponse(str(errors), status=422)
                return HttpResponse(b"", status=303, headers={"Location": location})
            return HttpResponseNotAllowed(["GET", "POST"])

        patterns.append(path("employees/<int:pk>", member))
        if app_id == "jinja2":
            patterns.append(path("employees/", employees))

    name = f"bench_django_urls_{app_id}"
    module = sys.modules[name] = types.ModuleType(name)
    module.urlpatterns = patterns  # type: ignore[attr-defined]

    # Django's documented hook for a per-request URLconf is request.urlconf (usually
    # set by a middleware); a request class that carries it gives each app its own
    # routes without any middleware.
    class Request(WSGIRequest):
        urlconf = name

    class Handler(WSGIHandler):
        request_class = Request

    return Handler()


BUILDERS: dict[str, Callable[[str, Context], WSGIApp]] = {
    "raw": build_raw,
    "sa": lambda app_id, ctx: build_raw(app_id, ctx, "sa"),
    "falcon": build_falcon,
    "bottle": build_bottle,
    "pyramid": build_pyramid,
    "flask": build_flask,
    "django": build_django,
}

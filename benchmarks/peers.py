"""The contestants other than robaccia: raw WSGI (the limit) and five frameworks.

Each framework gets one small app per benchmark app id, written the way its
documentation shows (its own router, request and response objects); the work
behind the routes is the same for all of them (:class:`Logic`).

App ids: ``plumbing``, ``json_member``, ``jinja2`` (member page, list page,
create), ``genshi`` (raw only), ``deep_sqlite`` and ``deep_pg``.
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
    Stores,
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
DEEP_DB = {"deep_sqlite": "deep_sqlite", "deep_pg": "deep_pg"}
FIXED = {"plumbing": "employees", "convention": "hello"}  # app id -> the path's first segment


class Logic:
    """The work behind every route, identical for every peer."""

    def __init__(self, ctx: Context, kind: str = "sa") -> None:
        self.ctx = ctx
        self.stores = Stores(ctx)
        self.kind = kind  # "sa" for the peers, "raw" for raw WSGI
        self.templates = Templates(ctx)

    def store(self, db: str) -> Any:
        return self.stores.get(self.kind, db)

    def token(self, engine: str) -> str:
        # The CSRF token of the cookie every HTML request carries: robaccia's pages may show it.
        return self.ctx.tokens.get(engine, "")

    def member_json(self, pk: int) -> bytes | None:
        row = self.store("main").member(pk)
        return None if row is None else to_json(row)

    def member_html(self, pk: int) -> bytes | None:
        row = self.store("main").member(pk)
        if row is None:
            return None
        return self.templates.jinja("employees/retrieve.html").render(
            member_context(row, self.token("jinja2"), "benchjinja")).encode()

    def list_html(self) -> bytes:
        rows = self.store("main").page(None)
        return self.templates.jinja("employees/list.html").render(
            list_context(rows, self.token("jinja2"), "benchjinja")).encode()

    def genshi_member(self, pk: int) -> bytes | None:
        row = self.store("main").member(pk)
        if row is None:
            return None
        tmpl = self.templates.genshi("employees/retrieve.html")
        context = member_context(row, self.token("genshi"), "benchgenshi")
        return tmpl.generate(**context).render("html", encoding="utf-8")

    def genshi_list(self) -> bytes:
        rows = self.store("main").page(None)
        tmpl = self.templates.genshi("employees/list.html")
        context = list_context(rows, self.token("genshi"), "benchgenshi")
        return tmpl.generate(**context).render("html", encoding="utf-8")

    def create(self, form: Any) -> tuple[str | None, dict[str, str]]:
        clean, errors = validate_employee(form)
        if errors:
            return None, errors
        return member_location(self.store("main").create(clean)), {}

    def deep(self, db: str, after: tuple[int, int] | None) -> bytes:
        found = page(self.store(db).page(after[0] if after else None), f"/{DEEP_TABLE}/", after)
        return to_json({"data": found["data"], "next": found["next"], "prev": found["prev"]})


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() and text.isascii() and len(text) < 19 else None


# --- raw WSGI -------------------------------------------------------------------------

_NOT_FOUND = b"Not Found"


def _respond(start_response: Any, status: str, ctype: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _raw_404(start_response: Any) -> list[bytes]:
    return _respond(start_response, "404 Not Found", TEXT_TYPE, _NOT_FOUND)


def build_raw(app_id: str, ctx: Context, kind: str = "raw") -> WSGIApp:
    """raw WSGI, routing by hand; kind "raw" reads with the DB-API driver, "sa" with SQLAlchemy."""
    logic = Logic(ctx, kind)

    if app_id in FIXED:
        prefix = FIXED[app_id]
        cut = len(prefix) + 2

        def plumbing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            path = environ["PATH_INFO"]
            if environ["REQUEST_METHOD"] == "GET" and path.startswith(f"/{prefix}/") \
                    and path[cut:].isdigit():
                start_response("200 OK", [("Content-Type", TEXT_TYPE), ("Content-Length", "13")])
                return [FIXED_BODY]
            return _raw_404(start_response)
        return plumbing

    if app_id in ("json_member", "jinja2", "genshi"):
        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            path = environ["PATH_INFO"]
            method = environ["REQUEST_METHOD"]
            if not path.startswith("/employees/"):
                return _raw_404(start_response)
            rest = path[11:]
            if not rest:
                if method == "GET" and app_id == "jinja2":
                    return _respond(start_response, "200 OK", HTML_TYPE, logic.list_html())
                if method == "GET" and app_id == "genshi":
                    return _respond(start_response, "200 OK", HTML_TYPE, logic.genshi_list())
                if method == "POST" and app_id == "jinja2":
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                    body = environ["wsgi.input"].read(length).decode("ascii")
                    form = dict(parse_qsl(body, keep_blank_values=True))
                    location, errors = logic.create(form)
                    if location is None:
                        return _respond(start_response, "422 Unprocessable Content", JSON_TYPE,
                                        to_json(errors))
                    start_response("303 See Other", [("Location", location),
                                                     ("Content-Length", "0")])
                    return []
                return _raw_404(start_response)
            pk = _int(rest)
            if pk is None or method != "GET":
                return _raw_404(start_response)
            if app_id == "json_member":
                body = logic.member_json(pk)
                ctype = JSON_TYPE
            elif app_id == "jinja2":
                body = logic.member_html(pk)
                ctype = HTML_TYPE
            else:
                body = logic.genshi_member(pk)
                ctype = HTML_TYPE
            if body is None:
                return _raw_404(start_response)
            return _respond(start_response, "200 OK", ctype, body)
        return app

    if app_id in DEEP_DB:
        db = DEEP_DB[app_id]

        def deep(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            if environ["REQUEST_METHOD"] != "GET" or environ["PATH_INFO"] != f"/{DEEP_TABLE}/":
                return _raw_404(start_response)
            query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
            try:
                after = after_param(query.get("after"))
            except ValueError:
                return _respond(start_response, "400 Bad Request", TEXT_TYPE, b"Bad Request")
            return _respond(start_response, "200 OK", JSON_TYPE, logic.deep(db, after))
        return deep

    raise KeyError(app_id)


# --- Falcon ---------------------------------------------------------------------------


def build_falcon(app_id: str, ctx: Context) -> WSGIApp:
    import falcon

    logic = Logic(ctx)
    app = falcon.App()

    if app_id in FIXED:
        class Plumbing:
            def on_get(self, req: Any, resp: Any, id: int) -> None:
                resp.content_type = TEXT_TYPE
                resp.data = FIXED_BODY
        app.add_route(f"/{FIXED[app_id]}/{{id:int}}", Plumbing())
        return app

    if app_id in ("json_member", "jinja2"):
        class Member:
            def on_get(self, req: Any, resp: Any, id: int) -> None:
                body = logic.member_json(id) if app_id == "json_member" else logic.member_html(id)
                if body is None:
                    raise falcon.HTTPNotFound()
                resp.content_type = JSON_TYPE if app_id == "json_member" else HTML_TYPE
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

    if app_id in DEEP_DB:
        db = DEEP_DB[app_id]

        class Deep:
            def on_get(self, req: Any, resp: Any) -> None:
                try:
                    after = after_param(req.get_param("after"))
                except ValueError:
                    raise falcon.HTTPBadRequest() from None
                resp.content_type = JSON_TYPE
                resp.data = logic.deep(db, after)
        app.add_route(f"/{DEEP_TABLE}/", Deep())
        return app

    raise KeyError(app_id)


# --- Bottle ---------------------------------------------------------------------------


def build_bottle(app_id: str, ctx: Context) -> WSGIApp:
    import bottle

    logic = Logic(ctx)
    app = bottle.Bottle(autojson=False)
    request, response = bottle.request, bottle.response

    if app_id in FIXED:
        @app.get(f"/{FIXED[app_id]}/<id:int>")
        def plumbing(id: int) -> bytes:
            response.content_type = TEXT_TYPE
            return FIXED_BODY
        return app

    if app_id in ("json_member", "jinja2"):
        @app.get("/employees/<id:int>")
        def member(id: int) -> bytes:
            body = logic.member_json(id) if app_id == "json_member" else logic.member_html(id)
            if body is None:
                raise bottle.HTTPError(404)
            response.content_type = JSON_TYPE if app_id == "json_member" else HTML_TYPE
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

    if app_id in DEEP_DB:
        db = DEEP_DB[app_id]

        @app.get(f"/{DEEP_TABLE}/")
        def deep() -> bytes:
            try:
                after = after_param(request.query.get("after"))
            except ValueError:
                bottle.abort(400)
            response.content_type = JSON_TYPE
            return logic.deep(db, after)
        return app

    raise KeyError(app_id)


# --- Pyramid --------------------------------------------------------------------------


def build_pyramid(app_id: str, ctx: Context) -> WSGIApp:
    from pyramid.config import Configurator
    from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound, HTTPUnprocessableEntity
    from pyramid.response import Response

    logic = Logic(ctx)
    config = Configurator()

    if app_id in FIXED:
        def plumbing(request: Any) -> Any:
            return Response(body=FIXED_BODY, content_type="text/plain", charset="utf-8")
        config.add_route("member", f"/{FIXED[app_id]}/{{id:\\d+}}")
        config.add_view(plumbing, route_name="member", request_method="GET")
        return config.make_wsgi_app()

    if app_id in ("json_member", "jinja2"):
        def member(request: Any) -> Any:
            pk = int(request.matchdict["id"])
            if app_id == "json_member":
                body = logic.member_json(pk)
                kind: dict[str, Any] = {"content_type": JSON_TYPE, "charset": None}
            else:
                body = logic.member_html(pk)
                kind = {"content_type": "text/html", "charset": "utf-8"}
            if body is None:
                raise HTTPNotFound()
            return Response(body=body, **kind)

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

    if app_id in DEEP_DB:
        db = DEEP_DB[app_id]

        def deep(request: Any) -> Any:
            try:
                after = after_param(request.GET.get("after"))
            except ValueError:
                raise HTTPBadRequest() from None
            return Response(body=logic.deep(db, after), content_type=JSON_TYPE, charset=None)
        config.add_route("deep", f"/{DEEP_TABLE}/")
        config.add_view(deep, route_name="deep", request_method="GET")
        return config.make_wsgi_app()

    raise KeyError(app_id)


# --- Flask ----------------------------------------------------------------------------


def build_flask(app_id: str, ctx: Context) -> WSGIApp:
    import flask

    logic = Logic(ctx)
    app = flask.Flask(f"bench_{app_id}")
    request, Response = flask.request, flask.Response

    if app_id in FIXED:
        @app.get(f"/{FIXED[app_id]}/<int:id>")
        def plumbing(id: int) -> Any:
            return Response(FIXED_BODY, content_type=TEXT_TYPE)
        return app

    if app_id in ("json_member", "jinja2"):
        @app.get("/employees/<int:id>")
        def member(id: int) -> Any:
            body = logic.member_json(id) if app_id == "json_member" else logic.member_html(id)
            if body is None:
                flask.abort(404)
            return Response(body, content_type=JSON_TYPE if app_id == "json_member" else HTML_TYPE)

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

    if app_id in DEEP_DB:
        db = DEEP_DB[app_id]

        @app.get(f"/{DEEP_TABLE}/")
        def deep() -> Any:
            try:
                after = after_param(request.args.get("after"))
            except ValueError:
                flask.abort(400)
            return Response(logic.deep(db, after), content_type=JSON_TYPE)
        return app

    raise KeyError(app_id)


# --- Django (no middleware) -----------------------------------------------------------


def _django_setup() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="benchmark-only-not-a-secret",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF="bench_django_urls_root",
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            DATABASES={},
            USE_TZ=True,
        )
        root = types.ModuleType("bench_django_urls_root")
        root.urlpatterns = []  # type: ignore[attr-defined]
        sys.modules["bench_django_urls_root"] = root
        django.setup(set_prefix=False)


def build_django(app_id: str, ctx: Context) -> WSGIApp:
    _django_setup()
    from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
    from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed
    from django.urls import path

    logic = Logic(ctx)
    patterns: list[Any] = []

    if app_id in FIXED:
        def plumbing(request: Any, pk: int) -> Any:
            return HttpResponse(FIXED_BODY, content_type=TEXT_TYPE)
        patterns.append(path(f"{FIXED[app_id]}/<int:pk>", plumbing))

    elif app_id in ("json_member", "jinja2"):
        def member(request: Any, pk: int) -> Any:
            if request.method != "GET":
                return HttpResponseNotAllowed(["GET"])
            body = logic.member_json(pk) if app_id == "json_member" else logic.member_html(pk)
            if body is None:
                raise Http404()
            return HttpResponse(body, content_type=JSON_TYPE if app_id == "json_member"
                                else HTML_TYPE)
        patterns.append(path("employees/<int:pk>", member))

        if app_id == "jinja2":
            def employees(request: Any) -> Any:
                if request.method == "GET":
                    return HttpResponse(logic.list_html(), content_type=HTML_TYPE)
                if request.method == "POST":
                    location, errors = logic.create(request.POST)
                    if location is None:
                        return HttpResponse(str(errors), status=422)
                    return HttpResponse(b"", status=303, headers={"Location": location})
                return HttpResponseNotAllowed(["GET", "POST"])
            patterns.append(path("employees/", employees))

    elif app_id in DEEP_DB:
        db = DEEP_DB[app_id]

        def deep(request: Any) -> Any:
            if request.method != "GET":
                return HttpResponseNotAllowed(["GET"])
            try:
                after = after_param(request.GET.get("after"))
            except ValueError:
                return HttpResponseBadRequest()
            return HttpResponse(logic.deep(db, after), content_type=JSON_TYPE)
        patterns.append(path(f"{DEEP_TABLE}/", deep))

    else:
        raise KeyError(app_id)

    name = f"bench_django_urls_{app_id}"
    module = types.ModuleType(name)
    module.urlpatterns = patterns  # type: ignore[attr-defined]
    sys.modules[name] = module

    # Django's documented hook for a per-request URLconf is request.urlconf
    # (usually set by a middleware); a request class that carries it gives each
    # benchmark app its own routes without any middleware.
    class Request(WSGIRequest):
        urlconf = name

    class Handler(WSGIHandler):
        request_class = Request

    return Handler()


def build_sa(app_id: str, ctx: Context) -> WSGIApp:
    return build_raw(app_id, ctx, "sa")


BUILDERS: dict[str, Callable[[str, Context], WSGIApp]] = {
    "raw": build_raw,
    "sa": build_sa,
    "falcon": build_falcon,
    "bottle": build_bottle,
    "pyramid": build_pyramid,
    "flask": build_flask,
    "django": build_django,
}


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {}
    for dist in ("falcon", "bottle", "pyramid", "flask", "django"):
        try:
            out[dist] = version(dist)
        except Exception:
            out[dist] = "missing"
    return out

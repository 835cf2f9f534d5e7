"""OpenAPI 3.1 documents for JSON collections, generated from their tables.

A project serves its document at ``/openapi.json``; it describes every JSON
view over a model (``addmodelview NAME --type json``): column types,
nullability and lengths, the paging and sort parameters, ETag headers and
problem+json errors::

    >>> from sqlalchemy import Column, Integer, MetaData, String, Table
    >>> from robaccia import DefaultModelCollection, render
    >>> t = Table('people', MetaData(), Column('id', Integer, primary_key=True),
    ...           Column('name', String(20), nullable=False))
    >>> class People(DefaultModelCollection):
    ...     def list(self, environ, start_response): pass
    >>> doc = document('demo', {'people': People('json', render, None, t)})
    >>> sorted(doc['paths']), doc['components']['schemas']['people']['properties']['name']['maxLength']
    (['/people/'], 20)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from robaccia.defaultmodelcollection import DefaultModelCollection
from robaccia.fields import Field

__all__ = ["document"]

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _PROBLEM}}}


def _schema(field: Field) -> dict[str, Any]:
    """A field's JSON Schema: the one the server checks JSON bodies with (robaccia.fields)."""
    schema = dict(field.schema)
    if field.nullable and not field.primary_key:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    if not field.writable:
        schema["readOnly"] = True
    return schema


def _collection(name: str, app: DefaultModelCollection,
                max_page_size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    row_ref = {"$ref": f"#/components/schemas/{name}"}
    props = {f.name: _schema(f) for f in app.fields}
    writable = {f.name: props[f.name] for f in app.fields if f.writable}
    required = [f.name for f in app.fields if (f.needed or f.primary_key) and f.writable]
    schemas = {
        name: {"type": "object", "properties": props, "required": [f.name for f in app.fields]},
        f"{name}_create": {"type": "object", "properties": writable, "required": required,
                           "additionalProperties": False},
        f"{name}_update": {"type": "object", "properties": {k: v for k, v in writable.items()
                                                             if k != app.primary},
                           "additionalProperties": False},
    }
    etag = {"ETag": {"schema": {"type": "string"}, "description": "The row's version."}}
    sortable = [c for f in app.fields for c in (f.name, "-" + f.name)]
    json_body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}_create"}}}
    unsafe = {"403": _problem(
        "Refused as a possible cross-site request: one from another site's page (Origin, "
        "Sec-Fetch-Site), or one that sends cookies with a body that is not application/json "
        "and without the form token (X-CSRF-Token). A request without cookies, or with a JSON "
        "body, needs no token."),
              "413": _problem("Body too large."), "415": _problem("Not JSON."),
              "400": _problem("Malformed body.")}
    handled = {h: app.serves(h) for h in ("list", "create", "retrieve", "update", "delete")}
    collection: dict[str, Any] = {}
    if handled["list"]:
        collection["get"] = {
            "summary": f"List {name}",
            "parameters": [
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": app.max_page_size or max_page_size}},
                {"name": "sort", "in": "query", "schema": {"type": "string", "enum": sortable}},
                {"name": "after", "in": "query", "schema": {"type": "string"},
                 "description": "The cursor of a page's last row (from `next`). Opaque: one this "
                                "list did not give out is 404 (no such page)."},
                {"name": "before", "in": "query", "schema": {"type": "string"},
                 "description": "The cursor of a page's first row (from `prev`); `after` wins "
                                "when both are sent."},
            ],
            "responses": {
                "200": {"description": "A page of rows.", "headers": {
                    "Link": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {
                        "type": "object", "required": ["data", "next", "prev"],
                        "properties": {"data": {"type": "array", "items": row_ref},
                                       "next": {"type": ["string", "null"]},
                                       "prev": {"type": ["string", "null"]}}}}}},
                "400": _problem("A bad limit or sort."),
                "404": _problem("No page starts at that cursor."),
            },
        }
    if handled["create"]:
        collection["post"] = {
            "summary": f"Create a row in {name}",
            "requestBody": {"required": True, "content": json_body},
            "responses": {
                "201": {"description": "Created.", "headers": {
                    "Location": {"schema": {"type": "string"}}, **etag},
                    "content": {"application/json": {"schema": row_ref}}},
                "409": _problem("A unique value is taken."),
                "422": _problem("Invalid fields (see `errors`)."), **unsafe,
            },
        }
    id_param = {"name": "id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._~-]+$"}}
    # NOTE: If-Match is described, not listed as a parameter: any value but the
    # row's current ETag is 412, which no schema of the header can say.
    conditional = (" Send `If-Match` with the row's `ETag` to make it conditional: "
                   "412 when the row has changed since.")
    member: dict[str, Any] = {"parameters": [id_param]}
    if handled["retrieve"]:
        member["get"] = {"summary": f"One row of {name}", "responses": {
            "200": {"description": "The row.", "headers": etag,
                    "content": {"application/json": {"schema": row_ref}}},
            "304": {"description": "Not modified (If-None-Match)."},
            "404": _problem("No such row.")}}
    if handled["update"]:
        member["put"] = {
            "summary": f"Update a row of {name} (the fields given)",
            "description": "The fields given are written; the others are left alone." + conditional,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{name}_update"}}}},
            "responses": {"200": {"description": "Updated.", "headers": etag,
                                  "content": {"application/json": {"schema": row_ref}}},
                          "404": _problem("No such row."), "409": _problem("A unique value is taken."),
                          "412": _problem("The row changed (If-Match)."),
                          "422": _problem("Invalid fields."), **unsafe}}
    if handled["delete"]:
        member["delete"] = {"summary": f"Delete a row of {name}", "description": conditional.strip(),
                            "responses": {"204": {"description": "Deleted."},
                                          "404": _problem("No such row."),
                                          "412": _problem("The row changed (If-Match)."), **unsafe}}
    paths = {}
    if len(collection):
        paths[f"/{name}/"] = collection
    if len(member) > 1:
        paths[f"/{name}/{{id}}"] = member
    return paths, schemas


def document(title: str, views: Mapping[str, Any], version: str = "1",
             max_page_size: int = 500) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document for the JSON model views among ``views``.

    ``max_page_size`` is the project's, for collections that set none.
    """
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "Problem": {"type": "object", "required": ["title", "status"], "properties": {
            "type": {"type": "string"}, "title": {"type": "string"},
            "status": {"type": "integer"}, "detail": {"type": "string"},
            "errors": {"type": "object", "additionalProperties": {"type": "string"}}}},
    }
    for name, app in sorted(views.items()):
        if isinstance(app, DefaultModelCollection) and app.ext == "json" and app.table is not None:
            more_paths, more_schemas = _collection(name, app, max_page_size)
            paths.update(more_paths)
            schemas.update(more_schemas)
    return {"openapi": "3.1.0", "info": {"title": title, "version": version},
            "paths": paths, "components": {"schemas": schemas}}

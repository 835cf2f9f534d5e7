"""The scaffolder: create projects and add views, without overwriting anything.

Files named ``*-tpl`` in ``robaccia/templates`` are rendered with
:class:`string.Template` (``$name``); every other file is copied verbatim, so
the Genshi ``${...}`` and Jinja ``{{ ... }}`` in a project's own templates
are never touched::

    >>> import tempfile, os
    >>> from robaccia import scaffold
    >>> parent = tempfile.mkdtemp()
    >>> root = scaffold.create_project('shop', parent)
    >>> created = scaffold.add_model_view(root, 'items', 'html', ['name:string:required', 'price:decimal'])
    >>> [str(p.relative_to(root)) for p in created][:2]
    ['views/items.py', 'models/items.py']

Errors are :class:`ScaffoldError`, one sentence each, for the CLI to print.
"""

from __future__ import annotations

import importlib.util
import keyword
import os
import re
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robaccia.errors import RobacciaError
from robaccia.renderers import ENGINES

__all__ = [
    "FIELD_TYPES",
    "FieldSpec",
    "ScaffoldError",
    "add_model_view",
    "add_view",
    "create_project",
    "find_project",
    "parse_field",
]

TEMPLATES = Path(__file__).resolve().parent / "templates"
REPRESENTATIONS = ("html", "json")
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_VIEW = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*\Z")
#: The longest view name (the URL's first segment, and a module name).
MAX_VIEW_NAME = 60
#: Names the project's own routes take: a view so named could never be reached.
RESERVED_VIEWS = {"static"}


class ScaffoldError(RobacciaError):
    """A scaffolding request that cannot be carried out."""


@dataclass(frozen=True)
class _Type:
    sqlalchemy: str  # the type expression written into the model
    imports: tuple[str, ...]  # names from sqlalchemy
    robaccia: tuple[str, ...] = ()  # names from robaccia.types
    info: str = ""  # the column's info type, for fields SQL has no type for


#: Field types for ``addmodelview NAME field:type[:option...]``. Each stores
#: the same value on SQLite, PostgreSQL and MariaDB (floats are double
#: precision, datetimes keep their microseconds).
FIELD_TYPES: dict[str, _Type] = {
    "string": _Type("String({length})", ("String",)),
    "text": _Type("Text", ("Text",)),
    "integer": _Type("Integer", ("Integer",)),
    "float": _Type("Double", ("Double",)),
    "decimal": _Type("Numeric({precision}, {scale})", ("Numeric",)),
    "boolean": _Type("Boolean", ("Boolean",)),
    "date": _Type("Date", ("Date",)),
    "datetime": _Type("DateTime", (), ("DateTime",)),
    "email": _Type("String(254)", ("String",), info="email"),
    "url": _Type("String(2048)", ("String",), info="url"),
}
OPTIONS = ("required", "unique")
_DECIMAL = re.compile(r"([1-9][0-9]?)(?:,([0-9][0-9]?))?\Z")


@dataclass(frozen=True)
class FieldSpec:
    """One ``name:type[:option...]`` from the command line."""

    name: str
    type: str
    required: bool = False
    unique: bool = False
    length: int = 250
    precision: int = 12
    scale: int = 2

    def column(self) -> str:
        spec = FIELD_TYPES[self.type]
        kind = spec.sqlalchemy.format(length=self.length, precision=self.precision, scale=self.scale)
        args = [repr(self.name), kind]
        if self.required:
            args.append("nullable=False")
        if self.unique:
            args.append("unique=True")
        if spec.info:
            args.append(f"info={{'type': {spec.info!r}}}")
        return f"    Column({', '.join(args)}),\n"


def parse_field(spec: str) -> FieldSpec:
    """Parse ``name:type[:option...]``; options are required, unique and a string length."""
    parts = spec.split(":")
    name = parts[0]
    if len(parts) < 2:
        raise ScaffoldError(f"Field {spec!r} needs a type: write it as name:type, e.g. {name}:string.")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ScaffoldError(f"Field name {name!r} is a Python keyword, so code could not name the "
                            f"column (table.c.{name}): try {name + '_'!r} or a longer name such as "
                            f"{'employee_' + name!r}.")
    if not _NAME.match(name) or name == "id":
        raise ScaffoldError(
            f"Field name {name!r} is not valid: use lowercase letters, digits and _ "
            "(starting with a letter), and not 'id', which every table has."
        )
    kind = parts[1]
    if kind not in FIELD_TYPES:
        raise ScaffoldError(f"Field type {kind!r} is unknown; use one of: {', '.join(FIELD_TYPES)}.")
    options: dict[str, Any] = {}
    for option in parts[2:]:
        decimal = _DECIMAL.match(option) if kind == "decimal" else None
        if option in OPTIONS:
            options[option] = True
        elif option.isdigit() and kind == "string" and 0 < int(option) <= 65535:
            options["length"] = int(option)
        elif decimal:
            # NOTE: decimal:10 is 10 digits, 2 of them after the point; decimal:10,4 says both
            precision = int(decimal.group(1))
            scale = int(decimal.group(2)) if decimal.group(2) is not None else min(2, precision - 1)
            if scale >= precision or precision > 38:
                raise ScaffoldError(f"Decimal {option!r} of field {name!r} is not possible: give at most "
                                    "38 digits, with fewer after the point than in all (such as 10,2).")
            options.update(precision=precision, scale=scale)
        else:
            extra = {"string": " or a length such as 100.",
                     "decimal": " or digits and decimal places such as 10,2."}.get(kind, ".")
            raise ScaffoldError(f"Option {option!r} of field {name!r} is unknown; use required, unique"
                                + extra)
    return FieldSpec(name, kind, **options)


def _render(template: Path, values: dict[str, Any]) -> str:
    return string.Template(template.read_text()).substitute(values)


def _write_all(files: dict[Path, str | bytes]) -> list[Path]:
    """Write every file, or none if any exists already."""
    for path in files:
        if path.exists():
            raise ScaffoldError(f"Will not overwrite already existing file: '{path}' already exists.")
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as out:
            out.write(content.encode("utf-8") if isinstance(content, str) else content)
    return list(files)


def _tree(source: Path, target: Path, values: dict[str, Any]) -> dict[Path, str | bytes]:
    files: dict[Path, str | bytes] = {}
    for path in sorted(source.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(source)
        name = rel.name
        if name == "gitignore-tpl":
            files[target / rel.parent / ".gitignore"] = path.read_text()
        elif name.endswith("-tpl"):
            files[target / rel.parent / name[: -len("-tpl")]] = _render(path, values)
        else:
            files[target / rel] = path.read_bytes()  # copied verbatim (binary files too)
    return files


def create_project(name: str, parent: str | os.PathLike[str] = ".", engine: str = "genshi") -> Path:
    """Create the project folder ``parent/name`` and return its path."""
    if not name:
        raise ScaffoldError("Missing required parameter <name>.")
    if not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise ScaffoldError(f"'{name}' is not a valid project name: use a Python identifier, e.g. my_project.")
    root = Path(parent) / name
    from robaccia.project import ProjectError, find_root

    try:
        enclosing = find_root(parent)
    except ProjectError:
        enclosing = None
    if enclosing is not None:
        raise ScaffoldError(f"This folder is inside the project {enclosing.name} ({enclosing}): create "
                            "the new project outside it (cd out of it first).")
    # NOTE: before the shadowing check, which would otherwise find the existing
    # folder itself as a namespace package when the current folder is on sys.path.
    if root.exists():
        raise ScaffoldError(f"Directory '{name}' already exists.")
    if importlib.util.find_spec(name) is not None:
        raise ScaffoldError(f"'{name}' would shadow the importable module '{name}'; choose another name.")
    if engine not in ENGINES:
        raise ScaffoldError(f"Template engine {engine!r} is unknown; use one of: {', '.join(ENGINES)}.")
    values = {"name": name, "engine": engine}
    files = _tree(TEMPLATES / "project", root, values)
    files.update(_tree(TEMPLATES / engine / "project", root / "templates", values))
    _write_all(files)
    (root / "logs").mkdir(exist_ok=True)
    write_secret_key(root)
    return root


def new_secret_key() -> str:
    """A fresh secret key: 64 URL-safe random characters."""
    return secrets.token_urlsafe(48)


def write_secret_key(root: Path) -> Path:
    """Write ``root/.secret_key`` (readable by its owner only), unless it exists.

    :raises ScaffoldError: the file exists (a new key would end every session and form).
    """
    path = root / ".secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ScaffoldError(f"{path} exists; a new key would void every signed cookie and form. "
                            "Delete it first if that is what you want.") from None
    with os.fdopen(fd, "w") as out:
        out.write(new_secret_key() + "\n")
    return path


def find_project(start: str | os.PathLike[str] = ".") -> Path:
    """Return the project folder at or above ``start`` (as git finds its repository).

    :raises ScaffoldError: when no folder above is a project.
    """
    from robaccia.project import ProjectError, find_root

    try:
        root = find_root(start)
    except ProjectError as exc:
        raise ScaffoldError(str(exc)) from None
    if not (root / "templates").is_dir():
        raise ScaffoldError(f"{root} has no templates/ folder: it is not a complete robaccia project.")
    return root


def project_engine(root: Path) -> str:
    """Return the template engine a project's settings.py names."""
    settings = root / "settings.py"
    if settings.is_file():
        match = re.search(r"""^TEMPLATE_ENGINE\s*=\s*["'](\w+)["']""", settings.read_text(), re.M)
        if match and match.group(1) in ENGINES:
            return match.group(1)
    return "genshi"


def _check_view(root: Path, name: str, kind: str) -> None:
    if not name:
        raise ScaffoldError("Missing required parameter <name>.")
    if keyword.iskeyword(name):
        raise ScaffoldError(f"'{name}' is a Python keyword, so it cannot name a module: "
                            f"try '{name}s' or 'my_{name}'.")
    if not _VIEW.match(name):
        raise ScaffoldError(
            f"'{name}' is not a valid view name: use lowercase letters, digits and single "
            "underscores, starting with a letter (it is the first segment of the URL: "
            "office_locations serves /office_locations/)."
        )
    if len(name) > MAX_VIEW_NAME:
        raise ScaffoldError(f"'{name}' is too long for a view name: use at most {MAX_VIEW_NAME} "
                            "characters (it is the first segment of the URL).")
    if name in RESERVED_VIEWS:
        raise ScaffoldError(f"'{name}' cannot be a view: /{name}/ is where the project serves "
                            "its static files. Choose another name.")
    if kind not in REPRESENTATIONS:
        raise ScaffoldError(f"{kind} is not a valid representation type (use html or json).")


def _class_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def add_view(root: str | os.PathLike[str], name: str, kind: str = "html") -> list[Path]:
    """Add a view-only collection; return the files created."""
    root = find_project(root)
    _check_view(root, name, kind)
    engine = project_engine(root)
    values = {"name": name, "type": kind, "class_name": _class_name(name),
              "content_type": "text/html" if kind == "html" else "application/json"}
    files: dict[Path, str | bytes] = {
        root / "views" / f"{name}.py": _render(TEMPLATES / "addview" / "view.py-tpl", values)}
    if kind == "html":
        for page in ("list.html", "retrieve.html"):
            files[root / "templates" / name / page] = (TEMPLATES / engine / "addview" / page).read_text()
    files[root / "tests" / f"test_{name}.py"] = _render(TEMPLATES / "addview" / "test.py-tpl", values)
    return _write_all(files)


_PAGE_TEMPLATES = {
    "genshi": '''<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:py="http://genshi.edgewall.org/"
      xmlns:xi="http://www.w3.org/2001/XInclude" lang="en">
  <xi:include href="../layout.html" />
  <head><title>$title</title></head>
  <body>
    <h1>$title</h1>
    <!--! Each key of the dict $handler returns is a variable here: $${total} shows
          "total". Genshi templates are XML: close every tag (<br/>), write & as &amp;. -->
    <p>This page is templates/$view/$handler.html.</p>
  </body>
</html>
''',
    "jinja2": '''{% extends "layout.html" %}
{% block title %}$title{% endblock %}
{% block content %}
<h1>$title</h1>
{#- Each key of the dict $handler returns is a variable here: {{ total }} shows "total". #}
<p>This page is templates/$view/$handler.html.</p>
{% endblock %}
''',
}


def add_template(root: str | os.PathLike[str], view: str, handler: str) -> list[Path]:
    """Add a starter template for a handler: ``templates/<view>/<handler>.html``."""
    root = find_project(root)
    if not _VIEW.match(view) or not re.fullmatch(r"[a-z][a-z0-9_]*", handler or ""):
        raise ScaffoldError("Give a view name and a handler name, such as: "
                            "robaccia-admin addtemplate employees get_report")
    title = handler.removeprefix("get_").replace("_", " ").capitalize()
    text = string.Template(_PAGE_TEMPLATES[project_engine(root)]).substitute(
        title=title, view=view, handler=handler)
    return _write_all({root / "templates" / view / f"{handler}.html": text})


_FORM_HANDLERS = '''
    # GET /{name}/;new_form
    def get_new_form(self, environ, start_response):
        pass

    # GET /{name}/{{id}};edit_form
    def get_edit_form(self, environ, start_response):
        pass

    # GET /{name}/{{id}};delete_form
    def get_delete_form(self, environ, start_response):
        pass
'''
MODEL_PAGES = ("list.html", "retrieve.html", "get_new_form.html", "get_edit_form.html",
               "get_delete_form.html")


def add_model_view(
    root: str | os.PathLike[str], name: str, kind: str = "html", fields: list[str] | None = None,
    table: str | None = None,
) -> list[Path]:
    """Add a collection with a model (or over ``table``, the model another view made); return the files."""
    root = find_project(root)
    _check_view(root, name, kind)
    if table is not None:
        if fields:
            raise ScaffoldError(f"A view over the existing table {table!r} takes its columns from "
                                f"models/{table}.py: give no fields.")
        if not _NAME.match(table) or not (root / "models" / f"{table}.py").is_file():
            raise ScaffoldError(f"There is no models/{table}.py: name a table that addmodelview made "
                                "(or that you wrote there).")
    specs = [parse_field(f) for f in fields or []] or [FieldSpec("description", "string")]
    seen = set()
    for spec in specs:
        if spec.name in seen:
            raise ScaffoldError(f"Field {spec.name!r} is given twice.")
        seen.add(spec.name)
    imports = {"Column", "Integer", "Table"}
    robaccia_types: set[str] = set()
    for spec in specs:
        imports.update(FIELD_TYPES[spec.type].imports)
        robaccia_types.update(FIELD_TYPES[spec.type].robaccia)
    values = {
        "name": name,
        "model": table or name,
        "type": kind,
        "class_name": _class_name(name),
        "imports": ", ".join(sorted(imports)) + (
            f"\n\nfrom robaccia.types import {', '.join(sorted(robaccia_types))}" if robaccia_types else ""),
        "columns": "".join(spec.column() for spec in specs),
        "form_handlers": _FORM_HANDLERS.format(name=name) if kind == "html" else "",
        "ext_arg": ', ext="json"' if kind == "json" else "",
    }
    engine = project_engine(root)
    files: dict[Path, str | bytes] = {
        root / "views" / f"{name}.py": _render(TEMPLATES / "addmodelview" / "view.py-tpl", values)}
    if table is None:
        files[root / "models" / f"{name}.py"] = _render(TEMPLATES / "addmodelview" / "model.py-tpl", values)
    if kind == "html":
        for page in MODEL_PAGES:
            files[root / "templates" / name / page] = (TEMPLATES / engine / "addmodelview" / page).read_text()
    files[root / "tests" / f"test_{name}.py"] = _render(TEMPLATES / "addmodelview" / "test.py-tpl", values)
    return _write_all(files)

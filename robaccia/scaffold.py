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
    imports: tuple[str, ...]


#: Field types for ``addmodelview NAME field:type[:option...]``.
FIELD_TYPES: dict[str, _Type] = {
    "string": _Type("String({length})", ("String",)),
    "text": _Type("Text", ("Text",)),
    "integer": _Type("Integer", ("Integer",)),
    "float": _Type("Float", ("Float",)),
    "decimal": _Type("Numeric(12, 2)", ("Numeric",)),
    "boolean": _Type("Boolean", ("Boolean",)),
    "date": _Type("Date", ("Date",)),
    "datetime": _Type("DateTime", ("DateTime",)),
}
OPTIONS = ("required", "unique")


@dataclass(frozen=True)
class FieldSpec:
    """One ``name:type[:option...]`` from the command line."""

    name: str
    type: str
    required: bool = False
    unique: bool = False
    length: int = 250

    def column(self) -> str:
        kind = FIELD_TYPES[self.type].sqlalchemy.format(length=self.length)
        args = [repr(self.name), kind]
        if self.required:
            args.append("nullable=False")
        if self.unique:
            args.append("unique=True")
        return f"    Column({', '.join(args)}),\n"


def parse_field(spec: str) -> FieldSpec:
    """Parse ``name:type[:option...]``; options are required, unique and a string length."""
    parts = spec.split(":")
    name = parts[0]
    if len(parts) < 2:
        raise ScaffoldError(f"Field {spec!r} needs a type: write it as name:type, e.g. {name}:string.")
    if not _NAME.match(name) or keyword.iskeyword(name) or name == "id":
        raise ScaffoldError(
            f"Field name {name!r} is not valid: use lowercase letters, digits and _ "
            "(starting with a letter), and not 'id', which every table has."
        )
    kind = parts[1]
    if kind not in FIELD_TYPES:
        raise ScaffoldError(f"Field type {kind!r} is unknown; use one of: {', '.join(FIELD_TYPES)}.")
    options: dict[str, Any] = {}
    for option in parts[2:]:
        if option in OPTIONS:
            options[option] = True
        elif option.isdigit() and kind == "string" and 0 < int(option) <= 65535:
            options["length"] = int(option)
        else:
            raise ScaffoldError(
                f"Option {option!r} of field {name!r} is unknown; use required, unique"
                + (" or a length such as 100." if kind == "string" else ".")
            )
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
    files[root / ".secret_key"] = secrets.token_urlsafe(48) + "\n"
    _write_all(files)
    (root / "logs").mkdir(exist_ok=True)
    os.chmod(root / ".secret_key", 0o600)
    return root


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
    root: str | os.PathLike[str], name: str, kind: str = "html", fields: list[str] | None = None
) -> list[Path]:
    """Add a collection with a model; return the files created."""
    root = find_project(root)
    _check_view(root, name, kind)
    specs = [parse_field(f) for f in fields or []] or [FieldSpec("description", "string")]
    seen = set()
    for spec in specs:
        if spec.name in seen:
            raise ScaffoldError(f"Field {spec.name!r} is given twice.")
        seen.add(spec.name)
    imports = {"Column", "Integer", "Table"}
    for spec in specs:
        imports.update(FIELD_TYPES[spec.type].imports)
    values = {
        "name": name,
        "type": kind,
        "class_name": _class_name(name),
        "imports": ", ".join(sorted(imports)),
        "columns": "".join(spec.column() for spec in specs),
        "form_handlers": _FORM_HANDLERS.format(name=name) if kind == "html" else "",
        "ext_arg": ', ext="json"' if kind == "json" else "",
    }
    engine = project_engine(root)
    files: dict[Path, str | bytes] = {
        root / "views" / f"{name}.py": _render(TEMPLATES / "addmodelview" / "view.py-tpl", values),
        root / "models" / f"{name}.py": _render(TEMPLATES / "addmodelview" / "model.py-tpl", values),
    }
    if kind == "html":
        for page in MODEL_PAGES:
            files[root / "templates" / name / page] = (TEMPLATES / engine / "addmodelview" / page).read_text()
    files[root / "tests" / f"test_{name}.py"] = _render(TEMPLATES / "addmodelview" / "test.py-tpl", values)
    return _write_all(files)

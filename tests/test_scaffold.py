"""The scaffolding story, driven through robaccia-admin as a subprocess.

createproject, addview and addmodelview write exactly the files listed here,
print one ' created <path>' line per file, and write Python that compiles;
the generated project's own tests pass under ``robaccia-admin runtests``,
and a broken one makes it fail. The last test is the original
``tests/test_bin_robaccia.py``.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from support import admin, project_env

from robaccia import scaffold

PROJECT_FILES = [
    ".gitignore",
    ".secret_key",
    "README.md",
    "dbconfig.py",
    "dispatcher.py",
    "migrations/env.py",
    "migrations/script.py.mako",
    "migrations/versions/.keep",
    "models/__init__.py",
    "settings.py",
    "static/favicon.ico",
    "static/robaccia.css",
    "templates/fields.html",
    "templates/index.html",
    "templates/layout.html",
    "tests/__init__.py",
    "views/__init__.py",
]
ADDVIEW_HTML = ["views/fred.py", "templates/fred/list.html", "templates/fred/retrieve.html",
                "tests/test_fred.py"]
ADDVIEW_JSON = ["views/barney.py", "tests/test_barney.py"]
ADDMODELVIEW_HTML = [
    "views/employees.py",
    "models/employees.py",
    "templates/employees/list.html",
    "templates/employees/retrieve.html",
    "templates/employees/get_new_form.html",
    "templates/employees/get_edit_form.html",
    "templates/employees/get_delete_form.html",
    "tests/test_employees.py",
]
ADDMODELVIEW_JSON = ["views/people.py", "models/people.py", "tests/test_people.py"]
# Every field type and option, so the generated tests exercise all of them.
EMPLOYEE_FIELDS = [
    "name:string:100:required:unique",
    "code:string:6:unique",
    "bio:text",
    "office_number:integer:unique",
    "rating:float",
    "salary:decimal:required",
    "remote:boolean",
    "hired:date:unique",
    "last_login:datetime",
]
EMPLOYEE_COLUMNS = [
    "Column('name', String(100), nullable=False, unique=True),",
    "Column('code', String(6), unique=True),",
    "Column('bio', Text),",
    "Column('office_number', Integer, unique=True),",
    "Column('rating', Double),",
    "Column('salary', Numeric(12, 2), nullable=False),",
    "Column('remote', Boolean),",
    "Column('hired', Date, unique=True),",
    "Column('last_login', DateTime),",
]


def tree(root: Path) -> set[str]:
    """The files below root (as relative posix paths), without caches and databases."""
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith("database.db")
    }


@dataclass
class Step:
    result: CompletedProcess[str]
    created: list[str]  # files that appeared, sorted


@dataclass
class Story:
    engine: str
    parent: Path
    root: Path
    steps: dict[str, Step] = field(default_factory=dict)


@pytest.fixture(scope="module", params=["genshi", "jinja2"])
def story(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Story:
    """One project per engine, built command by command, recording each step."""
    engine = str(request.param)
    parent = tmp_path_factory.mktemp(f"story-{engine}")
    root = parent / "myprj"
    story = Story(engine, parent, root)
    env = project_env()
    env.pop("ROBACCIA_DATABASE_URL", None)

    def step(name: str, *args: str, cwd: Path = root) -> None:
        before = tree(root) if root.exists() else set()
        result = admin(*args, cwd=cwd, env=env)
        story.steps[name] = Step(result, sorted(tree(root) - before))

    step("createproject", "createproject", "myprj", "--templates", engine, cwd=parent)
    step("addview", "addview", "fred")
    step("addview_json", "addview", "barney", "--type", "json")
    step("addmodelview", "addmodelview", "employees", *EMPLOYEE_FIELDS)
    step("addmodelview_json", "addmodelview", "people", "--type=json")
    step("createdb", "createdb")
    step("createdb_again", "createdb")
    return story


def lines(result: CompletedProcess[str]) -> list[str]:
    return result.stdout.splitlines()


# --- createproject --------------------------------------------------------------


def test_createproject_writes_exactly_the_skeleton(story: Story) -> None:
    step = story.steps["createproject"]
    assert step.created == PROJECT_FILES
    assert lines(step.result) == [f" created myprj/{f}" for f in PROJECT_FILES] + [
        "Next: cd myprj && robaccia-admin addmodelview NAME field:type ..."
    ]
    assert step.result.stderr == ""
    logs = story.root / "logs"
    assert logs.is_dir() and list(logs.iterdir()) == []


def test_createproject_files_say_what_the_issue_asks(story: Story) -> None:
    root = story.root
    dispatcher = (root / "dispatcher.py").read_text()
    assert "# Custom routes go here, before the default route below." in dispatcher
    assert ('app.add("/{view:word}/[{id:unreserved}][;{noun:unreserved}]", deferred_collection, '
            'name="collection")') in dispatcher
    dbconfig = (root / "dbconfig.py").read_text()
    assert 'os.environ.get("ROBACCIA_DATABASE_URL")' in dbconfig
    assert "database.db" in dbconfig
    settings = (root / "settings.py").read_text()
    assert f'TEMPLATE_ENGINE = "{story.engine}"' in settings
    ignored = (root / ".gitignore").read_text().splitlines()
    assert {".secret_key", "*.db", "__pycache__/"} <= set(ignored)
    assert "myprj" in (root / "README.md").read_text()


def test_the_projects_readme_names_only_commands_that_exist(story: Story) -> None:
    readme = (story.root / "README.md").read_text()
    named = set(re.findall(r"robaccia-admin ([a-z]+)", readme))
    listed = {line.split()[0] for line in admin("commands", cwd=story.root).stdout.splitlines() if line.strip()}
    assert named and named <= listed, named - listed
    assert {"makemigration", "migrate", "serve", "secretkey"} <= named
    folders = {p.name for p in story.root.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    assert [f for f in folders if f"`{f}/" not in readme] == []  # every folder explained


def test_secret_key_is_private_and_random(story: Story, tmp_path: Path) -> None:
    key_file = story.root / ".secret_key"
    key = key_file.read_text().strip()
    assert len(key) >= 48 and len(set(key)) > 10
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    other = scaffold.create_project("other", tmp_path)
    assert (other / ".secret_key").read_text().strip() != key


def test_layout_and_stylesheet_load_nothing_from_elsewhere(story: Story) -> None:
    layout = (story.root / "templates" / "layout.html").read_text()
    assert "static_url('robaccia.css')" in layout and "static_url('favicon.ico')" in layout
    external = re.compile(
        r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""", re.I
    )
    css = story.root / "static" / "robaccia.css"
    for path in [*(story.root / "templates").glob("*.html"), css]:
        assert not external.search(path.read_text()), path


# --- addview ----------------------------------------------------------------------


def test_addview_html_writes_view_templates_and_test(story: Story) -> None:
    step = story.steps["addview"]
    assert step.created == sorted(ADDVIEW_HTML)
    assert lines(step.result) == [f" created {f}" for f in ADDVIEW_HTML]
    view = (story.root / "views" / "fred.py").read_text()
    assert "class Collection(DefaultCollection):" in view
    assert 'app = Collection("html")' in view
    assert "Hello World!" in (story.root / "templates" / "fred" / "list.html").read_text()


def test_addview_json_writes_no_templates(story: Story) -> None:
    step = story.steps["addview_json"]
    assert step.created == sorted(ADDVIEW_JSON)
    assert lines(step.result) == [f" created {f}" for f in ADDVIEW_JSON]
    assert 'app = Collection("json")' in (
        story.root / "views" / "barney.py").read_text()
    assert not (story.root / "templates" / "barney").exists()


# --- addmodelview -------------------------------------------------------------------


def test_addmodelview_html_writes_view_model_pages_and_test(story: Story) -> None:
    step = story.steps["addmodelview"]
    assert step.created == sorted(ADDMODELVIEW_HTML)
    assert lines(step.result) == [f" created {f}" for f in ADDMODELVIEW_HTML] + [
        "Next: robaccia-admin createdb"
    ]
    view = (story.root / "views" / "employees.py").read_text()
    for handler in ("list", "create", "retrieve", "update", "delete", "get_new_form",
                    "get_edit_form", "get_delete_form"):
        assert f"    def {handler}(self, environ, start_response):\n        pass\n" in view
    assert "from models.employees import table" in view
    assert view.rstrip().endswith("app = Collection(table)")


def test_addmodelview_model_has_every_field_type_and_option(story: Story) -> None:
    model = (story.root / "models" / "employees.py").read_text()
    assert ("from sqlalchemy import Boolean, Column, Date, Double, Integer, Numeric, "
            "String, Table, Text") in model
    # double precision and microseconds on every database (MariaDB's defaults drop both)
    assert "from robaccia.types import DateTime" in model
    # the docstring tells the way to change the table after createdb
    assert 'robaccia-admin makemigration "what changed"' in model
    columns = [line.strip() for line in model.splitlines() if line.strip().startswith("Column(")]
    assert columns == ["Column('id', Integer, primary_key=True),", *EMPLOYEE_COLUMNS]


def test_addmodelview_json_without_fields_has_id_and_description(story: Story) -> None:
    step = story.steps["addmodelview_json"]
    assert step.created == sorted(ADDMODELVIEW_JSON)
    assert lines(step.result) == [f" created {f}" for f in ADDMODELVIEW_JSON] + [
        "Next: robaccia-admin createdb"
    ]
    model = (story.root / "models" / "people.py").read_text()
    columns = [line.strip() for line in model.splitlines() if line.strip().startswith("Column(")]
    assert columns == ["Column('id', Integer, primary_key=True),",
                       "Column('description', String(250)),"]
    view = (story.root / "views" / "people.py").read_text()
    assert "def get_new_form" not in view
    assert view.rstrip().endswith('app = Collection(table, ext="json")')


def test_every_generated_python_file_compiles(story: Story) -> None:
    sources = sorted(story.root.rglob("*.py"))
    assert len(sources) == 17
    for path in sources:
        compile(path.read_text(), str(path), "exec")


# --- createdb and runtests -------------------------------------------------------------


def test_createdb_says_what_it_created_and_leaves_existing_tables(story: Story) -> None:
    assert lines(story.steps["createdb"].result) == [" created table employees",
                                                     " created table people"]
    assert lines(story.steps["createdb_again"].result) == [" exists table employees",
                                                           " exists table people"]
    assert (story.root / "database.db").is_file()


@pytest.mark.slow
def test_generated_tests_pass_and_a_broken_one_fails(story: Story) -> None:
    env = project_env()
    passed = admin("runtests", cwd=story.root, env=env, check=False)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert re.search(r"Ran 1[0-9] tests", passed.stderr)
    assert passed.stderr.rstrip().endswith("OK")

    test = story.root / "tests" / "test_fred.py"
    original = test.read_text()
    test.write_text(original.replace("self.assertEqual(response.status_code, 200, response.text)",
                                     "self.assertEqual(response.status_code, 418, response.text)", 1))
    try:
        failed = admin("runtests", cwd=story.root, env=env, check=False)
    finally:
        test.write_text(original)
    assert failed.returncode != 0
    assert "FAILED (failures=1)" in failed.stderr
    assert "test_fred" in failed.stderr


# --- the original tests/test_bin_robaccia.py ----------------------------------------------


def test_bin_robaccia(tmp_path: Path) -> None:
    admin("createproject", "myprj", cwd=tmp_path)
    prj = tmp_path / "myprj"
    for path in ("views", "models", "tests", "templates"):
        assert (prj / path).is_dir(), path
    for path in ("views/__init__.py", "models/__init__.py", "tests/__init__.py", "dispatcher.py"):
        assert (prj / path).is_file(), path

    admin("addview", "fred", "--type=html", cwd=prj)
    for path in ("views/fred.py", "templates/fred/list.html", "templates/fred/retrieve.html"):
        assert (prj / path).is_file(), path

    admin("addmodelview", "barney", "--type=html", cwd=prj)
    assert (prj / "models").is_dir()
    for path in ("views/barney.py", "models/barney.py", "templates/barney/retrieve.html"):
        assert (prj / path).is_file(), path

"""Extension points: change one thing in a collection without losing the rest.

Each test scaffolds a project as a user gets it, edits its view (and, where
it matters, its templates) the way the README shows, loads it in this
process and drives it with robaccia's test client. Template tests run with
both engines; under debug (``run``), Jinja2's undefined variables are errors
as Genshi's are, so a page that renders here renders whole.
"""

from __future__ import annotations

import logging
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support import admin, load, make_project, project_env, read_page

from robaccia.testing import Client


def view_file(root: Path, body: str, name: str = "employees") -> None:
    """Replace views/<name>.py with this source."""
    (root / "views" / f"{name}.py").write_text(textwrap.dedent(body))


ALL_HANDLERS = """
    def list(self, environ, start_response):
        pass

    def create(self, environ, start_response):
        pass

    def retrieve(self, environ, start_response):
        pass

    def update(self, environ, start_response):
        pass

    def delete(self, environ, start_response):
        pass

    def get_new_form(self, environ, start_response):
        pass

    def get_edit_form(self, environ, start_response):
        pass

    def get_delete_form(self, environ, start_response):
        pass
"""


def collection(extra: str, skip: tuple[str, ...] = ()) -> str:
    """A view source: every handler as a stub (except ``skip``), plus ``extra`` methods."""
    stubs = "\n".join(
        block for block in ALL_HANDLERS.strip("\n").split("\n\n")
        if not any(f"def {name}(" in block for name in skip)
        and not any(f"def {name}(" in block for name in re.findall(r"def (\w+)\(", extra))
    )
    return ("from robaccia import DefaultModelCollection, Invalid, Request\n"
            "from models.employees import table\n\n\n"
            "class Collection(DefaultModelCollection):\n"
            + textwrap.indent(textwrap.dedent(stubs), "    ") + "\n"
            + textwrap.indent(textwrap.dedent(extra), "    ") + "\n\n"
            "app = Collection(table)\n")


def add(client: Client, **values: Any) -> str:
    values = {"name": "Ada", "title": "Analyst", "office_number": 101, **values}
    response = client.post("/employees/", json=values)
    assert response.status_code == 303, response.text
    return response.location  # type: ignore[return-value]


@pytest.fixture(params=["genshi", "jinja2"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- super() gives the default ----------------------------------------------------------------


def test_super_retrieve_keeps_every_default(tmp_path: Path, engine: str) -> None:
    root = make_project(tmp_path, engine, debug=True)
    view_file(root, collection("""
        def retrieve(self, environ, start_response):
            context = super().retrieve(environ, start_response)
            context["note"] = "a note for " + context["row"]["name"]
            return context
    """))
    template = root / "templates" / "employees" / "retrieve.html"
    note = ('<p id="note">${note}</p>' if engine == "genshi" else '<p id="note">{{ note }}</p>')
    template.write_text(template.read_text().replace("<h1>", note + "\n<h1>", 1))
    client = Client(load(root))
    location = add(client)
    page = client.get(location)
    assert page.status_code == 200, page.text
    html = read_page(page.body)
    assert html.ids["note"] == "a note for Ada"
    assert "Analyst" in page.text and "Edit" in page.text  # the default variables are all there
    etag = page.header("ETag")
    assert etag and client.get(location, headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/employees/9999").status_code == 404


def test_super_list_and_super_create_extend_the_defaults(tmp_path: Path) -> None:
    root = make_project(tmp_path, "jinja2", debug=True)
    view_file(root, collection("""
        def list(self, environ, start_response):
            context = super().list(environ, start_response)
            context["shown"] = len(context["data"])
            return context

        def create(self, environ, start_response):
            # the default answers at once (a redirect): say more before it does
            Request.of(environ).flash("Welcome aboard.")
            return super().create(environ, start_response)
    """))
    template = root / "templates" / "employees" / "list.html"
    template.write_text(template.read_text().replace(
        '<h1 id="list-title">', '<p id="shown">{{ shown }} shown</p><h1 id="list-title">', 1))
    client = Client(load(root))
    for n in range(3):
        add(client, name=f"E{n}")
    page = client.get("/employees/?limit=2")
    assert read_page(page.body).ids["shown"] == "2 shown"
    assert 'rel="next"' in page.header("Link")  # paging survived the override
    assert "Welcome aboard." in page.text  # the override's flash reached the next page


# --- a dict always renders whole ----------------------------------------------------------------


def test_a_dict_of_its_own_renders_with_the_standard_context(tmp_path: Path, engine: str) -> None:
    root = make_project(tmp_path, engine, debug=True,
                        views={"employees": ["name:string:required", "title:string",
                                             "office_number:integer", "department:string"]})
    view_file(root, collection("""
        def retrieve(self, environ, start_response):
            row = self.rows(environ).get(int(Request.of(environ).id))
            if row is None:
                from robaccia.errors import NotFound
                raise NotFound()
            return {"row": row, "department": row["department"].upper()}
    """))
    client = Client(load(root))
    location = add(client, department="research")
    page = client.get(location)
    assert page.status_code == 200, page.text
    html = read_page(page.body)
    assert "research" in page.text and "Analyst" in page.text
    assert html.attrs  # the page chrome: header, nav, stylesheet
    assert 'href="/static/robaccia.css"' in page.text and 'aria-current="page"' in page.text


# --- the query hook -------------------------------------------------------------------------------


def test_query_narrows_every_statement(tmp_path: Path) -> None:
    root = make_project(tmp_path, "genshi", debug=True)
    view_file(root, collection("""
        def query(self, environ, statement):
            return statement.where(table.c.office_number != 13)
    """))
    project = load(root)
    client = Client(project)
    shown = add(client, name="Shown", office_number=1)
    from sqlalchemy import insert, select

    table = __import__("models.employees", fromlist=["table"]).table
    with project.engine.begin() as conn:
        hidden = conn.execute(insert(table).values(name="Hidden", office_number=13)).inserted_primary_key[0]
    url = f"/employees/{hidden}"
    for path in (url, url + ";edit_form", url + ";delete_form"):
        assert client.get(path).status_code == 404, path
    assert client.put(url, json={"name": "Changed"}).status_code == 404
    assert client.delete(url, headers={"Content-Type": "application/json"}).status_code == 404
    assert client.submit(url, {"name": "Changed", "_etag": '"x"'}, "PUT").status_code == 404
    for sort in ("", "?sort=-name", "?sort=office_number", "?limit=1"):
        listing = client.get("/employees/" + sort).text
        assert "Hidden" not in listing and ("Shown" in listing or sort == "?limit=1")
    with project.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == hidden)).one()
    assert row.name == "Hidden"  # nothing written to a row the hook excludes
    assert client.get(shown).status_code == 200


def test_query_narrows_json_and_the_index_count(tmp_path: Path) -> None:
    root = make_project(tmp_path, "genshi", kind="json", views={"people": ["name:string", "team:integer"]})
    (root / "views" / "people.py").write_text(textwrap.dedent("""
        from robaccia import DefaultModelCollection
        from models.people import table


        class Collection(DefaultModelCollection):
            def list(self, environ, start_response):
                pass

            def create(self, environ, start_response):
                pass

            def retrieve(self, environ, start_response):
                pass

            def query(self, environ, statement):
                return statement.where(table.c.team == 1)


        app = Collection(table, ext="json")
    """))
    client = Client(load(root))
    mine = client.post("/people/", json={"name": "mine", "team": 1}).json()
    other = client.post("/people/", json={"name": "other", "team": 2}).json()
    assert [r["name"] for r in client.get("/people/").json()["data"]] == ["mine"]
    assert client.get(f"/people/{other['id']}").status_code == 404
    assert client.get(f"/people/{mine['id']}").json() == mine
    after = client.get("/people/?limit=1").json()["next"]
    assert after is None  # the hidden row does not even make a next page


# --- the validate hook ---------------------------------------------------------------------------


VALIDATING = """
    def validate(self, environ, values):
        if values.get("name", "").lower() == "root":
            raise Invalid({"name": "That name is reserved.", None: "Check the name."})
        if "title" in values and values["title"]:
            return dict(values, title=values["title"].strip().title())
"""


def test_validate_refuses_with_messages_beside_the_fields(tmp_path: Path, engine: str) -> None:
    root = make_project(tmp_path, engine, debug=True)
    view_file(root, collection(VALIDATING))
    client = Client(load(root))
    response = client.submit("/employees/", {"name": "root", "title": "boss", "office_number": "7"})
    assert response.status_code == 422
    page = read_page(response.body)
    assert page.ids["e-name"] == "That name is reserved."
    assert "Check the name." in response.text
    assert page.inputs["name"]["value"] == "root" and page.inputs["title"]["value"] == "boss"
    assert "root" not in client.get("/employees/").text
    # a validate that returns values writes those
    location = add(client, name="Grace", title="  rear admiral ")
    assert "Rear Admiral" in client.get(location).text


def test_validate_in_json_is_problem_json_on_create_and_update(tmp_path: Path) -> None:
    root = make_project(tmp_path, "jinja2", debug=True, kind="json")
    view_file(root, collection(VALIDATING).replace("app = Collection(table)",
                                                   'app = Collection(table, ext="json")'))
    client = Client(load(root))
    problem = client.post("/employees/", json={"name": "Root"})
    assert problem.status_code == 422 and problem.header("Content-Type") == "application/problem+json"
    assert problem.json()["errors"] == {"name": "That name is reserved."}
    assert problem.json()["detail"] == "Check the name."
    assert client.get("/employees/").json()["data"] == []
    created = client.post("/employees/", json={"name": "Ada", "title": "analyst"})
    assert created.status_code == 201 and created.json()["title"] == "Analyst"
    response = client.put(created.location, json={"name": "root"})
    assert response.status_code == 422 and response.json()["errors"] == {"name": "That name is reserved."}
    assert client.get(created.location).json()["name"] == "Ada"


# --- odd results are named -------------------------------------------------------------------


@pytest.mark.parametrize(("returned", "shown"), [
    ('"hello"', "'hello' (a str)"), ("42", "42 (a int)"), ('b"x"', "b'x' (a bytes)"),
    ('["x"]', "['x'] (a list)"), ('("x",)', "('x',) (a tuple)"),
])
def test_odd_results_are_named_under_run(tmp_path: Path, returned: str, shown: str) -> None:
    root = make_project(tmp_path, "genshi", debug=True)
    view_file(root, collection(f"""
        def retrieve(self, environ, start_response):
            return {returned}
    """))
    client = Client(load(root))
    location = add(client)
    response = client.get(location)
    assert response.status_code == 500
    assert f"views/employees.py: Collection.retrieve returned {shown}" in response.text.replace("&#x27;", "'")
    assert "A handler may return None (the default behaviour), a dict" in response.text
    assert "templates/employees/retrieve.html" in response.text


def test_odd_results_under_serve_are_a_plain_500_and_a_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_project(tmp_path, "genshi", debug=False)
    view_file(root, collection("""
        def retrieve(self, environ, start_response):
            return "hello"
    """))
    client = Client(load(root))
    location = add(client)
    with caplog.at_level(logging.ERROR, logger="robaccia.middleware"):
        response = client.get(location)
    assert response.status_code == 500
    assert "hello" not in response.text and "Traceback" not in response.text
    assert "Something went wrong on our side" in response.text
    assert any("Collection.retrieve returned 'hello' (a str)" in r.getMessage() for r in caplog.records)


# --- template typos are loud ------------------------------------------------------------------


@pytest.mark.parametrize("debug", [True, False])
def test_an_undefined_template_variable(tmp_path: Path, engine: str, debug: bool) -> None:
    root = make_project(tmp_path, engine, debug=debug)
    template = root / "templates" / "employees" / "retrieve.html"
    typo = "${titel}" if engine == "genshi" else "{{ titel }}"
    lines = template.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "<h1>" in line)
    lines.insert(at, f"<p>{typo}</p>")
    template.write_text("\n".join(lines) + "\n")
    client = Client(load(root))
    location = add(client)
    response = client.get(location)
    if not debug and engine == "jinja2":
        assert response.status_code == 200  # production renders the rest of the page
        return
    assert response.status_code == 500
    if debug:
        assert "titel" in response.text
        assert "retrieve.html" in response.text and f"line {at + 1}" in response.text


# --- the UI follows the handlers ----------------------------------------------------------------


@pytest.mark.parametrize(("removed", "button", "form"), [
    ("delete", "Delete", ";delete_form"), ("update", "Edit", ";edit_form"), ("create", "New", ";new_form"),
])
def test_the_ui_follows_the_handlers(tmp_path: Path, engine: str, removed: str, button: str,
                                     form: str) -> None:
    root = make_project(tmp_path, engine, debug=True)
    view_file(root, collection("", skip=(removed,)))
    project = load(root)
    client = Client(project)
    from sqlalchemy import insert

    table = __import__("models.employees", fromlist=["table"]).table
    with project.engine.begin() as conn:
        conn.execute(insert(table).values(name="Ada"))
    member = client.get("/employees/1").text
    listing = client.get("/employees/").text
    shown = member if removed != "create" else listing
    assert f">{button}</a>" not in shown
    url = "/employees/" + ("1" if removed != "create" else "") + form
    assert client.get(url).status_code == 404
    method = {"delete": "DELETE", "update": "PUT", "create": "POST"}[removed]
    target = "/employees/" if removed == "create" else "/employees/1"
    assert client.request(method, target, json={"name": "x"}).status_code == 405
    for other, other_button in (("delete", "Delete"), ("update", "Edit")):
        if other != removed:
            assert f">{other_button}</a>" in member


# --- protection does not depend on dispatcher.py ------------------------------------------------


ARTICLE_DISPATCHER = """\
from robaccia.wsgidispatcher import Dispatcher
from robaccia import deferred_collection
app = Dispatcher()
app.add('/{view:alnum}/[{id:unreserved}][;{noun:unreserved}]', deferred_collection)
"""


def test_the_articles_dispatcher_serves_protected_pages(tmp_path: Path, engine: str) -> None:
    root = make_project(tmp_path, engine, debug=True)
    (root / "dispatcher.py").write_text(ARTICLE_DISPATCHER)
    project = load(root)
    client = Client(project, csrf=False)
    page = client.get("/employees/;new_form")
    assert page.status_code == 200, page.text
    assert page.header("X-Frame-Options") == "DENY" and page.header("Content-Security-Policy")
    token = read_page(page.body).inputs["_csrf"]["value"]
    assert token
    assert client.post("/employees/", {"name": "Forged"}).status_code == 403
    created = client.post("/employees/", {"name": "Ada", "_csrf": token})
    assert created.status_code == 303
    assert "Employee 1 was created." in client.get(created.location).text
    assert client.get("/").status_code == 200 and client.get("/static/robaccia.css").status_code == 200


# --- the article's constructor, and the shortest ---------------------------------------------------


ARTICLE_VIEW = """\
import robaccia
from robaccia.defaultmodelcollection import DefaultModelCollection
from models.employees import table


class Collection(DefaultModelCollection):
    def list(self, environ, start_response):
        pass

    def retrieve(self, environ, start_response):
        pass

    def create(self, environ, start_response):
        pass


app = Collection('html', robaccia.find_renderer('html'), robaccia.find_parser('html'), table)
"""


@pytest.mark.parametrize("source", [ARTICLE_VIEW, collection("")])
def test_constructors_need_no_wiring(tmp_path: Path, source: str) -> None:
    root = make_project(tmp_path, "genshi", debug=True)
    view_file(root, source)
    client = Client(load(root))
    location = add(client)
    assert client.get(location).status_code == 200
    assert "Ada" in client.get("/employees/").text
    assert client.get("/employees/?limit=9999").status_code == 400  # the project's MAX_PAGE_SIZE


# --- a view that cannot be served says why ------------------------------------------------------


@pytest.mark.parametrize(("source", "says"), [
    ("import nosuchmodule\n", "views/broken.py could not be imported: ModuleNotFoundError"),
    ("x = 1\n", "views/broken.py defines no app"),
    ("app = 1 / 0\n", "views/broken.py could not be imported: ZeroDivisionError"),
])
def test_a_broken_view_says_why(tmp_path: Path, source: str, says: str,
                                caplog: pytest.LogCaptureFixture) -> None:
    root = make_project(tmp_path, "genshi", debug=True)
    (root / "views" / "broken.py").write_text(source)
    response = Client(load(root)).get("/broken/")
    assert response.status_code == 500 and says in response.text
    quiet = make_project(tmp_path / "serve", "genshi", debug=False)
    (quiet / "views" / "broken.py").write_text(source)
    with caplog.at_level(logging.ERROR, logger="robaccia.middleware"):
        response = Client(load(quiet)).get("/broken/")
    assert response.status_code == 500 and "broken" not in response.text
    assert any(says in r.getMessage() or says in (r.exc_text or "") for r in caplog.records)


# --- generated tests survive the user's edits ---------------------------------------------------------


@pytest.mark.slow
def test_generated_tests_survive_model_edits(tmp_path: Path) -> None:
    root = make_project(tmp_path, "genshi", views={
        "departments": ["name:string:required:unique"],
        "employees": ["name:string:required", "title:string", "office_number:integer:unique"],
    })
    model = root / "models" / "employees.py"
    text = model.read_text()
    text = text.replace("from sqlalchemy import", "from sqlalchemy import ForeignKey, Date, Boolean,")
    text = text.replace('    Column(\'title\', String(250)),\n', "")  # removed
    text = text.replace("'office_number'", "'room'")  # renamed
    text = text.replace("    Column('room'",
                        "    Column('department_id', Integer, ForeignKey('departments.id'), nullable=False),\n"
                        "    Column('started', Date, nullable=False),\n"
                        "    Column('remote', Boolean, nullable=False),\n"
                        "    Column('room'")
    model.write_text(text)
    result = admin("runtests", cwd=root, env=project_env(), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Ran \d+ tests", result.stderr) and result.stderr.rstrip().endswith("OK")


# --- pages without a form stay shareable ----------------------------------------------------------


def test_only_pages_with_a_form_start_the_form_cookie_and_turn_private(tmp_path: Path, engine: str) -> None:
    """A new visitor's index, list and member pages carry nothing of theirs: a cache may share them."""
    from robaccia.testing import call

    root = make_project(tmp_path, engine)
    app = load(root)
    member = add(Client(app))
    for path in ("/", "/employees/", member):
        status, headers, _ = call(app, "GET", path)
        names = {name.lower(): value for name, value in headers}
        assert status == "200 OK", path
        assert "set-cookie" not in names and "cache-control" not in names and "vary" not in names, path
    for path in ("/employees/;new_form", member + ";edit_form", member + ";delete_form"):
        status, headers, body = call(app, "GET", path)
        names = {name.lower(): value for name, value in headers}
        assert names["set-cookie"].startswith("robaccia_csrf="), path
        assert (names["cache-control"], names["vary"]) == ("private, no-store", "Cookie"), path
        token = re.search(rb'name="_csrf" value="([0-9a-f]+)"', body)
        assert token, path  # the form shows the token the cookie goes with
    # and the form still works: its token and cookie make a create
    status, headers, body = call(app, "GET", "/employees/;new_form")
    cookie = dict((k.lower(), v) for k, v in headers)["set-cookie"].split(";")[0]
    token = re.search(rb'name="_csrf" value="([0-9a-f]+)"', body).group(1).decode()  # type: ignore[union-attr]
    made = call(app, "POST", "/employees/", {"_csrf": token, "name": "Bo", "title": "", "office_number": ""},
                headers={"Cookie": cookie})
    assert made[0] == "303 See Other", made

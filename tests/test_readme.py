"""The README's examples run as written: each code block, pasted where the README says, does what it says.

A block marked ``<!-- readme-test: NAME -->`` is a whole ``views/*.py``; the
template snippets and the custom route are taken from the README too, so an
edit there that breaks them fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import load, make_project

from robaccia import scaffold
from robaccia.testing import Client

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
FIELDS = ["name:string:required", "title:string", "office_number:integer"]


def marked(name: str) -> str:
    """The python block after ``<!-- readme-test: name -->``."""
    found = re.search(rf"<!-- readme-test: {name} -->\n```python\n(.*?)```", README, re.S)
    assert found, f"README has no block marked {name}"
    return found.group(1)


def block_after(text: str, lang: str = "html") -> str:
    """The first ``lang`` block after ``text`` in the README."""
    start = README.index(text)
    found = re.search(rf"```{lang}\n(.*?)```", README[start:], re.S)
    assert found
    return found.group(1)


def project(tmp_path: Path, engine: str = "genshi", **views: str) -> Client:
    """The README's first project, with ``views`` (file name: source) written into it."""
    root = make_project(tmp_path, engine, views={"employees": FIELDS})
    for name, source in views.items():
        (root / "views" / f"{name}.py").write_text(source)
    return Client(load(root))


def add(client: Client, name: str, title: str, office: int | str = 1) -> str:
    """Add an employee through the generated pages (POST /employees/); return its URL."""
    response = client.submit("/employees/", {"name": name, "title": title, "office_number": office})
    assert response.status_code == 303, response.text
    return response.location


def insert(client: Client, name: str, title: str) -> str:
    """Add an employee to the table itself, for a view that serves no create; return its URL."""
    import importlib

    from sqlalchemy import insert as sql_insert

    table = importlib.import_module("models.employees").table
    with client.app.engine.begin() as conn:
        key = conn.execute(sql_insert(table).values(name=name, title=title)).inserted_primary_key[0]
    return f"/employees/{key}"


def test_the_generated_view_is_the_one_the_readme_shows(tmp_path: Path) -> None:
    shown = re.search(r"```python\n(from robaccia import DefaultModelCollection\n.*?)```",
                      README, re.S)
    assert shown
    root = make_project(tmp_path, views={"employees": FIELDS})
    generated = (root / "views" / "employees.py").read_text()
    for line in ("class Collection(DefaultModelCollection):", "    def list(self, environ, start_response):",
                 "app = Collection(table)"):
        assert line in shown.group(1) and line in generated


def test_super_extends_the_default_and_keeps_its_404_and_304(tmp_path: Path) -> None:
    client = project(tmp_path, employees=marked("super"))
    retrieve = tmp_path / "myproject" / "templates" / "employees" / "retrieve.html"
    retrieve.write_text(retrieve.read_text().replace("<h1>", '<p id="initials">${initials}</p><h1>', 1))
    member = insert(client, "Ada Lovelace", "Countess")
    page = client.get(member)
    assert page.status_code == 200
    assert '<p id="initials">AL</p>' in page.text
    assert "Countess" in page.text  # the standard variables are all there
    assert client.get("/employees/999").status_code == 404
    etag = page.header("ETag")
    assert client.get(member, headers={"If-None-Match": etag}).status_code == 304


def test_query_narrows_every_uri_and_validate_sets_what_this_view_writes(tmp_path: Path) -> None:
    client = project(tmp_path, interns=marked("query"))
    root = tmp_path / "myproject"
    for page in (root / "templates" / "employees").iterdir():  # "copy templates/employees/ to start"
        (root / "templates" / "interns").mkdir(exist_ok=True)
        (root / "templates" / "interns" / page.name).write_text(page.read_text())
    intern = add(client, "Grace", "Intern").rsplit("/", 1)[1]
    engineer = add(client, "Linus", "Engineer").rsplit("/", 1)[1]
    listed = client.get("/interns/")
    assert listed.status_code == 200 and "Grace" in listed.text and "Linus" not in listed.text
    assert client.get(f"/interns/{intern}").status_code == 200
    assert client.get(f"/interns/{engineer}").status_code == 404
    # a write through /interns/ to a row it does not show changes nothing
    assert client.submit(f"/interns/{engineer}", {"name": "X", "title": "Intern"}, "PUT").status_code == 404
    created = client.submit("/interns/", {"name": "Ken", "title": "Boss", "office_number": "2"})
    assert created.status_code == 303
    assert "Intern" in client.get(created.location).text  # validate made Ken an intern
    assert "Engineer" in client.get(f"/employees/{engineer}").text


def test_validate_refuses_with_a_message_beside_the_field_and_writes_nothing(tmp_path: Path) -> None:
    client = project(tmp_path, employees=marked("validate"))
    refused = client.submit("/employees/", {"name": "Ada", "title": "x", "office_number": "1000"})
    assert refused.status_code == 422
    assert "Offices are numbered 1 to 999." in refused.text
    assert 'value="1000"' in refused.text  # what the user typed is kept
    assert "Ada" not in client.get("/employees/").text.split("</h1>", 1)[1]
    assert add(client, "Ada", "x", 999)


@pytest.mark.parametrize("engine", ["genshi", "jinja2"])
def test_the_noun_handler_and_its_template_in_each_engine(tmp_path: Path, engine: str) -> None:
    client = project(tmp_path, engine, employees=marked("noun"))
    root = tmp_path / "myproject"
    scaffold.add_template(root, "employees", "get_report")
    page = root / "templates" / "employees" / "get_report.html"
    snippet = block_after("In Genshi (the default engine)" if engine == "genshi" else "In Jinja2 (")
    page.write_text(re.sub(r"<p>This page is .*?</p>", lambda _: snippet, page.read_text()))
    empty = client.get("/employees/;report")
    assert empty.status_code == 200, empty.text
    assert "Nobody yet" in empty.text and 'href="/employees/;new_form"' in empty.text
    insert(client, "Ada", "x")
    insert(client, "Grace", "y")
    assert "2 people work here." in client.get("/employees/;report").text


def test_the_custom_route_example_runs_and_has_its_url(tmp_path: Path) -> None:
    root = make_project(tmp_path, views={"employees": FIELDS})
    dispatcher = root / "dispatcher.py"
    route = block_after("give\nit a name to build its URL with `url_for`:", "python")
    source = dispatcher.read_text().replace(
        "# Custom routes go here, before the default route below.\n",
        "# Custom routes go here, before the default route below.\n" + route)
    dispatcher.write_text(source)
    client = Client(load(root))
    about = client.get("/about")
    assert (about.status_code, about.text) == (200, "About us")
    from robaccia.request import Request
    from robaccia.testing import make_environ

    environ = make_environ("GET", "/employees/")
    client.app(environ, lambda *a: None)
    assert Request.of(environ).url_for("about") == "/about"

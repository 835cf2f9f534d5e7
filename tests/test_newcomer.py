"""A newcomer's first day (issue 14): each friction, met again the way a new user met it.

One test per item a user would notice, named ``test_NN_...`` after the
issue's numbering: the commands through robaccia-admin as a subprocess, the
error pages from a served project, what a browser shows in headless Chromium
(screenshots: tests/output/newcomer-*.png). Items whose behaviour is tested
elsewhere are not tested twice:

* 7, the exact messages for keyword names: test_cli.py
  (test_addmodelview_refuses_bad_field_specs, test_add_refuses_bad_view_names);
  here, that the suggested names work;
* 8, ``serve`` without ``.secret_key``: test_cli.py
  (test_a_fresh_checkout_without_its_key_is_told_how_to_make_one); here,
  that ``check --deploy`` reports it as a finding;
* 17, the favicon file and its link in the layout: test_scaffold.py
  (test_layout_and_stylesheet_load_nothing_from_elsewhere); here, that a
  browser gets it;
* 20, the README: not here.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from support import (
    EMPLOYEE_FIELDS,
    Client,
    admin,
    free_port,
    load,
    make_project,
    missing,
    page_text,
    project_env,
    read_page,
    served,
    stop,
)

from robaccia import scaffold
from robaccia.testing import Client as AppClient

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = Path(__file__).resolve().parent / "output"
ENGINES = ["genshi", "jinja2"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
PHONE = {"width": 360, "height": 740}

# A bug as a newcomer writes one, and a noun handler whose template is not written yet.
HANDLERS = '''
    # GET /employees/;boom
    def get_boom(self, environ, start_response):
        offices = [101, 102, 205]
        note = "<script>alert('run')</script>" * 40
        return {"office": offices[len(offices)]}

    # GET /employees/;report
    def get_report(self, environ, start_response):
        return {"total": 42}
'''
BUG = "offices[len(offices)]"


def words(text: str) -> str:
    """Text with its whitespace runs made single spaces (as a reader sees it)."""
    return " ".join(text.split())


def add_handlers(root: Path) -> None:
    """Give views/employees.py the handlers above, at the end of its class."""
    view = root / "views" / "employees.py"
    source = view.read_text()
    assert "\n\napp = Collection(table)" in source
    view.write_text(source.replace("\n\napp = Collection(table)", HANDLERS + "\n\napp = Collection(table)"))


def line_of(path: Path, text: str) -> int:
    """The 1-based number of the first line of ``path`` holding ``text``."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


class _Nesting(HTMLParser):
    """Reads a page and lists what keeps it from being well-formed HTML."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}
    # NOTE: HTML lets these end implicitly; the pages never rely on it, so they are checked too.

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.ids: set[str] = set()
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id":
                if value in self.ids:
                    self.problems.append(f"id {value!r} twice")
                self.ids.add(str(value))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            self.problems.append(f"</{tag}>")
        elif not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>")
        else:
            self.stack.pop()


def assert_valid_html(body: bytes) -> None:
    """A doctype, html lang, a title, every element closed in order, ids unique."""
    reader = _Nesting()
    reader.feed(body.decode("utf-8"))
    reader.close()
    assert reader.doctype, body[:100]
    assert reader.problems == [] and reader.stack == [], (reader.problems, reader.stack)
    assert re.search(rb'<html lang="en">', body) and re.search(rb"<title>[^<]+</title>", body)


# --- the browser and a served project per engine ------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Site:
    engine: str
    root: Path
    base: str


def _site_project(root: Path) -> None:
    add_handlers(root)
    # an API over the employees table, beside its pages (item 14's way)
    scaffold.add_model_view(root, "api_employees", "json", [], "employees")


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Site]]:
    """A project per engine, served by ``run`` (debug on), made on first use."""
    made: dict[str, Site] = {}
    with contextlib.ExitStack() as stack:
        def get(engine: str) -> Site:
            if engine not in made:
                root = make_project(tmp_path_factory.mktemp(f"newcomer-{engine}"), engine, createdb=True,
                                    views={"employees": [*EMPLOYEE_FIELDS, "notes:text"],
                                           "departments": ["name:string:required"]},
                                    edit=_site_project)
                made[engine] = Site(engine, root, stack.enter_context(served(root)).base)
            return made[engine]

        yield get


@pytest.fixture(params=ENGINES)
def site(request: pytest.FixtureRequest, sites: Callable[[str], Site]) -> Site:
    return sites(str(request.param))


@pytest.fixture
def tab(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open a browser tab (its own context: no cookies shared); all are closed afterwards."""
    contexts: list[Any] = []

    def open_tab(**options: Any) -> Any:
        context = browser.new_context(**options)
        contexts.append(context)
        return context.new_page()

    yield open_tab
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    path = OUTPUT / f"newcomer-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def create(site: Site, view: str = "employees", **values: Any) -> str:
    """Create a row through the site's JSON API; return its id."""
    response = Client(site.base).request("POST", f"/{view}/", json_body=values)
    assert response.status == 201, response.text
    return str(response.json()["id"])


# --- 1-3: errors that teach -------------------------------------------------------------------------


@pytest.mark.slow
def test_01_the_debug_page_shows_the_error_and_the_users_code_first(site: Site, tab: Callable[..., Any]) -> None:
    page = tab()
    response = page.goto(site.base + "/employees/;boom")
    assert response.status == 500
    assert_valid_html(response.body())
    assert page.locator("h1").inner_text() == "IndexError: list index out of range"
    assert page.locator("main > section h2").all_inner_texts() == ["In your code", "Traceback"]
    mine = page.locator("main > section").first
    line = line_of(site.root / "views" / "employees.py", BUG)
    assert mine.locator(".where").inner_text() == f"views/employees.py, line {line}, in get_boom"
    assert BUG in mine.locator(".here").inner_text()
    assert len(mine.locator("pre.source > span").all()) == 9  # four lines either side
    values = dict(zip(mine.locator("table.locals th").all_inner_texts(),
                      mine.locator("table.locals td").all_inner_texts(), strict=True))
    assert values["offices"] == "[101, 102, 205]"
    assert values["note"].startswith("\"<script>alert('run')</script>")
    note = "<script>alert('run')</script>" * 40
    assert values["note"].endswith(f"... ({len(repr(note)):,} characters)") and len(values["note"]) < 340
    assert values["environ"] == "<WSGI environ of GET /employees/;boom>"
    assert page.locator("script").count() == 0  # the value is text, never markup
    # robaccia's, WebOb's and the standard library's frames are folded, and closed
    folded = page.locator("details.library")
    assert folded.count() >= 4
    assert page.eval_on_selector_all("details.library", "all => all.filter(d => d.open).length") == 0
    assert all(not name.startswith("views/") for name in page.locator("details.library summary").all_inner_texts())
    assert page.locator("main > section").last.locator(".frame .where").all_inner_texts() == [
        f"views/employees.py, line {line}, in get_boom"]
    screenshot(page, f"debug-{site.engine}")


@pytest.mark.slow
def test_01_serve_shows_a_plain_500_and_logs_the_error(tmp_path: Path) -> None:
    root = make_project(tmp_path, "jinja2", edit=add_handlers, createdb=True)
    with served(root, "serve", workers=1) as server:
        response = server.client().request("GET", "/employees/;boom")
    assert response.status == 500
    assert "Something went wrong on our side" in response.text
    for secret in ("IndexError", "offices", "Traceback", "employees.py", "script"):
        assert secret not in response.text
    log = server.log.read_text()
    assert "Unhandled error on GET /employees/;boom: IndexError: list index out of range" in log


@pytest.mark.slow
def test_02_a_missing_template_says_which_file_and_the_command_that_makes_it(site: Site) -> None:
    client = Client(site.base)
    response = client.request("GET", "/employees/;report")
    assert response.status == 500
    assert_valid_html(response.body)
    said = words(page_text(response.body))
    assert ("The handler get_report of views/employees.py returned a dict, so robaccia renders it with "
            "the template templates/employees/get_report.html, and there is no such file in the "
            f"project folder {site.root.resolve()}. Make it with: robaccia-admin addtemplate "
            "employees get_report (or return a WSGI response instead of a dict).") in said
    made = admin("addtemplate", "employees", "get_report", cwd=site.root)
    assert made.stdout == " created templates/employees/get_report.html\n"
    response = client.request("GET", "/employees/;report")
    assert response.status == 200, response.text
    assert "This page is templates/employees/get_report.html." in page_text(response.body)


@pytest.mark.parametrize(("engine", "mistake", "says"), [
    ("genshi", "<p>first line<br>second line</p>",
     "Genshi templates are XML: every tag is closed (write <br/>, <hr/>, <img .../>, <input .../>, "
     "not <br>)"),
    ("jinja2", "<p>{{ row.name }}</p>{% endfor %}", "Jinja2 could not read this template"),
])
def test_03_a_template_that_does_not_parse_names_its_file_and_line(
        tmp_path: Path, engine: str, mistake: str, says: str) -> None:
    root = make_project(tmp_path, engine, debug=True)
    template = root / "templates" / "employees" / "retrieve.html"
    lines = template.read_text().splitlines()
    at = next(n for n, line in enumerate(lines) if "<h1>" in line)
    lines.insert(at, mistake)
    template.write_text("\n".join(lines) + "\n")
    client = AppClient(load(root))
    created = client.submit("/employees/", {"name": "Ada"})
    assert created.status_code == 303
    response = client.get(created.location)
    assert response.status_code == 500
    assert_valid_html(response.body)
    page = read_page(response.body)
    said = words(page.text)
    assert f"In the template templates/employees/retrieve.html, line {at + 1}" in said
    assert says in said
    assert str(root) not in said.partition("Traceback")[0]  # the project's own paths are short
    marked = re.search(r'<span class="here"><span class="lineno">[^<]*</span> (.*?)</span>', response.text)
    assert marked and marked.group(1) == html.escape(mistake)


# --- 4-9: more errors ---------------------------------------------------------------------------


def test_04_a_missing_database_driver_says_what_to_install(tmp_path: Path) -> None:
    root = scaffold.create_project("myprj", tmp_path)
    scaffold.add_model_view(root, "things", "json", ["name:string"])
    # psycopg is installed here, as the tests need it: hide it, as a fresh virtualenv would
    shadow = tmp_path / "shadow" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    postgres = admin("createdb", cwd=root, check=False, env=project_env(
        "postgresql+psycopg://me@127.0.0.1/shop", PYTHONPATH=str(shadow.parent)))
    mariadb = admin("createdb", cwd=root, check=False, env=project_env("mysql://me@127.0.0.1/shop"))
    assert (postgres.returncode, postgres.stdout, postgres.stderr) == (1, "", (
        "Error: Could not import the project: No module named 'psycopg'. The database driver is "
        "not installed; for PostgreSQL run: pip install 'robaccia[postgresql]'\n"))
    assert (mariadb.returncode, mariadb.stdout, mariadb.stderr) == (1, "", (
        "Error: Could not import the project: No module named 'MySQLdb'. The database driver is "
        "not installed; for MariaDB and MySQL run: pip install 'robaccia[mariadb]' and write the "
        "URL as mysql+pymysql://USER@HOST/DATABASE\n"))


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "serve"])
def test_05_an_api_delete_without_content_type_is_told_to_send_json(tmp_path: Path, command: str) -> None:
    root = make_project(tmp_path, "genshi", kind="json", createdb=True)
    with served(root, command) as server:
        api = server.client()
        keys = [str(api.request("POST", "/employees/", json_body={"name": n}).json()["id"]) for n in "ab"]
        # a client with no cookies carries no credentials: a bare DELETE is enough (run as serve)
        assert server.client(keep_cookies=False).request("DELETE", f"/employees/{keys[0]}").status == 204
        # one that kept the cookies a page gave it (as requests.Session does) is told what to send
        session = server.client()
        session.cookies["robaccia_csrf"] = "from-an-earlier-page"
        refused = session.request("DELETE", f"/employees/{keys[1]}")
        assert refused.status == 403
        assert refused.json()["detail"] == (
            "Send Content-Type: application/json with this request (an API client needs no token), "
            "or submit the form from this site's pages.")
        done = session.request("DELETE", f"/employees/{keys[1]}", headers={"Content-Type": "application/json"})
        assert done.status == 204


TYPES = {"string": "Ada", "text": "Notes", "integer": 7, "float": 1.5, "decimal": "12.50",
         "boolean": True, "date": "2024-02-29", "datetime": "2024-02-29T13:45:00Z",
         "email": "ada@example.com", "url": "https://example.com/"}
#: What a browser sends for the values above (a checked box, a datetime-local input).
FORM_VALUES = dict({k: str(v) for k, v in TYPES.items()}, boolean="on", datetime="2024-02-29T13:45")


def test_06_a_required_field_absent_or_null_is_422_for_every_type(tmp_path: Path) -> None:
    fields = [f"f_{kind}:{kind}:required" for kind in TYPES]
    root = make_project(tmp_path, "genshi", views={"things": fields, "pages": fields},
                        kind={"things": "json"})
    client = AppClient(load(root))
    full = {f"f_{kind}": value for kind, value in TYPES.items()}
    for kind in TYPES:
        name = f"f_{kind}"
        absent = {k: v for k, v in full.items() if k != name}
        for body in (absent, dict(full, **{name: None})):
            response = client.post("/things/", json=body)
            assert response.status_code == 422, (kind, response.text)
            assert response.json()["errors"] == {name: "This field is required."}, kind
        form = {f"f_{k}": v for k, v in FORM_VALUES.items() if k != kind}
        response = client.submit("/pages/", form)
        if kind == "boolean":  # an unchecked box is a value, False
            assert response.status_code == 303, response.text
        else:
            assert response.status_code == 422, (kind, response.text)
            assert read_page(response.body).ids[f"e-{name}"] == "This field is required."
    assert client.post("/things/", json=full).status_code == 201


def test_07_the_names_suggested_for_python_keywords_work(tmp_path: Path) -> None:
    admin("createproject", "shop", cwd=tmp_path)
    root = tmp_path / "shop"
    refused = admin("addmodelview", "rooms", "class:string", "from:integer", cwd=root, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    suggested = re.search(r"try '(\w+)'", refused.stderr)
    assert suggested and "'class' is a Python keyword" in refused.stderr
    keyword_view = admin("addview", "for", cwd=root, check=False)
    view_name = re.search(r"try '(\w+)'", keyword_view.stderr)
    assert keyword_view.returncode == 1 and view_name
    admin("addmodelview", "rooms", f"{suggested.group(1)}:string", "start:integer", cwd=root)
    admin("addview", view_name.group(1), cwd=root)
    client = AppClient(load(root))
    created = client.post("/rooms/", json={suggested.group(1): "first"})
    assert created.status_code == 303, created.text
    assert "first" in client.get(created.location).text
    assert client.get(f"/{view_name.group(1)}/").status_code == 200


def test_08_check_deploy_reports_a_missing_secret_key_as_a_finding(tmp_path: Path) -> None:
    root = scaffold.create_project("myprj", tmp_path)
    (root / ".secret_key").unlink()  # a fresh clone: .gitignore keeps the key out
    env = project_env(ROBACCIA_ALLOWED_HOSTS="example.com", ROBACCIA_HTTPS="1",
                      ROBACCIA_TRUSTED_PROXY="127.0.0.1")
    env.pop("ROBACCIA_SECRET_KEY", None)
    result = admin("check", "--deploy", cwd=root, env=env, check=False)
    assert (result.returncode, result.stderr) == (1, "Error: 1 finding(s).\n")
    assert result.stdout.startswith("R002 SECRET_KEY is missing or weak")


def _docstring_example(dispatcher: str) -> str:
    """The indented example of dispatcher.py's docstring, as a user copies it."""
    doc = dispatcher.split('"""')[1]
    block = doc.split("paste this below", 1)[1].split(":\n\n", 1)[1].split("\n\n\n")[0]
    example = block.split("\n\nThe project itself")[0]
    lines = example.splitlines()
    assert all(line.startswith("    ") or not line for line in lines), example
    return "\n".join(line[4:] for line in lines) + "\n"


def test_09_the_dispatcher_example_runs_as_written(tmp_path: Path) -> None:
    root = make_project(tmp_path, "genshi", name="shop")
    dispatcher = root / "dispatcher.py"
    source = dispatcher.read_text()
    example = _docstring_example(source)
    assert 'app.add("/about", GET=about, name="about")' in example
    marker = "# Custom routes go here, before the default route below.\n"
    dispatcher.write_text(source.replace(marker, marker + example))
    client = AppClient(load(root))
    response = client.get("/about")
    assert (response.status_code, response.text) == (200, "About shop")
    assert client.get("/employees/").status_code == 200  # the default route still follows


def _wait_for(client: Client, path: str, ready: Callable[[Any], bool], timeout: float = 20,
              server: subprocess.Popen[Any] | None = None) -> Any:
    """Ask until the answer is ready (the reloader restarts the server meanwhile), while ``server`` runs."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline and (server is None or server.poll() is None):
        with contextlib.suppress(AssertionError):  # refused while the server restarts
            last = client.request("GET", path)
            if ready(last):
                return last
        time.sleep(0.2)
    raise AssertionError(f"not ready after {timeout}s (or the server exited): {last and last.status} "
                         f"{last and last.text[:2000]}")


def _save(path: Path, text: str) -> None:
    """Write a file as an editor does, with a modification time the reloader cannot miss."""
    path.write_text(text)
    later = time.time() + 1
    os.utime(path, (later, later))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "broken", "says"), [
    ("dispatcher.py", "app.add('/about', GET=views.about.app)\n",
     "dispatcher.py could not be imported: NameError: name 'views' is not defined"),
    ("settings.py", "PAGE_SIZE = 50 +\n", "The project could not be loaded: settings.py, line {line}: "
                                         "SyntaxError: invalid syntax"),
    ("models/employees.py", "table.append_column(Column('extra', Strin(20)))\n",
     "views/employees.py could not be imported: NameError: name 'Strin' is not defined"),
])
def test_09_a_file_that_fails_to_import_under_run_is_a_debug_page_until_saved(
        tmp_path: Path, name: str, broken: str, says: str) -> None:
    root = make_project(tmp_path, "genshi", createdb=True)
    path = root / name
    good = path.read_text()
    with served(root, reload=True) as server:
        client = server.client()
        _save(path, good + broken)
        line = len(good.splitlines()) + 1
        page = _wait_for(client, "/employees/", lambda r: r.status == 500)
        assert_valid_html(page.body)
        said = words(page_text(page.body))
        assert says.format(line=line) in said
        assert f"{name}, line {line}" in said  # where, in the heading or the frame shown first
        assert said.index(f"{name}, line {line}") < said.index("Traceback")
        _save(path, good)
        started = time.monotonic()
        back = _wait_for(client, "/employees/", lambda r: r.status == 200)
        assert "Employees" in back.text and time.monotonic() - started < 10
    output = server.log.read_text()
    assert "Changed: " in output and "Traceback" in output  # the terminal says it too


@pytest.mark.slow
def test_09_a_project_broken_before_run_starts_is_served_as_a_debug_page(tmp_path: Path) -> None:
    """run used to print the SyntaxError's traceback and stop: now it serves the page, then the site."""
    root = make_project(tmp_path, "genshi", createdb=True)
    settings = root / "settings.py"
    good = settings.read_text()
    settings.write_text(good + "PAGE_SIZE = (\n")
    port = free_port()
    log = root / "logs" / "broken-start.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "robaccia", "run", "--port", str(port)], cwd=root,
                                  env=project_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        client = Client(f"http://127.0.0.1:{port}")
        page = _wait_for(client, "/employees/", lambda r: r.status == 500, server=server)
        said = words(page_text(page.body))
        assert "settings.py, line" in said and "SyntaxError" in said
        _save(settings, good)
        back = _wait_for(client, "/employees/", lambda r: r.status == 200, server=server)
        assert "Employees" in back.text
    finally:
        stop(server)
    assert log.read_text().startswith("The project does not load (SyntaxError): the site shows why, "
                                      "and restarts when you save a fix.\n")


# --- 10-14: the CLI where people stand --------------------------------------------------------------


def test_10_commands_find_the_project_from_a_subfolder(tmp_path: Path) -> None:
    admin("createproject", "shop", cwd=tmp_path)
    root = tmp_path / "shop"
    made = admin("addmodelview", "orders", "total:decimal", cwd=root / "views")
    assert made.stdout.startswith(" created views/orders.py\n")
    assert (root / "views" / "orders.py").is_file() and not (root / "views" / "views").exists()
    deep = root / "templates" / "orders"
    assert " created table orders" in admin("createdb", cwd=deep).stdout.splitlines()
    assert admin("addtemplate", "orders", "get_report", cwd=deep).stdout == (
        " created templates/orders/get_report.html\n")


def test_11_createproject_inside_a_project_is_refused(tmp_path: Path) -> None:
    admin("createproject", "shop", cwd=tmp_path)
    root = (tmp_path / "shop").resolve()
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    refused = admin("createproject", "inner", cwd=root / "views", check=False)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (f"Error: This folder is inside the project shop ({root}): create the new "
                              "project outside it (cd out of it first).\n")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_12_snake_case_view_names_serve_their_url_as_written(tmp_path: Path) -> None:
    admin("createproject", "shop", cwd=tmp_path)
    root = tmp_path / "shop"
    admin("addmodelview", "office_locations", "city:string:required", cwd=root)
    client = AppClient(load(root))
    created = client.submit("/office_locations/", {"city": "Turin"})
    assert created.status_code == 303 and created.location.startswith("/office_locations/")
    listing = client.get("/office_locations/")
    assert listing.status_code == 200 and "Turin" in listing.text
    assert read_page(listing.body).ids["list-title"] == "Office locations"
    assert client.get("/office-locations/").status_code == 404  # one spelling: the file's


@pytest.mark.parametrize("engine", ["genshi", "jinja2"])
def test_13_decimal_precision_email_and_url_fields(tmp_path: Path, engine: str) -> None:
    admin("createproject", "shop", "--templates", engine, cwd=tmp_path)
    root = tmp_path / "shop"
    admin("addmodelview", "shops", "price:decimal:10,2", "contact:email", "site:url", cwd=root)
    model = (root / "models" / "shops.py").read_text()
    assert "Column('price', Numeric(10, 2))" in model
    client = AppClient(load(root))
    form = read_page(client.get("/shops/;new_form").body).inputs
    assert (form["price"]["type"], form["price"]["step"]) == ("number", "0.01")
    assert form["contact"]["type"] == "email" and form["site"]["type"] == "url"
    refused = client.submit("/shops/", {"price": "123456789.5", "contact": "ada", "site": "example.com"})
    assert refused.status_code == 422
    errors = read_page(refused.body).ids
    assert errors["e-price"] == "Use at most 8 digits before the point."
    assert errors["e-contact"] == "Enter an email address, such as ada@example.com."
    assert errors["e-site"] == "Enter a web address that starts with http:// or https://."
    assert "Use at most 2 decimal places." == read_page(
        client.submit("/shops/", {"price": "1.234"}).body).ids["e-price"]
    created = client.submit("/shops/", {"price": "12345678.90", "contact": "ada@example.com",
                                        "site": "https://example.com/shop"})
    assert created.status_code == 303, created.text
    shown = client.get(created.location).text
    assert "12345678.90" in shown and "ada@example.com" in shown and "https://example.com/shop" in shown
    # the member page links the address and the email; a value written around the forms stays text
    page = read_page(client.get(created.location).body)
    assert "https://example.com/shop" in page.urls and "mailto:ada@example.com" in page.urls
    assert page.links["nofollow noopener noreferrer"] in ("https://example.com/shop", "mailto:ada@example.com")
    with contextlib.closing(sqlite3.connect(root / "database.db")) as db, db:
        db.execute("INSERT INTO shops (id, site, contact) VALUES (99, 'javascript:alert(1)', 'a b@c')")
    hostile = read_page(client.get("/shops/99").body)
    assert "javascript:alert(1)" in hostile.text and "a b@c" in hostile.text
    assert not [url for url in hostile.urls if url.startswith(("javascript:", "mailto:"))]


def test_14_an_api_and_pages_over_one_table(tmp_path: Path) -> None:
    admin("createproject", "shop", cwd=tmp_path)
    root = tmp_path / "shop"
    admin("addmodelview", "employees", *EMPLOYEE_FIELDS, cwd=root)
    made = admin("addmodelview", "api_employees", "--type", "json", "--table", "employees", cwd=root)
    assert made.stdout == " created views/api_employees.py\n created tests/test_api_employees.py\n"
    assert "from models.employees import table" in (root / "views" / "api_employees.py").read_text()
    admin("createdb", cwd=root)
    client = AppClient(load(root))
    created = client.post("/api_employees/", json={"name": "Grace", "title": "Admiral"})
    assert created.status_code == 201
    assert "Grace" in client.get("/employees/").text  # the same rows, as pages
    assert client.submit("/employees/", {"name": "Ada"}).status_code == 303
    assert [row["name"] for row in client.get("/api_employees/").json()["data"]] == ["Grace", "Ada"]
    assert admin("runtests", cwd=root).returncode == 0  # both views' generated tests pass


# --- 15-16: nothing left behind, a quiet install ----------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.slow
def test_15_runtests_and_serve_leave_nothing_in_the_temporary_folder(tmp_path: Path) -> None:
    scratch = tmp_path / "system-tmp"
    scratch.mkdir()
    root = make_project(tmp_path, "genshi", views={"employees": EMPLOYEE_FIELDS, "notes": ["body:text"]},
                        kind={"notes": "json"}, createdb=True)
    tested = admin("runtests", cwd=root, env=project_env(TMPDIR=str(scratch)))
    assert "OK" in tested.stderr
    assert _leftovers(scratch) == []
    with served(root, "serve", workers=2, env={"TMPDIR": str(scratch)}) as server:
        assert server.client().request("GET", "/employees/").status == 200
    assert _leftovers(scratch) == []


@pytest.mark.slow
def test_15_make_demo_serves_and_leaves_nothing_in_the_temporary_folder(tmp_path: Path) -> None:
    scratch = tmp_path / "system-tmp"
    scratch.mkdir()
    # `make demo` runs `robaccia-admin demo`, which serves until Ctrl-C
    port = free_port()
    log = tmp_path / "demo.log"
    with open(log, "w") as out:
        demo = subprocess.Popen([sys.executable, "-m", "robaccia", "demo", "--port", str(port)],
                                cwd=tmp_path, env=project_env(TMPDIR=str(scratch)), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_for(Client(f"http://127.0.0.1:{port}"), "/employees/", lambda r: r.status == 200,
                      server=demo)
        finally:
            stop(demo, group=True)
    assert f"Demo project: robaccia-demo{os.sep}myproject" in log.read_text()
    assert _leftovers(scratch) == []


def test_16_the_package_metadata_gives_setuptools_nothing_to_warn_about() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    # setuptools 77+ warns (three times per install) about a license table and license classifiers
    assert isinstance(project["license"], str) and re.fullmatch(r"[A-Za-z0-9.\- ()+]+", project["license"])
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
    assert any(r.replace(" ", "").startswith("setuptools>=77") for r in meta["build-system"]["requires"])


@pytest.mark.slow
def test_16_the_install_the_readme_commands_run_prints_no_warnings(tmp_path: Path) -> None:
    """The Makefile's install line, as it is written, into a new virtualenv: quiet."""
    recipe = re.search(r"^\t(.*pip install --quiet -e '\.\[test\]')$", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile installs robaccia with pip install --quiet -e '.[test]'"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    # The same line, with this venv's pip (borrowed from the test's own) and no dependencies to fetch.
    line = recipe.group(1).replace("$(BIN)/pip", f"{sys.executable} -m pip --python {venv / 'bin' / 'python'}")
    line = line.replace("-e '.[test]'", "--no-deps -e .")
    done = subprocess.run(line, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    said = [ln for ln in (done.stdout + done.stderr).splitlines()
            if ln.strip() and "is ignored: it is neither a file nor a directory" not in ln]  # this machine's pip.conf
    assert said == []


# --- 17-19: the generated site in a browser ----------------------------------------------------------


@pytest.mark.slow
def test_17_the_browser_gets_the_favicon(site: Site, tab: Callable[..., Any]) -> None:
    page = tab()
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(site.base + "/employees/")
    icon = page.eval_on_selector("link[rel=icon]", "l => l.href")
    for url in (icon, site.base + "/favicon.ico"):
        answer = page.request.get(url)
        assert answer.status == 200 and answer.headers["content-type"] == "image/x-icon", url
        assert answer.body()[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert failed == []


LONG_NOTE = ("A very long note about this employee that goes on and on, " * 30).strip()
LONG_NAME = "Wolfeschlegelsteinhausenbergerdorff" * 4  # no place to break


@pytest.mark.slow
def test_18_the_list_page_is_usable_360_px_wide(site: Site, tab: Callable[..., Any]) -> None:
    create(site, "api_employees", name=LONG_NAME, title="Engineer", office_number=12, notes=LONG_NOTE)
    create(site, "api_employees", name="Ada Lovelace", title="Analyst", office_number=101, notes="Short.")
    page = tab(viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(site.base + "/employees/")
    # nothing wider than the screen: a wide table scrolls inside its own box
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.evaluate("() => document.body.scrollWidth") <= PHONE["width"]
    box = page.eval_on_selector(".table-wrap", "w => [w.clientWidth, w.scrollWidth]")
    assert box[0] <= PHONE["width"]
    # long text is clamped to a few lines, not the whole note
    clamps = page.eval_on_selector_all(
        "td.long .clamp", "all => all.map(c => [c.textContent.length, c.clientHeight, c.scrollHeight])")
    longest = max(clamps)
    assert longest[0] < len(LONG_NOTE) or longest[1] < longest[2], clamps
    assert longest[1] <= 6 * 24, clamps  # a few lines high at most
    # the page's own controls stay on the screen
    for selector in ("h1", "a.button.primary", "header.site"):
        right = page.eval_on_selector(selector, "e => e.getBoundingClientRect().right")
        assert right <= PHONE["width"], selector
    screenshot(page, f"list-360-{site.engine}")
    # the rest of the table is a swipe away, inside its box
    page.eval_on_selector(".table-wrap", "w => { w.scrollLeft = w.scrollWidth; }")
    page.screenshot(path=str(OUTPUT / f"newcomer-list-360-swiped-{site.engine}.png"))


@pytest.mark.slow
def test_19_the_site_shows_where_one_is(site: Site, tab: Callable[..., Any]) -> None:
    for n in range(3):
        create(site, "api_employees", name=f"Paged {n}")
    page = tab()
    page.goto(site.base + "/departments/")
    nav = page.locator("header.site nav a")
    assert nav.all_inner_texts() == ["Api employees", "Departments", "Employees"]
    assert page.locator("header.site nav a[aria-current=page]").all_inner_texts() == ["Departments"]
    page.goto(site.base + "/employees/?limit=2")
    assert page.locator("header.site nav a[aria-current=page]").all_inner_texts() == ["Employees"]
    assert page.locator("p.range").inner_text() == "Rows 1\u20132"
    page.locator("a[rel=next]").first.click()
    page.wait_for_url(re.compile(r"after="))
    assert page.locator("p.range").inner_text() == "Rows 3\u20134"
    page.goto(site.base + "/")
    cards = page.locator("ul.collection-cards > li")
    shown = {card.locator("h2").inner_text(): (card.locator(".count").inner_text(),
                                               card.locator("a.button", has_text="New").count())
             for card in cards.all()}
    count = Client(site.base).request("GET", "/api_employees/?limit=500").json()["data"]
    rows = f"{len(count)} row{'' if len(count) == 1 else 's'}"
    assert shown == {"Api employees": (rows, 0), "Departments": ("0 rows", 1), "Employees": (rows, 1)}
    assert page.locator("ul.collection-cards a.button").first.get_attribute("href") == "/departments/;new_form"

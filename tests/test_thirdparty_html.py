"""Every generated page, in every state, through the Nu HTML Checker and axe-core.

One project per template engine (Genshi, Jinja2), with a view holding a field
of every type (required and unique ones among them) and a view that stays
empty, is served by ``run`` (debug on) and then by ``serve`` (debug off). The
module walks each through every state a visitor can reach: the index, the
empty list, the pages of a paged list, a list and a member page with a flash
message, the new, edit and delete forms, each form with errors for every field
type and with a conflict, and every error page (400, 403, 404, 405, 409, 412,
413, 415, 422 and 500: the debug page under ``run``, the plain one under
``serve``). Each answer is saved in tests/output/thirdparty/html/ as
``<engine>-<server>-<state>.html``. Then:

* the Nu HTML Checker (``vnu.jar`` from node_modules/vnu-jar, one JVM run for
  all pages) must report no error;
* axe-core (node_modules/axe-core) in headless Chromium, on each page as it was
  served (status, headers and Content-Security-Policy included; the project's
  static files behind it), must report no violation of WCAG 2.0/2.1 A and AA;
* at 360 CSS pixels wide, list and form pages must not scroll sideways.

The tools come from package.json (``bash scripts/tools.sh``); Chromium is
Debian's. Without java, the tools or Chromium the tests skip, and fail under
ROBACCIA_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import mimetypes
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from support import Client, make_project, missing, read_page, served

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
VNU_JAR = REPO / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
AXE_JS = REPO / "node_modules" / "axe-core" / "axe.min.js"
OUTPUT = Path(__file__).resolve().parent / "output" / "thirdparty" / "html"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
ENGINES = ["genshi", "jinja2"]
# Every field type, required and unique ones among them; "notes" stays empty.
FIELDS = ["title:string:required:unique", "body:text:required", "count:integer:required",
          "ratio:float:required", "price:decimal:required", "active:boolean",
          "day:date:required", "at:datetime", "mail:email:unique", "site:url"]
VIEWS = {"things": FIELDS, "notes": ["note:string", "seen:date"]}
PAGE_SIZE = 2
ROWS = 5  # three pages: next; previous and next; previous

# Handlers that fail on purpose: the 500 page, and 409/422 as plain error pages.
HANDLERS = '''
    # GET /things/;boom: a bug in a handler (the 500 page)
    def get_boom(self, environ, start_response):
        raise RuntimeError("a bug in a handler")

    # GET /things/;conflict: a 409 raised by a handler
    def get_conflict(self, environ, start_response):
        from robaccia.errors import Conflict
        raise Conflict("That clashes with a row someone else saved.")

    # GET /things/;unprocessable: a 422 raised by a handler
    def get_unprocessable(self, environ, start_response):
        from robaccia.errors import UnprocessableEntity
        raise UnprocessableEntity({"title": "Not that one."}, "The thing cannot be saved like that.")
'''


def row(n: int) -> dict[str, str]:
    """A valid form for row ``n`` (unique title and mail)."""
    return {"title": f"Thing {n}", "body": f"Notes about thing {n}.\nSecond line.", "count": str(n),
            "ratio": f"{n}.5", "price": f"{n}.25", "active": "on" if n % 2 else "", "day": f"2024-0{n}-1{n}",
            "at": f"2024-0{n}-1{n}T08:3{n}", "mail": f"thing{n}@example.com", "site": f"https://example.com/{n}"}


# Every typed field in error with a wrong value, the required string and text empty.
WRONG = {"title": "", "body": "", "count": "x", "ratio": "one", "price": "1,5", "active": "on",
         "day": "2021-02-30", "at": "yesterday", "mail": "ada", "site": "example.com"}
# Every field empty (the required ones in error), numbers and dates included.
EMPTY = {f.split(":")[0]: "" for f in FIELDS}
# Other wrong values for the edit form: too long, too precise, out of range.
WRONG_AGAIN = {"title": "x" * 300, "body": "", "count": "1.5", "ratio": "1e999", "price": "1.234",
               "active": "", "day": "x", "at": "2021-13-01T25:00", "mail": "a@", "site": "ftp://example.com/"}


@dataclass
class Saved:
    """One page as the server answered it, and the file it is saved in."""

    engine: str
    server: str
    state: str
    path: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    static: Path

    @property
    def name(self) -> str:
        return f"{self.engine}-{self.server}-{self.state}"

    @property
    def file(self) -> Path:
        return OUTPUT / f"{self.name}.html"

    @property
    def rendering(self) -> tuple[Any, ...]:
        """What a browser renders from: the status, the body, the headers that are not per-response."""
        varying = ("date", "set-cookie", "content-length", "server")
        return (self.status, self.body, self.static,
                tuple(sorted((k.lower(), v) for k, v in self.headers if k.lower() not in varying)))


class Walk:
    """A visitor of one served project; keeps each page it is asked to keep."""

    def __init__(self, engine: str, server: str, base: str, root: Path, pages: list[Saved]) -> None:
        self.engine, self.server, self.root, self.pages = engine, server, root, pages
        self.client = Client(base, token_page="/things/;new_form")

    def keep(self, state: str, method: str, path: str, status: int, **request: Any) -> Saved:
        response = self.client.request(method, path, **request)
        where = f"{self.engine} {self.server} {state}: {method} {path}"
        assert response.status == status, f"{where} answered {response.status}, not {status}:\n{response.text[:800]}"
        assert (response.header("Content-Type") or "").startswith("text/html"), (where, response.headers)
        page = Saved(self.engine, self.server, state, path, status, response.headers, response.body,
                     self.root / "static")
        page.file.write_bytes(page.body)
        self.pages.append(page)
        return page

    def post(self, path: str, form: dict[str, str] | list[tuple[str, str]], status: int = 303) -> str:
        """Submit a form (with the token); return where it redirects."""
        response = self.client.request("POST", path, form=form, csrf=True)
        assert response.status == status, f"POST {path}: {response.status}\n{response.text[:800]}"
        return str(response.header("Location"))

    def member_form(self, path: str) -> dict[str, str | None]:
        """The hidden inputs of a form page, as it is now."""
        page = read_page(self.client.request("GET", path).body)
        return {name: attrs.get("value") for name, attrs in page.inputs.items()}


def walk_pages(walk: Walk) -> None:
    """The index, lists, member and form pages in every state (under run)."""
    walk.keep("index", "GET", "/", 200)
    walk.keep("list-empty", "GET", "/notes/", 200)
    walk.keep("new-form", "GET", "/things/;new_form", 200)
    walk.keep("new-form-notes", "GET", "/notes/;new_form", 200)
    walk.keep("new-form-wrong", "POST", "/things/", 422, form=WRONG, csrf=True)
    walk.keep("new-form-empty", "POST", "/things/", 422, form=EMPTY, csrf=True)
    first = walk.post("/things/", row(1))
    walk.keep("member-flash", "GET", first, 200)
    for n in range(2, ROWS + 1):
        walk.client.request("GET", walk.post("/things/", row(n)))  # shows (and so clears) the flash
    walk.keep("new-form-conflict", "POST", "/things/", 409, form=row(1), csrf=True)
    page1 = walk.keep("list-page1", "GET", "/things/", 200)
    links = read_page(page1.body).links
    assert "next" in links and "prev" not in links, links
    page2 = walk.keep("list-page2", "GET", links["next"], 200)
    links = read_page(page2.body).links
    assert "next" in links and "prev" in links, links
    walk.keep("list-sorted", "GET", "/things/?sort=-price", 200)
    walk.keep("member", "GET", first, 200)
    edit = walk.keep("edit-form", "GET", f"{first};edit_form", 200)
    assert "_etag" in read_page(edit.body).inputs, "the edit form carries no _etag"
    walk.keep("edit-form-wrong", "POST", first, 422, form={**WRONG_AGAIN, "_method": "PUT"}, csrf=True)
    walk.keep("edit-form-empty", "POST", first, 422, form={**EMPTY, "_method": "PUT"}, csrf=True)
    walk.keep("edit-form-stale", "POST", first, 409,
              form={**row(1), "_method": "PUT", "_etag": '"stale"'}, csrf=True)
    last = f"/things/{ROWS}"
    walk.keep("delete-form", "GET", f"{last};delete_form", 200)
    hidden = walk.member_form(f"{last};delete_form")
    gone = walk.post(last, {"_method": "DELETE", "_etag": str(hidden.get("_etag") or "")})
    flash = walk.keep("list-flash", "GET", gone, 200)
    assert b'class="flash"' in flash.body, "the list after a delete shows no flash message"


def walk_errors(walk: Walk) -> None:
    """Every error page the project answers with (under run and under serve)."""
    walk.keep("400-host", "GET", "/things/", 400, headers={"Host": "elsewhere.example"})
    walk.keep("400-query", "GET", "/things/?limit=x", 400)
    walk.keep("403", "POST", "/things/", 403, form=row(9))
    walk.keep("404", "GET", "/nothing/here", 404)
    walk.keep("404-member", "GET", "/things/999999", 404)
    walk.keep("405", "POST", "/things/1", 405, form=row(9), csrf=True)
    walk.keep("409", "GET", "/things/;conflict", 409)
    walk.keep("412", "POST", "/things/1", 412, form={**row(1), "_method": "PUT"},
              headers={"If-Match": '"stale"'}, csrf=True)
    walk.keep("413", "POST", "/things/", 413, form=[("f", "1")] * 1001, csrf=True)
    walk.keep("415", "POST", "/things/", 415, body="title=x", headers={"Content-Type": "text/plain"}, csrf=True)
    walk.keep("422", "GET", "/things/;unprocessable", 422)
    walk.keep("500", "GET", "/things/;boom", 500)


def _build(parent: Path, engine: str) -> Path:
    def add_handlers(root: Path) -> None:
        view = root / "views" / "things.py"
        text = view.read_text()
        marker = "\n\napp = Collection("
        assert marker in text, text
        view.write_text(text.replace(marker, HANDLERS + marker, 1))

    return make_project(parent, engine, name=f"site_{engine}", views=VIEWS, createdb=True,
                        settings={"PAGE_SIZE": PAGE_SIZE}, edit=add_handlers)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> list[Saved]:
    """Every page of both engines' projects, in every state, saved."""
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir(parents=True)
    saved: list[Saved] = []
    for engine in ENGINES:
        root = _build(tmp_path_factory.mktemp(engine), engine)
        with served(root, "run") as server:
            walk = Walk(engine, "run", server.base, root, saved)
            walk_pages(walk)
            walk_errors(walk)
        debug_page = saved[-1].body
        assert b"a bug in a handler" in debug_page, "run did not show the debug page"
        with served(root, "serve", workers=1) as server:
            walk_errors(Walk(engine, "serve", server.base, root, saved))
        assert b"a bug in a handler" not in saved[-1].body, "serve showed the debug page"
    return saved


# --- the Nu HTML Checker -----------------------------------------------------------------------


def vnu_messages(files: list[Path]) -> list[dict[str, Any]]:
    """Run the Nu HTML Checker once over ``files``; return its error messages."""
    java = shutil.which("java")
    if java is None:
        missing("java is not installed (the Nu HTML Checker needs it): bash scripts/tools.sh")
    if not VNU_JAR.exists():
        missing(f"{VNU_JAR.relative_to(REPO)} is missing: bash scripts/tools.sh")
    result = subprocess.run([java, "-jar", str(VNU_JAR), "--errors-only", "--format", "json",
                             *map(str, files)], capture_output=True, text=True, timeout=300)
    # NOTE: vnu writes its report to stderr and exits 1 when it found errors.
    try:
        report = json.loads(result.stderr or result.stdout)
    except ValueError:
        raise AssertionError(f"vnu did not report JSON (exit {result.returncode}):\n"
                             f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}") from None
    return [m for m in report["messages"] if m.get("type") in ("error", "non-document-error")]


def test_nu_html_checker_finds_no_error_on_any_page(pages: list[Saved]) -> None:
    errors = vnu_messages([p.file for p in pages])
    by_file = {p.file.name: p for p in pages}
    lines = []
    for m in errors:
        name = Path(urlsplit(m.get("url", "")).path).name
        page = by_file.get(name)
        where = f"{name}:{m.get('lastLine', '?')}:{m.get('firstColumn', m.get('lastColumn', '?'))}"
        request = f" ({page.status} for {page.path})" if page else ""
        lines.append(f"{where}{request}: {m.get('message')}\n    {m.get('extract', '').strip()!r}")
    assert not errors, (f"the Nu HTML Checker found {len(errors)} errors in {len({ln.split(':')[0] for ln in lines})}"
                        f" of {len(pages)} pages (saved in {OUTPUT}):\n" + "\n".join(lines))


# --- axe-core and the layout in Chromium -----------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    if not AXE_JS.exists():
        missing(f"{AXE_JS.relative_to(REPO)} is missing: bash scripts/tools.sh")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


class Viewer:
    """One tab that shows saved pages as they were served, with the project's static files.

    Nothing reaches a server: the document is the saved answer (its status and
    headers, the Content-Security-Policy included), /static/ is read from the
    project's folder and any other request is refused. (One tab for every
    page: a new tab costs a renderer process, and axe's source compiles once.)
    """

    ORIGIN = "http://localhost:8080"

    def __init__(self, browser: Any, **options: Any) -> None:
        self.context = browser.new_context(**options)
        self.context.set_default_timeout(15_000)
        self.context.route("**/*", self._answer)
        self.tab = self.context.new_page()
        self.saved: Saved | None = None

    def _answer(self, route: Any) -> None:
        request, saved = route.request, self.saved
        assert saved is not None
        path = urlsplit(request.url).path
        static = saved.static / path.removeprefix("/static/")
        if request.resource_type == "document" and request.is_navigation_request():
            headers = {k: v for k, v in saved.headers if k.lower() not in ("content-length", "set-cookie")}
            route.fulfill(status=saved.status, headers=headers, body=saved.body)
        elif path.startswith("/static/") and static.is_file():
            route.fulfill(status=200, body=static.read_bytes(),
                          content_type=mimetypes.guess_type(static.name)[0] or "application/octet-stream")
        else:
            route.abort()

    def show(self, saved: Saved) -> Any:
        self.saved = saved
        self.tab.goto(self.ORIGIN + saved.path, wait_until="load")
        return self.tab

    def close(self) -> None:
        self.context.close()


AXE_RUN = """async tags => {
    const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
    return {passed: result.passes.length, violations: result.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary}))}))};
}"""


def test_axe_core_finds_no_wcag_a_or_aa_violation_on_any_page(pages: list[Saved], browser: Any) -> None:
    axe_source = AXE_JS.read_text()
    # NOTE: pages that are the same bytes served the same way (the error pages of run and
    # serve, of both engines) render the same: each is checked once, under all its names.
    alike: dict[tuple[Any, ...], list[Saved]] = {}
    for saved in pages:
        alike.setdefault(saved.rendering, []).append(saved)
    viewer = Viewer(browser, viewport={"width": 1280, "height": 800})
    found: list[str] = []
    try:
        for saved, *same in alike.values():
            page = viewer.show(saved)
            # NOTE: evaluated through the DevTools protocol, so the page's CSP (no inline
            # scripts) stays in force while axe is injected.
            page.evaluate(axe_source)
            result = page.evaluate(AXE_RUN, WCAG_TAGS)
            assert result["passed"] > 0, f"axe-core checked nothing on {saved.name}: {result}"
            for v in result["violations"]:
                targets = "; ".join(f"{n['target']}" for n in v["nodes"][:5])
                more = f" (+{len(v['nodes']) - 5} more)" if len(v["nodes"]) > 5 else ""
                summary = (v["nodes"][0]["summary"] or "").replace("\n", " ") if v["nodes"] else ""
                also = f" (also {', '.join(p.name for p in same)})" if same else ""
                found.append(f"{saved.name}{also} ({saved.status} for {saved.path}): {v['id']} [{v['impact']}] "
                             f"{v['help']}\n    at {targets}{more}\n    {summary}")
    finally:
        viewer.close()
    assert not found, (f"axe-core found {len(found)} WCAG A/AA violations on {len(alike)} distinct pages "
                       f"(saved in {OUTPUT}):\n" + "\n".join(found))


NARROW = ("list-", "new-form", "edit-form", "delete-form", "member", "index")


def test_no_sideways_scrolling_at_360_pixels(pages: list[Saved], browser: Any) -> None:
    viewer = Viewer(browser, viewport={"width": 360, "height": 740}, device_scale_factor=2,
                    is_mobile=True, has_touch=True)
    wide: list[str] = []
    checked = 0
    try:
        for saved in pages:
            if saved.server != "run" or not saved.state.startswith(NARROW):
                continue
            page = viewer.show(saved)
            width, inner, culprits = page.evaluate("""() => {
                const inner = window.innerWidth;
                const culprits = [...document.querySelectorAll("body *")]
                    .filter(e => e.getBoundingClientRect().right > inner + 0.5)
                    .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
                                          + (e.className ? "." + String(e.className).split(" ").join(".") : ""));
                return [document.scrollingElement.scrollWidth, inner, culprits];
            }""")
            checked += 1
            if width > inner:
                wide.append(f"{saved.name}: scrollWidth {width} > innerWidth {inner}; wider: {', '.join(culprits)}")
    finally:
        viewer.close()
    assert checked >= 30, f"only {checked} list and form pages were checked"
    assert not wide, "pages scroll sideways at 360 px:\n" + "\n".join(wide)

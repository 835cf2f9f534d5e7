"""The scaffolded pages in a real browser: headless Chromium against `robaccia-admin run`.

Each template engine gets one project (built once per module) with several
model views, so that no test depends on another's rows and no page depends
on the view being called "employees". Screenshots go to
tests/output/screenshots/<engine>-*.png for people to look at.

Chromium is Debian's (/usr/bin/chromium); Playwright never downloads one.
Without it (or without playwright) the tests skip, unless
ROBACCIA_REQUIRE_SERVICES=1 makes that a failure.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import support

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
ENGINES = ["genshi", "jinja2"]
SCREENSHOTS = Path(__file__).resolve().parent / "output" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

THING_FIELDS = ["name:string:required", "notes:text", "active:boolean", "started:date"]
GADGET_FIELDS = ["name:string:40:required", "notes:text", "active:boolean", "started:date",
                 "seen:datetime", "price:decimal", "rating:float", "count:integer"]
# view name -> fields
VIEWS = {
    "employees": support.EMPLOYEE_FIELDS,
    "staff": support.EMPLOYEE_FIELDS,    # paging
    "crew": support.EMPLOYEE_FIELDS,     # sorting
    "nobody": support.EMPLOYEE_FIELDS,   # stays empty
    "things": THING_FIELDS,              # checkbox, date, textarea
    "gadgets": GADGET_FIELDS,            # every input type, plus an Enum select
}


# --- the browser and the projects -------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        support.missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        support.missing("the playwright package is not installed")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@dataclass
class Site:
    engine: str
    root: Path
    base: str


def _add_enum_column(model: Path) -> None:
    """Give a generated model an Enum column (the CLI has no enum type)."""
    text = model.read_text()
    text = text.replace("from sqlalchemy import ", "from sqlalchemy import Enum, ", 1)
    body = text.rstrip()
    assert body.endswith(")"), text
    model.write_text(body[:-1] + "    Column('size', Enum('small', 'large', name='size')),\n)\n")


def _build(parent: Path, engine: str) -> Path:
    return support.make_project(parent, engine, views=VIEWS, cli=True, createdb=True,
                                edit=lambda root: _add_enum_column(root / "models" / "gadgets.py"))


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Site]]:
    """Build and serve a project per engine (both at once, on first use); give them out by name."""
    built: dict[str, Site] = {}
    with contextlib.ExitStack() as stack:
        def get(engine: str) -> Site:
            if not built:
                parents = {e: tmp_path_factory.mktemp(e) for e in ENGINES}
                with ThreadPoolExecutor(len(ENGINES)) as pool:
                    roots = list(pool.map(_build, parents.values(), ENGINES))
                for e, root in zip(ENGINES, roots, strict=True):
                    built[e] = Site(e, root, stack.enter_context(support.served(root)).base)
            return built[engine]

        yield get


@pytest.fixture(params=ENGINES)
def site(request: pytest.FixtureRequest, sites: Callable[[str], Site]) -> Site:
    return sites(str(request.param))


@pytest.fixture
def tabs(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open pages on a site; afterwards check that no request left it.

    Every HTML document the browser got must carry the security headers, and
    every request must go to the site itself (no CDN fonts, no analytics).
    """
    opened: list[tuple[Any, str, list[str], list[Any]]] = []

    def new(base: str, context: Any = None, **options: Any) -> Any:
        if context is None:
            options.setdefault("viewport", DESKTOP)
            context = browser.new_context(base_url=base, **options)
            context.set_default_timeout(10_000)
            urls: list[str] = []
            documents: list[Any] = []
            context.on("request", lambda r: urls.append(r.url))
            context.on("response", lambda r: documents.append(r)
                       if r.request.resource_type == "document" else None)
            opened.append((context, base, urls, documents))
        return context.new_page()

    yield new
    try:
        for _, base, urls, documents in opened:
            outside = [u for u in urls if not u.startswith(base + "/")]
            assert not outside, f"requests left {base}: {outside}"
            for response in documents:
                headers = response.all_headers()
                assert headers.get("x-frame-options") == "DENY", response.url
                assert headers.get("x-content-type-options") == "nosniff", response.url
                assert headers.get("referrer-policy"), response.url
    finally:
        for context, *_ in opened:
            context.close()


# --- helpers ----------------------------------------------------------------------


def create(site: Site, view: str, **values: Any) -> int:
    """Create a row with a JSON POST (no CSRF token needed); return its id."""
    http = support.Client(site.base, keep_cookies=False)
    response = http.request("POST", f"/{view}/", json_body=values)
    assert response.status in (201, 303), response.body
    return int(str(response.header("Location")).rstrip("/").rsplit("/", 1)[1])


def submit(page: Any, locator: Any) -> Any:
    """Click a submit button or link; return the final document response."""
    with page.expect_navigation() as navigation:
        locator.click()
    return navigation.value


def table_rows(page: Any) -> list[list[str]]:
    return page.eval_on_selector_all(
        "table tbody tr", "trs => trs.map(tr => [...tr.cells].map(c => c.innerText.trim()))")


def column(page: Any, label: str) -> list[str]:
    heads = header_texts(page)
    index = heads.index(label)
    return [row[index] for row in table_rows(page)]


def header_texts(page: Any) -> list[str]:
    return page.eval_on_selector_all("table thead th", "ths => ths.map(th => th.innerText.trim())")


def record(page: Any) -> dict[str, str]:
    """The member page's dl as {label: value}."""
    pairs = page.eval_on_selector_all(
        "dl.record dt",
        "dts => dts.map(dt => [dt.innerText.trim(), dt.nextElementSibling.innerText])")
    return dict(pairs)


def field(page: Any, label: str) -> Any:
    """The control labelled ``label`` (a required one's label ends with an aria-hidden *)."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}( \*)?$"))


def flash_text(page: Any) -> str:
    return " ".join(page.locator(".flash").all_inner_texts())


def screenshot(page: Any, site: Site, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{site.engine}-{name}.png"), full_page=True)


_LABEL_PROBLEMS = """() => {
  const problems = [];
  const ids = new Set();
  for (const el of document.querySelectorAll('[id]')) {
    if (ids.has(el.id)) problems.push('duplicate id ' + el.id);
    ids.add(el.id);
  }
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!el.id) { problems.push('no id on ' + el.name); continue; }
    const labels = document.querySelectorAll('label[for="' + CSS.escape(el.id) + '"]');
    if (labels.length !== 1) problems.push(labels.length + ' labels for ' + el.id);
    else if (!labels[0].textContent.trim()) problems.push('empty label for ' + el.id);
  }
  for (const label of document.querySelectorAll('label')) {
    const target = label.htmlFor ? document.getElementById(label.htmlFor) : null;
    if (!target || !['INPUT', 'SELECT', 'TEXTAREA'].includes(target.tagName))
      problems.push('label without a control: ' + label.textContent.trim());
  }
  for (const form of document.querySelectorAll('form')) {
    const token = form.querySelector('input[type=hidden][name=_csrf]');
    if (form.method.toLowerCase() === 'post' && !(token && token.value))
      problems.push('post form without a CSRF token: ' + form.action);
  }
  return problems;
}"""

_CONTRAST_PROBLEMS = """() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = c => {
    const [r, g, b] = c.slice(0, 3).map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c;
    }
    return [255, 255, 255];
  };
  const problems = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const fg = rgb(getComputedStyle(el).color), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < 4.5)
      problems.push(`${el.tagName} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return problems;
}"""


def check_page(page: Any) -> None:
    """Every page: styled by the project's own sheet, labels match controls, forms
    carry a token, text has contrast."""
    sheets = page.evaluate("() => [...document.styleSheets].map(s => [s.href, s.cssRules.length])")
    origin = page.evaluate("location.origin")
    assert [href for href, _ in sheets] == [origin + "/static/robaccia.css"]
    assert sheets[0][1] > 20
    assert page.evaluate(_LABEL_PROBLEMS) == []
    assert page.evaluate(_CONTRAST_PROBLEMS) == []


_CONTROLS = """() => [...document.querySelectorAll('input, select, textarea, button')].map(el => [
  el.tagName.toLowerCase(), el.getAttribute('type') || '', el.name || '', el.id || '',
  !!el.required, el.getAttribute('maxlength') || '', el.getAttribute('step') || '',
  el.type === 'checkbox' ? String(el.checked) : (el.name === '_csrf' ? '(token)' : el.value),
  el.tagName === 'SELECT' ? [...el.options].map(o => o.value + '=' + o.text).join('|') : '',
  el.getAttribute('aria-describedby') || '', el.getAttribute('aria-invalid') || ''])"""


def controls(page: Any) -> list[tuple[Any, ...]]:
    return [tuple(c) for c in page.evaluate(_CONTROLS)]


def visible_text(page: Any) -> list[str]:
    lines = (re.sub(r"\s+", " ", line).strip() for line in page.inner_text("body").splitlines())
    return [line for line in lines if line]


def error_beside(page: Any, control: str) -> str:
    """The error message tied to a control: its aria-describedby target, in its .field."""
    return page.eval_on_selector(control, """el => {
      const id = el.getAttribute('aria-describedby');
      const message = id && document.getElementById(id);
      if (!message || el.getAttribute('aria-invalid') !== 'true') return '';
      if (message.closest('.field') !== el.closest('.field')) return 'outside its field';
      return message.innerText.trim();
    }""")


# --- the whole story ----------------------------------------------------------------


def test_create_edit_delete_story(site: Site, tabs: Callable[..., Any]) -> None:
    # no JavaScript at all: every step is plain links and forms
    page = tabs(site.base, java_script_enabled=False)
    page.goto("/employees/")
    page.get_by_role("link", name="New", exact=True).click()
    page.wait_for_url(re.compile(r"/employees/;new_form$"))
    cookie = {c["name"]: c for c in page.context.cookies()}["robaccia_csrf"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    field(page, "Name").fill("Ada Lovelace")
    field(page, "Title").fill("Analyst")
    field(page, "Office number").fill("101")
    response = submit(page, page.get_by_role("button", name="Create"))
    assert response.status == 200
    match = re.search(r"/employees/(\d+)$", page.url)
    assert match, page.url
    pk = match.group(1)
    assert f"Employee {pk} was created." in flash_text(page)
    assert record(page) == {"Id": pk, "Name": "Ada Lovelace", "Title": "Analyst",
                            "Office number": "101"}

    # the list shows the row; the flash was shown once only
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="Employees").click()
    page.wait_for_url(re.compile(r"/employees/$"))
    assert flash_text(page) == ""
    assert ["Id", "Name", "Title", "Office number"] == header_texts(page)
    assert [pk, "Ada Lovelace", "Analyst", "101"] in table_rows(page)

    # open the row, edit one field
    page.locator(f'table a[href="/employees/{pk}"]').click()
    page.wait_for_url(re.compile(rf"/employees/{pk}$"))
    page.get_by_role("link", name="Edit").click()
    page.wait_for_url(re.compile(rf"/employees/{pk};edit_form$"))
    assert field(page, "Name").input_value() == "Ada Lovelace"
    field(page, "Title").fill("Countess")
    response = submit(page, page.get_by_role("button", name="Save"))
    assert response.status == 200 and page.url.endswith(f"/employees/{pk}")
    assert f"Employee {pk} was saved." in flash_text(page)
    assert record(page)["Title"] == "Countess"

    # delete: a confirmation page, then a POST form with _method=DELETE
    page.get_by_role("link", name="Delete").click()
    page.wait_for_url(re.compile(rf"/employees/{pk};delete_form$"))
    form = page.locator("main form")
    assert form.get_attribute("method") == "post"
    assert form.locator('input[name="_method"]').get_attribute("value") == "DELETE"
    assert "Countess" in page.inner_text("main")
    response = submit(page, page.get_by_role("button", name="Delete"))
    assert response.status == 200 and page.url.endswith("/employees/")
    assert f"Employee {pk} was deleted." in flash_text(page)
    assert page.locator(f'a[href="/employees/{pk}"]').count() == 0
    assert page.goto(f"/employees/{pk}").status == 404


def test_bad_value_is_shown_beside_its_field(site: Site, tabs: Callable[..., Any]) -> None:
    create(site, "employees", name="Existing", office_number=7)
    page = tabs(site.base)
    page.goto("/employees/")
    before = table_rows(page)
    page.get_by_role("link", name="New", exact=True).click()
    page.wait_for_url(re.compile(r";new_form$"))
    # a browser without number inputs: the field takes any text
    page.eval_on_selector("#f-office_number", "el => el.type = 'text'")
    field(page, "Name").fill("Bob")
    field(page, "Title").fill("Clerk")
    field(page, "Office number").fill("12a")
    response = submit(page, page.get_by_role("button", name="Create"))
    assert response.status == 422
    assert page.url.endswith("/employees/")
    assert error_beside(page, "#f-office_number") == "Enter a whole number."
    assert page.locator("#f-office_number").input_value() == "12a"
    assert page.locator("#f-name").input_value() == "Bob"
    assert page.locator("#f-title").input_value() == "Clerk"
    assert error_beside(page, "#f-name") == ""
    assert page.get_by_role("alert").count() == 1
    check_page(page)
    screenshot(page, site, "form-error")

    # a missing required value, the same way
    field(page, "Name").fill("")
    field(page, "Office number").fill("12")
    assert submit(page, page.get_by_role("button", name="Create")).status == 422
    assert error_beside(page, "#f-name") == "This field is required."
    assert error_beside(page, "#f-office_number") == ""
    assert page.locator("#f-office_number").input_value() == "12"

    page.goto("/employees/")
    assert table_rows(page) == before


def test_forged_form_is_refused(site: Site, tabs: Callable[..., Any]) -> None:
    page = tabs(site.base)
    page.goto("/nobody/;new_form")
    page.eval_on_selector('input[name="_csrf"]', "el => el.value = 'forged'")
    field(page, "Name").fill("Mallory")
    assert submit(page, page.get_by_role("button", name="Create")).status == 403
    page.goto("/nobody/")
    assert page.locator("table").count() == 0
    # and a form posted from another site, even with a token, is refused
    token = page.goto("/nobody/;new_form") and page.get_attribute('input[name="_csrf"]', "value")
    http = support.Client(site.base, keep_cookies=False)
    response = http.request("POST", "/nobody/", f"_csrf={token}&name=Eve", {
        "Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"})
    assert response.status == 403


# --- lists: empty, sorting, paging ------------------------------------------------------


def test_empty_collection_says_so_and_points_to_new(site: Site, tabs: Callable[..., Any]) -> None:
    page = tabs(site.base)
    page.goto("/nobody/")
    assert page.locator("table").count() == 0
    empty = page.locator(".empty")
    assert "Nothing here yet" in empty.inner_text()
    check_page(page)
    screenshot(page, site, "empty")
    empty.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/nobody/;new_form$"))
    assert page.get_by_role("heading", level=1).inner_text() == "New nobody"


def test_sorting_by_clicking_headers(site: Site, tabs: Callable[..., Any]) -> None:
    people = [("Carla", "Chef", 3), ("Alice", "Admin", 5), ("Eve", "Engineer", 1),
              ("Bob", "Baker", 4), ("Dan", "Driver", 2)]
    for name, title, office in people:
        create(site, "crew", name=name, title=title, office_number=office)
    page = tabs(site.base)
    page.goto("/crew/")
    assert column(page, "Name") == ["Carla", "Alice", "Eve", "Bob", "Dan"]
    assert page.locator('th[aria-sort="ascending"]').inner_text().strip() == "Id"

    page.get_by_role("link", name="Name", exact=True).click()
    page.wait_for_url(re.compile(r"sort=name$"))
    assert column(page, "Name") == ["Alice", "Bob", "Carla", "Dan", "Eve"]
    assert page.locator('th[aria-sort="ascending"]').inner_text().strip() == "Name"

    page.get_by_role("link", name="Name", exact=True).click()
    page.wait_for_url(re.compile(r"sort=-name$"))
    assert column(page, "Name") == ["Eve", "Dan", "Carla", "Bob", "Alice"]
    assert page.locator('th[aria-sort="descending"]').inner_text().strip() == "Name"

    page.get_by_role("link", name="Office number", exact=True).click()
    page.wait_for_url(re.compile(r"sort=office_number$"))
    assert column(page, "Office number") == ["1", "2", "3", "4", "5"]
    assert column(page, "Name") == ["Eve", "Dan", "Carla", "Bob", "Alice"]
    check_page(page)


def test_paging_next_and_previous(site: Site, tabs: Callable[..., Any]) -> None:
    order = [(i * 37) % 60 for i in range(60)]  # created out of name order
    for i in order:
        create(site, "staff", name=f"Person {i:02d}", office_number=i)
    page = tabs(site.base)
    page.goto("/staff/")
    first = table_rows(page)
    assert len(first) == 50
    assert page.locator('a[rel="prev"]').count() == 0
    page.locator('a[rel="next"]').click()
    page.wait_for_url(re.compile(r"after="))
    second = table_rows(page)
    assert len(second) == 10
    assert page.locator('a[rel="next"]').count() == 0
    ids = [int(r[0]) for r in first + second]
    assert ids == sorted(ids) and len(set(ids)) == 60
    screenshot(page, site, "list-last-page")
    page.locator('a[rel="prev"]').click()
    page.wait_for_url(re.compile(r"before="))
    assert table_rows(page) == first
    assert page.locator('a[rel="prev"]').count() == 0

    # paging keeps the sort
    page.get_by_role("link", name="Name", exact=True).click()
    page.wait_for_url(re.compile(r"sort=name$"))
    names = column(page, "Name")
    page.locator('a[rel="next"]').click()
    page.wait_for_url(re.compile(r"after="))
    names += column(page, "Name")
    assert names == [f"Person {i:02d}" for i in range(60)]
    check_page(page)


# --- forms follow the column types ------------------------------------------------------


def test_checkbox_date_and_textarea(site: Site, tabs: Callable[..., Any]) -> None:
    page = tabs(site.base)
    page.goto("/things/;new_form")
    check_page(page)
    assert page.eval_on_selector("#f-notes", "el => el.tagName") == "TEXTAREA"
    assert page.get_attribute("#f-active", "type") == "checkbox"
    assert page.get_attribute("#f-started", "type") == "date"
    assert page.locator("#f-name").evaluate("el => el.required")
    field(page, "Name").fill("Widget")
    field(page, "Notes").fill("line one\nline two")
    field(page, "Started").fill("2024-03-05")
    assert not field(page, "Active").is_checked()
    assert submit(page, page.get_by_role("button", name="Create")).status == 200
    assert record(page) == {"Id": page.url.rsplit("/", 1)[1], "Name": "Widget",
                            "Notes": "line one\nline two", "Active": "No", "Started": "2024-03-05"}

    page.get_by_role("link", name="Edit").click()
    page.wait_for_url(re.compile(r";edit_form$"))
    assert field(page, "Started").input_value() == "2024-03-05"
    assert field(page, "Notes").input_value() == "line one\nline two"
    field(page, "Active").check()
    submit(page, page.get_by_role("button", name="Save"))
    assert record(page)["Active"] == "Yes"

    page.get_by_role("link", name="Edit").click()
    page.wait_for_url(re.compile(r";edit_form$"))
    assert field(page, "Active").is_checked()
    field(page, "Active").uncheck()
    submit(page, page.get_by_role("button", name="Save"))
    assert record(page)["Active"] == "No"


def test_inputs_are_typed_from_the_columns(site: Site, tabs: Callable[..., Any]) -> None:
    page = tabs(site.base)
    page.goto("/gadgets/;new_form")
    check_page(page)
    shown = [(c[0], c[1], c[2], c[4], c[5], c[6]) for c in controls(page)]
    assert shown == [
        ("input", "hidden", "_csrf", False, "", ""),
        ("input", "text", "name", True, "40", ""),
        ("textarea", "", "notes", False, "", ""),
        ("input", "checkbox", "active", False, "", ""),
        ("input", "date", "started", False, "", ""),
        ("input", "datetime-local", "seen", False, "", "1"),
        ("input", "number", "price", False, "", "0.01"),
        ("input", "number", "rating", False, "", "any"),
        ("input", "number", "count", False, "", "1"),
        ("select", "", "size", False, "", ""),
        ("button", "submit", "", False, "", ""),
    ]
    assert page.eval_on_selector("#f-size", "el => [...el.options].map(o => o.value)") == [
        "", "small", "large"]
    screenshot(page, site, "form-types")


# --- two tabs edit the same row ------------------------------------------------------------


def test_second_save_of_a_stale_form_is_a_conflict(site: Site, tabs: Callable[..., Any]) -> None:
    pk = create(site, "employees", name="Grace", title="Admiral", office_number=9)
    first = tabs(site.base)
    second = tabs(site.base, first.context)  # two tabs of one browser
    for tab in (first, second):
        tab.goto(f"/employees/{pk};edit_form")

    field(first, "Title").fill("Rear admiral")
    assert submit(first, first.get_by_role("button", name="Save")).status == 200
    assert record(first)["Title"] == "Rear admiral"

    field(second, "Title").fill("Commodore")
    assert submit(second, second.get_by_role("button", name="Save")).status == 409
    assert "Someone else changed this row" in second.get_by_role("alert").inner_text()
    assert field(second, "Title").input_value() == "Rear admiral"
    check_page(second)
    screenshot(second, site, "conflict")

    first.goto(f"/employees/{pk}")
    assert record(first)["Title"] == "Rear admiral"

    # the conflict page is a fresh form: making the change again works
    field(second, "Title").fill("Commodore")
    assert submit(second, second.get_by_role("button", name="Save")).status == 200
    assert record(second)["Title"] == "Commodore"


# --- how it looks -------------------------------------------------------------------


def test_screenshots_phone_and_focus(site: Site, tabs: Callable[..., Any]) -> None:
    rows = [("Margaret Hamilton", "Director of software engineering", 210),
            ("Katherine Johnson", "Mathematician", 12), ("Alan Turing", None, None),
            ("Grace Hopper", "Rear admiral", 5)]
    pks = [create(site, "employees", name=n, title=t, office_number=o) for n, t, o in rows]
    page = tabs(site.base)
    page.goto("/employees/")
    check_page(page)
    screenshot(page, site, "list")

    # keyboard focus is visible
    page.keyboard.press("Tab")
    outline = page.evaluate("() => { const s = getComputedStyle(document.activeElement); "
                            "return [s.outlineStyle, parseFloat(s.outlineWidth)]; }")
    assert outline[0] != "none" and outline[1] >= 2, outline
    page.focus("table tbody a")
    page.keyboard.press("Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") != "none"

    page.goto(f"/employees/{pks[0]}")
    check_page(page)
    screenshot(page, site, "member")
    page.goto("/")
    check_page(page)
    screenshot(page, site, "home")
    page.goto(f"/employees/{pks[0]};delete_form")
    check_page(page)
    screenshot(page, site, "delete")
    page.goto(f"/employees/{pks[0]};edit_form")
    check_page(page)
    screenshot(page, site, "edit")

    phone = tabs(site.base, viewport=PHONE, is_mobile=True, has_touch=True)
    for path, name in (("/employees/", "list-phone"),
                       (f"/employees/{pks[0]};edit_form", "edit-phone")):
        phone.goto(path)
        # nothing wider than the screen: a wide table scrolls inside its own box
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(phone, site, name)


# --- both engines give the same pages ----------------------------------------------------


def _snapshot(page: Any) -> dict[str, Any]:
    return {"url": page.url.split("/", 3)[3], "title": page.title(), "text": visible_text(page),
            "controls": controls(page), "headers": header_texts(page)}


def _walk(site: Site, tabs: Callable[..., Any]) -> list[dict[str, Any]]:
    """Visit every kind of page once, the same way, and describe each."""
    page = tabs(site.base)
    shots = []
    page.goto("/")
    shots.append(_snapshot(page))
    page.goto("/gadgets/")
    shots.append(_snapshot(page))
    page.goto("/gadgets/;new_form")
    shots.append(_snapshot(page))
    for control in ("#f-count", "#f-started"):
        page.eval_on_selector(control, "el => el.type = 'text'")
    page.fill("#f-count", "many")
    page.fill("#f-started", "soon")
    page.fill("#f-notes", "<b>not bold</b> & fine")
    page.select_option("#f-size", "large")
    page.check("#f-active")
    submit(page, page.get_by_role("button", name="Create"))
    shots.append(_snapshot(page))
    page.fill("#f-name", "Gizmo")
    page.fill("#f-count", "3")
    page.fill("#f-started", "2024-02-29")
    page.fill("#f-seen", "2024-02-29T13:45")
    page.fill("#f-price", "9.99")
    page.fill("#f-rating", "4.5")
    submit(page, page.get_by_role("button", name="Create"))
    shots.append(_snapshot(page))
    page.goto("/gadgets/")
    shots.append(_snapshot(page))
    page.locator("table tbody a").first.click()
    page.wait_for_url(re.compile(r"/gadgets/\d+$"))
    member = page.url
    page.get_by_role("link", name="Edit").click()
    page.wait_for_url(re.compile(r";edit_form$"))
    shots.append(_snapshot(page))
    page.eval_on_selector("#f-price", "el => el.type = 'text'")
    page.fill("#f-price", "1.234")
    submit(page, page.get_by_role("button", name="Save"))
    shots.append(_snapshot(page))
    page.goto(member)
    page.get_by_role("link", name="Delete").click()
    page.wait_for_url(re.compile(r";delete_form$"))
    shots.append(_snapshot(page))
    submit(page, page.get_by_role("button", name="Delete"))
    shots.append(_snapshot(page))
    return shots


def test_both_engines_render_the_same_pages(sites: Callable[[str], Site],
                                            tabs: Callable[..., Any]) -> None:
    genshi, jinja2 = (_walk(sites(engine), tabs) for engine in ENGINES)
    assert len(genshi) == len(jinja2)
    for one, other in zip(genshi, jinja2, strict=True):
        assert one == other
    # the walk saw what it meant to: an error page, a row, a deletion
    assert any("Enter a whole number." in shot["text"] for shot in genshi)
    assert any("Gadget 1 was deleted." in shot["text"] for shot in genshi)
    assert genshi[1]["headers"] == [] and genshi[5]["headers"] == [
        "Id", "Name", "Notes", "Active", "Started", "Seen", "Price", "Rating", "Count", "Size"]


def test_error_pages_are_styled(site: Site, tabs: Callable[..., Any]) -> None:
    page = tabs(site.base)
    blocked: list[str] = []
    page.on("console",
            lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    assert page.goto("/employees/999999").status == 404
    assert blocked == []
    # the project stylesheet applies (error pages link it; inline styles would be blocked)
    assert page.eval_on_selector("main", "m => getComputedStyle(m).maxWidth") != "none"

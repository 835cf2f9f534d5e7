"""Security battery, rendering: stored XSS, Content-Type, redirects and headers built from ids.

Runs once per template engine (genshi, jinja2) against a scaffolded project
served by ``robaccia-admin serve`` (debug off). An XSS payload "worked" when
the parsed page has an element, attribute, comment or URL that the same page
with a benign value does not have.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit

import pytest
from security_support import (
    AUDIT,
    Site,
    build_project,
    raw_exchange,
    record_audit,
    record_figure,
    request_bytes,
    serving,
)
from support import Response, first_difference, page_text, shape

from robaccia.paging import Cursor

XSS = [
    "<script>alert(1)</script>",
    '"><script>alert(1)</script>',
    "'><img src=x onerror=alert(1)>",
    "<img src=x onerror=alert(1)>",
    '" onmouseover="alert(1)',
    "' onmouseover='alert(1)",
    "x onmouseover=alert(1)",
    "<svg/onload=alert(1)>",
    "javascript:alert(1)",
    " javascript:alert(1)",
    "</textarea><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "</option></select><script>alert(1)</script>",
    "<!--",
    "--><script>alert(1)</script>",
    "<![CDATA[<script>alert(1)</script>]]>",
    "${7*7}",
    "{{7*7}}",
    "{% if 1 %}x{% endif %}",
    '<py:if test="True">x</py:if>',
    '<xi:include href="/etc/passwd"/>',
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=//evil.example>",
    "<scr<script>ipt>alert(1)</script>",
    "<style>*{background:url(//evil.example)}</style>",
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    "<body onload=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    '<meta http-equiv="refresh" content="0;url=//evil.example">',
    '<base href="//evil.example/">',
    "<form action=//evil.example><button>x</button></form>",
    "\u2028<script>alert(1)</script>\u2029",
    "\ufeff<script>alert(1)</script>",
    "<ScRiPt>alert(1)</sCrIpT>",
    "<<script>>alert(1)<</script>>",
    "` onmouseover=alert(1) `",
]
BENIGN = "benign value"
HTML_TYPE = "text/html; charset=utf-8"


@pytest.fixture(scope="module", params=["genshi", "jinja2"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    project = build_project(tmp_path_factory.mktemp(f"render-{request.param}"), request.param)
    with serving(project, "serve") as served_site:
        yield served_site
    record_audit()


def created_id(response: Response) -> str:
    assert response.status == 303, (response.status, response.text[:500])
    location = response.header("Location")
    assert location is not None
    return location.rsplit("/", 1)[1]


def assert_html(response: Response, status: int = 200) -> Response:
    assert response.status == status, (response.status, response.text[:500])
    assert response.header("Content-Type") == HTML_TYPE
    assert response.header("X-Content-Type-Options") == "nosniff"
    return response


def test_stored_xss_int_view(site: Site) -> None:
    """Payloads in every text column: list, member, edit and delete pages, and the 422 form."""
    browser = site.client()
    view = site.view("html")
    base = f"/{view}/"

    def create(value: str) -> int:
        return int(
            created_id(
                browser.request(
                    "POST",
                    base,
                    csrf=True,
                    form={"name": value, "title": value, "office_number": "1"},
                )
            )
        )

    reference = create(BENIGN)
    rows = [(payload, create(payload)) for payload in XSS]
    create(BENIGN)  # every payload row has a next row, like the reference
    browser.request("GET", base)  # shows (and so clears) the last flash message

    def pages(id: int) -> dict[str, bytes]:
        out = {}
        for name, path in (
            ("list", f"{base}?{urlencode({'after': Cursor(id - 1, 1).encode(), 'limit': 1})}"),
            ("member", f"{base}{id}"),
            ("edit", f"{base}{id};edit_form"),
            ("delete", f"{base}{id};delete_form"),
        ):
            out[name] = assert_html(browser.request("GET", path)).body
        return out

    expected = {name: shape(body) for name, body in pages(reference).items()}
    injected: list[str] = []
    checked = 0
    for payload, id in rows:
        for name, body in pages(id).items():
            checked += 1
            items, urls = shape(body)
            if items != expected[name][0] or [_digits(u) for u in urls] != [
                _digits(u) for u in expected[name][1]
            ]:
                injected.append(f"{name} {payload!r}: {first_difference(items, expected[name][0])}")
            if name == "member" and payload not in page_text(body):
                injected.append(f"{name} {payload!r}: not shown literally")
    # The form shown again after a validation error repeats what was typed.
    bad = {"name": BENIGN, "title": BENIGN, "office_number": BENIGN}
    reference_422 = shape(assert_html(browser.request("POST", base, form=bad, csrf=True), 422).body)
    for payload in XSS:
        response = assert_html(
            browser.request(
                "POST",
                base,
                csrf=True,
                form={"name": payload, "title": payload, "office_number": payload},
            ),
            422,
        )
        checked += 1
        if shape(response.body) != reference_422:
            injected.append(
                f"422 form {payload!r}: "
                f"{first_difference(shape(response.body)[0], reference_422[0])}"
            )
    record_figure(
        f"xss_{site.project.engine}",
        payloads=len(XSS),
        pages_checked=checked,
        injected=len(injected),
        summary=f"{site.project.engine}: {len(XSS)} stored payloads x (list, member, edit, delete "
        f"pages, 422 form) = {checked} pages, {len(injected)} with an injected element, "
        "attribute or URL",
    )
    assert not injected, "\n".join(injected[:10])


def _digits(url: str) -> str:
    """A URL with its numbers and page cursors (which carry them) made alike."""
    return re.sub(r"[0-9]+", "N", re.sub(r"\b(after|before)=[^&]*", r"\1=C", url))


def _rows_of(items: list[tuple[str, ...]]) -> list[list[tuple[str, ...]]]:
    """Split the tbody of a list page into its rows."""
    start = items.index(("tbody",))
    end = items.index(("/tbody",))
    rows: list[list[tuple[str, ...]]] = []
    for item in items[start + 1 : end]:
        if item == ("tr",):
            rows.append([])
        rows[-1].append(item)
    return rows


def _flash_segment(
    with_flash: list[tuple[str, ...]], without: list[tuple[str, ...]]
) -> list[tuple[str, ...]]:
    """What a page with a flash message has that the same page without it does not."""
    pairs = enumerate(zip(with_flash, without, strict=False))
    i = next((n for n, (a, b) in pairs if a != b), len(without))
    extra = len(with_flash) - len(without)
    segment = with_flash[i : i + extra]
    assert with_flash[:i] + segment + with_flash[i + extra :] == with_flash
    if without[:i] + segment + without[i:] != with_flash:
        return [("mismatch",)]
    return segment


def test_stored_xss_in_string_ids_and_flash(site: Site) -> None:
    """Payloads as primary keys: refused (a key is part of the address), and the form that
    says so shows them inert; addressable keys appear in list links and flash messages."""
    browser = site.client()
    view = site.view("skey")
    base = f"/{view}/"
    listing = f"{base}?limit=500"
    injected: list[str] = []
    segments = []
    for value in [f"benign-{n}" for n in range(3)]:
        response = browser.request("POST", base, csrf=True, form={"id": value, "label": value})
        assert response.status == 303, (value, response.status, response.text[:300])
        assert response.header("Location") == base + quote(value, safe="-._~")
        with_flash = shape(assert_html(browser.request("GET", listing)).body)[0]
        without = shape(assert_html(browser.request("GET", listing)).body)[0]
        segments.append((value, _flash_segment(with_flash, without)))
    for value, segment in segments[1:]:
        if segment != segments[0][1]:
            injected.append(f"flash {value!r}: {segment} != {segments[0][1]}")
    reference = browser.request("POST", base, csrf=True, form={"id": "not addressable", "label": "x"})
    assert reference.status == 422
    reference_shape = shape(assert_html(reference, 422).body)[0]
    for value in XSS:
        response = browser.request("POST", base, csrf=True, form={"id": value, "label": "x"})
        items = shape(assert_html(response, 422).body)[0]
        if [i[:2] for i in items] != [i[:2] for i in reference_shape]:
            injected.append(f"422 form for {value!r}: {first_difference(items, reference_shape)}")
    body = assert_html(browser.request("GET", listing)).body
    items, urls = shape(body)
    rows = _rows_of(items)
    assert len(rows) == 3  # nothing of the refused keys was written
    for row in rows:
        if row != rows[0]:
            injected.append(f"list row: {first_difference(row, rows[0])}")
    for url in urls:
        if not (url.startswith("/") or url.startswith("?")) or url.startswith("//"):
            injected.append(f"list: link {url!r}")
    record_figure(
        f"xss_string_ids_{site.project.engine}",
        payloads=len(XSS),
        injected=len(injected),
        summary=f"{site.project.engine}: {len(XSS)} payloads sent as primary keys (refused with "
        f"422, echoed in the form) and keys in list links and flash messages: {len(injected)} "
        "injections",
    )
    assert not injected, "\n".join(injected[:10])


def test_content_type_always_right(site: Site) -> None:
    """Interleave HTML, JSON and error responses: each keeps its own Content-Type (A5)."""
    browser = site.client()
    html, json_view, jkey = site.view("html"), site.view("json"), site.view("jkey")
    created = browser.request("POST", f"/{json_view}/", json_body={"count": 1})
    assert created.status == 201
    counter = created.header("Location")
    member = created_id(browser.request("POST", f"/{html}/", csrf=True, form={"name": "<b>x</b>"}))
    xss_json = browser.request("POST", f"/{jkey}/", json_body={"id": "ct-1", "label": XSS[0]})
    assert xss_json.status == 201, xss_json.text
    checks = [
        ("GET", f"/{html}/", HTML_TYPE),
        ("GET", f"/{json_view}/", "application/json"),
        ("GET", f"/{html}/{member}", HTML_TYPE),
        ("GET", str(counter), "application/json"),
        ("GET", f"/{jkey}/ct-1", "application/json"),
        ("GET", f"/{html}/;new_form", HTML_TYPE),
        ("GET", f"/{json_view}/999999999", "application/problem+json"),
        ("GET", f"/{html}/999999999", HTML_TYPE),
        ("DELETE", f"/{json_view}/", "application/problem+json"),
        ("GET", "/nosuchview/", HTML_TYPE),
        ("GET", f"/{jkey}/", "application/json"),
    ]
    wrong = []
    total = 0
    for _ in range(5):
        for method, path, ctype in checks:
            response = browser.request(method, path, headers={"Accept": "text/html"})
            total += 1
            if (
                response.header("Content-Type") != ctype
                or response.header("X-Content-Type-Options") != "nosniff"
            ):
                wrong.append(
                    f"{method} {path}: {response.status} {response.header('Content-Type')}"
                )
            if (
                ctype == "application/json"
                and b"<script>" in response.body
                and path.endswith("ct-1")
            ):
                assert response.json()["label"] == XSS[0]
    record_figure(
        f"content_type_{site.project.engine}",
        responses=total,
        wrong=len(wrong),
        summary=f"{total} interleaved HTML/JSON/error responses, {len(wrong)} with the wrong "
        "Content-Type or without nosniff",
    )
    assert not wrong, wrong[:10]


# --- redirects and headers built from ids ------------------------------------------------------

HOSTILE_IDS = [
    "%0d%0aSet-Cookie:x=1",
    "%0D%0ASet-Cookie:%20x=1",
    "\r\nSet-Cookie: x=1",
    "\nX-Injected: 1",
    "\rX-Injected: 1",
    "\r\n\r\n<script>alert(1)</script>",
    "//evil.com",
    "///evil.com",
    "/\\evil",
    "\\\\evil.test",
    "\\/evil.test",
    " //evil.test",
    "\t//evil.test",
    "/\t/evil.test",
    "http:evil.test",
    "https://evil.test",
    "http://evil.test/",
    "//evil.com%2f..",
    "javascript:alert(1)",
    "@evil.test",
    "..",
    ".",
    "...",
    "?next=//evil.com",
    "#//evil.com",
    "%2F%2Fevil.com",
    "\u2028X-Injected: 1",
    "\u0085X-Injected: 1",
    "\u560d\u560aX-Injected: 1",
    "evil.test",
    ";edit_form",
    "~",
    "a/../../b",
    " ",
    "\x0bvt",
    "\x0cff",
]
EXPECTED_HEADERS = {
    "server",
    "date",
    "connection",
    "content-type",
    "content-length",
    "location",
    "etag",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "content-security-policy",
    "set-cookie",
    "cache-control",
    "vary",
    "link",
    "allow",
    "retry-after",
    "transfer-encoding",
}


def browser_resolve(base: str, location: str) -> str:
    """Resolve a Location the way a browser does (WHATWG URL, special scheme)."""
    value = location.strip("".join(chr(c) for c in range(0x21)))
    value = re.sub(r"[\t\n\r]", "", value).replace("\\", "/")
    return urljoin(base, value)


def header_problems(site: Site, headers: list[tuple[str, str]], raw: bytes) -> list[str]:
    problems = []
    for name, value in headers:
        if name.lower() not in EXPECTED_HEADERS:
            problems.append(f"unexpected header {name!r}")
        if name.lower() == "set-cookie" and not value.startswith(
            ("robaccia_csrf=", "robaccia_flash=")
        ):
            problems.append(f"foreign cookie {value!r}")
        if name.lower() in ("location", "link"):
            targets = [value] if name.lower() == "location" else re.findall(r"<([^>]*)>", value)
            for target in targets:
                resolved = browser_resolve(site.base + "/x/y", target)
                if urlsplit(resolved).netloc != urlsplit(site.base).netloc:
                    problems.append(f"off-site {name} {value!r} -> {resolved}")
    head = raw.partition(b"\r\n\r\n")[0]
    if re.search(rb"[^\r]\n|\r[^\n]|\r\n(X-Injected|Set-Cookie: ?x=)", head, re.I):
        problems.append("bare CR/LF or injected text in the header block")
    return problems


def test_redirects_and_headers_from_string_ids(site: Site) -> None:
    browser = site.client()
    token = browser.token
    html, jkey = site.view("skey"), site.view("jkey")
    problems: list[str] = []
    sent = 0
    server_errors = 0
    for value in HOSTILE_IDS:
        cookie = browser.cookie_header()
        form = urlencode({"id": value, "label": value, "_csrf": token}).encode()
        for data in (
            request_bytes(
                site,
                "POST",
                f"/{html}/",
                {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
                form,
            ),
            request_bytes(
                site,
                "POST",
                f"/{jkey}/",
                {"Content-Type": "application/json"},
                ('{"id": ' + _json_string(value) + ', "label": "x"}').encode(),
            ),
        ):
            result = raw_exchange(site, data, timeout=20)
            sent += 1
            assert result.status is not None and not result.timed_out, result.raw[:300]
            server_errors += result.status >= 500
            if result.status not in (201, 303, 409, 422):
                problems.append(f"{value!r}: status {result.status}")
            problems += [
                f"{value!r}: {p}" for p in header_problems(site, result.headers, result.raw)
            ]
    # Members whose id fits the URL: update and delete redirect too.
    for value in ("..", ".", "...", "~", "evil.test"):
        for method, form in (
            ("POST", {"_method": "PUT", "label": "y"}),
            ("POST", {"_method": "DELETE"}),
        ):
            response = browser.request(method, f"/{html}/{value}", form=form, csrf=True)
            sent += 1
            server_errors += response.status >= 500
            if response.status not in (303, 404):
                problems.append(f"{value!r} {form}: status {response.status}")
            problems += [f"{value!r}: {p}" for p in header_problems(site, response.headers, b"")]
    # The pager's Link header carries ids as cursors.
    for path in (f"/{jkey}/?limit=1", f"/{html}/?limit=1", f"/{jkey}/?limit=1&sort=-label"):
        after = None
        for _ in range(len(HOSTILE_IDS) + 5):
            response = browser.request("GET", path + (f"&after={quote(after)}" if after else ""))
            sent += 1
            server_errors += response.status >= 500
            problems += [f"{path}: {p}" for p in header_problems(site, response.headers, b"")]
            link = response.header("Link") or ""
            match = re.search(r"<([^>]*)>; rel=\"next\"", link)
            if not match:
                break
            after = dict(parse_qsl(urlsplit(match.group(1)).query))["after"]
    record_figure(
        f"redirects_and_headers_{site.project.engine}",
        requests=sent,
        hostile_ids=len(HOSTILE_IDS),
        problems=len(problems),
        server_errors=server_errors,
        summary=f"{len(HOSTILE_IDS)} hostile string ids through create (form and JSON), update, "
        f"delete and pager links, {sent} requests: {len(problems)} off-site Location/Link or "
        f"injected headers, {server_errors} 5xx",
    )
    assert not problems, "\n".join(problems[:20])
    assert server_errors == 0


def _json_string(value: str) -> str:
    import json

    return json.dumps(value)


def test_audit_so_far(site: Site) -> None:
    assert not AUDIT.leaks, AUDIT.leaks[:5]
    assert not AUDIT.server_errors, AUDIT.server_errors[:5]

"""The one HTML reader of the tests: what a page holds, and its shape."""

from __future__ import annotations

from html.parser import HTMLParser

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
_URL_ATTRIBUTES = ("href", "src", "action", "formaction")


class Page(HTMLParser):
    """An HTML page, read once.

    * ``inputs``: form controls by name (their attributes, ``value`` the
      control's value: a textarea's text, a select's selected option, the
      checked radio button);
    * ``ids``: the text inside each element with an id; ``attrs``: its attributes;
    * ``links``: ``<a rel=...>`` hrefs by rel;
    * ``text``: all the page's text;
    * ``items``: its structure, one entry per tag (name and sorted attribute
      names), end tag, comment, processing instruction or declaration;
      ``urls``: the values of its URL attributes (href, src, action, formaction).
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inputs: dict[str, dict[str, str | None]] = {}
        self.ids: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.links: dict[str, str] = {}
        self.items: list[tuple[str, ...]] = []
        self.urls: list[str] = []
        self._chunks: list[str] = []
        self._stack: list[tuple[str, tuple[str, str] | None]] = []
        self._select: str | None = None

    @property
    def text(self) -> str:
        return "".join(self._chunks)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.items.append((tag, *sorted(name for name, _ in attrs)))
        self.urls += [v for k, v in attrs if k in _URL_ATTRIBUTES and v is not None]
        a = dict(attrs)
        name = a.get("name")
        capture: tuple[str, str] | None = None
        if tag == "input" and name:
            if a.get("type") != "radio" or "checked" in a:
                self.inputs[name] = a
        elif tag == "textarea" and name:
            self.inputs[name] = dict(a, value="")
            capture = ("textarea", name)
        elif tag == "select" and name:
            self._select = name
            self.inputs[name] = dict(a, value=None)
        elif tag == "option" and self._select and "selected" in a:
            self.inputs[self._select]["value"] = a.get("value")
        if tag == "a" and a.get("rel"):
            self.links[str(a["rel"])] = str(a.get("href"))
        if a.get("id") and capture is None:
            self.ids[str(a["id"])] = ""
            self.attrs[str(a["id"])] = a
            capture = ("id", str(a["id"]))
        if tag not in _VOID:
            self._stack.append((tag, capture))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self._stack.pop()
        self.items.append(("/" + tag,))

    def handle_endtag(self, tag: str) -> None:
        self.items.append(("/" + tag,))
        if tag == "select":
            self._select = None
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        self._chunks.append(data)
        for _, capture in self._stack:
            if capture is None:
                continue
            kind, key = capture
            if kind == "id":
                self.ids[key] += data
            else:
                self.inputs[key]["value"] = (self.inputs[key]["value"] or "") + data

    def handle_comment(self, data: str) -> None:
        self.items.append(("<!--",))

    def handle_pi(self, data: str) -> None:
        self.items.append(("<?",))

    def unknown_decl(self, data: str) -> None:
        self.items.append(("<!",))


def read_page(body: bytes) -> Page:
    """Parse an HTML page (UTF-8): inputs by name, text and attributes by id, rel links."""
    page = Page()
    page.feed(body.decode("utf-8"))
    page.close()
    return page


def shape(body: bytes) -> tuple[list[tuple[str, ...]], list[str]]:
    """Return a page's element/attribute structure and its URL attributes."""
    page = read_page(body)
    return page.items, page.urls


def page_text(body: bytes) -> str:
    """All the text of a page, character references decoded, without its markup."""
    return read_page(body).text


def first_difference(a: list[tuple[str, ...]], b: list[tuple[str, ...]]) -> str:
    """Where two page shapes first differ."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"at {i}: {x} != {y}"
    return f"lengths {len(a)} != {len(b)}"

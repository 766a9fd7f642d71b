"""The documentation builds with Sphinx with warnings as errors, its internal links and
anchors resolve, and its main pages render in headless Chromium."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.report.browser import ink_fraction, render

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = {"index.html": "mixprec", "guide/search.html": "Searching for a plan",
         "api.html": "API reference"}
"""Pages opened in the browser -> a heading each must show."""


class _Links(HTMLParser):
    """The hrefs and element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(found["id"])
        if tag == "a" and found.get("href"):
            self.hrefs.append(found["href"])


def _parsed(page: Path) -> _Links:
    links = _Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                           "html", str(DOCS), str(out)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def broken_links(site: Path) -> list[str]:
    """Every internal link of the built ``site`` whose file or anchor is missing."""
    pages = {p: _parsed(p) for p in site.rglob("*.html")}
    broken = []
    for page, links in pages.items():
        for href in links.hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith("mailto:"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {href} (no such file)")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in (
                    pages[target].ids if target in pages else _parsed(target).ids):
                broken.append(f"{page.relative_to(site)}: {href} (no such anchor)")
    return broken


def test_docs_build_without_warnings_and_cover_the_guide(built):
    for page in ("index.html", "api.html", "formats.html", "design.html", "benchmarks.html",
                 *(f"guide/{p.stem}.html" for p in (DOCS / "guide").glob("*.md"))):
        assert (built / page).exists(), page
    api = (built / "api.html").read_text(encoding="utf-8")
    for documented in ("mixprec.search.run", "mixprec.deploy.deploy", "mixprec.cost_models.measure",
                       "mixprec.quant.simulate", "mixprec.sensitivity.estimate"):
        assert f'id="{documented}"' in api, documented


def test_no_internal_link_is_broken(built):
    assert broken_links(built) == []


def test_the_link_check_finds_a_broken_link_and_anchor(tmp_path):
    (tmp_path / "a.html").write_text('<h1 id="top">A</h1><a href="b.html">b</a>'
                                     '<a href="a.html#nowhere">x</a><a href="#top">t</a>'
                                     '<a href="https://example.org/x.html">e</a>')
    assert broken_links(tmp_path) == ["a.html: b.html (no such file)",
                                      "a.html: a.html#nowhere (no such anchor)"]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_main_pages_render_in_chromium(built, page, tmp_path):
    shown = render(built / page, tmp_path / "page.png", size=(1200, 1600))
    assert shown.js_errors == []
    assert re.search(re.escape(PAGES[page]), shown.dom), f"{page} does not show its heading"
    assert ink_fraction(shown.screenshot) > 0.01, f"{page} renders blank"

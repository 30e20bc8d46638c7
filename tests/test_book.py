"""The book (``make book``, :func:`camlab.book.site.build_book`): a Sphinx site of executed notebooks
and the API reference, which works with no network. A tiny executed notebook (math in markdown, a
matplotlib PNG as output) is built into a book with the whole API reference; then headless
Chromium, every network request refused, opens its chapter (MathJax typesets, the figure is drawn),
an API page (a documented function's signature) and the search page. Skipped, with the reason,
where Chromium or its driver is missing."""

from __future__ import annotations

import base64
import io
import re

import nbformat
import pytest
from test_browser import missing, start_chrome, wait_for
from test_html_offline import OFFLINE

from camlab.book.notebooks import main
from camlab.book.site import build_book

MATH = "document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_CHTML').length"


def png() -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
    ax.plot([0, 1, 2], [0, 1, 0])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def executed_notebook(path):
    """What `make run` writes, in small: a markdown cell with inline and displayed math, and an
    executed code cell whose output is a PNG."""
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(
                "# 01 · A tiny chapter\n\nInline $E = X \\odot H$ and displayed\n\n"
                "$$\\text{drop} = \\frac{\\max(0, Y - O)}{Y}.$$"
            ),
            nbformat.v4.new_code_cell(
                "plt.plot([0, 1, 2], [0, 1, 0])",
                execution_count=1,
                outputs=[
                    nbformat.v4.new_output(
                        "display_data", data={"image/png": png(), "text/plain": "<Figure size 150x100 with 1 Axes>"}
                    )
                ],
            ),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, str(path))
    return path


def test_the_book_needs_executed_notebooks(tmp_path, capsys):
    """`make book` on a folder without executed notebooks says to run `make run` first."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), str(folder / "01_x.ipynb"))
    assert main(["book", str(folder), str(tmp_path / "book")]) == 1
    assert "run `make run` first" in capsys.readouterr().err
    assert not (tmp_path / "book").exists()


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    (root / "notebooks").mkdir()
    executed_notebook(root / "notebooks" / "01_tiny.ipynb")
    index = build_book(root / "notebooks", root / "book")
    return index.parent


@pytest.fixture(scope="module")
def offline_browser(book):
    reason = missing()
    if reason:
        pytest.skip(reason)
    driver = start_chrome(OFFLINE)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_the_book_loads_nothing_from_a_network(book):
    pages = sorted(book.rglob("*.html"))
    assert (book / "chapters" / "01_tiny.html") in pages
    assert (book / "api" / "camlab.evaluation.stats.html") in pages
    assert (book / "_static" / "mathjax" / "MathJax.js").is_file()
    remote = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.IGNORECASE)
    loads = {p.relative_to(book).as_posix(): remote.findall(p.read_text(encoding="utf-8")) for p in pages}
    assert {p: found for p, found in loads.items() if found} == {}
    # nor do the theme's style sheets ask for web fonts or other style sheets from elsewhere
    remote_css = re.compile(r"(?:url\(|@import)\s*['\"]?(?:https?:)?//", re.IGNORECASE)
    sheets = {
        p.relative_to(book).as_posix(): remote_css.findall(p.read_text(encoding="utf-8")) for p in book.rglob("*.css")
    }
    assert len(sheets) > 3
    assert {p: found for p, found in sheets.items() if found} == {}


@pytest.mark.slow
def test_a_chapter_typesets_its_math_and_draws_its_figure_offline(book, offline_browser):
    offline_browser.get((book / "chapters" / "01_tiny.html").as_uri())
    wait_for(lambda: offline_browser.execute_script(f"return {MATH}") >= 2, 60, "MathJax to typeset")
    text = offline_browser.execute_script("return document.querySelector('main').innerText")
    assert "\\frac" not in text
    assert "A tiny chapter" in text
    widths = wait_for(
        lambda: offline_browser.execute_script(
            "const imgs = [...document.querySelectorAll('.cell_output img')];"
            "return imgs.length && imgs.every(i => i.complete) ? imgs.map(i => i.naturalWidth) : null"
        ),
        30,
        "the figure to load",
    )
    assert len(widths) == 1
    assert widths[0] > 0
    # navigation: the sidebar marks the chapter as the current page and lists the API reference
    current = offline_browser.execute_script("return document.querySelector('.bd-sidebar a.current').innerText")
    assert "A tiny chapter" in current
    links = offline_browser.execute_script(
        "return [...document.querySelectorAll('.bd-sidebar a, a.right-next')].map(a => a.getAttribute('href'))"
    )
    assert "../api.html" in links


@pytest.mark.slow
def test_an_api_page_shows_documented_signatures_offline(book, offline_browser):
    offline_browser.get((book / "api" / "camlab.evaluation.stats.html").as_uri())
    signature = wait_for(
        lambda: offline_browser.execute_script(
            "const dt = document.getElementById('camlab.evaluation.stats.paired_difference');return dt && dt.innerText"
        ),
        30,
        "the signature of camlab.evaluation.stats.paired_difference",
    )
    assert "paired_difference(" in signature
    doc = offline_browser.execute_script(
        "return document.getElementById('camlab.evaluation.stats.paired_difference').nextElementSibling.innerText"
    )
    assert len(doc.split()) > 5  # the docstring is there, not only the name


@pytest.mark.slow
def test_the_search_finds_a_function_offline(book, offline_browser):
    offline_browser.get((book / "search.html").as_uri() + "?q=paired_difference")
    hits = wait_for(
        lambda: offline_browser.execute_script(
            "return [...document.querySelectorAll('#search-results li a')].map(a => a.getAttribute('href'))"
        ),
        60,
        "search results",
    )
    assert any("camlab.evaluation.stats" in h for h in hits)

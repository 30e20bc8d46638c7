"""The HTML that `make run` exports typesets its equations without a network: MathJax is copied
beside it (camlab.book.notebooks.local_mathjax). Checked in headless Chromium with every network
request refused; nbconvert's default export (MathJax from a CDN) is the control that shows raw
TeX under the same conditions. Skipped, with the reason, where Chromium or its driver is missing."""

from __future__ import annotations

import nbformat
import pytest
from test_browser import missing, start_chrome, wait_for

from camlab.book.notebooks import MATHJAX_DIR, export_html

pytestmark = pytest.mark.slow
# no network at all: every host resolves to nothing and every connection goes to a closed port
OFFLINE = [
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--allow-file-access-from-files",
]


@pytest.fixture
def offline_browser():
    reason = missing()
    if reason:
        pytest.skip(reason)
    driver = start_chrome(OFFLINE)
    try:
        yield driver
    finally:
        driver.quit()


def notebook(path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(
                "Inline $E = X \\odot H$ and displayed\n$$\\text{drop} = \\frac{\\max(0, Y - O)}{Y}.$$"
            )
        ]
    )
    nbformat.write(nb, str(path))
    return path


def typeset(driver, url, timeout: float = 30) -> tuple[int, str]:
    driver.get(url)
    try:
        wait_for(
            lambda: (
                driver.execute_script(
                    "return document.querySelectorAll('.MathJax_CHTML, .MathJax, .MathJax_Display').length"
                )
                > 0
            ),
            timeout,
            "MathJax to typeset",
        )
    except AssertionError:
        pass  # the control: nothing typesets
    count = driver.execute_script(
        "return document.querySelectorAll('.MathJax_CHTML, .MathJax, .MathJax_Display').length"
    )
    return int(count), driver.execute_script("return document.body.innerText")


def test_exported_html_typesets_equations_offline(tmp_path, offline_browser):
    html = export_html(notebook(tmp_path / "eq.ipynb"))
    assert (tmp_path / MATHJAX_DIR / "MathJax.js").is_file()
    count, text = typeset(offline_browser, html.as_uri())
    assert count >= 2, f"no typeset math offline; the page reads: {text[:300]!r}"
    assert "$E = X" not in text
    assert "\\frac" not in text


def test_the_cdn_export_shows_raw_tex_offline(tmp_path, offline_browser):
    """The control: nbconvert's default HTML loads MathJax from a CDN, which is out of reach."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(notebook(tmp_path / "eq.ipynb")), as_version=4))
    page = tmp_path / "cdn.html"
    page.write_text(body, encoding="utf-8")
    count, text = typeset(offline_browser, page.as_uri(), timeout=10)
    assert count == 0
    assert "$E = X \\odot H$" in text

"""Sphinx configuration of camlab's book: the executed notebooks as chapters, and an API reference
generated from the docstrings.

Built by ``python -m camlab.book book build/notebooks build/book`` (``make book``), which copies
this folder and the executed notebooks into a staging folder under ``build/`` and runs Sphinx
there (:func:`camlab.book.site.build_book`). Nothing is executed again, and nothing is loaded from
a network, at build or at view time: MathJax 2 is served from the book's own ``_static/mathjax``
(copied from the ``jupyter-server-mathjax`` package, as for the notebooks' HTML export), the theme
bundles its fonts and scripts, and myst-nb's ipywidgets scripts (a CDN) are switched off.
"""

project = "camlab"
author = "camlab"
copyright = "camlab authors, MIT licence"
release = "0.1.0"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", ".doctrees", "**.ipynb_checkpoints", "jupyter_execute"]
# .rst first: autosummary writes its generated pages (reStructuredText) with the first suffix
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# the notebooks come executed from `make run`: never run them again
nb_execution_mode = "off"
nb_merge_streams = True
# myst-nb would load require.js and the widget manager from a CDN on pages with widget state
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath"]

# MathJax 2 from the book itself; the staging step copies it into _static/mathjax
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
# (as nbconvert's export; the package ships the STIX-Web fonts only, so the TeX web fonts are not asked for)
mathjax2_config = {
    "tex2jax": {
        "inlineMath": [["\\(", "\\)"]],
        "displayMath": [["\\[", "\\]"]],
        "processEscapes": True,
        "processEnvironments": True,
    },
    "TeX": {"equationNumbers": {"autoNumber": "AMS", "useLabelIds": True}},
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None},
    "messageStyle": "none",
}
myst_update_mathjax = False  # its settings are MathJax 3/4's

# API reference: one page per module, generated from the docstrings (Google-style sections)
autosummary_generate = True
autosummary_imported_members = False
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "sphinx_book_theme"
html_title = "camlab: class activation maps, centred on Cluster-CAM"
html_static_path = ["_static"]
html_theme_options = {
    "show_toc_level": 2,
    # the sidebar shows the current page's branch only: each page's sidebar of all ~50 pages made
    # the build twice as slow
    "collapse_navbar": True,
    "use_download_button": True,
    "home_page_in_toc": True,
    "navigation_with_keys": False,
}
html_show_sourcelink = False
suppress_warnings = ["mystnb.unknown_mime_type"]

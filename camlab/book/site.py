"""The book: a static site of the executed notebooks and an API reference, built with Sphinx.

``python -m camlab.book book build/notebooks build/book`` (``make book``) takes the notebooks that
``make run`` executed, as they are (nothing runs again), and the Sphinx sources in ``docs/``
(``conf.py``, the index page, the API reference generated from camlab's docstrings), copies both
into a staging folder beside the output (``build/book-src``), and builds the HTML into
``build/book/``. MathJax 2 is copied into the site from the ``jupyter-server-mathjax`` package (as
:func:`camlab.book.notebooks.local_mathjax` does for the notebooks' HTML), so that neither the
build nor a reader's browser needs a network. (This module imports nothing from
:mod:`camlab.book.notebooks`, whose command line calls it.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["DOCS", "executed_notebooks", "build_book"]

# the Sphinx sources: docs/ at the root of the checkout camlab is installed from (editable)
DOCS = Path(__file__).resolve().parents[2] / "docs"
_STAGING_MARK = ".camlab-book-staging"  # a staging folder holds it: only such a folder is emptied


def _copy_mathjax(target: Path) -> None:
    """MathJax 2.7 from the jupyter-server-mathjax package into ``target`` (docs/conf.py's
    ``mathjax_path`` loads ``_static/mathjax/MathJax.js``)."""
    import jupyter_server_mathjax

    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", target, dirs_exist_ok=True)


def executed_notebooks(folder: str | Path) -> list[Path]:
    """The numbered notebooks in ``folder`` that hold outputs of a run (any code cell executed)."""
    found = []
    for path in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb")):
        try:
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        except (OSError, json.JSONDecodeError):
            continue
        if any(c.get("cell_type") == "code" and (c.get("outputs") or c.get("execution_count")) for c in cells):
            found.append(path)
    return found


def build_book(
    notebooks_dir: str | Path,
    out_dir: str | Path,
    *,
    sources: str | Path = DOCS,
    staging: str | Path | None = None,
    quiet: bool = True,
) -> Path:
    """Build the book's HTML from the executed notebooks of ``notebooks_dir`` into ``out_dir``.

    The notebooks and ``sources`` (the Sphinx folder: ``conf.py``, ``index.md``, ``api.md``,
    templates) are copied into ``staging`` (default: ``<out_dir>-src`` beside ``out_dir``), the
    notebooks under ``chapters/``; Sphinx's warnings go to ``<staging>/warnings.log`` and do not
    fail the build.

    Args:
        notebooks_dir: folder of executed ``NN_name.ipynb`` (``make run`` writes ``build/notebooks``).
        out_dir: where the site goes; its ``index.html`` is the book's first page.
        sources: the Sphinx sources (``docs/`` of the checkout).
        staging: the folder Sphinx builds from; emptied first.
        quiet: print only Sphinx's warnings' count, not its progress.

    Returns:
        The path of ``out_dir/index.html``.

    Raises:
        FileNotFoundError: no executed notebook in ``notebooks_dir`` (run ``make run`` first), or
            no ``conf.py`` in ``sources``.
        FileExistsError: ``out_dir`` or ``staging`` holds other files than an earlier build's.
        RuntimeError: Sphinx failed (its output is in the message).
    """
    notebooks_dir, out_dir, sources = Path(notebooks_dir), Path(out_dir), Path(sources)
    chapters = executed_notebooks(notebooks_dir)
    if not chapters:
        raise FileNotFoundError(
            f"no executed notebooks in {notebooks_dir}/ (NN_name.ipynb with outputs): run `make run` first"
        )
    if not (sources / "conf.py").is_file():
        raise FileNotFoundError(f"no Sphinx sources (conf.py) in {sources}")
    staging = Path(staging) if staging is not None else out_dir.with_name(out_dir.name + "-src")
    for folder, mark in ((staging, _STAGING_MARK), (out_dir, ".buildinfo")):
        if folder.exists() and any(folder.iterdir()):
            if not (folder / mark).is_file():
                raise FileExistsError(f"{folder} is not empty and holds no {mark}: not a folder this builds")
            shutil.rmtree(folder)  # a fresh build: no chapter left over from an earlier run
    shutil.copytree(sources, staging, ignore=shutil.ignore_patterns("_build", "__pycache__", "api"), dirs_exist_ok=True)
    (staging / _STAGING_MARK).touch()
    (staging / "chapters").mkdir()
    for path in chapters:
        shutil.copy2(path, staging / "chapters" / path.name)
    _copy_mathjax(staging / "_static" / "mathjax")
    warnings = staging / "warnings.log"
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-d", str(staging / ".doctrees"), "-w", str(warnings)]
    done = subprocess.run(
        [*command, *(["-q"] if quiet else []), str(staging), str(out_dir)],
        capture_output=quiet,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"sphinx failed (exit {done.returncode}):\n{done.stdout or ''}{done.stderr or ''}")
    index = out_dir / "index.html"
    if not index.is_file():
        raise RuntimeError(f"sphinx wrote no {index}")
    n_warnings = sum(1 for line in warnings.read_text().splitlines() if "WARNING" in line or "ERROR" in line)
    print(f"book: {len(chapters)} chapters, {n_warnings} Sphinx warnings (in {warnings}) → {index}", flush=True)
    return index

"""Running the workbook's notebooks: papermill execution, HTML export, output stripping.

``python -m camlab.book run notebooks build/notebooks`` executes every ``NN_*.ipynb`` on its
default parameters (``-p name value`` overrides one for all), writes the executed copy and its
HTML beside it; ``python -m camlab.book strip notebooks`` removes outputs before a commit;
``python -m camlab.book book build/notebooks build/book`` builds the book from the executed copies
(:mod:`camlab.book.site`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from ..core.progress import HEADLESS

__all__ = [
    "notebook_paths",
    "run_notebook",
    "kernel_environment",
    "KERNEL_ENV",
    "export_html",
    "local_mathjax",
    "strip_outputs",
    "parameters_of",
    "page_problems",
    "FULL_PARAMETERS",
    "MAX_CELL_LINES",
    "MAX_CODE_LINES",
]

# `make run-full`: the large runs (all dev images, every method); the defaults are the small ones.
_ALL_METHODS = ["gradcam", "gradcampp", "xgradcam", "ablationcam", "scorecam", "groupcam", "clustercam"]
FULL_PARAMETERS: dict[str, dict[str, Any]] = {
    "01_vanilla_cam": {"n_images": 16},
    "03_gradient_free_cams": {"n_images": 4},
    "05_cluster_cam": {"n_seed_images": 200, "with_score_cam": True},
    "06_ablations": {"n_images": 200, "n_composites": 20},
    "07_evaluation_metrics": {"n_images": 200, "methods": _ALL_METHODS, "n_steps": 32, "n_composites": 20},
    "08_sanity_checks": {"n_images": 16, "methods": _ALL_METHODS + ["layercam", "eigencam", "sobel"]},
    "09_efficiency": {"n_images": 10, "methods": _ALL_METHODS, "repeats": 3},
}


def notebook_paths(folder: str | Path = "notebooks") -> list[Path]:
    """The numbered notebooks of ``folder`` (``NN_name.ipynb``), in order."""
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))


def parameters_of(path: str | Path) -> str | None:
    """Source of the cell tagged ``parameters``, or ``None``."""
    nb = json.loads(Path(path).read_text())
    for cell in nb.get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = cell.get("source", "")
            return "".join(src) if isinstance(src, list) else src
    return None


# A chapter a student can read: short cells, the logic in camlab, and only the method, the data and
# the runs on the page — no project history, no environment variables (they live in RESULTS.md).
MAX_CELL_LINES = 25  # any code cell but the parameters cell
MAX_CODE_LINES = 200  # all code cells but the parameters cell
_OFF_THE_PAGE = (
    (re.compile(r"\bStep \d"), "project history ('Step N')"),
    (re.compile(r"\b(?:CAMLAB|OMP|MKL|GOMP|KMP|CUDA|PYTORCH|TORCH)_[A-Z0-9_]+\b"), "an environment variable"),
)


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def page_problems(nb: dict[str, Any], outputs: bool = False) -> list[str]:
    """What breaks the book's rules in the notebook ``nb`` (its JSON): a code cell over
    ``MAX_CELL_LINES`` lines or more than ``MAX_CODE_LINES`` code lines in all (the parameters cell
    aside), and project history or an environment variable name in any cell's source — or, with
    ``outputs``, in what the cells printed (text, HTML, markdown). An empty list: none."""
    problems, total = [], 0
    texts = []
    for k, cell in enumerate(nb.get("cells", [])):
        source = _text(cell.get("source", ""))
        texts.append((f"cell {k}", source))
        if cell.get("cell_type") != "code":
            continue
        if outputs:
            for o in cell.get("outputs", []):
                data = o.get("data", {})
                shown = [o.get("text", "")] + [data.get(m, "") for m in ("text/plain", "text/html", "text/markdown")]
                texts.append((f"cell {k}'s output", "".join(map(_text, shown))))
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        n = len(source.splitlines())
        total += n
        if n > MAX_CELL_LINES:
            problems.append(f"cell {k} has {n} code lines (at most {MAX_CELL_LINES})")
    if total > MAX_CODE_LINES:
        problems.append(f"{total} code lines in all (at most {MAX_CODE_LINES})")
    for where, text in texts:
        for pattern, what in _OFF_THE_PAGE:
            found = pattern.search(text)
            if found:
                problems.append(f"{where} shows {what}: {found.group(0)!r}")
    return problems


# What the kernels camlab starts get in their environment, so that they do not stall beside other
# work (OpenMP threads spinning for a core another process holds). Chosen by measurement:
# benchmarks/bench_stall.py, recorded in benchmarks/RESULTS.md. Set only for the kernels this
# module starts, never on import; a user's own OpenMP setting wins; CAMLAB_KERNEL_ENV=0 turns it off.
KERNEL_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
_OMP_SETTINGS = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")


def kernel_environment() -> dict[str, str]:
    """The variables :func:`run_notebook` adds to its kernels' environment (see ``KERNEL_ENV``)."""
    if os.environ.get("CAMLAB_KERNEL_ENV") == "0" or any(k in os.environ for k in _OMP_SETTINGS):
        return {}
    return dict(KERNEL_ENV)


def run_notebook(
    path: str | Path,
    out_dir: str | Path,
    parameters: dict[str, Any] | None = None,
    html: bool = True,
    timeout: int | None = None,
) -> Path:
    """Execute ``path`` with papermill (kernel ``python3``, cwd = the notebook's folder).

    Returns the executed notebook's path in ``out_dir``; with ``html`` also writes its HTML.

    Raises:
        ValueError: the executed copy prints what the book keeps off the page
            (:func:`page_problems`: project history, environment variable names); the copy is
            written all the same, for reading.
    """
    import papermill as pm

    path, out_dir = Path(path).resolve(), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / path.name
    # No front end will ever draw a widget here, and nbclient can hang for good on a cell that
    # opens widget comms (jupyter/nbclient#312): the kernel tells ClusterExplorer.widget to skip them.
    changes = {HEADLESS: "1", **kernel_environment()}
    previous = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        pm.execute_notebook(
            str(path),
            str(out),
            parameters=parameters or {},
            kernel_name="python3",
            cwd=str(path.parent),
            progress_bar=False,
            execution_timeout=timeout,
        )
    finally:
        for k, v in previous.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
    if html:
        export_html(out)
    shown = [p for p in page_problems(json.loads(out.read_text()), outputs=True) if "output" in p]
    if shown:
        raise ValueError(f"{out} prints what the book keeps off the page: " + "; ".join(shown))
    return out


# MathJax 2.7 as the jupyter-server-mathjax package ships it, copied beside the exported HTML so
# that equations typeset without a network (nbconvert's default loads MathJax from a CDN)
MATHJAX_DIR = "mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"


def local_mathjax(out_dir: str | Path) -> str:
    """Copy MathJax into ``out_dir/mathjax`` (once) and return the relative URL the HTML loads."""
    import shutil

    import jupyter_server_mathjax

    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    target = Path(out_dir) / MATHJAX_DIR
    if not (target / "MathJax.js").is_file():
        shutil.copytree(source, target, dirs_exist_ok=True)
    return f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"


def export_html(path: str | Path) -> Path:
    """Write ``path`` as HTML beside it, with MathJax copied beside it too (:func:`local_mathjax`),
    so that the equations render offline."""
    import nbformat
    from nbconvert import HTMLExporter

    path = Path(path)
    exporter = HTMLExporter(mathjax_url=local_mathjax(path.parent))
    body, _ = exporter.from_notebook_node(nbformat.read(str(path), as_version=4))
    target = path.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def strip_outputs(path: str | Path) -> bool:
    """Remove outputs and execution counts in place; return whether the file changed."""
    path = Path(path)
    text = path.read_text()
    nb = json.loads(text)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
        cell.get("metadata", {}).pop("papermill", None)
    nb.get("metadata", {}).pop("papermill", None)
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new)
        return True
    return False


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m camlab.book", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks with papermill and export HTML")
    run.add_argument("folder", nargs="?", default="notebooks")
    run.add_argument("out", nargs="?", default="build/notebooks")
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="override a parameter (JSON value) in every notebook",
    )
    run.add_argument("--only", default=None, help="run only notebooks whose name contains this text")
    run.add_argument(
        "--full", action="store_true", help="the large runs of FULL_PARAMETERS (all dev images, every method)"
    )
    strip = sub.add_parser("strip", help="remove outputs from committed notebooks")
    strip.add_argument("folder", nargs="?", default="notebooks")
    book = sub.add_parser("book", help="build the book (Sphinx) from executed notebooks (camlab.book.site)")
    book.add_argument("folder", nargs="?", default="build/notebooks")
    book.add_argument("out", nargs="?", default="build/book")
    args = parser.parse_args(argv)

    if args.command == "strip":
        for p in sorted(Path(args.folder).glob("*.ipynb")):
            if strip_outputs(p):
                print(f"stripped {p}")
        return 0
    if args.command == "book":
        from .site import build_book

        try:
            build_book(args.folder, args.out)
        except (OSError, RuntimeError) as error:  # no executed notebook, a folder it may not empty, Sphinx failed
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0
    params = {name: _parse_value(value) for name, value in args.parameter}
    paths = [p for p in notebook_paths(args.folder) if args.only is None or args.only in p.name]
    if not paths:
        print(f"no notebooks in {args.folder}", file=sys.stderr)
        return 1
    for p in paths:
        start = time.perf_counter()
        print(f"running {p.name} …", flush=True)
        out = run_notebook(p, args.out, {**(FULL_PARAMETERS.get(p.stem, {}) if args.full else {}), **params})
        print(f"  {out} and {out.with_suffix('.html').name} in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

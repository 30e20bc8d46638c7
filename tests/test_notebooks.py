"""Every notebook is committed clean, has a parameters cell, and runs under papermill."""

import json
from pathlib import Path

import pytest

from camlab.book.notebooks import notebook_paths, page_problems, parameters_of, run_notebook

NOTEBOOKS = notebook_paths(Path(__file__).resolve().parent.parent / "notebooks")

# `make test` runs every notebook once on its defaults (nbval over notebooks/, what `make run` and a
# reader run). A second run here is worth its time only where other parameters take another path
# through the code: another network (01), spectral clustering with other Q, K and σ and another layer
# (04, 05). The other notebooks' small parameters would only shrink their defaults (06's live part is
# an illustration beside its committed CSVs; 09's device="cpu" is what "auto" resolves to here), so
# they are not run twice.
SMALL = {
    "01_vanilla_cam": {"n_images": 2, "seed": 3, "device": "cpu", "model": "efficientnet_lite2"},
    "04_spectral_clustering": {
        "n_images": 2,
        "layers": ["blocks.6"],
        "n_clusters": 4,
        "n_eigvecs": 2,
        "sigma": 30.0,
        "n_seeds": 2,
        "qs": [2, 4],
        "ks": [1, 2],
    },
    "05_cluster_cam": {
        "n_images": 1,
        "layer": "blocks.6",
        "with_score_cam": False,
        "clustering": "spectral",
        "n_clusters": 4,
        "alpha": 0.7,
        "n_seed_images": 4,
    },
}


def test_there_are_notebooks():
    assert [p.stem for p in NOTEBOOKS] == [
        "01_vanilla_cam",
        "02_gradient_cams",
        "03_gradient_free_cams",
        "04_spectral_clustering",
        "05_cluster_cam",
        "06_ablations",
        "07_evaluation_metrics",
        "08_sanity_checks",
        "09_efficiency",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_clean_with_parameters(path):
    nb = json.loads(path.read_text())
    outputs = [c for c in nb["cells"] if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not outputs, f"{path.name} is committed with outputs: run `make strip`"
    params = parameters_of(path)
    assert params is not None, f"{path.name} has no cell tagged 'parameters'"
    for name in ("device", "data_root", "n_images", "seed"):
        assert f"{name} =" in params, f"{path.name}: parameters cell lacks {name}"
    assert 'device = "auto"' in params


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem in SMALL], ids=lambda p: p.stem)
def test_notebook_runs_with_other_parameters(path, tmp_path, data_root):
    # a cell that runs past 900 s fails the test, naming the cell, instead of stalling the suite
    out = run_notebook(path, tmp_path, {"data_root": str(data_root), **SMALL[path.stem]}, timeout=900)
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no figure"
    assert out.with_suffix(".html").is_file()


def test_every_kind_of_parameter_is_exercised():
    """model, Q, K, α and device="cpu" each differ from a notebook's default in some test run."""
    kinds = {"model": False, "n_clusters": False, "n_eigvecs": False, "alpha": False, "device": False}
    for params in SMALL.values():
        for k in kinds:
            if k in params:
                kinds[k] = True
    assert all(kinds.values()), kinds
    assert SMALL["01_vanilla_cam"]["model"] != "efficientnet_lite0"


def test_full_parameters_name_real_notebooks_and_parameters():
    from camlab.book.notebooks import FULL_PARAMETERS

    by_stem = {p.stem: p for p in NOTEBOOKS}
    for stem, params in FULL_PARAMETERS.items():
        cell = parameters_of(by_stem[stem])
        for name in params:
            assert f"{name} =" in cell, f"{stem} has no parameter {name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_chapter_a_student_can_read(path):
    """Short cells, the logic in camlab, no project history or environment variables on the page
    (run_notebook checks the executed copy's outputs the same way), and a verdict table at the end:
    the last code cell shows a chapter module's verdict (camlab.book.verdict.Verdict)."""
    nb = json.loads(path.read_text())
    assert page_problems(nb) == []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    last = "".join(code[-1]["source"]).strip().splitlines()[-1]
    assert ".verdict(" in last, f"{path.name} ends with {last!r}, not a verdict table"


def test_page_problems_finds_what_the_book_keeps_off_the_page():
    def cell(source, kind="code", outputs=(), tags=()):
        c = {"cell_type": kind, "source": source, "metadata": {"tags": list(tags)}}
        return {**c, "outputs": list(outputs)} if kind == "code" else c

    long = "\n".join(f"x{k} = {k}" for k in range(26))
    nb = {
        "cells": [
            cell(long, tags=["parameters"]),  # the parameters cell may be long
            cell("As the Step 8 run showed", "markdown"),
            cell("print(1)", outputs=[{"output_type": "stream", "text": ["set CAMLAB_HEADLESS=1"]}]),
            cell(long),
        ]
    }
    assert page_problems(nb) == [
        "cell 3 has 26 code lines (at most 25)",
        "cell 1 shows project history ('Step N'): 'Step 8'",
    ]
    shown = page_problems(nb, outputs=True)
    assert "cell 2's output shows an environment variable: 'CAMLAB_HEADLESS'" in shown
    nb["cells"] = [cell("\n".join(["y = 1"] * 20)) for _ in range(11)]
    assert page_problems(nb) == ["220 code lines in all (at most 200)"]


def _stray_dollars(text: str) -> list[str]:
    """Text that MyST (the book's parser, camlab.book.site) leaves with a ``$`` in it: math it did
    not read as math — a ``$$`` block that does not stand as its own paragraph, say, which Jupyter
    typesets all the same and the book would print as TeX."""
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    md = create_md_parser(MdParserConfig(enable_extensions={"dollarmath", "amsmath"}), RendererHTML)
    found: list[str] = []

    def walk(tokens):
        for t in tokens:
            if t.type == "text" and "$" in t.content:
                found.append(t.content)
            walk(t.children or [])

    walk(md.parse(text))
    return found


def test_stray_dollars_finds_display_math_the_book_would_not_typeset():
    assert _stray_dollars("Inline $a$ and\n\n$$ b = 1 \\tag{1}$$\n\nafter.") == []
    assert _stray_dollars("Text right above\n$$ b = 1 $$\nand below.") != []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_book_typesets_every_equation(path):
    nb = json.loads(path.read_text())
    stray = [s for c in nb["cells"] if c["cell_type"] == "markdown" for s in _stray_dollars("".join(c["source"]))]
    assert not stray, f"{path.name}: math MyST reads as text (give each $$ block its own paragraph): {stray[:3]}"

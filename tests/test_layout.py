"""The package's layout: four rooms (core → methods → evaluation → book), each importing only from
the rooms before it, no module importing one that imports it back, and the public API of
``camlab.__all__`` unchanged by the move into them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import camlab

PACKAGE = Path(camlab.__file__).resolve().parent
ROOMS = ("core", "methods", "evaluation", "book")  # each may import from the rooms before it only

# camlab.__all__ before the modules moved into the rooms (the public API they must keep)
PUBLIC = [
    "AblationCAM",
    "BaseCAM",
    "CAM",
    "ClusterCAM",
    "ClusterState",
    "EigenCAM",
    "GradCAM",
    "GradCAMpp",
    "GroupCAM",
    "HiResCAM",
    "LayerCAM",
    "ScoreCAM",
    "SmoothGradCAMpp",
    "SobelCAM",
    "XGradCAM",
    "clustering",
    "folding",
    "fold",
    "FoldedNetwork",
    "masking",
    "metrics",
    "sanity",
    "normalize_maps",
    "upsample",
    "Classifier",
    "Explanation",
    "ClusterExplanation",
    "METHODS",
    "MODELS",
    "capture",
    "data",
    "layer_names",
    "load_image",
    "load_model",
    "plot",
    "resolve_device",
    "resolve_layer",
]


def module_name(path: Path) -> str:
    parts = ("camlab", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The camlab modules ``name`` imports, anywhere in it (inside functions too): ``from X import
    y`` counts as importing X.y when that is a module, else X."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def room(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else None


def test_the_graph_sees_imports_inside_functions():
    """The test below could fail: lazy imports count (the harness's command line once imported
    the harness and the harness it back from inside a function)."""
    assert "camlab.evaluation.harness" in GRAPH["camlab.evaluation.cli"]
    assert "camlab.core.models" in GRAPH["camlab.core.data"]
    assert "camlab.methods.cluster" in GRAPH["camlab.book.sweeps"]


def test_no_module_imports_one_that_imports_it_back():
    def reaches(start: str, goal: str) -> list[str] | None:
        stack, seen = [[start]], {start}
        while stack:
            path = stack.pop()
            for nxt in sorted(GRAPH[path[-1]]):
                if nxt == goal:
                    return path + [nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(path + [nxt])
        return None

    cycles = [" → ".join(c) for m in GRAPH if (c := reaches(m, m))]
    assert cycles == []


def test_each_room_imports_only_from_the_rooms_before_it():
    wrong = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if room(m)
        for t in targets
        if room(t) is None or ROOMS.index(room(t)) > ROOMS.index(room(m))
    ]
    assert wrong == []


def test_the_top_level_is_the_map_and_its_four_rooms():
    top = sorted(p.name for p in PACKAGE.iterdir() if not p.name.startswith(("__pycache__", ".")))
    assert top == sorted(["__init__.py", "_data", *ROOMS])
    assert all(r in camlab.__doc__ for r in (f"camlab.{r}" for r in ROOMS))


def test_the_public_api_is_unchanged():
    assert camlab.__all__ == PUBLIC
    assert [n for n in PUBLIC if not hasattr(camlab, n)] == []


@pytest.mark.parametrize("short", ["clustering", "data", "folding", "masking", "metrics", "plot", "sanity"])
def test_the_public_modules_import_under_their_short_names(short):
    """``import camlab.metrics`` and ``from camlab.metrics import …`` keep working: the same module
    object as the room's, not a copy."""
    import importlib

    module = importlib.import_module(f"camlab.{short}")
    assert module is getattr(camlab, short)
    assert room(module.__name__) is not None


def test_import_camlab_in_a_fresh_interpreter():
    """A short name and a room imported first, before ``camlab`` itself: no half-initialised module."""
    first = "from camlab.metrics import deletion; import camlab.book.sweeps, camlab"
    done = subprocess.run(
        [sys.executable, "-c", f"{first}; print(len(camlab.__all__), camlab.metrics.deletion is deletion)"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(PUBLIC)), "True"]

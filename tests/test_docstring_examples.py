"""The Examples of every method (:data:`camlab.methods.METHODS`) and of every public metric
(``camlab.metrics.__all__``) run, as doctests, on the offline model and one dev image.

The examples see four names only: ``camlab``, ``torch``, ``clf`` (efficientnet_lite0, a
:class:`~camlab.Classifier` on the CPU) and ``x`` (one preprocessed dev image, 1×3×224×224), so
each stands alone once a reader has made ``clf`` and ``x``. ``# doctest: +SKIP`` is refused:
an example that is not run can rot.
"""

from __future__ import annotations

import doctest
import inspect

import pytest
import torch

import camlab
from camlab import metrics
from camlab.methods import METHODS

METHOD_OBJECTS = {f"camlab.methods.{cls.__name__}": cls for cls in METHODS.values()}
METRIC_OBJECTS = {f"camlab.metrics.{n}": getattr(metrics, n) for n in metrics.__all__ if callable(getattr(metrics, n))}
OBJECTS = {**METHOD_OBJECTS, **METRIC_OBJECTS}
# every method and every metric function needs an example; the result dataclasses (Road, Curves,
# PointingResult) are shown by the examples of the functions that return them
NEED_EXAMPLE = set(METHOD_OBJECTS) | {name for name, obj in METRIC_OBJECTS.items() if inspect.isfunction(obj)}
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.fixture(scope="module")
def globs(lite0, dev_records) -> dict:
    return {"camlab": camlab, "torch": torch, "clf": lite0, "x": lite0.preprocess([dev_records[0].path])}


def examples_of(name: str, obj, globs: dict) -> list[doctest.DocTest]:
    """The doctests of ``obj``'s own docstring (a class's, not its methods'), on a copy of ``globs``."""
    finder = doctest.DocTestFinder(recurse=False, exclude_empty=True)
    return [t for t in finder.find(obj, name, globs=dict(globs)) if t.examples]


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_examples_run(name, globs):
    tests = examples_of(name, OBJECTS[name], globs)
    if name in NEED_EXAMPLE:
        assert tests, f"{name} has no example (>>> lines) in its docstring"
    skipped = [ex.source.strip() for t in tests for ex in t.examples if ex.options.get(doctest.SKIP)]
    assert not skipped, f"{name}: examples must run, not be skipped: {skipped}"
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for t in tests:
        runner.run(t, out=report.append)
    assert runner.failures == 0, f"{name}: {runner.failures} example(s) failed\n" + "".join(report)

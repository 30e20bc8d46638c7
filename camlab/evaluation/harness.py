"""The evaluation: methods × images × metrics → one row per image and method, and its summary.

:func:`evaluate` runs every method (named in the small language of :func:`parse_methods`) on every
image and measures every metric, appending each row to a CSV as it goes (the file format and
resuming are :mod:`camlab.evaluation.results`'s); :func:`pointing_game` scores maps on the grid composites;
:func:`summarize` gives per-method means with 95 % bootstrap intervals and paired differences,
and :func:`format_table` prints them. The command line that runs all this, under ``torchrun``
too, is :mod:`camlab.evaluation.cli` (``python -m camlab.evaluation``).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from ..core.data import ImageRecord
from ..core.explanation import Explanation
from ..core.models import Classifier
from ..core.progress import progress as progress_bar
from ..methods import METHODS
from . import metrics as M
from . import stats as S
from .results import (
    FIELDS,
    append_row,
    check_columns,
    format_value,
    read_results,
    read_rows,
    read_skipped,
    record_skipped,
    skipped_path,
)

__all__ = [
    "FIELDS",
    "METRICS",
    "MethodSpec",
    "Rows",
    "parse_methods",
    "requested_metrics",
    "evaluate",
    "explanation_rows",
    "pointing_tiles",
    "pointing_intervals",
    "read_skipped",
    "read_results",
    "skipped_path",
    "summarize",
    "format_table",
    "pointing_game",
]

METRICS = M.METRICS

MethodSpec = tuple[str, str, dict[str, Any]]  # (label, registered name, keyword arguments)


def parse_methods(text: str | Sequence[str]) -> list[MethodSpec]:
    """``"gradcam,clustercam:n_clusters=8"`` → method specs; values are read as JSON when they parse.

    Raises:
        ValueError: a method name is not one of :data:`camlab.methods.METHODS`.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    specs = []
    for item in items:
        name, _, rest = item.strip().partition(":")
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
        kwargs = {}
        for pair in filter(None, rest.split(";")):
            key, _, value = pair.partition("=")
            try:
                kwargs[key] = json.loads(value)
            except json.JSONDecodeError:
                kwargs[key] = value
        specs.append((item.strip(), name, kwargs))
    return specs


# a metric that comes free with another one: the same masked forward pass gives both drops
COMPANIONS = {"drop": "drop_unclipped"}


def requested_metrics(names: Sequence[str]) -> list[str]:
    """The metrics to compute for ``names``: checked, and with ``drop_unclipped`` after ``drop``
    when only ``drop`` is named (the tables show both, and it costs nothing more).

    Raises:
        ValueError: an unknown metric name.
    """
    names = M.check_metrics(list(names))
    out: list[str] = []
    for m in names:
        if m not in out:
            out.append(m)
        extra = COMPANIONS.get(m)
        if extra and extra not in names and extra not in out:
            out.append(extra)
    return out


def explanation_rows(
    module: torch.nn.Module,
    x: torch.Tensor,
    exp: Explanation,
    metrics: Sequence[str] = METRICS,
    n_steps: int = 32,
    method: str | None = None,
    images: Sequence[Any] | None = None,
    class_indices: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """The harness's rows (:data:`FIELDS`, values not yet formatted) for an explanation of the
    batch ``x``: one per image, every metric measured. ``method`` labels the rows (default: the
    explanation's method); ``images`` names the images (default: their index in the batch).
    Forward passes and seconds are the explanation's, per image."""
    values = M.measure(module, x, exp.heatmaps, exp.targets, metrics, n_steps)
    params = json.dumps(exp.params, sort_keys=True, default=str)
    b = x.shape[0]
    rows = []
    for i in range(b):
        row = {
            "image": images[i] if images is not None else i,
            "class_index": class_indices[i] if class_indices is not None else "",
            "target": int(exp.targets[i]),
            "method": method or exp.method,
            "params": params,
            "n_forward": exp.n_forward / b if b > 1 else exp.n_forward,
            "seconds": exp.seconds / b,
        }
        row.update({name: bool(v[i]) if v.dtype == torch.bool else float(v[i]) for name, v in values.items()})
        rows.append(row)
    return rows


class Rows(list):
    """The rows of an evaluation (a list), and the images it had to skip: ``skipped`` maps each
    unreadable file's name to the reason."""

    skipped: dict[str, str]

    def __init__(self, rows: Iterable[dict[str, Any]] = (), skipped: dict[str, str] | None = None):
        super().__init__(rows)
        self.skipped = dict(skipped or {})


def evaluate(
    classifier: Classifier,
    records: Sequence[ImageRecord],
    methods: Sequence[MethodSpec],
    metrics: Sequence[str] = METRICS,
    out: str | os.PathLike | None = None,
    layer: str | None = None,
    n_steps: int = 32,
    progress: bool = True,
) -> Rows:
    """Run every method on every image and measure every metric; one row per image × method.

    With ``out``, rows already in that CSV are kept and not recomputed, and each new row is
    appended as soon as it is ready. An image that cannot be read (not an image, truncated,
    corrupt) is skipped with a warning that names it, and recorded (``<out>.skipped.csv``, and the
    result's ``skipped``), so a rerun neither retries it nor loses a row. Rows name their image by
    its ``record.name`` (its path within the folder). Returns all rows (read back as strings when
    resumed). A second process writing the same ``out`` at once is the caller's to prevent
    (:func:`camlab.evaluation.results.locked`; the command line does).
    """
    metrics = requested_metrics(metrics)
    out = Path(out) if out is not None else None
    if out:
        check_columns(out)
    done = {(r["image"], r["method"]) for r in read_rows(out)}
    skipped = read_skipped(out) if out else {}
    rows: list[dict[str, Any]] = []
    layer = layer or classifier.target_layer
    built = {label: METHODS[name](classifier, layer, **kw) for label, name, kw in methods}
    todo = [
        (r, label)
        for r in records
        if r.name not in skipped
        for label, _, _ in methods
        if (r.name, label) not in done
    ]
    bar = progress_bar(todo, desc="evaluate", enabled=progress)
    current: tuple[Path | None, torch.Tensor | None] = (None, None)  # the image being explained, preprocessed once
    for record, label in bar:
        if record.name in skipped:
            continue
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{record.path.name[:24]} · {label}")
        if current[0] != record.path:
            try:
                current = (record.path, classifier.preprocess(record.path))
            except (ValueError, OSError) as exc:
                skipped[record.name] = str(exc)
                warnings.warn(f"skipped {record.name}: {exc}", stacklevel=2)
                if out:
                    record_skipped(out, record.name, str(exc))
                continue
        x = current[1]
        (row,) = explanation_rows(
            classifier,
            x,
            built[label](x),
            metrics,
            n_steps,
            method=label,
            images=[record.name],
            class_indices=[record.class_index],
        )
        row = {k: format_value(row.get(k, "")) for k in FIELDS}
        if out:
            append_row(out, row)
        rows.append(row)
    return Rows(read_rows(out) if out else rows, skipped)


def pointing_tiles(classifier: Classifier, composites: Sequence, top_k: int = 5) -> tuple[list[dict[str, Any]], int]:
    """The tiles of the grid pointing game that count: those whose class the model ranks in its
    top-``top_k`` on the composite. Returns ``(tiles, skipped)``; each tile is a dict with the
    composite's input ``x`` (1×3×H×W), its index ``composite``, ``class_index``, ``label`` and
    ``box``."""
    tiles, skipped = [], 0
    for i, comp in enumerate(composites):
        x = classifier.preprocess(comp.image, resize=False)
        top = classifier.predict(x, k=top_k)[1][0].tolist()
        for c, label, box in zip(comp.class_indices, comp.labels, comp.boxes, strict=True):
            if c in top:
                tiles.append({"x": x, "composite": i, "class_index": c, "label": label, "box": box})
            else:
                skipped += 1
    return tiles, skipped


def pointing_game(
    classifier: Classifier,
    composites: Sequence,
    methods: Sequence[MethodSpec],
    layer: str | None = None,
    top_k: int = 5,
    progress: bool = True,
    keep_maps: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """The grid pointing game: for each composite and each tile whose class the model ranks in
    its top-``top_k`` on the composite (:func:`pointing_tiles`), explain that class with every
    method and score the map against the tile (:func:`camlab.metrics.grid_pointing`).

    Returns ``(rows, skipped)``: one row per counted tile × method (with the heatmap under
    ``"heatmap"`` when ``keep_maps``), and the number of tiles left out because the model did not
    rank their class in its top-k.
    """
    layer = layer or classifier.target_layer
    built = {label: METHODS[name](classifier, layer, **kw) for label, name, kw in methods}
    tiles, skipped = pointing_tiles(classifier, composites, top_k)
    rows = []
    for tile in progress_bar(tiles, desc="pointing game", enabled=progress):
        for name, method in built.items():
            exp = method(tile["x"], targets=[tile["class_index"]])
            res = M.grid_pointing(exp.heatmaps[0], tile["box"])
            row = {
                "composite": tile["composite"],
                "class_index": tile["class_index"],
                "label": tile["label"],
                "method": name,
                "mass_inside": res.mass_inside,
                "max_inside": res.max_inside,
                "coverage": float(M.coverage(exp.heatmaps)[0]),
            }
            if keep_maps:
                row["heatmap"] = exp.heatmaps[0]
            rows.append(row)
    return rows, skipped


def pointing_intervals(rows: Iterable[dict[str, Any]]) -> dict[str, S.Interval]:
    """Per method, in the order the rows first name it: the mean share of the map's mass inside
    its tile over :func:`pointing_game`'s rows (or their CSV) and its 95 % bootstrap interval."""
    rows = list(rows)
    methods = dict.fromkeys(r["method"] for r in rows)
    return {m: S.mean_interval([float(r["mass_inside"]) for r in rows if r["method"] == m]) for m in methods}


def summarize(
    rows: Iterable[dict[str, Any]],
    reference: str | None = None,
    metrics: Sequence[str] | None = None,
    skipped: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per method: ``images``, and for every metric column M of the rows its mean and
    95 % bootstrap interval (``M``, ``M_lo``, ``M_hi``, in the rows' units: drop 0.12, not 12 %);
    with a ``reference`` method, the paired difference to it over the images both measured
    (``M_diff``, ``M_diff_lo``, ``M_diff_hi``) and the p of a sign-flip permutation test of that
    mean (``M_p``); then the mean forward passes and seconds per image, and how many images
    were ``skipped``.

    Raises:
        ValueError: ``reference`` is not one of the rows' methods.
    """
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["image"]] = r
    if reference is not None and reference not in by:
        raise ValueError(f"reference method {reference!r} has no rows; methods: {', '.join(by) or 'none'}")
    columns = [
        m for m in (metrics or METRICS) if any(str(r.get(m, "")) != "" for rs in by.values() for r in rs.values())
    ]

    def value(r: dict[str, Any] | None, key: str) -> float:
        v = None if r is None else r.get(key, "")
        return float(v) if v not in ("", None) else math.nan

    table = []
    for method, rs in by.items():
        images = list(rs)
        row: dict[str, Any] = {"method": method, "images": len(images)}
        for m in columns:
            iv = S.mean_interval([value(rs[i], m) for i in images])
            row.update({m: iv.mean, f"{m}_lo": iv.lo, f"{m}_hi": iv.hi})
            if reference is not None:
                ref = by[reference]
                both = [i for i in images if i in ref]
                d = S.paired_difference([value(rs[i], m) for i in both], [value(ref[i], m) for i in both])
                row.update({f"{m}_diff": d.mean, f"{m}_diff_lo": d.lo, f"{m}_diff_hi": d.hi, f"{m}_p": d.p})
        for key in ("n_forward", "seconds"):
            vals = [value(r, key) for r in rs.values()]
            row[key] = sum(vals) / len(vals) if vals else math.nan
        row["skipped"] = len(skipped or {})
        table.append(row)
    return table


# percentages, as the papers give them
PERCENT = tuple(m for m in METRICS if m.split("_top")[0] in ("drop", "drop_unclipped", "increase", "gain"))


def format_table(table: list[dict[str, Any]]) -> str:
    """A :func:`summarize` table as text: each metric's mean [95 % interval] (percentages for the
    drops and the increase), and with a reference the paired difference and its p."""
    if not table:
        return "(no rows)"
    metrics = [m for m in METRICS if m in table[0]]
    diff = any(f"{m}_diff" in table[0] for m in metrics)

    def cell(r: dict[str, Any], m: str, suffix: str = "") -> str:
        k = 100.0 if m in PERCENT else 1.0
        mean, lo, hi = (k * float(r[f"{m}{suffix}{end}"]) for end in ("", "_lo", "_hi"))
        digits = 1 if m in PERCENT else 3
        text = f"{mean:+.{digits}f}" if suffix else f"{mean:.{digits}f}"
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
        if suffix:
            text += f" p={float(r[f'{m}_p']):.2g}"
        return text

    names = [f"{m}{' %' if m in PERCENT else ''}" for m in metrics]
    lines = []
    for r in table:
        lines.append(
            f"{r['method']}  ({r['images']} images, {float(r['n_forward']):.0f} passes, "
            f"{float(r['seconds']):.3f} s per image)"
        )
        for m, name in zip(metrics, names, strict=True):
            lines.append(f"    {name:18s} {cell(r, m):28s}" + (f"  vs reference {cell(r, m, '_diff')}" if diff else ""))
    if table[0].get("skipped"):
        lines.append(f"{table[0]['skipped']} unreadable image(s) skipped")
    return "\n".join(lines)

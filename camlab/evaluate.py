"""The evaluation harness: methods × images × metrics → one CSV row per image and method.

    python -m camlab.evaluate --model efficientnet_lite0 --images DIR \\
        --methods gradcam,scorecam,clustercam --metrics drop,increase,insertion,deletion \\
        --limit N --device auto --out results.csv

Rows are appended to ``--out`` as they are computed, so an interrupted run resumes where it
stopped (finished image × method pairs are not recomputed). Under ``torchrun`` the images are
split across ranks (``torch.distributed``: gloo on CPU, nccl on GPUs); each rank writes
``<out>.rank<R>.csv`` and rank 0 merges them into ``--out``, in the same order as a
single-process run:

    torchrun --nproc_per_node 4 -m camlab.evaluate --device auto ...          # one node, 4 GPUs
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 \\
        --rdzv_backend c10d --rdzv_endpoint HOST:29500 -m camlab.evaluate ...  # two nodes
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from . import metrics as M
from . import stats as S
from .data import ImageRecord, image_folder
from .device import resolve_device
from .explanation import Explanation
from .methods import METHODS
from .models import Classifier, load_model
from .progress import progress as progress_bar

__all__ = ["METRICS", "MethodSpec", "Rows", "parse_methods", "evaluate", "explanation_rows", "pointing_tiles", "pointing_intervals", "read_skipped", "read_results", "summarize", "format_table", "pointing_game", "main"]

METRICS = M.METRICS
FIELDS = ["image", "class_index", "target", "method", "params", *METRICS, "n_forward", "seconds"]

MethodSpec = tuple[str, str, dict[str, Any]]  # (label, registered name, keyword arguments)


def parse_methods(text: str | Sequence[str]) -> list[MethodSpec]:
    """``"gradcam,clustercam:n_clusters=8"`` → method specs; values are read as JSON when they parse."""
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


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def read_results(path: str | os.PathLike, complete: bool = True) -> list[dict[str, str]]:
    """The per-image rows of a harness CSV (e.g. a committed run in ``benchmarks/results``);
    with ``complete``, only the images that every method of the file has — a run cut short
    holds the first methods of its last image, which would bias a paired comparison. A missing
    file gives ``[]``.

    >>> rows = read_results("benchmarks/results/table1_efficientnet_lite0.csv")  # doctest: +SKIP
    >>> len({r["image"] for r in rows})  # doctest: +SKIP
    200
    """
    rows = _read_rows(Path(path))
    if complete:
        methods = {r["method"] for r in rows}
        have: dict[str, set[str]] = {}
        for r in rows:
            have.setdefault(r["image"], set()).add(r["method"])
        rows = [r for r in rows if have[r["image"]] == methods]
    return rows


def _check_columns(path: Path, fields: Sequence[str] = FIELDS) -> None:
    """A CSV to resume must have been written with these columns (an older camlab's is refused)."""
    if path.is_file() and path.stat().st_size:
        with path.open(newline="") as fh:
            header = next(csv.reader(fh), [])
        if header != list(fields):
            raise ValueError(f"{path} was written with other columns ({', '.join(header)}); camlab now writes {', '.join(fields)}: write to a new file")


def _append(path: Path, row: dict[str, Any], fields: Sequence[str] = FIELDS) -> None:
    new = not path.is_file() or path.stat().st_size == 0
    if not new:
        _check_columns(path, fields)
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, bool):
        return int(v)
    return v


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


def skipped_path(out: str | os.PathLike) -> Path:
    """Where a run writing ``out`` records the images it skipped: ``<out>.skipped.csv``."""
    out = Path(out)
    return out.with_name(out.name + ".skipped.csv")


def read_skipped(out: str | os.PathLike) -> dict[str, str]:
    """The images a run writing ``out`` skipped, by file name, with the reason."""
    return {r["image"]: r["reason"] for r in _read_rows(skipped_path(out))}


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
    appended as soon as it is ready. An image that cannot be read is skipped with a warning that
    names it, and recorded (``<out>.skipped.csv``, and the result's ``skipped``), so a rerun
    neither retries it nor loses a row. Returns all rows (read back as strings when resumed).
    """
    metrics = M.check_metrics(metrics)
    out = Path(out) if out is not None else None
    if out:
        _check_columns(out)
    done = {(r["image"], r["method"]) for r in _read_rows(out)} if out else set()
    skipped = read_skipped(out) if out else {}
    rows: list[dict[str, Any]] = []
    layer = layer or classifier.target_layer
    built = {label: METHODS[name](classifier.module, layer, **kw) for label, name, kw in methods}
    todo = [(r, label) for r in records if r.path.name not in skipped for label, _, _ in methods if (r.path.name, label) not in done]
    bar = progress_bar(todo, desc="evaluate", enabled=progress)
    current: tuple[Path | None, torch.Tensor | None] = (None, None)  # the image being explained, preprocessed once
    for record, label in bar:
        if record.path.name in skipped:
            continue
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{record.path.name[:24]} · {label}")
        if current[0] != record.path:
            try:
                current = (record.path, classifier.preprocess(record.path))
            except (ValueError, OSError) as exc:
                skipped[record.path.name] = str(exc)
                warnings.warn(f"skipped {record.path.name}: {exc}", stacklevel=2)
                if out:
                    _append(skipped_path(out), {"image": record.path.name, "reason": str(exc)}, ["image", "reason"])
                continue
        x = current[1]
        (row,) = explanation_rows(classifier.module, x, built[label](x), metrics, n_steps, method=label, images=[record.path.name], class_indices=[record.class_index])
        row = {k: _fmt(row.get(k, "")) for k in FIELDS}
        if out:
            _append(out, row)
        rows.append(row)
    return Rows(_read_rows(out) if out else rows, skipped)


def pointing_tiles(classifier: Classifier, composites: Sequence, top_k: int = 5) -> tuple[list[dict[str, Any]], int]:
    """The tiles of the grid pointing game that count: those whose class the model ranks in its
    top-``top_k`` on the composite. Returns ``(tiles, skipped)``; each tile is a dict with the
    composite's input ``x`` (1×3×H×W), its index ``composite``, ``class_index``, ``label`` and
    ``box``."""
    tiles, skipped = [], 0
    for i, comp in enumerate(composites):
        x = classifier.preprocess(comp.image, resize=False)
        top = classifier.predict(x, k=top_k)[1][0].tolist()
        for c, label, box in zip(comp.class_indices, comp.labels, comp.boxes):
            if c in top:
                tiles.append({"x": x, "composite": i, "class_index": c, "label": label, "box": box})
            else:
                skipped += 1
    return tiles, skipped


def pointing_game(classifier: Classifier, composites: Sequence, methods: Sequence[MethodSpec], layer: str | None = None, top_k: int = 5, progress: bool = True, keep_maps: bool = False) -> tuple[list[dict[str, Any]], int]:
    """The grid pointing game: for each composite and each tile whose class the model ranks in
    its top-``top_k`` on the composite (:func:`pointing_tiles`), explain that class with every
    method and score the map against the tile (:func:`camlab.metrics.grid_pointing`).

    Returns ``(rows, skipped)``: one row per counted tile × method (with the heatmap under
    ``"heatmap"`` when ``keep_maps``), and the number of tiles left out because the model did not
    rank their class in its top-k.
    """
    layer = layer or classifier.target_layer
    built = {label: METHODS[name](classifier.module, layer, **kw) for label, name, kw in methods}
    tiles, skipped = pointing_tiles(classifier, composites, top_k)
    rows = []
    for tile in progress_bar(tiles, desc="pointing game", enabled=progress):
        for name, method in built.items():
            exp = method(tile["x"], targets=[tile["class_index"]])
            res = M.grid_pointing(exp.heatmaps[0], tile["box"])
            row = {"composite": tile["composite"], "class_index": tile["class_index"], "label": tile["label"], "method": name, "mass_inside": res.mass_inside, "max_inside": res.max_inside, "coverage": float(M.coverage(exp.heatmaps)[0])}
            if keep_maps:
                row["heatmap"] = exp.heatmaps[0]
            rows.append(row)
    return rows, skipped


def pointing_intervals(rows: Iterable[dict[str, Any]]) -> dict[str, S.Interval]:
    """Per method, in the order the rows first name it: the mean share of the map's mass inside
    its tile over :func:`pointing_game`'s rows (or their CSV) and its 95 % bootstrap interval."""
    rows = list(rows)
    return {m: S.mean_interval([float(r["mass_inside"]) for r in rows if r["method"] == m]) for m in dict.fromkeys(r["method"] for r in rows)}


def summarize(rows: Iterable[dict[str, Any]], reference: str | None = None, metrics: Sequence[str] | None = None, skipped: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per method: ``images``, and for every metric column M of the rows its mean and
    95 % bootstrap interval (``M``, ``M_lo``, ``M_hi``, in the rows' units: drop 0.12, not 12 %);
    with a ``reference`` method, the paired difference to it over the images both measured
    (``M_diff``, ``M_diff_lo``, ``M_diff_hi``) and its Wilcoxon signed-rank p (``M_p``); then the
    mean forward passes and seconds per image, and how many images were ``skipped``.

    Raises:
        ValueError: ``reference`` is not one of the rows' methods.
    """
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["image"]] = r
    if reference is not None and reference not in by:
        raise ValueError(f"reference method {reference!r} has no rows; methods: {', '.join(by) or 'none'}")
    columns = [m for m in (metrics or METRICS) if any(str(r.get(m, "")) != "" for rs in by.values() for r in rs.values())]

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


PERCENT = tuple(m for m in METRICS if m.split("_top")[0] in ("drop", "drop_unclipped", "increase", "gain"))  # percentages, as the papers give them


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
        lines.append(f"{r['method']}  ({r['images']} images, {float(r['n_forward']):.0f} passes, {float(r['seconds']):.3f} s per image)")
        for m, name in zip(metrics, names):
            lines.append(f"    {name:18s} {cell(r, m):28s}" + (f"  vs reference {cell(r, m, '_diff')}" if diff else ""))
    if table[0].get("skipped"):
        lines.append(f"{table[0]['skipped']} unreadable image(s) skipped")
    return "\n".join(lines)


def _order_key(records: Sequence[ImageRecord], methods: Sequence[MethodSpec]):
    img = {r.path.name: i for i, r in enumerate(records)}
    meth = {label: i for i, (label, _, _) in enumerate(methods)}
    return lambda row: (img.get(row["image"], 1 << 30), meth.get(row["method"], 1 << 30))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, no usage dump
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="python -m camlab.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--images", required=True, help="a folder of images; one named nXXXXXXXX_label.JPEG records its ImageNet class, any other has none (every image's explained class is the model's top-1, column target)")
    p.add_argument("--methods", default="gradcam,scorecam,clustercam", help="comma-separated; parameters as name:key=value;key=value")
    p.add_argument("--metrics", default=",".join(METRICS))
    p.add_argument("--layer", default=None, help="target layer (default: the model's)")
    p.add_argument("--limit", type=int, default=None, help="the first N images")
    p.add_argument("--n-steps", type=int, default=32, help="deletion/insertion steps")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="results.csv")
    p.add_argument("--summary", default=None, help="write one row per method (means, 95 %% intervals, differences to --reference) to this CSV")
    p.add_argument("--reference", default=None, help="the method (as named in --methods) every other is compared with, image by image")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    try:  # every argument checked before any work: a bad one is one line and status 2
        methods = parse_methods(args.methods)
        metrics = M.check_metrics(args.metrics.split(","))
        labels = [label for label, _, _ in methods]
        if args.reference is not None and args.reference not in labels:
            raise ValueError(f"--reference {args.reference!r} is not one of the methods: {', '.join(labels)}")
        if args.n_steps < 1 or (args.limit is not None and args.limit < 1):
            raise ValueError(f"--n-steps and --limit must be ≥ 1, got {args.n_steps} and {args.limit}")
        records = image_folder(args.images, limit=args.limit)
        device = resolve_device(args.device)
        if world > 1 and device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        clf = load_model(args.model, device=device)
        layer = args.layer or clf.target_layer
        probe = clf.preprocess(records[0].load())
        for label, name, kw in methods:
            method = METHODS[name](clf.module, layer, **kw)
            if kw:  # a parameter out of range for this layer (n_clusters above its channels…) shows on a call
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        method(probe)
                    except (ValueError, TypeError) as exc:
                        raise ValueError(f"{label}: {exc}") from None
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        p.error(str(exc))
    out = Path(args.out)
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    mine = records[rank::world]
    part = out.with_name(f"{out.name}.rank{rank}.csv") if world > 1 else out
    start = time.perf_counter()
    evaluate(clf, mine, methods, metrics, out=part, layer=layer, n_steps=args.n_steps, progress=not args.no_progress and rank == 0)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        if rank == 0:
            parts = [out.with_name(f"{out.name}.rank{r}.csv") for r in range(world)]
            merged = [row for part_ in parts for row in _read_rows(part_)]
            merged.sort(key=_order_key(records, methods))
            with out.open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=FIELDS)
                w.writeheader()
                w.writerows(merged)
            skipped_path(out).unlink(missing_ok=True)
            for name, reason in {k: v for part_ in parts for k, v in read_skipped(part_).items()}.items():
                _append(skipped_path(out), {"image": name, "reason": reason}, ["image", "reason"])
        dist.barrier()
        dist.destroy_process_group()
    if rank == 0:
        rows = _read_rows(out)
        rows.sort(key=_order_key(records, methods))
        skipped = read_skipped(out)
        for name, reason in skipped.items():
            print(f"skipped {name}: {reason}")
        print(f"{len(rows)} rows in {out} ({time.perf_counter() - start:.0f} s, {world} process{'es' if world > 1 else ''})")
        table = summarize(rows, args.reference, metrics, skipped)
        print(format_table(table))
        if args.summary:
            with Path(args.summary).open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(table[0]) if table else ["method"])
                w.writeheader()
                w.writerows({k: _fmt(v) for k, v in r.items()} for r in table)
            print(f"summary: {args.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from . import metrics as M
from .data import ImageRecord, imagenet_folder
from .device import resolve_device
from .methods import METHODS
from .models import Classifier, load_model

__all__ = ["METRICS", "MethodSpec", "parse_methods", "evaluate", "summarize", "pointing_game", "main"]

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


def _append(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file() or path.stat().st_size == 0
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
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


def evaluate(
    classifier: Classifier,
    records: Sequence[ImageRecord],
    methods: Sequence[MethodSpec],
    metrics: Sequence[str] = METRICS,
    out: str | os.PathLike | None = None,
    layer: str | None = None,
    n_steps: int = 32,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every method on every image and measure every metric; one row per image × method.

    With ``out``, rows already in that CSV are kept and not recomputed, and each new row is
    appended as soon as it is ready. Returns all rows (read back as strings when resumed).
    """
    from tqdm.auto import tqdm

    metrics = M.check_metrics(metrics)
    out = Path(out) if out is not None else None
    done = {(r["image"], r["method"]) for r in _read_rows(out)} if out else set()
    rows: list[dict[str, Any]] = []
    layer = layer or classifier.target_layer
    built = {label: METHODS[name](classifier.module, layer, **kw) for label, name, kw in methods}
    todo = [(r, label) for r in records for label, _, _ in methods if (r.path.name, label) not in done]
    bar = tqdm(todo, desc="evaluate", disable=not progress)
    x_cache: dict[Path, torch.Tensor] = {}
    for record, label in bar:
        bar.set_postfix_str(f"{record.path.name[:24]} · {label}")
        x = x_cache.setdefault(record.path, classifier.preprocess(record.path))
        if len(x_cache) > 4:
            x_cache.pop(next(iter(x_cache)))
        exp = built[label](x)
        t = exp.targets
        h = exp.heatmaps
        row: dict[str, Any] = {
            "image": record.path.name,
            "class_index": record.class_index,
            "target": int(t[0]),
            "method": label,
            "params": json.dumps(exp.params, sort_keys=True, default=str),
            "n_forward": exp.n_forward,
            "seconds": exp.seconds,
        }
        for name, values in M.measure(classifier.module, x, h, t, metrics, n_steps).items():
            row[name] = bool(values[0]) if name == "increase" else float(values[0])
        row = {k: _fmt(row.get(k, "")) for k in FIELDS}
        if out:
            _append(out, row)
        rows.append(row)
    if out:
        return _read_rows(out)
    return rows


def pointing_game(classifier: Classifier, composites: Sequence, methods: Sequence[MethodSpec], layer: str | None = None, top_k: int = 5, progress: bool = True, keep_maps: bool = False) -> tuple[list[dict[str, Any]], int]:
    """The grid pointing game: for each composite and each tile whose class the model ranks in
    its top-``top_k`` on the composite, explain that class with every method and score the map
    against the tile (:func:`camlab.metrics.grid_pointing`).

    Returns ``(rows, skipped)``: one row per composite × counted tile × method (with the
    heatmap under ``"heatmap"`` when ``keep_maps``), and the number of tiles left out because the
    model did not rank their class in its top-k.
    """
    from tqdm.auto import tqdm

    layer = layer or classifier.target_layer
    built = {label: METHODS[name](classifier.module, layer, **kw) for label, name, kw in methods}
    rows, skipped = [], 0
    for i, comp in enumerate(tqdm(composites, desc="pointing game", disable=not progress)):
        x = classifier.preprocess(comp.image, resize=False)
        _, top = classifier.predict(x, k=top_k)
        for c, label, box in zip(comp.class_indices, comp.labels, comp.boxes):
            if c not in top[0].tolist():
                skipped += 1
                continue
            for name, method in built.items():
                exp = method(x, targets=[c])
                res = M.grid_pointing(exp.heatmaps[0], box)
                row = {"composite": i, "class_index": c, "label": label, "method": name, "mass_inside": res.mass_inside, "max_inside": res.max_inside, "coverage": float(M.coverage(exp.heatmaps)[0])}
                if keep_maps:
                    row["heatmap"] = exp.heatmaps[0]
                rows.append(row)
    return rows, skipped


def summarize(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: Table 1's confidence drop and increase (%), mean insertion, deletion, coverage,
    forward passes and seconds per image."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    table = []
    for method, rs in by.items():

        def mean(key):
            vals = [float(r[key]) for r in rs if r.get(key, "") not in ("", None)]
            return sum(vals) / len(vals) if vals else float("nan")

        table.append(
            {
                "method": method,
                "images": len(rs),
                "confidence_drop_%": 100 * mean("drop"),
                "increase_%": 100 * mean("increase"),
                "insertion_auc": mean("insertion"),
                "deletion_auc": mean("deletion"),
                "coverage": mean("coverage"),
                "n_forward": mean("n_forward"),
                "seconds": mean("seconds"),
            }
        )
    return table


def format_table(table: list[dict[str, Any]]) -> str:
    if not table:
        return "(no rows)"
    keys = list(table[0])
    lines = ["  ".join(f"{k:>16s}" for k in keys)]
    for r in table:
        lines.append("  ".join(f"{v:>16.4g}" if isinstance(v, float) else f"{str(v):>16s}" for v in r.values()))
    return "\n".join(lines)


def _order_key(records: Sequence[ImageRecord], methods: Sequence[MethodSpec]):
    img = {r.path.name: i for i, r in enumerate(records)}
    meth = {label: i for i, (label, _, _) in enumerate(methods)}
    return lambda row: (img.get(row["image"], 1 << 30), meth.get(row["method"], 1 << 30))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m camlab.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--images", required=True, help="a folder of images named nXXXXXXXX_label.JPEG")
    p.add_argument("--methods", default="gradcam,scorecam,clustercam", help="comma-separated; parameters as name:key=value;key=value")
    p.add_argument("--metrics", default="drop,increase,insertion,deletion,coverage")
    p.add_argument("--layer", default=None, help="target layer (default: the model's)")
    p.add_argument("--limit", type=int, default=None, help="the first N images")
    p.add_argument("--n-steps", type=int, default=32, help="deletion/insertion steps")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="results.csv")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    methods = parse_methods(args.methods)
    metrics = M.check_metrics(args.metrics.split(","))
    records = imagenet_folder(args.images, limit=args.limit)
    out = Path(args.out)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(args.device)
    if world > 1:
        import torch.distributed as dist

        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    clf = load_model(args.model, device=device)
    mine = records[rank::world]
    part = out.with_name(f"{out.name}.rank{rank}.csv") if world > 1 else out
    start = time.perf_counter()
    evaluate(clf, mine, methods, metrics, out=part, layer=args.layer, n_steps=args.n_steps, progress=not args.no_progress and rank == 0)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        if rank == 0:
            merged = [row for r in range(world) for row in _read_rows(out.with_name(f"{out.name}.rank{r}.csv"))]
            merged.sort(key=_order_key(records, methods))
            with out.open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=FIELDS)
                w.writeheader()
                w.writerows(merged)
        dist.barrier()
        dist.destroy_process_group()
    if rank == 0:
        rows = _read_rows(out)
        rows.sort(key=_order_key(records, methods))
        print(f"{len(rows)} rows in {out} ({time.perf_counter() - start:.0f} s, {world} process{'es' if world > 1 else ''})")
        print(format_table(summarize(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

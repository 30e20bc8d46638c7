"""The evaluation harness's command line: methods × images × metrics → one CSV row per image and method.

    python -m camlab.evaluation --model efficientnet_lite0 --images DIR \\
        --methods gradcam,scorecam,clustercam --metrics drop,increase,insertion,deletion \\
        --limit N --device auto --out results.csv

DIR is a folder of images, flat or in sub-folders: ImageNet's validation set as it comes, one
folder per synset (val/n01440764/ILSVRC2012_val_00000293.JPEG), records each image's class from
its folder. Rows are appended to --out as they are computed, so an interrupted run resumes where
it stopped (finished image × method pairs are not recomputed); an unreadable image is skipped,
named and recorded in <out>.skipped.csv. One process writes --out at a time: a second one started
on the same file stops at once with exit status 2 (the lock is .<out>.lock beside it). Under
torchrun the images are split across ranks (torch.distributed: gloo on CPU, nccl on GPUs); each
rank writes <out>.rank<R>.csv and rank 0 merges them into --out, in the same order as a
single-process run::

    torchrun --nproc_per_node 4 -m camlab.evaluation --device auto ...          # one node, 4 GPUs
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 \\
        --rdzv_backend c10d --rdzv_endpoint HOST:29500 -m camlab.evaluation ...  # two nodes
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Sequence

import torch

from ..core.data import ImageRecord, image_folder
from ..core.device import resolve_device
from ..core.models import MODELS, Classifier, load_model
from ..methods import METHODS
from .harness import METRICS, MethodSpec, evaluate, format_table, parse_methods, requested_metrics, summarize
from .results import (
    format_value,
    locked,
    read_rows,
    read_skipped,
    record_skipped,
    skipped_path,
    write_rows,
)

__all__ = ["main", "merge_parts", "part_path", "first_readable"]

PROG = "python -m camlab.evaluation"


def _order_key(records: Sequence[ImageRecord], methods: Sequence[MethodSpec]):
    img = {r.name: i for i, r in enumerate(records)}
    meth = {label: i for i, (label, _, _) in enumerate(methods)}
    return lambda row: (img.get(row["image"], 1 << 30), meth.get(row["method"], 1 << 30))


def part_path(out: str | os.PathLike, rank: int) -> Path:
    """The CSV rank ``rank`` of a ``torchrun`` writes for ``out``: ``<out>.rank<R>.csv``."""
    out = Path(out)
    return out.with_name(f"{out.name}.rank{rank}.csv")


def merge_parts(
    out: str | os.PathLike, world: int, records: Sequence[ImageRecord], methods: Sequence[MethodSpec]
) -> None:
    """Merge the ``world`` ranks' CSVs (and skipped images) into ``out``, in the order a single
    process writes: image by image as in ``records``, method by method as in ``methods``."""
    out = Path(out)
    parts = [part_path(out, r) for r in range(world)]
    merged = [row for part in parts for row in read_rows(part)]
    merged.sort(key=_order_key(records, methods))
    write_rows(out, merged)
    skipped_path(out).unlink(missing_ok=True)
    for name, reason in {k: v for part in parts for k, v in read_skipped(part).items()}.items():
        record_skipped(out, name, reason)


def first_readable(classifier: Classifier, records: Sequence[ImageRecord]) -> torch.Tensor | None:
    """The first image of ``records`` that can be read, preprocessed, or ``None`` when none can
    (the unreadable ones are the evaluation's to skip and record)."""
    for record in records:
        try:
            return classifier.preprocess(record.path)
        except (ValueError, OSError):
            continue
    return None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, no usage dump
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _parser() -> _Parser:
    p = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model",
        default="efficientnet_lite0",
        help=f"the network to explain, one of {', '.join(MODELS)} (default: %(default)s)",
    )
    p.add_argument(
        "--images",
        required=True,
        help="a folder of images, searched in its sub-folders too (required). The class of an image comes from "
        "its name, nXXXXXXXX_label.JPEG, or from a folder named by its synset, val/n01440764/x.JPEG; any other "
        "image has none (column class_index empty). Every image's explained class is the model's top-1 "
        "(column target)",
    )
    p.add_argument(
        "--methods",
        default="gradcam,scorecam,clustercam",
        help=f"comma-separated, from {', '.join(METHODS)}; parameters as name:key=value;key=value "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--metrics",
        default=",".join(METRICS),
        help="comma-separated; drop brings drop_unclipped with it (no extra cost) (default: every metric, %(default)s)",
    )
    p.add_argument("--layer", default=None, help="the layer to explain, by name (default: the model's target layer)")
    p.add_argument("--limit", type=int, default=None, help="explain only the first N images (default: all)")
    p.add_argument(
        "--n-steps", type=int, default=32, help="steps of the deletion and insertion curves (default: %(default)s)"
    )
    p.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:N or auto, CUDA when there is one (default: %(default)s); under torchrun each "
        "process takes the GPU of its LOCAL_RANK",
    )
    p.add_argument(
        "--out",
        default="results.csv",
        help="the per-image CSV, appended to and resumed (default: %(default)s); the skipped images go to "
        "<out>.skipped.csv",
    )
    p.add_argument(
        "--summary",
        default=None,
        help="also write one row per method (means, 95 %% intervals, differences to --reference) to this CSV "
        "(default: none)",
    )
    p.add_argument(
        "--reference",
        default=None,
        help="the method (as named in --methods) every other is compared with, image by image (default: none)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: a bar on the first process)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the harness on ``argv`` (default: the command line); returns the exit status. A bad
    argument, or an ``--out`` another process is writing, prints one line and exits with status 2
    before any work."""
    p = _parser()
    args = p.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    out = Path(args.out)
    part = part_path(out, rank) if world > 1 else out
    locks = ExitStack()
    try:  # every argument checked before any work: a bad one is one line and status 2
        methods = parse_methods(args.methods)
        metrics = requested_metrics(args.metrics.split(","))
        labels = [label for label, _, _ in methods]
        if args.reference is not None and args.reference not in labels:
            raise ValueError(f"--reference {args.reference!r} is not one of the methods: {', '.join(labels)}")
        if args.n_steps < 1 or (args.limit is not None and args.limit < 1):
            raise ValueError(f"--n-steps and --limit must be ≥ 1, got {args.n_steps} and {args.limit}")
        records = image_folder(args.images, limit=args.limit)
        # one process writes a file (checked before the model loads, so a second one stops at once):
        # rank 0 holds --out (it merges into it), every rank its own part
        for path in [part] if rank else dict.fromkeys([out, part]):
            locks.enter_context(locked(path))
        device = resolve_device(args.device)
        if world > 1 and device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        clf = load_model(args.model, device=device)
        layer = args.layer or clf.target_layer
        probe = first_readable(clf, records) if any(kw for _, _, kw in methods) else None
        for label, name, kw in methods:
            method = METHODS[name](clf, layer, **kw)
            # a parameter out of range for this layer (n_clusters above its channels…) shows on a call
            if kw and probe is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        method(probe)
                    except (ValueError, TypeError) as exc:
                        raise ValueError(f"{label}: {exc}") from None
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:  # OutputLocked is a RuntimeError
        locks.close()
        p.error(str(exc))
    with locks:
        if world > 1:
            import torch.distributed as dist

            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        start = time.perf_counter()
        progress = not args.no_progress and rank == 0
        mine = records[rank::world]
        evaluate(clf, mine, methods, metrics, out=part, layer=layer, n_steps=args.n_steps, progress=progress)
        if world > 1:
            dist.barrier()
            if rank == 0:
                merge_parts(out, world, records, methods)
            dist.barrier()
            dist.destroy_process_group()
    if rank == 0:
        rows = read_rows(out)
        rows.sort(key=_order_key(records, methods))
        skipped = read_skipped(out)
        for name, reason in skipped.items():
            print(f"skipped {name}: {reason}")
        processes = f"{world} process{'es' if world > 1 else ''}"
        print(f"{len(rows)} rows in {out} ({time.perf_counter() - start:.0f} s, {processes})")
        table = summarize(rows, args.reference, metrics, skipped)
        print(format_table(table))
        if args.summary:
            fields = list(table[0]) if table else ["method"]
            write_rows(args.summary, ({k: format_value(v) for k, v in r.items()} for r in table), fields)
            print(f"summary: {args.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The batch size of the masked-image passes, measured per device (and torch.compile, on request).

    .venv/bin/python benchmarks/bench_batch.py                    # this machine's default device
    .venv/bin/python benchmarks/bench_batch.py --device cuda --compile

What every perturbation method and metric spends its time on is `camlab.masking.score_masked`:
masked copies of an image, `batch_size` per pass. For each batch size this times scoring
`--n-masks` masks of one ImageNet dev image with efficientnet_lite0 (median of `--repeats`
rounds, each timing every batch size in both layouts once, in turn; ms per masked image), in the
model's preferred memory layout with its batch norms folded (`clf.scorer`, camlab now) and in
the default layout, unfolded (camlab before Step 7), with the paired ratio of the two. With
`--compile`, the same for `torch.compile(model)` (unfolded) at the best batch size, with the
time of the first call (the compilation) reported apart. The table goes to stdout and, as CSV,
to benchmarks/results/bench_batch_<device>.csv. `camlab.core.device.default_batch_size` follows it.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch
from camlab.masking import score_masked
from results_csv import write_csv

import camlab
from camlab.evaluation.timing import time_call

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--n-masks", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--sizes", default=None, help="comma-separated batch sizes (default: 1…32 on the CPU, 1…256 on CUDA)"
    )
    p.add_argument("--compile", action="store_true", help="also time torch.compile(model) at the best batch size")
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)

    device = camlab.resolve_device(args.device)
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else ([1, 2, 4, 8, 16, 32] if device.type == "cpu" else [1, 4, 16, 32, 64, 128, 256])
    )
    clf = camlab.load_model("efficientnet_lite0", device=device)
    x = clf.preprocess(camlab.data.pick_images(args.data_root, n_images=1, seed=0)[0].image)
    with torch.no_grad(), camlab.capture(clf.module, "bn2") as cap:
        logits = clf.module(x)
    target = logits.argmax(1)
    maps = cap.activations[0, : args.n_masks]  # real feature maps as masks
    owner = torch.zeros(maps.shape[0], dtype=torch.long, device=device)
    before = copy.deepcopy(clf.module).to(memory_format=torch.contiguous_format)  # a bare module: never folded
    models = {"preferred": clf.scorer, "default layout": before}
    print(
        f"efficientnet_lite0 on {device}, torch {torch.__version__}; {maps.shape[0]} masks; "
        f"preferred layout: {camlab.core.device.preferred_memory_format(device)}",
        flush=True,
    )
    # round-robin: every (layout, batch size) once per round, so a drift of the host's speed
    # (seen here: 2× within minutes) hits all of them alike; the median over rounds is kept
    inputs = {label: camlab.core.device.to_model_format(x, model) for label, model in models.items()}
    runs = {
        (label, bs): (lambda m=model, xi=inputs[label], b=bs: score_masked(m, xi, maps, owner, target, batch_size=b))
        for label, model in models.items()
        for bs in sizes
    }
    seconds = {key: [] for key in runs}
    for run in runs.values():
        run()  # warm-up
    for _ in range(args.repeats):
        for key, run in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds[key].append(time.perf_counter() - start)
    rows = []
    for (label, bs), ts in seconds.items():
        paired = (
            ""
            if label == "default layout"
            else statistics.median(a / b for a, b in zip(ts, seconds[("default layout", bs)], strict=True))
        )
        rows.append(
            {
                "layout": label,
                "batch_size": bs,
                "ms_per_image": 1000 * statistics.median(ts) / maps.shape[0],
                "vs_default_layout": paired,
                "note": "",
            }
        )
        print(
            f"  {label:15s} batch {bs:4d}: {rows[-1]['ms_per_image']:7.2f} ms per masked image"
            + (f"  ({paired:.2f}× the default layout, paired)" if paired else ""),
            flush=True,
        )
    best = min((r for r in rows if r["layout"] == "preferred"), key=lambda r: r["ms_per_image"])
    print(f"best batch size in the preferred layout: {best['batch_size']} ({best['ms_per_image']:.2f} ms per image)")
    if args.compile:
        compiled = torch.compile(clf.module)
        start = time.perf_counter()
        score_masked(compiled, x, maps, owner, target, batch_size=best["batch_size"])
        first = time.perf_counter() - start
        t = time_call(
            lambda: score_masked(compiled, x, maps, owner, target, batch_size=best["batch_size"]),
            repeats=args.repeats,
            warmup=1,
            device=device,
        ).seconds
        rows.append(
            {
                "layout": "preferred, torch.compile",
                "batch_size": best["batch_size"],
                "ms_per_image": 1000 * t / maps.shape[0],
                "vs_default_layout": "",
                "note": f"first call (compilation) {first:.1f} s",
            }
        )
        print(
            f"  torch.compile  batch {best['batch_size']:4d}: {rows[-1]['ms_per_image']:7.2f} ms per masked image; "
            f"first call {first:.1f} s",
            flush=True,
        )
    out = write_csv(
        RESULTS / f"bench_batch_{device.type}.csv",
        [{"date": date.today().isoformat(), "device": str(device), **r} for r in rows],
    )
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

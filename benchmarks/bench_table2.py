"""Table 2 of Feng et al. 2023 on this machine: seconds and forward passes per image for every
method, on N dev images × R repeats, with 95 % intervals over the images — the run that
notebook 09 and the README quote.

    .venv/bin/python benchmarks/bench_table2.py                    # CPU, 20 images × 5 repeats, bn2
    .venv/bin/python benchmarks/bench_table2.py --device cuda

Images are the outer loop and every method is timed on each image in turn (a warm-up call, then
the median of R timed calls, camlab.evaluation.timing.time_call), so a drift of the host's speed falls on
all methods alike. Passes are counted apart: *full* passes of the whole network and *partial*
passes through the tail of the network after the target layer (Ablation-CAM's ablated copies).
Ratios are paired per image (camlab.evaluation.stats.ratio_interval). Run it alone on the machine.
Per-image CSV: benchmarks/results/bench_table2_<device>.csv.
"""

from __future__ import annotations

import argparse
import csv
import platform
import random
import sys
import warnings
from datetime import date
from pathlib import Path

import torch
from tqdm.auto import tqdm

import camlab
from camlab.evaluation.harness import parse_methods
from camlab.evaluation.timing import time_call, timing_table

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = [
    "gradcam",
    "gradcampp",
    "eigencam",
    "groupcam",
    "ablationcam",
    "scorecam",
    "clustercam:n_clusters=6",
    "clustercam",
    "clustercam:clustering=kmeans;n_clusters=6;coupling=paper",
]
FIELDS = [
    "date",
    "device",
    "machine",
    "threads",
    "model",
    "layer",
    "image",
    "method",
    "seconds",
    "full_passes",
    "partial_passes",
    "repeats",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--layer", default=None, help="default: the model's CAM layer")
    ap.add_argument("--n-images", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    dev = camlab.resolve_device(args.device)
    clf = camlab.load_model(args.model, device=dev)
    layer = args.layer or clf.target_layer
    records = camlab.data.imagenet_folder(camlab.data.data_root() / "imagenet-dev")
    records = sorted(
        random.Random(args.seed).sample(records, min(args.n_images, len(records))), key=lambda r: r.path.name
    )
    specs = parse_methods(args.methods)
    methods = {label: camlab.METHODS[name](clf, layer, **kw) for label, name, kw in specs}
    machine = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{platform.machine()} CPU"
    out = Path(args.out) if args.out else RESULTS / f"bench_table2_{dev.type}.csv"
    rows = []
    for rec in tqdm(records, desc="images"):
        x = clf.preprocess(rec.load())
        for label, method in methods.items():
            t = time_call(lambda method=method, x=x: method(x), repeats=args.repeats, warmup=1, device=dev)
            full, partial = t.result.passes
            rows.append(
                {
                    "date": date.today().isoformat(),
                    "device": dev.type,
                    "machine": machine,
                    "threads": torch.get_num_threads(),
                    "model": clf.name,
                    "layer": layer,
                    "image": rec.path.name,
                    "method": label,
                    "seconds": f"{t.seconds:.6g}",
                    "full_passes": full,
                    "partial_passes": partial,
                    "repeats": args.repeats,
                }
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    first = rows[0]
    print(
        f"{first['model']} at `{first['layer']}`, {first['machine']} ({first['threads']} threads), "
        f"{len(records)} images × {args.repeats} repeats, {first['date']}\n"
    )
    print(timing_table(rows))
    print(f"\nper-image rows: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

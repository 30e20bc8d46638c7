"""How much Cluster-CAM maps depend on the seed, by clustering and coupling, on dev images.

    .venv/bin/python benchmarks/seed_stability.py                       # 40 dev images, bn2, Q = 8, α = 0.8
    .venv/bin/python benchmarks/seed_stability.py --n-images 200 --layer blocks.6

The images are notebook 06's (``random.Random(seed).sample`` of the dev folder). For each setting,
``camlab.book.sweeps.seed_stability`` over seeds 0 … S−1 (one forward pass of the images serves
every seed of a setting), and the ratio of the peaks of base and scissors that eq 22 subtracts;
the table goes to stdout and, as CSV, to
benchmarks/results/seed_stability_<layer>.csv.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch
from results_csv import write_csv

import camlab
from camlab.book.sweeps import seed_stability

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = {
    "K-means, normalized (the default before Step 8)": {"clustering": "kmeans", "coupling": "normalized"},
    "K-means, paper": {"clustering": "kmeans", "coupling": "paper"},
    "K-means, weighted": {"clustering": "kmeans", "coupling": "weighted"},
    "K-means (n_init = 10), normalized": {"clustering": "kmeans", "coupling": "normalized", "n_init": 10},
    "spectral, normalized": {"clustering": "spectral", "coupling": "normalized"},
    "Ward, normalized": {"clustering": "ward", "coupling": "normalized"},
    "Ward, weighted": {"clustering": "ward", "coupling": "weighted"},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--layer", default=None, help="default: the model's CAM layer")
    p.add_argument("--n-images", type=int, default=40)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--n-clusters", type=int, default=8)
    p.add_argument("--alpha", type=float, default=0.8)
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)

    clf = camlab.load_model(args.model, device=camlab.resolve_device(args.device))
    layer = args.layer or clf.target_layer
    records = camlab.data.imagenet_folder(camlab.data.data_root(args.data_root) / "imagenet-dev")
    records = sorted(random.Random(0).sample(records, min(args.n_images, len(records))), key=lambda r: r.path.name)
    x = clf.preprocess([r.path for r in records])
    print(
        f"{args.model} at {layer!r} on {clf.device}; {len(records)} dev images; seeds 0–{args.seeds - 1}; "
        f"Q = {args.n_clusters}, α = {args.alpha}",
        flush=True,
    )
    rows = []
    for name, setting in SETTINGS.items():
        start = time.perf_counter()
        st = seed_stability(clf, x, layer, range(args.seeds), n_clusters=args.n_clusters, alpha=args.alpha, **setting)
        rows.append(
            {
                "setting": name,
                **{k: round(v, 4) for k, v in st.items()},
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(
            f"  {name:40s} heatmap r between seeds {st['corr']:.3f} (lowest {st['corr_min']:.3f}); "
            f"ARI {st['ari']:.3f}; same base {st['same_base']:.0%}, same scissors {st['same_scissors']:.0%}",
            flush=True,
        )
    # why the paper's eq 22 moves most: the scales of the two cluster means it subtracts
    state = camlab.ClusterCAM(clf, layer, n_clusters=args.n_clusters, clustering="kmeans").fit(x)
    rows_ = torch.arange(len(x))
    peaks = state.cluster_maps.flatten(2).amax(2)
    ratio = peaks[rows_, state.cluster_scores.argmax(1)] / peaks[rows_, state.cluster_scores.argmin(1)].clamp_min(1e-12)
    q = ratio.quantile(torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])).tolist()
    print(
        f"peak of the base mean / peak of the scissors mean (K-means, seed 0): deciles 10/25/50/75/90 % = "
        f"{', '.join(f'{v:.3g}' for v in q)}; "
        f"more than 3× apart either way in {float(((ratio > 3) | (ratio < 1 / 3)).float().mean()):.0%} of the images"
    )
    print(f"written {write_csv(RESULTS / f'seed_stability_{layer}.csv', rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""ROAD's imputation: camlab's ``noisy_linear_impute`` against the ROAD authors' imputation as
pytorch-grad-cam ships it (``NoisyLinearImputer``), on 2 dev images × 9 masks (the MoRF masks of
Grad-CAM's maps at 10 %, …, 90 %), noise 0, timed back to back in one run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_road.py [--repeats 5]

Three timings per repeat: the reference (one mask at a time), camlab one image at a time (one
thread: the vectorised assembly and the symmetric factorisation alone) and camlab on the whole
batch (its images solved in parallel threads). Appends to ``results/bench_road_cpu.csv``; prints
the speed-ups with their 95 % intervals over the repeats and the largest difference to the reference.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import time
from pathlib import Path

import torch
from pytorch_grad_cam.metrics.road import NoisyLinearImputer

import camlab
from camlab import metrics as M
from camlab.evaluation import stats

OUT = Path(__file__).resolve().parent / "results" / "bench_road_cpu.csv"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--images", default="3,77", help="indices of the dev images")
    args = p.parse_args()
    clf = camlab.load_model("efficientnet_lite0", device="cpu")
    records = camlab.data.imagenet_folder(camlab.data.data_root() / "imagenet-dev")
    x = clf.preprocess([records[int(i)].path for i in args.images.split(",")]).contiguous()
    heat = camlab.GradCAM(clf, clf.target_layer)(x).heatmaps
    ranks, n = M.pixel_ranks(heat), heat[0].numel()
    fractions = M.ROAD_FRACTIONS
    removed = torch.stack([(ranks[b] < round(f * n)).view(heat.shape[1:]) for b in range(len(x)) for f in fractions])
    owner = torch.arange(len(x)).repeat_interleave(len(fractions))
    images = x[owner]
    reference = NoisyLinearImputer(noise=0.0)
    rows = []
    for rep in range(args.repeats):
        t = time.perf_counter()
        ref = torch.stack([reference(images[k], (~removed[k]).float()) for k in range(len(images))])
        t_ref = time.perf_counter() - t
        t = time.perf_counter()
        one = torch.cat(
            [M.noisy_linear_impute(images[k : k + 1], removed[k : k + 1], noise=0.0) for k in range(len(images))]
        )
        t_one = time.perf_counter() - t
        t = time.perf_counter()
        ours = M.noisy_linear_impute(images, removed, noise=0.0)
        t_batch = time.perf_counter() - t
        diff = max(float((ours - ref).abs().max()), float((one - ref).abs().max()))
        rows.append(
            {
                "date": datetime.date.today().isoformat(),
                "repeat": rep,
                "masks": len(images),
                "reference_s": f"{t_ref:.4f}",
                "camlab_one_thread_s": f"{t_one:.4f}",
                "camlab_batch_s": f"{t_batch:.4f}",
                "max_abs_diff": f"{diff:.3g}",
            }
        )
        print(rows[-1], flush=True)
    new = not OUT.is_file()
    with OUT.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        if new:
            w.writeheader()
        w.writerows(rows)
    ref_s = [float(r["reference_s"]) for r in rows]
    for key in ("camlab_one_thread_s", "camlab_batch_s"):
        iv = stats.ratio_interval(ref_s, [float(r[key]) for r in rows])
        print(f"reference / {key[:-2]}: {iv.mean:.2f}× [{iv.lo:.2f}, {iv.hi:.2f}] over {len(rows)} repeats")


if __name__ == "__main__":
    main()

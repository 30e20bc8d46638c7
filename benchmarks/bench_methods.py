"""Time every camlab method beside its pytorch-grad-cam / torchcam counterpart, in one run.

    .venv/bin/python benchmarks/bench_methods.py                 # CPU, 1 image, bn2 and blocks.6
    .venv/bin/python benchmarks/bench_methods.py --device cuda --n-images 4

Same model (efficientnet_lite0), layer and images for both sides; each time is the median over
the images of a per-image median (camlab.evaluation.timing.time_call: warm-up, repeats, CUDA-synchronised).
"floor" rows time N plain forward passes of the image at the best batch size: the least any
method that scores N masked inputs can cost. Cluster-CAM rows also give their cost over their own
floor (one forward pass and one batch of Q), timed back to back in 31 rounds (``floor_ratio``), and
over that floor with the model in torch's default memory layout (``default_floor_ratio``). camlab's
methods are built on the Classifier, so their passes run on its folded twin (camlab.folding). Every
camlab row is also timed on a deep copy of the bare module in the default layout, so never folded
(``before_seconds``): the "before" of Step 7, when camlab chose neither a layout nor folded batch
norms for its passes; ``before_ratio`` is after / before timed
back to back in rounds (31, fewer for methods slower than half a second).
The table goes to stdout and, as CSV, to
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import warnings
from datetime import date
from pathlib import Path

import torch
from results_csv import write_csv

import camlab
from camlab.evaluation.timing import time_call

warnings.filterwarnings("ignore")
RESULTS = Path(__file__).resolve().parent / "results"
# Cluster-CAM rows: camlab's defaults (Ward, camlab's eq 22), then one change each
CLUSTER_VARIANTS = {
    "clustercam": {},
    "clustercam_kmeans": {"clustering": "kmeans"},
    "clustercam_spectral": {"clustering": "spectral"},
    "clustercam_paper": {"coupling": "paper"},
    "clustercam_weighted": {"coupling": "weighted"},
}


def anchors(model, layer_module):
    """Counterparts by camlab method name: a function (x, target) → heatmap, or None."""
    import torchcam.methods as tcm
    from pytorch_grad_cam import AblationCAM, GradCAM, GradCAMPlusPlus, ScoreCAM, XGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    def pgc(cls, **attrs):
        def run(x, t):
            with cls(model=model, target_layers=[layer_module]) as cam:
                for k, v in attrs.items():
                    setattr(cam, k, v)
                return cam(input_tensor=x, targets=[ClassifierOutputTarget(t)])

        return "pytorch-grad-cam " + cls.__name__, run

    def tc(cls, **kw):
        def run(x, t):
            with cls(model, layer_module, input_shape=tuple(x.shape[1:]), **kw) as ext:
                out = model(x) if cls is not tcm.ScoreCAM else torch.no_grad()(model)(x)
                return ext(class_idx=t, scores=out)

        return "torchcam " + cls.__name__, run

    return {
        "gradcam": [pgc(GradCAM)],
        "gradcampp": [pgc(GradCAMPlusPlus)],
        "xgradcam": [pgc(XGradCAM)],
        "smoothgradcampp": [tc(tcm.SmoothGradCAMpp, num_samples=8)],
        "scorecam": [pgc(ScoreCAM), tc(tcm.ScoreCAM)],  # their default settings
        "ablationcam": [pgc(AblationCAM)],
        "groupcam": [],
        **{name: [] for name in CLUSTER_VARIANTS},
    }


def floor(model, x, n, batch_sizes=(4, 8, 16, 32, 64), repeats=1):
    """Seconds for n forward passes of x at the best batch size, and that batch size.

    Each batch size is timed on a few batches first; the full n passes run at the best two.
    The batches are in the model's memory layout.
    """
    layout = camlab.core.device.module_memory_format(model)
    with torch.no_grad():
        probe = {}
        for bs in batch_sizes:
            batch = x.expand(bs, -1, -1, -1).contiguous(memory_format=layout)
            probe[bs] = time_call(lambda: model(batch), repeats=3, warmup=1, device=x.device).seconds / bs
        candidates = sorted(batch_sizes, key=probe.get)[:2]
    best = None
    with torch.no_grad():
        for bs in candidates:
            batch = x.expand(min(bs, n), -1, -1, -1).contiguous(memory_format=layout)

            def run():
                done = 0
                while done < n:
                    k = min(bs, n - done)
                    model(batch[:k])
                    done += k

            t = time_call(run, repeats=repeats, warmup=0, device=x.device).seconds
            best = (t, bs) if best is None or t < best[0] else best
    return best


def paired_ratio(run, floor_runs, device, rounds=31):
    """Median over rounds of time(run) / time(floor_runs), the two timed back to back in each
    round: on a machine whose speed drifts (a shared host), a ratio of two separate medians can be
    off by tens of percent; a paired ratio is not."""
    import time

    def seconds(fns):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for f in fns:
            f()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    seconds([run, *floor_runs])  # warm-up
    ratios = []
    for _ in range(rounds):
        f = seconds(floor_runs)
        ratios.append(seconds([run]) / f)
    return statistics.median(ratios)


def time_method(method, images, repeats, device):
    """Median over the images of a per-image median, and the forward passes of one call."""
    per_image, n_fwd = [], []
    for x in images:
        t = time_call(lambda: method(x), repeats=repeats, warmup=1, device=device)
        if t.seconds < 1.0:  # cheap methods: more repeats, less noise
            t = time_call(lambda: method(x), repeats=max(15, repeats), warmup=0, device=device)
        per_image.append(t.seconds)
        n_fwd.append(t.result.n_forward)
    return statistics.median(per_image), statistics.median(n_fwd)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--n-images", type=int, default=1)
    p.add_argument("--layers", default="bn2,blocks.6")
    p.add_argument(
        "--methods",
        default="gradcam,gradcampp,xgradcam,smoothgradcampp,ablationcam,scorecam,groupcam,"
        + ",".join(CLUSTER_VARIANTS),
    )
    p.add_argument("--n-clusters", type=int, default=6, help="Q for Cluster-CAM")
    p.add_argument("--repeats", type=int, default=1, help="timed repeats per image (after one warm-up)")
    p.add_argument("--batch-size", type=int, default=None, help="camlab's batch size (default: per device)")
    p.add_argument("--no-anchors", action="store_true", help="time camlab only")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None, help="CSV to write (default: results/bench_methods_<device>.csv)")
    args = p.parse_args(argv)

    device = camlab.resolve_device(args.device)
    clf = camlab.load_model("efficientnet_lite0", device=device)
    picked = camlab.data.pick_images(args.data_root, n_images=args.n_images, seed=0)
    images = [clf.preprocess(pi.image) for pi in picked]
    model = clf.module
    # "before": the same weights in torch's default layout, as camlab loaded them before it chose
    # a memory layout per device (camlab's inputs follow whichever layout the model has), and
    # with its batch norms left in place for the scoring passes (a bare module is never folded)
    before = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    images_before = [x.contiguous() for x in images]
    rows = []
    print(
        f"efficientnet_lite0 on {device} ({platform.processor() or platform.machine()}), "
        f"{len(images)} image(s), torch {torch.__version__}",
        flush=True,
    )
    for layer in args.layers.split(","):
        _, layer_module = camlab.resolve_layer(model, layer)
        with torch.no_grad(), camlab.capture(model, layer) as cap:
            model(images[0])
        n_channels = cap.activations.shape[1]
        t_floor, bs_floor = floor(model, images[0], n_channels, repeats=args.repeats)
        rows.append(
            dict(
                layer=layer,
                method=f"floor: {n_channels} forwards",
                implementation=f"batch size {bs_floor}",
                seconds=t_floor,
                n_forward=n_channels,
                ratio="",
            )
        )
        t_one = time_call(lambda: torch.no_grad()(model)(images[0]), repeats=15, warmup=1, device=device).seconds
        rows.append(dict(layer=layer, method="one forward", implementation="", seconds=t_one, n_forward=1, ratio=""))
        q = args.n_clusters
        fmt = camlab.core.device.module_memory_format(model)
        masked = images[0].expand(q, -1, -1, -1).contiguous(memory_format=fmt)
        masked_before = masked.contiguous()
        t_q = time_call(lambda: torch.no_grad()(model)(masked), repeats=15, warmup=1, device=device).seconds
        cluster_floor = t_one + t_q
        rows.append(
            dict(
                layer=layer,
                method=f"floor: 1 + {q} batched forwards",
                implementation="",
                seconds=cluster_floor,
                n_forward=1 + q,
                ratio="",
            )
        )
        print(
            f"\n[{layer}] {n_channels} channels; one forward {t_one * 1000:.0f} ms; "
            f"floor {t_floor:.2f} s (batch {bs_floor}); "
            f"Cluster-CAM floor (1 + a batch of {q}) {cluster_floor * 1000:.0f} ms",
            flush=True,
        )
        their = anchors(model, layer_module)
        for name in args.methods.split(","):
            kw = (
                {"batch_size": args.batch_size}
                if args.batch_size and name in ("scorecam", "ablationcam", "groupcam", "smoothgradcampp")
                else {}
            )
            if name in CLUSTER_VARIANTS:
                kw = {"n_clusters": q, **CLUSTER_VARIANTS[name]}
            method = camlab.METHODS[name.split("_")[0]](clf, layer, **kw)  # on the Classifier: its folded twin
            ours, n_fwd = time_method(method, images, args.repeats, device)
            old_method = camlab.METHODS[name.split("_")[0]](before, layer, **kw)
            old, _ = time_method(old_method, images_before, args.repeats, device)
            # after / before, the two timed back to back in each round (fewer rounds for slow methods)
            before_ratio = paired_ratio(
                lambda: method(images[0]),
                [lambda: old_method(images_before[0])],
                device,
                rounds=31 if ours < 0.5 else max(3, int(10 / ours)),
            )
            vs_floor = f"  = {ours / t_floor:.2f}× the floor" if name == "scorecam" else ""
            floor_ratio = vs_default_floor = ""
            if name in CLUSTER_VARIANTS:
                with torch.no_grad():
                    floor_ratio = paired_ratio(
                        lambda: method(images[0]), [lambda: model(images[0]), lambda: model(masked)], device
                    )
                    vs_default_floor = paired_ratio(
                        lambda: method(images[0]),
                        [lambda: before(images_before[0]), lambda: before(masked_before)],
                        device,
                    )
                score_cam = next(
                    (
                        r["seconds"]
                        for r in rows
                        if r["layer"] == layer
                        and r["method"] == "scorecam"
                        and r["implementation"].startswith("pytorch-grad-cam")
                    ),
                    None,
                )
                vs_floor = (
                    f"  = {floor_ratio:.2f}× its floor, "
                    f"{vs_default_floor:.2f}× its floor in the default layout (paired)"
                    + (f", {score_cam / ours:.0f}× faster than pytorch-grad-cam ScoreCAM" if score_cam else "")
                )
            rows.append(
                dict(
                    layer=layer,
                    method=name,
                    implementation="camlab",
                    seconds=ours,
                    n_forward=n_fwd,
                    ratio=1.0,
                    before_seconds=old,
                    before_ratio=before_ratio,
                    floor_ratio=floor_ratio,
                    default_floor_ratio=vs_default_floor,
                )
            )
            vs_floor += f"; before (default layout, unfolded) {old:.3f} s, after / before {before_ratio:.2f}× (paired)"
            print(f"  {name:16s} camlab {ours:8.3f} s  ({n_fwd:.0f} forwards){vs_floor}", flush=True)
            if args.no_anchors:
                continue
            for label, run in their.get(name, []):
                times = []
                for x in images:
                    target = int(model(x).argmax())
                    times.append(
                        time_call(lambda: run(x, target), repeats=args.repeats, warmup=0, device=device).seconds
                    )
                theirs = statistics.median(times)
                rows.append(
                    dict(
                        layer=layer,
                        method=name,
                        implementation=label,
                        seconds=theirs,
                        n_forward="",
                        ratio=theirs / ours,
                    )
                )
                print(f"  {'':16s} {label:34s} {theirs:8.3f} s  → camlab {theirs / ours:6.1f}× faster", flush=True)
    out = Path(args.out) if args.out else RESULTS / f"bench_methods_{device.type}.csv"
    columns = [
        "layer",
        "method",
        "implementation",
        "seconds",
        "n_forward",
        "ratio",
        "before_seconds",
        "before_ratio",
        "floor_ratio",
        "default_floor_ratio",
    ]
    write_csv(
        out,
        [{"date": date.today().isoformat(), "device": str(device), **{k: r.get(k, "") for k in columns}} for r in rows],
    )
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

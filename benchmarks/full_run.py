"""The 200-image evidence of Step 8, in parts that resume: Table 1 per network, and the
Cluster-CAM grid that chooses the defaults.

    # clustering × coupling, lite0
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/full_run.py grid
    # α and Q around the best two pairs
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/full_run.py alpha_q
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/full_run.py table1 --model efficientnet_lite2 [--pointing]
    # Step 10: every metric
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/full_run.py table1v2 --model efficientnet_lite0
    # Adebayo's checks, 50 images (optionally some methods or one check alone)
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/full_run.py sanity [--methods gradcam,sobel]
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/full_run.py sanity --modes random_logit
    OMP_NUM_THREADS=1 … full_run.py sanity --shard 0/2 & OMP_NUM_THREADS=1 … full_run.py sanity --shard 1/2
    # Fig. 3's base/scissors swap rate
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/full_run.py swap
    # the rule; RESULTS.md's tables
    .venv/bin/python benchmarks/full_run.py choose | report --model M

Every part goes through the evaluation harness (``camlab.evaluation.harness``): one row per image and
method (or Cluster-CAM setting) appended to ``benchmarks/results/<part>_<model>.csv`` as it is
computed, so a part cut short continues where it stopped when run again. Beside it the part
writes the grid pointing game (``…_pointing.csv``: 100 composites of two dev images, the tiles
the model ranks in its top 5), a summary with 95 % intervals and paired differences
(``…_summary.csv``), and for the grid parts the seed stability of each setting
(``…_stability.csv``, seeds 0–4). Deletion and insertion use 16 steps (Step 8: the machine's
budget). The rule that chooses the defaults is in benchmarks/RESULTS.md, written before the run;
``choose`` applies it to the committed CSVs.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from defaults_rule import choose_setting, read_measured
from results_csv import write_csv

import camlab
from camlab.book.sweeps import base_scissors_swaps, seed_stability
from camlab.evaluation import harness as E
from camlab.evaluation import stats
from camlab.evaluation.results import locked

RESULTS = Path(__file__).resolve().parent / "results"
N_STEPS = 16
N_COMPOSITES = 100
# Cluster-CAM twice: camlab's defaults (chosen by this run) and K-means with Q = 8 (the defaults
# before it, the paper's clustering), labelled by its setting
TABLE1 = (
    "cam,gradcam,gradcampp,xgradcam,smoothgradcampp,ablationcam,scorecam,groupcam,clustercam,"
    "clustercam:alpha=0.8;clustering=kmeans;coupling=normalized;n_clusters=8"
)
# Step 10's Table 1: every metric of camlab.metrics.METRICS (ROAD, gain, equal area; deletion and
# insertion with ties broken at random), the three later baselines and the Sobel control; the
# cheap methods first in each image's turn, so that a run cut short has them for every image done
TABLE1_V2 = (
    "gradcam,cam,gradcampp,xgradcam,layercam,hirescam,eigencam,sobel,clustercam,"
    "clustercam:alpha=0.8;clustering=kmeans;coupling=normalized;n_clusters=8,"
    "groupcam,smoothgradcampp,ablationcam,scorecam"
)
# the sanity checks: every method at the model's target layer, Cluster-CAM with each coupling,
# the cheap ones first (a run cut short has them); on every 4th dev image (50 images)
SANITY = (
    "gradcam,gradcampp,xgradcam,layercam,hirescam,cam,eigencam,sobel,clustercam,"
    "clustercam:coupling=paper,clustercam:coupling=weighted,groupcam,smoothgradcampp,ablationcam,scorecam"
)
SANITY_STEP = 4
SANITY_CHUNK = 10
SEEDS = range(5)
# Q and α of the grid and the centre of the α/Q part: camlab's defaults when the run began (fixed
# here so that the run's labels do not move when the defaults it chooses are set).
GRID_BASE = {"n_clusters": 8, "alpha": 0.8}


def spec(setting: dict) -> str:
    """A Cluster-CAM setting as the harness's method label."""
    return "clustercam:" + ";".join(f"{k}={v}" for k, v in sorted(setting.items()))


def grid_settings() -> list[dict]:
    return [
        {"clustering": c, "coupling": k}
        for c, k in itertools.product(("kmeans", "spectral", "ward"), ("normalized", "paper", "weighted"))
    ]


def read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def measure(clf, part: str, labels: list[str], reference: str | None, stability: bool, pointing: bool = True) -> None:
    """Rows, pointing game (unless ``pointing`` is off), summary (and seed stability) of
    ``labels`` on every dev image."""
    root = camlab.data.data_root()
    records = camlab.data.imagenet_folder(root / "imagenet-dev")
    stem = RESULTS / f"{part}_{clf.name}"
    methods = E.parse_methods(labels)
    start = time.perf_counter()
    rows = E.evaluate(clf, records, methods, out=Path(f"{stem}.csv"), n_steps=N_STEPS)
    print(f"{part}: {len(rows)} rows ({time.perf_counter() - start:.0f} s)", flush=True)
    pointing_csv = Path(f"{stem}_pointing.csv")
    have = {r["method"] for r in read(pointing_csv)}
    todo = [m for m in methods if m[0] not in have] if pointing else []
    composites = camlab.data.grid_composites(records, k=2, n=N_COMPOSITES, seed=0) if todo else []
    for method in todo:  # one method at a time, written as it finishes: a run cut short keeps the methods done
        new, skipped = E.pointing_game(clf, composites, [method])
        write_csv(pointing_csv, read(pointing_csv) + [{k: v for k, v in r.items() if k != "heatmap"} for r in new])
        print(
            f"pointing game, {method[0]}: {len(new)} rows, {skipped} tiles skipped (class not in the top 5)", flush=True
        )
    table = E.summarize(rows, reference, skipped=rows.skipped)
    point = E.pointing_intervals(read(pointing_csv))
    for r in table:
        iv = point.get(r["method"], stats.mean_interval([]))  # NaN: not run
        r.update(pointing=iv.mean, pointing_lo=iv.lo, pointing_hi=iv.hi)
    write_csv(Path(f"{stem}_summary.csv"), table)
    print(E.format_table(table), flush=True)
    if stability:
        stab_csv = Path(f"{stem}_stability.csv")
        done = {r["method"] for r in read(stab_csv)}
        x_all = [r.path for r in records]
        for label in labels:
            if label in done:
                continue
            setting = E.parse_methods([label])[0][2]
            if setting.get("clustering", camlab.methods.cluster.DEFAULTS["clustering"]) == "ward":
                st = {
                    "ari": 1.0,
                    "corr": 1.0,
                    "corr_min": 1.0,
                    "same_base": 1.0,
                    "same_scissors": 1.0,
                    "note": "seed-free",
                }
            else:  # 20 images at a time; means weighted by images
                parts = []
                for i in range(0, len(x_all), 20):
                    x = clf.preprocess(x_all[i : i + 20])
                    parts.append((x.shape[0], seed_stability(clf, x, clf.target_layer, SEEDS, **setting)))
                n = sum(k for k, _ in parts)
                st = {
                    key: sum(k * s[key] for k, s in parts) / n for key in ("ari", "corr", "same_base", "same_scissors")
                }
                st["corr_min"] = min(s["corr_min"] for _, s in parts)
            write_csv(stab_csv, read(stab_csv) + [{"method": label, **st}])
            print(f"  {label}: heatmap correlation between seeds {st['corr']:.3f}", flush=True)


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append ``rows`` to the CSV at ``path`` under an exclusive lock, so that two shards of a
    run (``--shard``) never write over each other's rows."""
    with locked(path, wait=True):
        write_csv(path, read(path) + rows)


def sanity(
    clf,
    labels: list[str],
    modes: Sequence[str] = ("cascading", "random_logit", "independent"),
    shard: tuple[int, int] = (0, 1),
    chunk: int = SANITY_CHUNK,
) -> None:
    """Adebayo et al.'s model randomisation (cascading and independent) and the random-logit
    check for every method of ``labels`` on every ``SANITY_STEP``-th dev image, appended to
    ``sanity_<model>.csv`` and ``random_logit_<model>.csv`` one method × check × chunk of
    ``chunk`` images at a time (a run cut short keeps the chunks it finished; a smaller chunk
    loses less when cut). Only the images a check has no rows for yet are run, so a rerun with
    another ``chunk`` never writes an image twice. ``shard=(k, n)`` runs only the chunks whose
    index is k modulo n: n processes of one thread each share the cores better than one process
    of n threads."""
    from camlab import sanity as S

    records = camlab.data.imagenet_folder(camlab.data.data_root() / "imagenet-dev")[::SANITY_STEP]
    names = [r.path.name for r in records]
    rand_csv, logit_csv = RESULTS / f"sanity_{clf.name}.csv", RESULTS / f"random_logit_{clf.name}.csv"
    done = {(r["method"], r["mode"], r["image"]) for r in read(rand_csv)} | {
        (r["method"], "random_logit", r["image"]) for r in read(logit_csv)
    }
    k, n_shards = shard
    for label, name, kw in E.parse_methods(labels):
        for mode in modes:  # by default what the report's table needs first
            start, n = time.perf_counter(), 0
            for i in range(0, len(records), chunk):
                todo = [j for j in range(i, min(i + chunk, len(records))) if (label, mode, names[j]) not in done]
                if (i // chunk) % n_shards != k or not todo:
                    continue
                x = clf.preprocess([records[j].path for j in todo])
                if mode == "random_logit":
                    part = S.random_logit(name, clf, clf.target_layer, x, seed=0, **kw)
                else:
                    part = S.model_randomization(name, clf, clf.target_layer, x, mode=mode, seed=0, **kw)
                rows = [
                    {
                        "method": label,
                        **({} if mode == "random_logit" else {"mode": mode}),
                        **r,
                        "image": names[todo[r["image"]]],
                    }
                    for r in part
                ]
                append_rows(logit_csv if mode == "random_logit" else rand_csv, rows)
                n += len(rows)
            if n:
                print(f"sanity {label} {mode}: {n} rows ({time.perf_counter() - start:.0f} s)", flush=True)


def swaps(clf) -> None:
    """Fig. 3's claim as a rate: on the composites whose two tiles the model both ranks in its
    top 5, is the base for one class the scissors for the other (Cluster-CAM's defaults)?"""
    records = camlab.data.imagenet_folder(camlab.data.data_root() / "imagenet-dev")
    composites = camlab.data.grid_composites(records, k=2, n=N_COMPOSITES, seed=0)
    tiles, _ = E.pointing_tiles(clf, composites)
    rows = []
    for i in sorted({t["composite"] for t in tiles}):
        pair = [t for t in tiles if t["composite"] == i]
        if len(pair) == 2:
            swaps_of = base_scissors_swaps(
                clf, clf.target_layer, pair[0]["x"], pair[0]["class_index"], pair[1]["class_index"]
            )
            rows.append(
                {
                    "composite": i,
                    "class_a": pair[0]["class_index"],
                    "class_b": pair[1]["class_index"],
                    **{k: int(v) for k, v in swaps_of.items()},
                }
            )
    write_csv(RESULTS / f"swap_{clf.name}.csv", rows)
    for key in ("swapped", "half", "same_base"):
        iv = stats.mean_interval([r[key] for r in rows])
        print(
            f"{key}: {100 * iv.mean:.1f} % [{100 * iv.lo:.1f}, {100 * iv.hi:.1f}] of {len(rows)} composites", flush=True
        )


def report(model: str) -> None:
    """RESULTS.md's Table 1 (Markdown) from the committed CSVs, and the Table 2 ratios."""
    rows = read(RESULTS / f"table1_{model}.csv")
    if not rows:
        print(f"no table1_{model}.csv")
        return
    table = E.summarize(rows, "gradcam")
    point = E.pointing_intervals(read(RESULTS / f"table1_{model}_pointing.csv"))
    kmeans = TABLE1.split(",")[-1]
    # the paper's Cluster-CAM (K-means, its eq 22) is neither row exactly: its numbers stand beside both
    from camlab.book.chapters.table1 import PAPER_TABLE1

    paper = {**PAPER_TABLE1, kmeans: PAPER_TABLE1["clustercam"]}
    names = {
        "clustercam": "clustercam (defaults: Ward, Q = 10)",
        kmeans: "clustercam, K-means, Q = 8 (defaults before Step 8)",
    }

    def cell(r, m, k=100.0, d=1):
        return f"{k * r[m]:.{d}f} [{k * r[m + '_lo']:.{d}f}, {k * r[m + '_hi']:.{d}f}]"

    print(
        f"| method ({model}, {table[0]['images']} images) | drop % | drop, unclipped % | paper drop % | increase % "
        "| paper increase % | insertion | deletion | pointing | passes | s / image |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in table:
        p = paper.get(r["method"], ("", ""))
        iv = point.get(r["method"], stats.mean_interval([]))
        pointing = "—" if iv.mean != iv.mean else f"{iv.mean:.3f} [{iv.lo:.3f}, {iv.hi:.3f}]"  # NaN: not run
        print(
            f"| {names.get(r['method'], r['method'])} | {cell(r, 'drop')} | {cell(r, 'drop_unclipped')} | {p[0]} "
            f"| {cell(r, 'increase')} | {p[1]} | {cell(r, 'insertion', 1, 3)} | {cell(r, 'deletion', 1, 3)} "
            f"| {pointing} | {r['n_forward']:.0f} | {r['seconds']:.3f} |"
        )
    print("\npaired differences to Grad-CAM (percentage points; sign-flip permutation p):")
    for r in table:
        if r["method"] != "gradcam":
            print(
                f"  {names.get(r['method'], r['method'])}: drop {cell(r, 'drop_diff')} p={r['drop_p']:.2g}; "
                f"unclipped {cell(r, 'drop_unclipped_diff')} p={r['drop_unclipped_p']:.2g}; "
                f"increase {cell(r, 'increase_diff')} p={r['increase_p']:.2g}"
            )
    secs = {
        m: {q["image"]: float(q["seconds"]) for q in rows if q["method"] == m}
        for m in ("clustercam", "ablationcam", "scorecam")
    }
    for other in ("ablationcam", "scorecam"):
        both = sorted(set(secs[other]) & set(secs["clustercam"]))
        if both:
            iv = stats.ratio_interval([secs[other][i] for i in both], [secs["clustercam"][i] for i in both])
            print(
                f"  {other} / clustercam seconds per image: "
                f"{iv.mean:.2f}× [{iv.lo:.2f}, {iv.hi:.2f}] ({len(both)} images)"
            )


def complete_rows(rows: list[dict]) -> list[dict]:
    """The rows of the images that every method has (a run cut short has only the first methods
    of its last image)."""
    methods = {r["method"] for r in rows}
    by: dict[str, set] = {}
    for r in rows:
        by.setdefault(r["image"], set()).add(r["method"])
    return [r for r in rows if by[r["image"]] == methods]


def report_v2(model: str) -> None:
    """RESULTS.md's Step 10 tables (Markdown) from the committed CSVs: Table 1 with every metric,
    Cluster-CAM's paired differences to Grad-CAM and Score-CAM, the agreement of the metrics, and
    the sanity checks."""
    from camlab.metrics import METRICS

    from camlab import sanity as S
    from camlab.book.verdict import compare, counted_once
    from camlab.evaluation.agreement import metric_agreement

    rows = complete_rows(read(RESULTS / f"table1v2_{model}.csv"))
    if rows:
        # camlab's metrics in their order, the equal-area comparison by its drop alone
        cols = [m for m in METRICS if m != "drop_unclipped" and not m.startswith(("increase_top", "gain_top"))]
        table = E.summarize(rows, metrics=cols)
        pct = {"drop", "increase", "gain", "drop_top10", "drop_top20", "drop_top50"}

        def cell(r, m):
            k, d = (100.0, 1) if m in pct else (1.0, 3)
            return f"{k * r[m]:.{d}f} [{k * r[m + '_lo']:.{d}f}, {k * r[m + '_hi']:.{d}f}]"

        print(
            f"| method ({model}, {table[0]['images']} images) | "
            + " | ".join(c + (" %" if c in pct else "") for c in cols)
            + " | passes |"
        )
        print("|---|" + "---:|" * (len(cols) + 1))
        for r in table:
            print(f"| {r['method']} | " + " | ".join(cell(r, c) for c in cols) + f" | {r['n_forward']:.0f} |")
        scale = {m: 100.0 for m in pct}
        for ref in ("gradcam", "scorecam"):
            print("\n" + compare(rows, "clustercam", ref, cols[:-1]).describe(scale))
        distinct, aliases = counted_once(rows)  # as notebook 07 counts them
        distinct = [m for m in distinct if m != "sobel"]
        metrics = ["drop", "increase", "gain", "insertion", "deletion", "road", "drop_top20"]
        print(
            f"\nKendall's τ between the rankings of {len(distinct)} distinct methods "
            f"(counted once: {aliases}; the Sobel control left out):"
        )
        for q in metric_agreement(rows, metrics, distinct):
            print(f"  {q['a']} vs {q['b']}: {q['tau']:+.2f} [{q['lo']:+.2f}, {q['hi']:+.2f}]")
    san = read(RESULTS / f"sanity_{model}.csv")
    if san:
        print(
            f"\n| method ({model}, {len({r['image'] for r in san})} images) | Spearman, all blocks random (cascading) "
            "| SSIM | HOG | abs(Spearman) | flat maps | random logit Spearman |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        logit = read(RESULTS / f"random_logit_{model}.csv")
        last = max(int(r["step"]) for r in san)
        counts, n_run = S.images_done(san, logit)
        for m in dict.fromkeys(r["method"] for r in san):
            end = [r for r in san if r["method"] == m and r["mode"] == "cascading" and int(r["step"]) == last]
            n = min(counts[m]["cascading"], counts[m]["random logit"])
            ivs = [stats.mean_interval([float(r[k]) for r in end]) for k in ("spearman", "ssim", "hog")]
            ivs.append(stats.mean_interval([abs(float(r["spearman"])) for r in end]))
            lg = stats.mean_interval([float(r["spearman"]) for r in logit if r["method"] == m])
            flat = sum(r["constant"] == "True" for r in end) / max(1, len(end))
            print(
                f"| {m}{f' (in progress: {n} of {n_run} images)' if n < n_run else ''} | "
                + " | ".join(f"{iv.mean:.2f} [{iv.lo:.2f}, {iv.hi:.2f}]" for iv in ivs)
                + f" | {100 * flat:.0f} % | {lg.mean:.2f} [{lg.lo:.2f}, {lg.hi:.2f}] |"
            )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=("grid", "alpha_q", "table1", "table1v2", "sanity", "swap", "choose", "report"))
    p.add_argument("--methods", default=None, help="sanity: the methods (default: all of SANITY)")
    p.add_argument(
        "--modes", default="cascading,random_logit,independent", help="sanity: the checks, in the order they run"
    )
    p.add_argument(
        "--shard", default="0/1", help="sanity: k/n runs every n-th chunk of images from the k-th (n processes)"
    )
    p.add_argument("--chunk", type=int, default=SANITY_CHUNK, help="sanity: images per chunk (appended when finished)")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--pointing",
        action="store_true",
        help="table1: also the pointing game (about 50 min on this CPU: Score-CAM on 185 tiles)",
    )
    args = p.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.part == "choose":
        rows, stab = read_measured([RESULTS / f"{part}_{args.model}" for part in ("grid", "alpha_q")])
        pick, table = choose_setting(rows, stab)
        for r in table:
            print(
                f"{r['value']:60s} mean rank {r['mean_rank']:.2f}  passes {r['n_forward']:.0f}  "
                f"seed corr {stab.get(r['value'], float('nan')):.3f}"
            )
        print(f"chosen: {pick['value']}")
        return 0
    if args.part == "report":
        report(args.model)
        report_v2(args.model)
        return 0
    clf = camlab.load_model(args.model, device=camlab.resolve_device(args.device))
    if args.part == "swap":
        swaps(clf)
        return 0
    if args.part == "sanity":
        k, n = (int(v) for v in args.shard.split("/"))
        if not 0 <= k < n:
            p.error(f"--shard must be k/n with 0 ≤ k < n, got {args.shard}")
        if args.chunk < 1:
            p.error(f"--chunk must be at least 1, got {args.chunk}")
        sanity(clf, (args.methods or SANITY).split(","), args.modes.split(","), shard=(k, n), chunk=args.chunk)
        return 0
    if args.part == "table1":
        measure(clf, "table1", TABLE1.split(","), "gradcam", stability=False, pointing=args.pointing)
    elif args.part == "table1v2":
        measure(clf, "table1v2", TABLE1_V2.split(","), "gradcam", stability=False, pointing=args.pointing)
    elif args.part == "grid":
        measure(
            clf,
            "grid",
            [
                spec(
                    {
                        **s,
                        "n_clusters": GRID_BASE["n_clusters"],
                        **({} if s["coupling"] == "weighted" else {"alpha": GRID_BASE["alpha"]}),
                    }
                )
                for s in grid_settings()
            ],
            None,
            stability=True,
        )
    else:  # α and Q around the best two seed-stable clustering × coupling pairs of the grid
        _, table = choose_setting(*read_measured([RESULTS / f"grid_{clf.name}"]))
        pairs = [r["setting"] for r in table[:2]]
        labels = []
        for pair in pairs:
            base = {k: pair[k] for k in ("clustering", "coupling")}
            alphas = [None] if base["coupling"] == "weighted" else [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
            for a in alphas:
                labels.append(
                    spec({**base, "n_clusters": GRID_BASE["n_clusters"], **({} if a is None else {"alpha": a})})
                )
            for q in (4, 6, 10, 12):
                labels.append(
                    spec(
                        {
                            **base,
                            "n_clusters": q,
                            **({} if base["coupling"] == "weighted" else {"alpha": GRID_BASE["alpha"]}),
                        }
                    )
                )
        labels = list(dict.fromkeys(labels))
        print(f"α and Q around {pairs}: {len(labels)} settings", flush=True)
        measure(clf, "alpha_q", labels, None, stability=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

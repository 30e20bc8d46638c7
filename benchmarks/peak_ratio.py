"""The scales of Cluster-CAM's base and scissors on every dev image (notebook 05's *Three couplings*).

Per dev image and setting — the paper's (K-means, Q = 6, eq 22 as printed) and camlab's defaults —
the peak |value| of the base cluster's mean map over the scissors' (Feng et al. 2023, eq 20–21),
before any scaling: where the two lie far apart, α in the literal eq 22 weighs magnitudes, not maps.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/peak_ratio.py   # a few minutes on CPU
"""

from pathlib import Path

from results_csv import write_csv

import camlab
from camlab.book.chapters import clustercam

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    clf = camlab.load_model("efficientnet_lite0", device="cpu")
    records = camlab.data.imagenet_folder(camlab.data.data_root() / "imagenet-dev")
    named = clustercam.settings()
    rows = []
    for k in range(0, len(records), 20):
        part = records[k : k + 20]
        x = clf.preprocess([r.load() for r in part])
        rows += clustercam.peak_rows(clf, clf.target_layer, x, [r.path.name for r in part], named)
    write_csv(RESULTS / f"peaks_{clf.name}.csv", rows)
    for setting in dict.fromkeys(r["setting"] for r in rows):
        mine = sorted((r["ratio"], r["image"]) for r in rows if r["setting"] == setting)
        print(f"{setting}: largest base/scissors peak ratio {mine[-1][0]:.3g} ({mine[-1][1]}), "
              f"smallest {mine[0][0]:.3g} ({mine[0][1]})")


if __name__ == "__main__":
    main()

"""camlab.verdict: aliases found from the rows, better/worse/tied from paired intervals."""

import numpy as np
import pytest

from camlab import verdict as V


def rows_for(values):
    methods = list(values)
    n = len(next(iter(values.values()))["drop"])
    return [{"image": f"i{k}", "method": m, **{x: str(values[m][x][k]) for x in values[m]}} for k in range(n) for m in methods]


def test_aliases_and_the_direction_of_better():
    rng = np.random.default_rng(0)
    a = {"drop": rng.random(40) * 0.5, "gain": rng.random(40) * 0.1}
    rows = rows_for({"gradcam": a, "xgradcam": {k: v + 1e-9 for k, v in a.items()}, "better": {"drop": a["drop"] - 0.2, "gain": a["gain"] + 0.3}, "noise": {"drop": a["drop"] + rng.normal(0, 0.01, 40), "gain": a["gain"]}})
    kept, aliases = V.distinct_methods(rows, ["drop", "gain"])
    assert kept == ["gradcam", "better", "noise"] and aliases == {"xgradcam": "gradcam"}
    c = V.compare(rows, "better", "gradcam", ["drop", "gain"])
    assert c.better == ["drop", "gain"] and not c.worse and c.n_images == 40  # lower drop, higher gain: both better
    assert c.differences["drop"].mean == pytest.approx(-0.2)
    w = V.compare(rows, "gradcam", "better", ["drop", "gain"])
    assert w.worse == ["drop", "gain"]
    t = V.compare(rows, "noise", "gradcam", ["gain"])  # the same gain on every image
    assert t.tied == ["gain"]
    assert "better on drop -20 [" in c.describe({"drop": 100})
    with pytest.raises(ValueError, match="no rows for method 'scorecam'"):
        V.compare(rows, "scorecam", "gradcam", ["drop"])
    with pytest.raises(ValueError, match="no better direction"):
        V.compare(rows, "better", "gradcam", ["coverage"])

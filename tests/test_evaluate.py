"""The evaluation harness: the command line, resuming after a kill, and two torchrun processes."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from camlab import evaluate as E
from camlab import metrics as M

PY = sys.executable
COMPARED = [f for f in E.FIELDS if f != "seconds"]


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def run_cli(out, data_root, *extra, wait=True):
    cmd = [PY, "-m", "camlab.evaluate", "--images", str(data_root / "imagenet-dev"), "--device", "cpu", "--out", str(out), "--no-progress", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_cli_writes_the_csv_and_the_summary(tmp_path, data_root):
    out = tmp_path / "r.csv"
    res = run_cli(out, data_root, "--limit", "2", "--methods", "gradcam,clustercam:n_clusters=4", "--metrics", "drop,increase,deletion,coverage", "--n-steps", "4")
    assert res.returncode == 0, res.stderr
    rows = read(out)
    assert [(r["image"][:9], r["method"]) for r in rows] == [
        ("n01440764", "gradcam"), ("n01440764", "clustercam:n_clusters=4"), ("n01496331", "gradcam"), ("n01496331", "clustercam:n_clusters=4")
    ]
    assert all(0 <= float(r["drop"]) <= 1 and r["increase"] in ("0", "1") and r["insertion"] == "" for r in rows)
    assert [int(r["n_forward"]) for r in rows] == [1, 5, 1, 5]
    assert "confidence_drop_%" in res.stdout and "clustercam:n_clusters=4" in res.stdout


def test_killed_midway_resumes_without_recomputing(tmp_path, data_root):
    out = tmp_path / "r.csv"
    args = ("--limit", "4", "--methods", "gradcam,groupcam:n_groups=4", "--metrics", "drop,insertion", "--n-steps", "8")
    proc = run_cli(out, data_root, *args, wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and (not out.is_file() or len(read(out)) < 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = read(out)
    assert 2 <= len(first) < 8, "the run was not interrupted midway"
    res = run_cli(out, data_root, *args)
    assert res.returncode == 0, res.stderr
    final = read(out)
    assert len(final) == 8 and len({(r["image"], r["method"]) for r in final}) == 8
    assert final[: len(first)] == first  # finished rows are kept as they were, not recomputed


def test_two_torchrun_processes_match_one(tmp_path, data_root):
    single, multi = tmp_path / "single.csv", tmp_path / "multi.csv"
    args = ["--images", str(data_root / "imagenet-dev"), "--limit", "5", "--methods", "gradcam,clustercam:n_clusters=3", "--metrics", "drop,increase,coverage", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([PY, "-m", "camlab.evaluate", *args, "--out", str(single)], capture_output=True, text=True, env=env, timeout=900)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "camlab.evaluate", *args, "--out", str(multi)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert (tmp_path / "multi.csv.rank0.csv").is_file() and (tmp_path / "multi.csv.rank1.csv").is_file()
    a, b = read(single), read(multi)
    assert len(a) == len(b) == 10
    assert [{k: r[k] for k in COMPARED} for r in a] == [{k: r[k] for k in COMPARED} for r in b]


def test_bad_method_and_metric_names():
    with pytest.raises(ValueError, match="unknown method 'gradcram'"):
        E.parse_methods("gradcram")
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        M.check_metrics(["auc"])
    assert E.parse_methods("clustercam:n_clusters=8;alpha=0.3") == [("clustercam:n_clusters=8;alpha=0.3", "clustercam", {"n_clusters": 8, "alpha": 0.3})]

"""The evaluation harness: the command line (``python -m camlab.evaluation``, also run as
``python -m camlab.evaluation.cli``), resuming after a kill, two torchrun processes, folders as
users have them (class sub-folders, unreadable files first and last) and a second process on the
same ``--out``."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import camlab
from camlab import metrics as M
from camlab.evaluation import cli, results
from camlab.evaluation import harness as E

PY = sys.executable
COMPARED = [f for f in E.FIELDS if f != "seconds"]


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def run_cli(out, data_root, *extra, wait=True, module="camlab.evaluation", images=None):
    images = str(images or data_root / "imagenet-dev")
    cmd = [PY, "-m", module, "--images", images, "--device", "cpu", "--out", str(out), "--no-progress", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_cli_writes_the_csv_and_the_summary(tmp_path, data_root):
    out, summary = tmp_path / "r.csv", tmp_path / "s.csv"
    res = run_cli(
        out,
        data_root,
        "--limit",
        "2",
        "--methods",
        "gradcam,clustercam:n_clusters=4",
        "--metrics",
        "drop,drop_unclipped,increase,deletion,coverage",
        "--n-steps",
        "4",
        "--summary",
        str(summary),
        "--reference",
        "gradcam",
    )
    assert res.returncode == 0, res.stderr
    rows = read(out)
    assert [(r["image"][:9], r["method"]) for r in rows] == [
        ("n01440764", "gradcam"),
        ("n01440764", "clustercam:n_clusters=4"),
        ("n01496331", "gradcam"),
        ("n01496331", "clustercam:n_clusters=4"),
    ]
    assert all(0 <= float(r["drop"]) <= 1 and r["increase"] in ("0", "1") and r["insertion"] == "" for r in rows)
    assert all(
        float(r["drop_unclipped"]) <= float(r["drop"])
        and (float(r["drop_unclipped"]) == float(r["drop"])) == (float(r["drop"]) > 0)
        for r in rows
    )
    assert [int(r["n_forward"]) for r in rows] == [1, 5, 1, 5]
    assert "drop %" in res.stdout
    assert "vs reference" in res.stdout
    assert "clustercam:n_clusters=4" in res.stdout
    table = read(summary)
    assert [r["method"] for r in table] == ["gradcam", "clustercam:n_clusters=4"]
    for m in ("drop", "drop_unclipped", "increase", "deletion", "coverage"):
        for r in table:
            assert float(r[f"{m}_lo"]) <= float(r[m]) <= float(r[f"{m}_hi"])
            assert {f"{m}_diff", f"{m}_diff_lo", f"{m}_diff_hi", f"{m}_p"} <= set(r)
        values = [float(r[m]) for r in rows if r["method"] == "gradcam"]
        assert float(table[0][m]) == pytest.approx(sum(values) / 2, rel=1e-5)
    assert float(table[0]["drop_diff"]) == 0
    assert float(table[0]["drop_p"]) == 1


@pytest.fixture(scope="module")
def class_tree(tmp_path_factory, dev_records):
    """ImageNet's validation layout: one folder per synset, files named without their class (two
    share a name in different folders), and one class folder a level deeper."""
    root = tmp_path_factory.mktemp("val")
    places = ["{}/0001.JPEG", "{}/0001.JPEG", "{}/0002.JPEG", "more/{}/0003.JPEG", "{}/0004.JPEG"]
    for place, r in zip(places, dev_records[:5], strict=True):
        path = root / place.format(r.synset)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(r.path, path)
    classes = {place.format(r.synset): r.class_index for place, r in zip(places, dev_records[:5], strict=True)}
    return root, classes


def test_killed_midway_resumes_without_recomputing(tmp_path, data_root, class_tree):
    """On a tree of class folders: every image is named by its path in the tree, its class read
    from its folder; a run killed midway resumes without recomputing a row."""
    tree, classes = class_tree
    out = tmp_path / "r.csv"
    args = ("--limit", "4", "--methods", "gradcam,groupcam:n_groups=4", "--metrics", "drop,insertion", "--n-steps", "8")
    proc = run_cli(out, data_root, *args, wait=False, images=tree)
    deadline = time.time() + 300
    while time.time() < deadline and (not out.is_file() or len(read(out)) < 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = read(out)
    assert 2 <= len(first) < 8, "the run was not interrupted midway"
    res = run_cli(out, data_root, *args, images=tree)
    assert res.returncode == 0, res.stderr
    final = read(out)
    assert len(final) == 8
    assert len({(r["image"], r["method"]) for r in final}) == 8
    assert final[: len(first)] == first  # finished rows are kept as they were, not recomputed
    first_four = [r.name for r in camlab.data.image_folder(tree)][:4]
    assert sorted({r["image"] for r in final}) == sorted(first_four)
    assert {r["image"]: int(r["class_index"]) for r in final} == {name: classes[name] for name in first_four}


def test_two_torchrun_processes_match_one(tmp_path, class_tree):
    """On the tree of class folders, two ranks' rows merged give the single process's file."""
    tree, classes = class_tree
    single, multi = tmp_path / "single.csv", tmp_path / "multi.csv"
    args = [
        "--images",
        str(tree),
        "--methods",
        "gradcam,clustercam:n_clusters=3",
        "--metrics",
        "drop,increase,coverage",
        "--device",
        "cpu",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [PY, "-m", "camlab.evaluation", *args, "--out", str(single)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            PY,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "camlab.evaluation",
            *args,
            "--out",
            str(multi),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert (tmp_path / "multi.csv.rank0.csv").is_file()
    assert (tmp_path / "multi.csv.rank1.csv").is_file()
    a, b = read(single), read(multi)
    assert len(a) == len(b) == 10
    assert [{k: r[k] for k in COMPARED} for r in a] == [{k: r[k] for k in COMPARED} for r in b]
    assert {r["image"]: int(r["class_index"]) for r in b} == classes


def test_unreadable_files_first_and_last_are_skipped_and_named(tmp_path, data_root, dev_records):
    """The first file (the method-parameter check reads the first readable one instead) and the
    last (a truncated JPEG) are skipped, named and recorded; every good image has its rows."""
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "0_notes.jpg").write_text("not an image at all")
    good = [r.path.name for r in dev_records[:2]]
    for name, r in zip(good, dev_records, strict=False):
        shutil.copy(r.path, folder / name)
    whole = dev_records[2].path.read_bytes()
    (folder / "z_truncated.JPEG").write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "r.csv"
    res = run_cli(out, data_root, "--methods", "gradcam,clustercam:n_clusters=4", "--metrics", "drop", images=folder)
    assert res.returncode == 0, res.stderr
    assert sorted((r["image"], r["method"]) for r in read(out)) == sorted(
        (name, m) for name in good for m in ("gradcam", "clustercam:n_clusters=4")
    )
    skipped = E.read_skipped(out)
    assert list(skipped) == ["0_notes.jpg", "z_truncated.JPEG"]
    assert all("cannot read" in reason for reason in skipped.values())
    assert "skipped 0_notes.jpg: cannot read" in res.stdout
    assert "skipped z_truncated.JPEG: cannot read" in res.stdout


def test_a_second_process_on_the_same_out_is_refused_in_one_line(tmp_path, data_root):
    """While another process writes ``--out`` (it holds the lock), a second run exits with status 2
    and one line naming the lock, writing nothing; once the first is killed, the lock is free."""
    out = tmp_path / "r.csv"
    hold = f"import fcntl\nf = open({str(results.lock_path(out))!r}, 'a')\nfcntl.flock(f, fcntl.LOCK_EX)\n"
    holder = subprocess.Popen(  # a process holding the lock as the harness takes it (flock), without torch
        [PY, "-c", hold + "print('held', flush=True)\ninput()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        res = run_cli(out, data_root, "--limit", "1", "--methods", "gradcam", "--metrics", "drop")
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1, res.stderr
    assert str(results.lock_path(out)) in res.stderr
    assert "another process" in res.stderr
    assert not out.exists()
    with results.locked(out):  # released when its holder died: the stale lock file stops nobody
        pass


def test_help_says_what_every_option_does_and_its_default():
    parser = cli._parser()
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert [a.option_strings[0] for a in options if not a.help] == []
    assert [a.option_strings[0] for a in options if not a.required and "default" not in a.help] == []
    text = parser.format_help()
    for option in ("--model", "--layer", "--device", "--out", "--no-progress", "--images"):
        assert option in text
    assert "efficientnet_lite0" in text  # the defaults shown
    assert "results.csv" in text


def test_bad_method_and_metric_names():
    with pytest.raises(ValueError, match="unknown method 'gradcram'"):
        E.parse_methods("gradcram")
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        M.check_metrics(["auc"])
    assert E.parse_methods("clustercam:n_clusters=8;alpha=0.3") == [
        ("clustercam:n_clusters=8;alpha=0.3", "clustercam", {"n_clusters": 8, "alpha": 0.3})
    ]


def test_a_corrupt_image_is_skipped_and_named(tmp_path, lite0, dev_records):
    import shutil

    import camlab

    folder = tmp_path / "images"
    folder.mkdir()
    for r in dev_records[:3]:
        shutil.copy(r.path, folder / r.path.name)
    bad = folder / dev_records[1].path.name
    bad.write_bytes(b"not a JPEG at all")  # same name, corrupt content
    records = camlab.data.imagenet_folder(folder)
    out = tmp_path / "r.csv"
    with pytest.warns(UserWarning, match=f"skipped {bad.name}"):
        rows = E.evaluate(lite0, records, E.parse_methods("gradcam,cam"), ["drop"], out=out, progress=False)
    good = [dev_records[0].path.name, dev_records[2].path.name]
    assert sorted({r["image"] for r in rows}) == good
    assert len(rows) == 4
    assert list(rows.skipped) == [bad.name]
    assert "cannot read" in rows.skipped[bad.name]
    assert E.read_skipped(out) == rows.skipped
    # a rerun neither retries the bad file nor loses or recomputes a row
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = E.evaluate(lite0, records, E.parse_methods("gradcam,cam"), ["drop"], out=out, progress=False)
    assert list(again) == list(rows)
    assert again.skipped == rows.skipped
    table = E.summarize(again, skipped=again.skipped)
    assert all(r["images"] == 2 and r["skipped"] == 1 for r in table)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "gradcram"], "unknown method 'gradcram'"),
        (["--metrics", "drop,auc"], "unknown metric 'auc'"),
        (["--methods", "clustercam:alpha=abc"], "alpha must be in [0, 1], got 'abc'"),
        (["--methods", "clustercam:colour=1"], "colour"),
        (
            ["--reference", "scorecam", "--methods", "gradcam"],
            "--reference 'scorecam' is not one of the methods: gradcam",
        ),
        (["--n-steps", "0"], "--n-steps and --limit must be ≥ 1"),
        (["--limit", "many"], "invalid int value: 'many'"),
        (["--device", "tpu"], "tpu"),
        (["--model", "resnet9000"], "resnet9000"),
        (["--images", "/no/such/folder"], "no image folder at '/no/such/folder'"),
        (["--out", "/nonexistent/r.csv"], "no folder '/nonexistent' to write r.csv in"),
        (
            ["--methods", "clustercam:n_clusters=5000"],
            "clustercam:n_clusters=5000: ",
        ),  # out of range only for this layer
    ],
)
def test_argument_errors_exit_2_in_one_line(args, message, data_root, capsys, tmp_path):
    argv = ["--images", str(data_root / "imagenet-dev"), "--out", str(tmp_path / "never-written.csv"), "--no-progress"]
    with pytest.raises(SystemExit, match="^2$") as exit_:
        cli.main(argv + args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert message in err, err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err, err
    assert not (tmp_path / "never-written.csv").exists()


def test_pointing_intervals_per_method_in_order():
    from camlab.evaluation.harness import pointing_intervals
    from camlab.evaluation.stats import mean_interval

    rows = [
        {"method": m, "mass_inside": str(v)} for m, v in [("b", 0.9), ("a", 0.2), ("b", 0.7), ("a", 0.4), ("b", 0.8)]
    ]
    got = pointing_intervals(rows)
    assert list(got) == ["b", "a"]
    assert got["b"] == mean_interval([0.9, 0.7, 0.8])
    assert got["a"] == mean_interval([0.2, 0.4])


def test_read_results_keeps_only_images_every_method_has(tmp_path):
    """A run cut short ends with some methods of its last image: those rows are left out."""
    path = tmp_path / "r.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "method", "drop"])
        w.writerows([["a", "m1", "0.1"], ["a", "m2", "0.2"], ["b", "m1", "0.3"]])
    assert [(r["image"], r["method"]) for r in E.read_results(path)] == [("a", "m1"), ("a", "m2")]
    assert len(E.read_results(path, complete=False)) == 3
    assert E.read_results(tmp_path / "missing.csv") == []


def test_a_folder_of_plainly_named_photos_explains_the_top_1_class(tmp_path, data_root):
    """No synset in the name: no class_index in the CSV, and the target is the model's top-1."""
    import shutil

    from PIL import Image

    import camlab

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(data_root / "multi-object" / "both.png", photos / "cat and dog.png")
    Image.open(data_root / "multi-object" / "horses.jpg").save(photos / "horses.jpg")
    (photos / "notes.txt").write_text("not an image")
    out = tmp_path / "r.csv"
    res = run_cli(
        out, data_root, "--images", str(photos), "--methods", "gradcam", "--metrics", "drop,increase", "--n-steps", "2"
    )
    assert res.returncode == 0, res.stderr
    rows = read(out)
    assert [r["image"] for r in rows] == ["cat and dog.png", "horses.jpg"]
    assert all(r["class_index"] == "" for r in rows)
    clf = camlab.load_model("efficientnet_lite0", device="cpu")
    top1 = clf.predict(clf.preprocess([photos / "cat and dog.png", photos / "horses.jpg"]))[1][:, 0].tolist()
    assert [int(r["target"]) for r in rows] == top1


def test_metrics_drop_also_writes_drop_unclipped(tmp_path, data_root):
    """Both drops come from the same forward pass: asking for drop fills drop_unclipped too (and the
    module's own command, ``python -m camlab.evaluation.cli``, runs the harness too)."""
    out = tmp_path / "r.csv"
    args = ("--limit", "1", "--methods", "gradcam", "--metrics", "drop")
    res = run_cli(out, data_root, *args, module="camlab.evaluation.cli")
    assert res.returncode == 0, res.stderr
    (row,) = read(out)
    assert row["drop"] != ""
    assert row["drop_unclipped"] != ""
    assert row["increase"] == ""
    assert float(row["drop"]) == pytest.approx(max(0.0, float(row["drop_unclipped"])), abs=1e-5)
    assert "drop_unclipped %" in res.stdout


def test_requested_metrics_adds_the_unclipped_drop_once():
    assert E.requested_metrics(["drop", "insertion"]) == ["drop", "drop_unclipped", "insertion"]
    assert E.requested_metrics(["drop_unclipped", "drop"]) == ["drop_unclipped", "drop"]
    assert E.requested_metrics(["increase"]) == ["increase"]
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        E.requested_metrics(["drop", "auc"])


def test_the_names_callers_import_from_the_harness_are_there():
    """benchmarks/, the notebooks and the tests import these from camlab.evaluation.harness."""
    from camlab.evaluation import results

    names = [
        "FIELDS",
        "METRICS",
        "MethodSpec",
        "Rows",
        "evaluate",
        "explanation_rows",
        "format_table",
        "parse_methods",
        "pointing_game",
        "pointing_intervals",
        "pointing_tiles",
        "read_results",
        "read_skipped",
        "summarize",
    ]
    assert [n for n in names if not hasattr(E, n)] == []
    assert E.read_results is results.read_results
    assert E.FIELDS is results.FIELDS
    assert cli.evaluate is E.evaluate

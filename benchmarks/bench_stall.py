"""Does a notebook stall beside other work? One notebook, run idle and beside one busy
single-threaded process, under each OpenMP setting of the kernel's environment.

    .venv/bin/python benchmarks/bench_stall.py                          # notebook 03, four settings
    .venv/bin/python benchmarks/bench_stall.py --only 05 --settings default,kernel
    .venv/bin/python benchmarks/bench_stall.py --only all --settings default --timeout 3600   # `make run`

Each run is ``python -m camlab.book run notebooks <tmp> --only <NN>`` (papermill, the
notebook's default parameters) in a fresh process whose environment carries the setting; runs
longer than ``--timeout`` are stopped and recorded as that many seconds or more. The busy process
is ``python -c 'while True: pass'``. Settings: ``default`` (no OpenMP variable; camlab.book.notebooks
then applies its own kernel setting), ``kernel`` (camlab.book.notebooks' kernel environment switched
off: torch's own default, 2 threads spinning), ``passive`` (``OMP_WAIT_POLICY=PASSIVE``),
``threads1`` (``OMP_NUM_THREADS=1``), ``spin`` (``GOMP_SPINCOUNT=10000``). ``--only all`` runs
every notebook, as ``make run`` does (the ``default`` setting is what ``make run`` gives: the
Makefile sets the same wait policy). CSV: benchmarks/results/bench_stall_cpu.csv, one row per
notebook and setting (a rerun replaces its own rows). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from results_csv import write_csv

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
OMP_VARS = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GOMP_SPINCOUNT", "CAMLAB_KERNEL_ENV")
SETTINGS = {
    "default": {},
    "kernel": {"CAMLAB_KERNEL_ENV": "0"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "threads1": {"OMP_NUM_THREADS": "1"},
    "spin": {"GOMP_SPINCOUNT": "10000"},
}


def run(only: str, setting: dict[str, str], timeout: float, keep: str | None = None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in OMP_VARS}
    env.update(setting)
    with tempfile.TemporaryDirectory() as tmp:
        out = keep or tmp
        Path(out).mkdir(parents=True, exist_ok=True)
        only_args = [] if only == "all" else ["--only", only]
        with (
            open(Path(out) / "run.log", "w") if keep else open(os.devnull, "w") as log
        ):  # per-notebook times, when kept
            start = time.perf_counter()
            try:
                subprocess.run(
                    [sys.executable, "-m", "camlab.book.notebooks", "run", str(ROOT / "notebooks"), out, *only_args],
                    env=env,
                    cwd=ROOT,
                    timeout=timeout,
                    check=True,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            except subprocess.TimeoutExpired:
                return float(timeout)
            return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="03")
    p.add_argument("--settings", default="kernel,default,passive,threads1")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--keep", default=None, help="keep the executed notebooks of the idle run in this folder")
    args = p.parse_args(argv)
    rows = []
    for name in args.settings.split(","):
        idle = run(args.only, SETTINGS[name], args.timeout, args.keep)
        busy_proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)
            busy = run(args.only, SETTINGS[name], args.timeout)
        finally:
            busy_proc.kill()
            busy_proc.wait()
        rows.append(
            {
                "date": date.today().isoformat(),
                "notebook": args.only,
                "setting": name,
                "env": " ".join(f"{k}={v}" for k, v in SETTINGS[name].items()),
                "idle_s": round(idle, 1),
                "busy_s": round(busy, 1),
                "busy_over_idle": round(busy / idle, 2),
                "timed_out": busy >= args.timeout,
            }
        )
        print(
            f"{name:9s} idle {idle:6.1f} s   beside a busy process {busy:6.1f} s"
            f"{'+' if busy >= args.timeout else ''}   ratio {busy / idle:4.2f}",
            flush=True,
        )
    path = RESULTS / "bench_stall_cpu.csv"
    if path.is_file():  # keep the rows of other notebooks and settings
        with path.open(newline="") as fh:
            done = {(r["notebook"], r["setting"]) for r in rows}
            rows = [r for r in csv.DictReader(fh) if (r["notebook"], r["setting"]) not in done] + rows
    print(f"written {write_csv(path, rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

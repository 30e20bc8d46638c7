"""The evaluation harness's results files: the per-image CSV and the record of skipped images.

The CSV has fixed columns (:data:`FIELDS`). Rows are appended one at a time, flushed and fsynced
(:func:`append_row`), so a killed run leaves every finished row on disk and a rerun resumes from
them; a file written with other columns is refused (:func:`check_columns`) rather than extended.
The images a run could not read go to ``<out>.skipped.csv`` (:func:`skipped_path`).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from .metrics import METRICS

__all__ = [
    "FIELDS",
    "SKIPPED_FIELDS",
    "append_row",
    "check_columns",
    "format_value",
    "read_results",
    "read_rows",
    "read_skipped",
    "record_skipped",
    "skipped_path",
    "write_rows",
]

FIELDS = ["image", "class_index", "target", "method", "params", *METRICS, "n_forward", "seconds"]
SKIPPED_FIELDS = ["image", "reason"]


def read_rows(path: str | os.PathLike | None) -> list[dict[str, str]]:
    """Every row of a CSV, as strings; a missing file (or ``None``) gives ``[]``."""
    if path is None or not Path(path).is_file():
        return []
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


def read_results(path: str | os.PathLike, complete: bool = True) -> list[dict[str, str]]:
    """The per-image rows of a harness CSV (e.g. a committed run in ``benchmarks/results``);
    with ``complete``, only the images that every method of the file has — a run cut short
    holds the first methods of its last image, which would bias a paired comparison. A missing
    file gives ``[]``.

    >>> rows = read_results("benchmarks/results/table1_efficientnet_lite0.csv")  # doctest: +SKIP
    >>> len({r["image"] for r in rows})  # doctest: +SKIP
    200
    """
    rows = read_rows(path)
    if complete:
        methods = {r["method"] for r in rows}
        have: dict[str, set[str]] = {}
        for r in rows:
            have.setdefault(r["image"], set()).add(r["method"])
        rows = [r for r in rows if have[r["image"]] == methods]
    return rows


def check_columns(path: str | os.PathLike, fields: Sequence[str] = FIELDS) -> None:
    """A CSV to resume must have been written with these columns (an older camlab's is refused).

    Raises:
        ValueError: the file's header is not ``fields``.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size:
        with path.open(newline="") as fh:
            header = next(csv.reader(fh), [])
        if header != list(fields):
            raise ValueError(
                f"{path} was written with other columns ({', '.join(header)}); "
                f"camlab now writes {', '.join(fields)}: write to a new file"
            )


def append_row(path: str | os.PathLike, row: dict[str, Any], fields: Sequence[str] = FIELDS) -> None:
    """Append one row to the CSV (its header first when the file is new or empty), flushed and
    fsynced before returning, so a kill right after loses nothing."""
    path = Path(path)
    new = not path.is_file() or path.stat().st_size == 0
    if not new:
        check_columns(path, fields)
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


def write_rows(path: str | os.PathLike, rows: Iterable[dict[str, Any]], fields: Sequence[str] = FIELDS) -> None:
    """Write a whole CSV at once (replacing the file): a header and the rows."""
    with Path(path).open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields))
        w.writeheader()
        w.writerows(rows)


def format_value(v: Any) -> Any:
    """A value as the CSV holds it: floats to 6 significant digits, booleans as 0/1."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, bool):
        return int(v)
    return v


def skipped_path(out: str | os.PathLike) -> Path:
    """Where a run writing ``out`` records the images it skipped: ``<out>.skipped.csv``."""
    out = Path(out)
    return out.with_name(out.name + ".skipped.csv")


def read_skipped(out: str | os.PathLike) -> dict[str, str]:
    """The images a run writing ``out`` skipped, by file name, with the reason."""
    return {r["image"]: r["reason"] for r in read_rows(skipped_path(out))}


def record_skipped(out: str | os.PathLike, image: str, reason: str) -> None:
    """Record (durably) that a run writing ``out`` skipped ``image``, and why."""
    append_row(skipped_path(out), {"image": image, "reason": reason}, SKIPPED_FIELDS)

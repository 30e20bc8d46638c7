"""The evaluation harness's results files: the per-image CSV and the record of skipped images.

The CSV has fixed columns (:data:`FIELDS`). Rows are appended one at a time, flushed and fsynced
(:func:`append_row`), so a killed run leaves every finished row on disk and a rerun resumes from
them; a file written with other columns is refused (:func:`check_columns`) rather than extended.
The images a run could not read go to ``<out>.skipped.csv`` (:func:`skipped_path`). One process
at a time writes a file: :func:`locked` holds ``.<out>.lock`` beside it, and a second process
either waits for it or is refused (:class:`OutputLocked`) — never two appending the same rows.
"""

from __future__ import annotations

import csv
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .metrics import METRICS

__all__ = [
    "FIELDS",
    "SKIPPED_FIELDS",
    "OutputLocked",
    "lock_path",
    "locked",
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


class OutputLocked(RuntimeError):
    """Another process holds the lock of the file this one was to write."""


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of a results file: ``.<name>.lock`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _try_lock(fh, wait: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


@contextmanager
def locked(path: str | os.PathLike, wait: bool = False) -> Iterator[Path]:
    """Hold the exclusive lock of the results file ``path`` (:func:`lock_path`) for the block:
    with ``wait`` until the process holding it lets go, else refuse at once. The operating system
    releases the lock when its process ends, killed or not, so a stale lock file stops nobody.

    Raises:
        OutputLocked: (without ``wait``) another process holds the lock; the message names it.
        FileNotFoundError: the folder of ``path`` does not exist.
    """
    lock = lock_path(path)
    if not lock.parent.is_dir():
        raise FileNotFoundError(f"no folder {str(lock.parent)!r} to write {Path(path).name} in")
    with lock.open("a") as fh:
        if not _try_lock(fh, wait):
            raise OutputLocked(
                f"{path} is being written by another process (it holds the lock {lock}); "
                "wait for it to finish or write to another --out"
            )
        yield lock

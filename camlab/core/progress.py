"""Progress bars on camlab's long loops — and none where nobody can watch them.

In a notebook that papermill or nbval executes (``camlab.book.notebooks`` and ``make test`` set
``CAMLAB_HEADLESS``), a bar would be saved in the executed copy frozen at its first state
("0 %"), so there the loops run without one.

>>> for image in progress(images, desc="evaluate"):  # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import os
from typing import Iterable, TypeVar

__all__ = ["HEADLESS", "headless", "progress"]

HEADLESS = "CAMLAB_HEADLESS"
T = TypeVar("T")


def headless() -> bool:
    """Whether this process runs notebooks with no front end (``CAMLAB_HEADLESS`` set, not 0)."""
    return os.environ.get(HEADLESS, "") not in ("", "0")


def progress(iterable: Iterable[T], desc: str, enabled: bool = True, total: int | None = None) -> Iterable[T]:
    """``iterable`` wrapped in a ``tqdm.auto`` bar titled ``desc``; the iterable itself when
    ``enabled`` is false or the process is :func:`headless`."""
    if not enabled or headless():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total)

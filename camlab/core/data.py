"""Images to explain: samples that ship with installed packages, and folders of images.

The data root is a parameter everywhere; by default it is ``$CAMLAB_DATA``, else the
repository's ``data/`` folder. Inside it, ``imagenet-dev/`` holds ImageNet images named
``nXXXXXXXX_label.JPEG``, ``paper-figures/`` the classes of the paper's figures and
``multi-object/`` photos with several objects (see ``data/README.md``). :func:`image_folder`
reads any folder, flat or in class sub-folders as ImageNet's validation set comes
(``val/n01440764/ILSVRC2012_val_00000293.JPEG``, torchvision's ``ImageFolder`` layout).
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image

from .images import load_image
from .models import imagenet_categories, imagenet_synsets

__all__ = [
    "data_root",
    "sample_images",
    "ImageRecord",
    "imagenet_folder",
    "fetch_imagenet_samples",
    "SAMPLE_IMAGES_URL",
    "NamedImage",
    "image_folder",
    "pick_images",
    "compose",
    "Composite",
    "grid_composites",
]

_REPO_DATA = Path(__file__).resolve().parents[2] / "data"
_IMAGENET_NAME = re.compile(r"^(n\d{8})_(.+)\.(jpe?g|png)$", re.IGNORECASE)
_SYNSET = re.compile(r"^n\d{8}$")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SAMPLE_IMAGES_URL = "https://github.com/EliSchwartz/imagenet-sample-images/archive/refs/heads/master.zip"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$CAMLAB_DATA``, else the repository's ``data/`` folder."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("CAMLAB_DATA")
    if env:
        return Path(env).expanduser()
    return _REPO_DATA


def sample_images() -> dict[str, Image.Image]:
    """Five RGB photos that ship inside installed packages, so nothing needs downloading.

    scikit-image's ``astronaut``, ``chelsea`` (a cat), ``coffee`` and ``rocket``, and
    matplotlib's ``grace_hopper``.
    """
    import matplotlib.cbook
    import skimage.data

    images = {name: load_image(getattr(skimage.data, name)()) for name in ("astronaut", "chelsea", "coffee", "rocket")}
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        images["grace_hopper"] = load_image(Image.open(fh))
    return images


@dataclass(frozen=True)
class ImageRecord:
    """One image of a folder: for a file named ``nXXXXXXXX_label.JPEG`` or kept in a folder named
    by a synset (``n01440764/``) its ImageNet synset, class index and label; for any other photo
    ``synset=""``, ``class_index=None`` (the class is unknown: an explanation then targets the
    model's top-1 class) and the file's stem as label. ``name`` identifies the image within its
    folder: its path relative to the folder (``n01440764/ILSVRC2012_val_00000293.JPEG``; in a flat
    folder the file name), the key of the harness's rows."""

    path: Path
    synset: str
    class_index: int | None
    label: str
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.path.name)

    def load(self) -> Image.Image:
        return load_image(self.path)


def imagenet_folder(root: str | os.PathLike | None = None, limit: int | None = None) -> list[ImageRecord]:
    """The images of a folder named ``nXXXXXXXX_label.JPEG``, sorted by file name.

    ``root`` is the folder itself; by default ``data_root() / "imagenet-dev"``. The class index
    is the synset's position among the 1000 sorted ImageNet-1k synsets; the label is the file
    name's text after the synset, with underscores as spaces. Files that do not follow the
    naming are ignored; a synset outside ImageNet-1k is an error.
    """
    folder = Path(root).expanduser() if root is not None else data_root() / "imagenet-dev"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no image folder at {str(folder)!r}; set CAMLAB_DATA or pass the folder "
            "(see data/README.md for where to get images)"
        )
    index = {s: i for i, s in enumerate(imagenet_synsets())}
    records = []
    for path in sorted(folder.iterdir()):
        m = _IMAGENET_NAME.match(path.name)
        if not m:
            continue
        synset = m.group(1)
        if synset not in index:
            raise ValueError(f"{path.name}: synset {synset} is not one of the 1000 ImageNet-1k classes")
        records.append(ImageRecord(path, synset, index[synset], m.group(2).replace("_", " ")))
    if not records:
        raise FileNotFoundError(f"no image named nXXXXXXXX_label.JPEG in {str(folder)!r}")
    return records[:limit] if limit is not None else records


def _image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder``, in sub-folders too (symbolic links followed, hidden files
    and folders left out), sorted by their path relative to ``folder``, part by part."""
    found = []
    for top, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [
            Path(top, f) for f in files if not f.startswith(".") and Path(f).suffix.lower() in _IMAGE_SUFFIXES
        ]
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def image_folder(root: str | os.PathLike, limit: int | None = None) -> list[ImageRecord]:
    """Every image file (jpg, png, bmp, gif, tif, webp) of a folder and its sub-folders, sorted by
    path. The ImageNet class of an image comes from its file name (``nXXXXXXXX_label.JPEG``, as
    :func:`imagenet_folder` reads it) or else from the nearest folder above it named by a synset
    (``val/n01440764/ILSVRC2012_val_00000293.JPEG``, torchvision's ``ImageFolder`` layout; the
    label is then the class's name); any other photo (``cat.jpg``, ``holiday/cat.jpg``) has no
    class (``class_index=None``). A record's ``name`` is its path relative to ``root``.

    >>> [(r.name, r.class_index) for r in image_folder("val")]  # doctest: +SKIP
    [('n01440764/ILSVRC2012_val_00000293.JPEG', 0), ('n01443537/ILSVRC2012_val_00000236.JPEG', 1)]

    Raises:
        FileNotFoundError: ``root`` is not a folder, or holds no image file.
        ValueError: a synset (file or folder name) is not one of ImageNet-1k's, or a file name's
            synset differs from its folder's.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"no image folder at {str(folder)!r}")
    index = {s: i for i, s in enumerate(imagenet_synsets())}
    records = []
    for path in _image_files(folder):
        rel = path.relative_to(folder)
        synset = next((d for d in reversed(rel.parts[:-1]) if _SYNSET.match(d)), "")
        if synset and synset not in index:
            raise ValueError(f"{rel.as_posix()}: folder {synset} is not one of the 1000 ImageNet-1k classes")
        label = imagenet_categories()[index[synset]] if synset else path.stem
        m = _IMAGENET_NAME.match(path.name)
        if m:
            if m.group(1) not in index:
                raise ValueError(f"{rel.as_posix()}: synset {m.group(1)} is not one of the 1000 ImageNet-1k classes")
            if synset and m.group(1) != synset:
                raise ValueError(f"{rel.as_posix()}: the file names synset {m.group(1)}, its folder {synset}")
            synset, label = m.group(1), m.group(2).replace("_", " ")
        records.append(ImageRecord(path, synset, index[synset] if synset else None, label, rel.as_posix()))
    if not records:
        raise FileNotFoundError(
            f"no image file ({', '.join(sorted(_IMAGE_SUFFIXES))}) in {str(folder)!r} or its sub-folders"
        )
    return records[:limit] if limit is not None else records


def fetch_imagenet_samples(dest: str | os.PathLike, url: str = SAMPLE_IMAGES_URL, timeout: float = 30.0) -> Path:
    """Download the public one-image-per-class ImageNet sample set into ``dest``.

    Needs the internet; offline it raises a ``RuntimeError`` that says so. Returns ``dest``.
    """
    import io
    import zipfile

    dest = Path(dest).expanduser()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            payload = resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(
            f"could not download the ImageNet sample images from {url} ({exc}); this needs the "
            "internet. Offline, use camlab.data.sample_images() or point CAMLAB_DATA at a folder "
            "of images named nXXXXXXXX_label.JPEG"
        ) from exc
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        for member in zf.namelist():
            name = Path(member).name
            if _IMAGENET_NAME.match(name):
                (dest / name).write_bytes(zf.read(member))
    return dest


@dataclass(frozen=True)
class NamedImage:
    """An image with a display name and, when known, its ImageNet class index."""

    name: str
    image: Image.Image
    class_index: int | None = None


def pick_images(
    root: str | os.PathLike | None = None,
    n_images: int = 4,
    seed: int = 0,
    folder: str = "imagenet-dev",
    labels: Sequence[str] | None = None,
) -> list[NamedImage]:
    """``n_images`` images for a notebook: a seeded random choice from ``<data root>/<folder>``
    when that folder exists, else the package sample images (in their fixed order).

    ``folder`` may also be ``"paper-figures"``; ``labels`` keeps the images of those classes, in
    that order (a label the folder lacks is an error); ``n_images=None`` takes them all. Without
    the folder, the sample images stand in (``labels`` then only sets how many).
    """
    import random

    path = data_root(root) / folder
    if path.is_dir():
        records = imagenet_folder(path)
        if labels is not None:
            by_label = {r.label: r for r in records}
            missing = [label for label in labels if label not in by_label]
            if missing:
                raise ValueError(f"no image of {missing} in {str(path)!r}; it has: {', '.join(sorted(by_label))}")
            records = [by_label[label] for label in labels][:n_images]
        elif n_images is not None and n_images < len(records):
            records = sorted(random.Random(seed).sample(records, n_images), key=lambda r: r.path.name)
        return [NamedImage(r.label, r.load(), r.class_index) for r in records]
    samples = list(sample_images().items())
    count = n_images if n_images is not None else (len(labels) if labels is not None else None)
    return [NamedImage(name, im) for name, im in samples[:count]]


def compose(images: Sequence[Image.Image], tile: int = 224) -> Image.Image:
    """Tile 2 images side by side, or 4 in a 2×2 grid, each centre-cropped to a square and
    resized (bicubic) to ``tile``×``tile``. Used for two-object figures and the grid pointing game."""
    n = len(images)
    if n not in (2, 4):
        raise ValueError(f"compose takes 2 images (side by side) or 4 (2×2); got {n}")
    cols, rows = 2, n // 2
    canvas = Image.new("RGB", (cols * tile, rows * tile))
    for k, im in enumerate(images):
        im = load_image(im)
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        square = im.crop((left, top, left + side, top + side)).resize((tile, tile), Image.BICUBIC)
        canvas.paste(square, ((k % cols) * tile, (k // cols) * tile))
    return canvas


@dataclass(frozen=True)
class Composite:
    """A grid image of tiles of known classes: ``boxes[k] = (top, left, height, width)`` of tile k."""

    image: Image.Image
    class_indices: tuple[int, ...]
    labels: tuple[str, ...]
    boxes: tuple[tuple[int, int, int, int], ...]


def grid_composites(
    records: Sequence[ImageRecord], k: int = 2, n: int = 10, seed: int = 0, tile: int = 224
) -> list[Composite]:
    """``n`` composites of ``k`` tiles (2 side by side, 4 in 2×2), each of images of different
    classes drawn from ``records`` with a seeded generator (the grid pointing game)."""
    import random

    if k not in (2, 4):
        raise ValueError(f"k is 2 (side by side) or 4 (2×2), got {k}")
    classes = {r.class_index for r in records}
    if len(classes) < k:
        raise ValueError(f"need images of at least {k} different classes, got {len(classes)}")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        chosen: list[ImageRecord] = []
        while len(chosen) < k:
            r = rng.choice(records)
            if r.class_index not in {c.class_index for c in chosen}:
                chosen.append(r)
        boxes = tuple(((i // 2) * tile, (i % 2) * tile, tile, tile) for i in range(k))
        out.append(
            Composite(
                compose([r.load() for r in chosen], tile),
                tuple(r.class_index for r in chosen),
                tuple(r.label for r in chosen),
                boxes,
            )
        )
    return out

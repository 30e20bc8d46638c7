"""Loading images from paths, PIL images and numpy arrays, always as RGB."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageLike", "load_image"]

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]
# what PIL raises for a file that is no image, truncated or corrupt: OSError for most (a file it
# cannot identify, a truncated JPEG), SyntaxError for broken PNG chunks, DecompressionBombError
# past its pixel limit, ValueError and EOFError from some decoders
_UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def _array_to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"an image array is H×W, H×W×3 or H×W×4; got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("the image array contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0.0 and hi <= 1.0:  # the usual [0, 1] float image
            return np.round(arr * 255).astype(np.uint8)
        if lo >= 0.0 and hi <= 255.0:
            return np.round(arr).astype(np.uint8)
        raise ValueError(f"a float image array must lie in [0, 1] or [0, 255]; got values in [{lo:g}, {hi:g}]")
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if arr.min() < 0:
            raise ValueError(f"an integer image array must be non-negative; got minimum {arr.min()}")
        peak = int(arr.max())
        # 8-bit values stay; 16-bit images (also when PIL hands them over as int32) scale by 65535
        top = 255 if peak <= 255 else 65535 if peak <= 65535 else info.max
        return np.round(arr.astype(np.float64) * (255.0 / top)).astype(np.uint8)
    raise ValueError(f"unsupported image array dtype {arr.dtype}")


def load_image(src: ImageLike) -> Image.Image:
    """Return ``src`` as an RGB PIL image.

    ``src`` is a path, a PIL image (any mode: grayscale, RGBA, palette, 16-bit…), or a numpy
    array (H×W or H×W×{1,3,4}; uint8, 16-bit integers scaled by their range, floats in [0, 1] or
    [0, 255]). Transparent pixels are composited onto white.

    Raises:
        FileNotFoundError: no file at the path.
        ValueError: the file is not an image PIL can read, or is truncated or corrupt.
    """
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"no image file at {str(path)!r}")
        try:
            with Image.open(path) as im:
                im.load()
                return _pil_to_rgb(im)
        except _UNREADABLE as exc:
            raise ValueError(f"cannot read {str(path)!r} as an image: {exc}") from exc
    if isinstance(src, Image.Image):
        return _pil_to_rgb(src)
    if isinstance(src, np.ndarray):
        arr = _array_to_uint8(np.asarray(src))
        return _pil_to_rgb(Image.fromarray(arr))
    raise TypeError(f"an image is a path, a PIL image or a numpy array, not {type(src).__name__}")


def _pil_to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im.copy()
    if im.mode.startswith("I") or im.mode == "F":  # 16/32-bit integer or float grayscale
        return _pil_to_rgb(Image.fromarray(_array_to_uint8(np.asarray(im))))
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")

import numpy as np
import pytest
from PIL import Image

import camlab
from camlab import load_image


def test_path_and_pil(dev_records):
    im = load_image(dev_records[0].path)
    assert im.mode == "RGB"
    assert min(im.size) > 50
    assert load_image(im).mode == "RGB"


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "I;16", "I", "F", "CMYK", "1"])
def test_pil_modes_become_rgb(mode):
    base = Image.fromarray((np.arange(64 * 48 * 3) % 256).astype(np.uint8).reshape(64, 48, 3))
    if mode == "I;16":
        im = Image.fromarray((np.arange(64 * 48, dtype=np.uint16) * 20).reshape(64, 48))
    else:
        im = base.convert(mode)
    out = load_image(im)
    assert out.mode == "RGB"
    assert out.size == (48, 64)


def test_rgba_transparent_pixels_become_white():
    arr = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black
    assert np.all(np.asarray(load_image(arr)) == 255)


@pytest.mark.parametrize(
    ("arr", "expected_max"),
    [
        (np.full((8, 8), 65535, dtype=np.uint16), 255),  # 16-bit white
        (np.full((8, 8), 32768, dtype=np.uint16), 128),  # 16-bit mid grey
        (np.full((8, 8, 3), 1.0, dtype=np.float32), 255),  # float in [0, 1]
        (np.full((8, 8, 3), 0.5, dtype=np.float64), 128),
        (np.full((8, 8, 1), 200, dtype=np.uint8), 200),
    ],
)
def test_arrays_are_scaled(arr, expected_max):
    out = np.asarray(load_image(arr))
    assert out.shape == (8, 8, 3)
    assert out.dtype == np.uint8
    assert int(out.max()) == expected_max


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image file"):
        load_image(tmp_path / "nope.jpg")


def test_unreadable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match="cannot read"):
        load_image(bad)


@pytest.mark.parametrize(
    ("arr", "msg"),
    [
        (np.zeros((4, 4, 5), dtype=np.uint8), "shape"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.full((4, 4), 300.0), r"\[0, 1\] or \[0, 255\]"),
        (np.full((4, 4), -1, dtype=np.int16), "non-negative"),
    ],
)
def test_bad_arrays(arr, msg):
    with pytest.raises(ValueError, match=msg):
        load_image(arr)


def test_wrong_type():
    with pytest.raises(TypeError, match="path, a PIL image or a numpy array"):
        load_image(42)


def test_preprocess_takes_every_kind(lite0, dev_records):
    path = dev_records[3].path
    x = lite0.preprocess([path, load_image(path), np.asarray(load_image(path))])
    assert x.shape == (3, 3, 224, 224)
    assert (x[0] - x[1]).abs().max() == 0
    assert (x[0] - x[2]).abs().max() == 0
    back = lite0.unnormalize(x)
    assert back.min() >= 0
    assert back.max() <= 1
    assert camlab.data.sample_images()  # the package samples load too

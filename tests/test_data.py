import urllib.error

import pytest

import camlab
from camlab import data
from camlab.core.models import imagenet_categories, imagenet_synsets


def test_sample_images_ship_with_packages():
    images = data.sample_images()
    assert set(images) == {"astronaut", "chelsea", "coffee", "rocket", "grace_hopper"}
    assert all(im.mode == "RGB" and min(im.size) >= 200 for im in images.values())


def test_synsets_and_categories_are_the_imagenet_1k_lists():
    syn = imagenet_synsets()
    assert len(syn) == 1000
    assert list(syn) == sorted(syn)
    assert len(set(syn)) == 1000
    assert syn[0] == "n01440764"
    assert imagenet_categories()[0] == "tench"
    assert len(imagenet_categories()) == 1000


def test_imagenet_folder(dev_records):
    assert len(dev_records) == 200
    by_name = {r.path.name: r for r in dev_records}
    tench = by_name["n01440764_tench.JPEG"]
    assert tench.class_index == 0
    assert tench.label == "tench"
    assert tench.synset == "n01440764"
    # the dev set holds every fifth class of the sorted synsets
    assert sorted(r.class_index for r in dev_records) == list(range(0, 1000, 5))
    for r in dev_records:
        assert imagenet_synsets()[r.class_index] == r.synset


def test_imagenet_folder_labels_with_underscores(data_root):
    records = data.imagenet_folder(data_root / "paper-figures")
    labels = {r.label for r in records}
    assert "indigo bunting" in labels
    assert "bald eagle" in labels
    assert {r.class_index for r in records if r.label == "cock"} == {7}


def test_imagenet_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image folder"):
        data.imagenet_folder(tmp_path / "missing")
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="nXXXXXXXX_label"):
        data.imagenet_folder(tmp_path)
    (tmp_path / "n99999999_unicorn.JPEG").write_bytes(b"")
    with pytest.raises(ValueError, match="n99999999"):
        data.imagenet_folder(tmp_path)


def _touch(root, *names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")  # image_folder only lists; reading is the evaluation's


def test_image_folder_reads_a_tree_of_class_folders(tmp_path):
    """ImageNet's validation layout (one folder per synset, torchvision's ImageFolder), nested
    deeper too; a plainly named folder gives no class; hidden files and folders are left out."""
    _touch(
        tmp_path,
        "n01443537/ILSVRC2012_val_00000236.JPEG",
        "n01440764/ILSVRC2012_val_00000293.JPEG",
        "n01440764/ILSVRC2012_val_00002138.jpeg",
        "train/n01484850/0001.png",  # two levels down
        "n01484850/n01484850_great_white_shark.JPEG",  # name and folder agree
        "holiday/cat.jpg",
        "top.jpg",
        ".hidden/n01440764/x.JPEG",
        "n01440764/.x.JPEG",
        "n01440764/notes.txt",
    )
    records = data.image_folder(tmp_path)
    assert [(r.name, r.class_index, r.synset, r.label) for r in records] == [
        ("holiday/cat.jpg", None, "", "cat"),
        ("n01440764/ILSVRC2012_val_00000293.JPEG", 0, "n01440764", "tench"),
        ("n01440764/ILSVRC2012_val_00002138.jpeg", 0, "n01440764", "tench"),
        ("n01443537/ILSVRC2012_val_00000236.JPEG", 1, "n01443537", "goldfish"),
        ("n01484850/n01484850_great_white_shark.JPEG", 2, "n01484850", "great white shark"),
        ("top.jpg", None, "", "top"),
        ("train/n01484850/0001.png", 2, "n01484850", "great white shark"),
    ]
    assert all(r.path == tmp_path / r.name for r in records)
    assert [r.name for r in data.image_folder(tmp_path, limit=2)] == [r.name for r in records[:2]]


def test_image_folder_names_a_flat_folder_by_file_name(tmp_path):
    _touch(tmp_path, "n01440764_tench.JPEG", "b.png", "a.jpg")
    assert [(r.name, r.class_index) for r in data.image_folder(tmp_path)] == [
        ("a.jpg", None),
        ("b.png", None),
        ("n01440764_tench.JPEG", 0),
    ]
    assert data.image_folder(tmp_path)[2].name == data.imagenet_folder(tmp_path)[0].name


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["n99999999/a.JPEG"], "n99999999/a.JPEG: folder n99999999 is not one of the 1000 ImageNet-1k classes"),
        (["n01440764/n01443537_goldfish.JPEG"], "the file names synset n01443537, its folder n01440764"),
        (["a/n99999999_unicorn.JPEG"], "a/n99999999_unicorn.JPEG: synset n99999999 is not one"),
        (["a/notes.txt", ".b/c.jpg"], "no image file"),
    ],
)
def test_image_folder_errors(tmp_path, files, message):
    _touch(tmp_path, *files)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        data.image_folder(tmp_path)


def test_data_root_setting(monkeypatch, tmp_path):
    assert data.data_root(tmp_path) == tmp_path
    monkeypatch.setenv("CAMLAB_DATA", str(tmp_path))
    assert data.data_root() == tmp_path
    monkeypatch.delenv("CAMLAB_DATA")
    assert data.data_root().name == "data"


def test_pick_images_prefers_the_dev_folder_and_falls_back(data_root, tmp_path):
    picked = data.pick_images(data_root, n_images=3, seed=1)
    assert len(picked) == 3
    assert all(p.class_index is not None for p in picked)
    assert [p.name for p in picked] == [p.name for p in data.pick_images(data_root, n_images=3, seed=1)]
    fig1 = data.pick_images(data_root, folder="paper-figures", labels=["ostrich", "cock"])
    assert [p.name for p in fig1] == ["ostrich", "cock"]
    assert [p.class_index for p in fig1] == [9, 7]
    with pytest.raises(ValueError, match="unicorn"):
        data.pick_images(data_root, folder="paper-figures", labels=["unicorn"])
    fallback = data.pick_images(tmp_path, n_images=2)
    assert [p.name for p in fallback] == ["astronaut", "chelsea"]


def test_fetch_fails_clearly_offline(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(RuntimeError, match="needs the internet"):
        camlab.data.fetch_imagenet_samples(tmp_path / "imgs")
    assert not (tmp_path / "imgs").exists()


def test_compose_tiles(dev_records, lite0):
    ims = [r.load() for r in dev_records[:4]]
    two = data.compose(ims[:2], tile=100)
    four = data.compose(ims, tile=64)
    assert two.size == (200, 100)
    assert four.size == (128, 128)
    x = lite0.preprocess(two, resize=False)
    assert x.shape == (1, 3, 100, 200)
    with pytest.raises(ValueError, match="2 images"):
        data.compose(ims[:3])
    with pytest.raises(ValueError, match="share a size"):
        lite0.preprocess([two, four], resize=False)

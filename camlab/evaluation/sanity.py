"""Sanity checks for saliency maps (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

A map that explains a model must change when the model does. The *model parameter
randomisation* test re-initialises the network's weights and compares each map with the map of
the untouched network:

- **cascading**: blocks re-initialised from the top (the classifier first), cumulatively — step k
  has the top k blocks random;
- **independent**: one block at a time, the rest untouched.

The *data randomisation* test (retraining on permuted labels) is out of reach here; the
random-logit check stands in for it (:func:`random_logit`): the map for the predicted class
against the map for a random other class. A class-sensitive method should give different maps.

Similarity (:func:`similarity`) is measured four ways, as in the paper's Figs. 2 and 4: the
Spearman rank correlation of the two maps and of their absolute values, SSIM (scikit-image's
``structural_similarity``, data range 1) and the Pearson correlation of their HOG features. A map
that is constant (full randomisation often makes maps flat) ranks nothing: its Spearman
correlation with any map is 0 and its row says ``constant``.

An edge detector (:class:`camlab.SobelCAM`) is the textbook method that *fails*: its map does not
depend on the model at all. Caveat (Binder et al., CVPR 2023): randomising from the top keeps the
scale of the activations below, which favours maps that weight activations.

The model is an ``nn.Module`` or a :class:`~camlab.Classifier`: with a Classifier the untouched
maps come from its folded twin (:mod:`camlab.folding`), and the randomised networks are copies of
``clf.module``, run unfolded (the same maps to float rounding).

>>> rows = model_randomization("gradcam", clf, "bn2", x, mode="cascading")  # doctest: +SKIP
>>> [r["spearman"] for r in rows if r["image"] == 0]  # one value per step, 1.0 at step 0
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..core.models import Classifier
from ..core.progress import progress as progress_bar
from ..methods import METHODS, BaseCAM

__all__ = [
    "SIMILARITIES",
    "spearman",
    "similarity",
    "randomization_blocks",
    "model_randomization",
    "random_logit",
    "images_done",
]

SIMILARITIES = ("spearman", "spearman_abs", "ssim", "hog")
MODES = ("cascading", "independent")


def _flat(a: Any) -> torch.Tensor:
    return torch.as_tensor(
        np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a), dtype=torch.float64
    ).flatten()


def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1…n of a vector, tied values sharing the mean of their ranks."""
    values, inverse, counts = torch.unique(v, sorted=True, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    return (ends - (counts.double() - 1) / 2)[inverse]


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float((a @ b) / den) if den > 0 else 0.0


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two maps (any shape, flattened; ties share their mean
    rank). 0 when either map is constant: a map that ranks nothing agrees with nothing."""
    fa, fb = _flat(a), _flat(b)
    if fa.numel() != fb.numel():
        raise ValueError(f"maps of different sizes: {fa.numel()} and {fb.numel()} values")
    if _is_constant(fa) or _is_constant(fb):
        return 0.0
    return _pearson(_average_ranks(fa), _average_ranks(fb))


def _is_constant(v: torch.Tensor) -> bool:
    return bool(v.numel() == 0 or v.max() == v.min())


def similarity(a: Any, b: Any) -> dict[str, Any]:
    """Four similarities of two H×W maps in [0, 1]: ``spearman``, ``spearman_abs`` (of ``|a|`` and
    ``|b|``), ``ssim`` (scikit-image, data range 1) and ``hog`` (Pearson correlation of their HOG
    features, 0 when either has none), and ``constant``: whether either map is constant."""
    from skimage.feature import hog
    from skimage.metrics import structural_similarity

    a = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    b = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"similarity compares two H×W maps of one shape, got {a.shape} and {b.shape}")
    cells = max(1, min(8, min(a.shape) // 3))
    ha = torch.as_tensor(
        hog(a, pixels_per_cell=(cells, cells), cells_per_block=(3, 3) if min(a.shape) >= 3 * cells else (1, 1))
    )
    hb = torch.as_tensor(
        hog(b, pixels_per_cell=(cells, cells), cells_per_block=(3, 3) if min(b.shape) >= 3 * cells else (1, 1))
    )
    return {
        "spearman": spearman(a, b),
        "spearman_abs": spearman(np.abs(a), np.abs(b)),
        "ssim": float(structural_similarity(a, b, data_range=1.0)),
        "hog": _pearson(ha.double(), hb.double()) if not (_is_constant(ha) or _is_constant(hb)) else 0.0,
        "constant": _is_constant(_flat(a)) or _is_constant(_flat(b)),
    }


def randomization_blocks(model: nn.Module) -> list[str]:
    """The blocks re-initialised by the randomisation test, top first: the network's top-level
    modules in reverse order of definition, a top-level ``Sequential`` or ``ModuleList``
    (efficientnet's ``blocks``, VGG's ``features``) split into its elements, and modules without
    parameters or buffers (pooling, activations) left out."""
    names = []
    for name, child in model.named_children():
        parts = list(child.named_children()) if isinstance(child, (nn.Sequential, nn.ModuleList)) else [("", child)]
        for sub, m in parts:
            if any(True for _ in m.parameters()) or any(True for _ in m.buffers()):
                names.append(f"{name}.{sub}" if sub else name)
    return names[::-1]


def _reinitialise(block: nn.Module, seed: int) -> None:
    """Every submodule's own ``reset_parameters`` (convolutions and linear layers redrawn, batch
    norms back to their initial affine and running statistics), under a fixed seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.no_grad():
            for m in block.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()


def _method(method: str | type[BaseCAM]) -> type[BaseCAM]:
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; available: {', '.join(sorted(METHODS))}")
        return METHODS[method]
    if isinstance(method, type) and issubclass(method, BaseCAM):
        return method
    raise TypeError(f"method must be a name of camlab.METHODS or a BaseCAM subclass, not {type(method).__name__}")


def _bare(model: nn.Module | Classifier) -> nn.Module:
    """The network of a Classifier (or the module itself): what the randomisation copies."""
    if isinstance(model, Classifier):
        return model.module
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module or a camlab Classifier, not {type(model).__name__}")
    return model


def _maps(
    cls: type[BaseCAM], model: nn.Module | Classifier, layer: str, x: torch.Tensor, targets, kwargs: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    with warnings.catch_warnings():  # flat maps are expected under randomisation and reported per row
        warnings.simplefilter("ignore", UserWarning)
        exp = cls(model, layer, **kwargs)(x, targets=targets)
    return exp.heatmaps, exp.targets


def model_randomization(
    method: str | type[BaseCAM],
    model: nn.Module | Classifier,
    layer: str,
    x: torch.Tensor,
    mode: str = "cascading",
    seed: int = 0,
    blocks: Sequence[str] | None = None,
    progress: bool = False,
    keep_maps: bool = False,
    **method_kwargs: Any,
) -> list[dict[str, Any]]:
    """Adebayo et al.'s model parameter randomisation test for one method on a batch ``x``.

    Step 0 is the untouched model; step k re-initialises the top k blocks of
    :func:`randomization_blocks` (``"cascading"``) or block k alone (``"independent"``), each
    block with seed ``seed + k``. The target of every image stays the untouched model's top-1
    class. The caller's ``model`` is never modified: the randomised networks are copies.

    Returns:
        one row per step × image: ``step``, ``block`` (the block re-initialised at that step,
        ``""`` at step 0), ``image`` (index in the batch), the :data:`SIMILARITIES` of its map to
        the untouched model's, and ``constant`` (the randomised map, or the original, is flat);
        with ``keep_maps`` also the map itself under ``"heatmap"``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    cls = _method(method)
    bare = _bare(model)
    blocks = list(blocks) if blocks is not None else randomization_blocks(bare)
    known = dict(bare.named_modules())
    missing = [b for b in blocks if b not in known]
    if missing:
        known_blocks = ", ".join(randomization_blocks(bare))
        raise ValueError(f"no block {missing[0]!r} in {type(bare).__name__}; its blocks: {known_blocks}")
    original, targets = _maps(cls, model, layer, x, None, method_kwargs)

    def row(step: int, block: str, i: int, maps: torch.Tensor) -> dict[str, Any]:
        return {
            "step": step,
            "block": block,
            "image": i,
            **similarity(original[i], maps[i]),
            **({"heatmap": maps[i]} if keep_maps else {}),
        }

    rows = [row(0, "", i, original) for i in range(len(x))]
    cascade = copy.deepcopy(bare) if mode == "cascading" else None
    for k, block in enumerate(progress_bar(blocks, desc=f"{cls.name} {mode}", enabled=progress), start=1):
        net = cascade if cascade is not None else copy.deepcopy(bare)
        _reinitialise(net.get_submodule(block), seed + k)
        maps, _ = _maps(cls, net, layer, x, targets, method_kwargs)
        rows.extend(row(k, block, i, maps) for i in range(len(x)))
    return rows


def random_logit(
    method: str | type[BaseCAM],
    model: nn.Module | Classifier,
    layer: str,
    x: torch.Tensor,
    seed: int = 0,
    **method_kwargs: Any,
) -> list[dict[str, Any]]:
    """The random-logit check: per image, the map for the model's top-1 class against the map for
    a class drawn uniformly (seeded) from the others. Rows: ``image``, ``target``, ``other`` and
    the :data:`SIMILARITIES` (and ``constant``)."""
    cls = _method(method)
    first, targets = _maps(cls, model, layer, x, None, method_kwargs)
    n_classes = int(_logits_width(_bare(model), x))
    gen = torch.Generator().manual_seed(int(seed))
    others = (
        targets + torch.randint(1, n_classes, targets.shape, generator=gen)
    ) % n_classes  # never the target itself
    second, _ = _maps(cls, model, layer, x, others, method_kwargs)
    return [
        {"image": i, "target": int(targets[i]), "other": int(others[i]), **similarity(first[i], second[i])}
        for i in range(len(x))
    ]


def images_done(
    rows: Iterable[Mapping[str, Any]], logit_rows: Iterable[Mapping[str, Any]] = ()
) -> tuple[dict[str, dict[str, int]], int]:
    """How far a run of the checks has got, from its rows (a long run is committed in parts):
    per method, the number of images of each check, ``{"cascading": n, "random logit": n,
    "independent": n}``, and the number of images of the run (the most any check has).
    ``rows`` are :func:`model_randomization`'s with a ``method`` and a ``mode`` column,
    ``logit_rows`` :func:`random_logit`'s with a ``method`` column."""
    seen: dict[str, dict[str, set]] = {}
    for mode, rs in (("", rows), ("random logit", logit_rows)):
        for r in rs:
            seen.setdefault(r["method"], {}).setdefault(mode or r["mode"], set()).add(r["image"])
    counts = {
        m: {k: len(by.get(k, ())) for k in ("cascading", "random logit", "independent")} for m, by in seen.items()
    }
    return counts, max((n for c in counts.values() for n in c.values()), default=0)


def _logits_width(model: nn.Module, x: torch.Tensor) -> int:
    with torch.inference_mode():
        return model(x[:1]).shape[1]

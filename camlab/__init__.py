"""camlab — class activation maps for CNN classifiers, centred on Cluster-CAM.

The package has four rooms; each imports only from the rooms above it::

    camlab.core        models (and their folded twins), images and image folders, layers and
                       hooks, maps, masking, the result type (Explanation), the device
    camlab.methods     the CAM methods on one pipeline (BaseCAM), registered in METHODS;
                       Cluster-CAM's clustering (K-means, Ward, spectral)
    camlab.evaluation  faithfulness metrics, ROAD imputation, sanity checks, metric agreement,
                       statistics (intervals, paired tests), timing, and the harness:
                       methods × images × metrics → CSV (``python -m camlab.evaluation``)
    camlab.book        what only the notebooks use: plots, widgets, sweeps, ablation curves,
                       verdict tables, the notebook runner (``python -m camlab.book``)

The names below (``camlab.load_model``, ``camlab.ClusterCAM``, ``camlab.metrics``…) are the
public API; ``camlab.metrics``, ``camlab.sanity``, ``camlab.plot`` and the other modules it
lists are also importable under those short names (``from camlab.metrics import confidence_drop``).

>>> import camlab
>>> clf = camlab.load_model("efficientnet_lite0")
>>> x = clf.preprocess(camlab.data.sample_images()["chelsea"])
>>> exp = camlab.METHODS["cam"](clf, clf.target_layer)(x)
>>> exp.heatmaps.shape
torch.Size([1, 224, 224])
"""

import sys as _sys

from .book import plot
from .core import data, folding, masking
from .core.device import resolve_device
from .core.explanation import ClusterExplanation, Explanation
from .core.folding import FoldedNetwork, fold
from .core.images import load_image
from .core.layers import capture, layer_names, resolve_layer
from .core.maps import normalize_maps, upsample
from .core.models import MODELS, Classifier, load_model
from .evaluation import metrics, sanity
from .methods import (
    CAM,
    METHODS,
    AblationCAM,
    BaseCAM,
    ClusterCAM,
    ClusterState,
    EigenCAM,
    GradCAM,
    GradCAMpp,
    GroupCAM,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    SmoothGradCAMpp,
    SobelCAM,
    XGradCAM,
    clustering,
)

__version__ = "0.1.0"

# the modules of __all__ under their short names too: ``import camlab.metrics`` is camlab.evaluation.metrics
for _module in (clustering, data, folding, masking, metrics, plot, sanity):
    _sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module
del _module

__all__ = [
    "AblationCAM",
    "BaseCAM",
    "CAM",
    "ClusterCAM",
    "ClusterState",
    "EigenCAM",
    "GradCAM",
    "GradCAMpp",
    "GroupCAM",
    "HiResCAM",
    "LayerCAM",
    "ScoreCAM",
    "SmoothGradCAMpp",
    "SobelCAM",
    "XGradCAM",
    "clustering",
    "folding",
    "fold",
    "FoldedNetwork",
    "masking",
    "metrics",
    "sanity",
    "normalize_maps",
    "upsample",
    "Classifier",
    "Explanation",
    "ClusterExplanation",
    "METHODS",
    "MODELS",
    "capture",
    "data",
    "layer_names",
    "load_image",
    "load_model",
    "plot",
    "resolve_device",
    "resolve_layer",
]

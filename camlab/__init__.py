"""camlab — class activation maps for CNN classifiers, centred on Cluster-CAM.

>>> import camlab
>>> clf = camlab.load_model("efficientnet_lite0")
>>> x = clf.preprocess(camlab.data.sample_images()["chelsea"])
>>> exp = camlab.METHODS["cam"](clf, clf.target_layer)(x)
>>> exp.heatmaps.shape
torch.Size([1, 224, 224])
"""

from . import clustering, data, folding, masking, metrics, plot, sanity
from .device import resolve_device
from .explanation import ClusterExplanation, Explanation
from .folding import FoldedNetwork, fold
from .images import load_image
from .layers import capture, layer_names, resolve_layer
from .maps import normalize_maps, upsample
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
)
from .models import MODELS, Classifier, load_model

__version__ = "0.1.0"

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

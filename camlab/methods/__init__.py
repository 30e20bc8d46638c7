"""CAM methods, all on one pipeline (:class:`BaseCAM`), registered by name in :data:`METHODS`.

Each method's docstring gives its formula, its paper and an example. The examples use a model
and one preprocessed image::

    clf = camlab.load_model("efficientnet_lite0")
    x = clf.preprocess(["image.jpg"])  # 1×3×224×224
"""

from .base import BaseCAM, Context
from .cam import CAM
from .cluster import ClusterCAM, ClusterState
from .eigen import EigenCAM
from .gradient import GradCAM, GradCAMpp, HiResCAM, LayerCAM, SmoothGradCAMpp, XGradCAM
from .perturbation import AblationCAM, GroupCAM, ScoreCAM
from .sobel import SobelCAM

METHODS: dict[str, type[BaseCAM]] = {
    m.name: m
    for m in (
        CAM,
        GradCAM,
        GradCAMpp,
        SmoothGradCAMpp,
        XGradCAM,
        LayerCAM,
        HiResCAM,
        EigenCAM,
        AblationCAM,
        ScoreCAM,
        GroupCAM,
        ClusterCAM,
        SobelCAM,
    )
}

__all__ = [
    "METHODS",
    "BaseCAM",
    "Context",
    "CAM",
    "ClusterCAM",
    "ClusterState",
    "GradCAM",
    "GradCAMpp",
    "SmoothGradCAMpp",
    "XGradCAM",
    "LayerCAM",
    "HiResCAM",
    "EigenCAM",
    "SobelCAM",
    "AblationCAM",
    "ScoreCAM",
    "GroupCAM",
]

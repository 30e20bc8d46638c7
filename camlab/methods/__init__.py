"""CAM methods, all on one pipeline (:class:`BaseCAM`), registered by name in :data:`METHODS`."""

from .base import BaseCAM, Context
from .cam import CAM
from .cluster import ClusterCAM, ClusterState
from .gradient import GradCAM, GradCAMpp, SmoothGradCAMpp, XGradCAM
from .perturbation import AblationCAM, GroupCAM, ScoreCAM

METHODS: dict[str, type[BaseCAM]] = {
    m.name: m for m in (CAM, GradCAM, GradCAMpp, SmoothGradCAMpp, XGradCAM, AblationCAM, ScoreCAM, GroupCAM, ClusterCAM)
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
    "AblationCAM",
    "ScoreCAM",
    "GroupCAM",
]

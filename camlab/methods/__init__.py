"""CAM methods, all on one pipeline (:class:`BaseCAM`), registered by name in :data:`METHODS`."""

from .base import BaseCAM, Context, normalize_maps, upsample
from .cam import CAM

METHODS: dict[str, type[BaseCAM]] = {
    CAM.name: CAM,
}

__all__ = ["BaseCAM", "Context", "CAM", "METHODS", "normalize_maps", "upsample"]

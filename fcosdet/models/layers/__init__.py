# The module ``nms`` is not shadowed by its function: ``from fcosdet.models.layers.nms import nms``.
from .nms import batched_nms

__all__ = ['batched_nms']

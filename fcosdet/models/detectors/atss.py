"""The ATSS detector: backbone → neck → ATSSHead, the FCOS detector's pipeline under
MMDetection's type name.

Shape letters: N images, H/W input height/width.
"""
from fcosdet.models.detectors.fcos import FCOS
from fcosdet.registry import MODELS


@MODELS.register_module()
class ATSS(FCOS):
    """ATSS one-stage detector (``type='ATSS'`` in MMDetection's configs); see :class:`FCOS` for
    the arguments and modes."""

"""The GFL detector: backbone → neck → GFLHead, the FCOS detector's pipeline under
MMDetection's type name.

Shape letters: N images, H/W input height/width.
"""
from fcosdet.models.detectors.fcos import FCOS
from fcosdet.registry import MODELS


@MODELS.register_module()
class GFL(FCOS):
    """GFL one-stage detector (``type='GFL'`` in MMDetection's configs); see :class:`FCOS` for
    the arguments and modes."""

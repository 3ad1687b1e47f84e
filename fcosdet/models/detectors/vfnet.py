"""The VFNet detector: backbone → neck → VFNetHead, the FCOS detector's pipeline under
MMDetection's type name.

Shape letters: N images, H/W input height/width.
"""
from fcosdet.models.detectors.fcos import FCOS
from fcosdet.registry import MODELS


@MODELS.register_module()
class VFNet(FCOS):
    """VarifocalNet one-stage detector (``type='VFNet'`` in MMDetection's configs); see
    :class:`FCOS` for the arguments and modes."""

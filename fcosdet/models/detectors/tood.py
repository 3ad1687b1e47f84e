"""The TOOD detector: backbone → neck → TOODHead, the FCOS detector's pipeline under
MMDetection's type name.

Shape letters: N images, H/W input height/width.
"""
from fcosdet.models.detectors.fcos import FCOS
from fcosdet.registry import MODELS


@MODELS.register_module()
class TOOD(FCOS):
    """TOOD one-stage detector (``type='TOOD'`` in MMDetection's configs); see :class:`FCOS`
    for the arguments and modes. Its head switches from ATSS to task-aligned assignment after
    ``train_cfg['initial_epoch']`` epochs, following the runner's epoch
    (:meth:`TOODHead.in_warm_up`)."""

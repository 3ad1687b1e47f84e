"""The DDOD detector: backbone → neck (FPN) → DDOD head, MMDetection's ``type='DDOD'``.

Shape letters: N images, L levels, C classes, H/W input height/width, H_l/W_l level size.
"""
from fcosdet.models.detectors.fcos import FCOS
from fcosdet.registry import MODELS


@MODELS.register_module()
class DDOD(FCOS):
    """DDOD one-stage detector (Chen et al., ACM MM 2021).

    The same single-stage pipeline as :class:`FCOS` (``extract_feat`` = backbone + neck, the head
    does ``loss`` / ``predict``); the name selects MMDetection's config type and the head is
    usually ``DDODHead``, whose ``forward`` returns per-level class logits ``[N, C, H_l, W_l]``,
    box deltas ``[N, 4, H_l, W_l]`` and IoU logits ``[N, 1, H_l, W_l]``.
    """

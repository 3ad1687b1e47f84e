from .deform_conv import (
    DeformConv2d,
    DeformConv2dPack,
    ModulatedDeformConv2d,
    ModulatedDeformConv2dPack,
    build_conv_or_dcn,
    resolve_conv_cfg,
)
from .deform_conv_func import deform_conv2d, deform_conv2d_pure, deform_sampling

# The module ``nms`` is not shadowed by its function: ``from fcosdet.models.layers.nms import nms``.
from .nms import batched_nms

__all__ = ['DeformConv2d', 'DeformConv2dPack', 'ModulatedDeformConv2d',
           'ModulatedDeformConv2dPack', 'batched_nms', 'build_conv_or_dcn', 'deform_conv2d',
           'deform_conv2d_pure', 'deform_sampling', 'resolve_conv_cfg']

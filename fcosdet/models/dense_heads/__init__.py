from .atss_head import ATSSHead
from .base_dense_head import BaseDenseHead
from .fcos_head import FCOSHead
from .gfl_head import GFLHead, Integral
from .vfnet_head import VFNetHead

__all__ = ['ATSSHead', 'BaseDenseHead', 'FCOSHead', 'GFLHead', 'Integral', 'VFNetHead']

from .atss_head import ATSSHead
from .base_dense_head import BaseDenseHead
from .ddod_head import DDODHead
from .fcos_head import FCOSHead
from .gfl_head import GFLHead, Integral
from .tood_head import TOODHead
from .vfnet_head import VFNetHead

__all__ = ['ATSSHead', 'BaseDenseHead', 'DDODHead', 'FCOSHead', 'GFLHead', 'Integral',
           'TOODHead', 'VFNetHead']

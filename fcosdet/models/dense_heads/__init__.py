from .base_dense_head import BaseDenseHead
from .fcos_head import FCOSHead
from .vfnet_head import VFNetHead

__all__ = ['BaseDenseHead', 'FCOSHead', 'VFNetHead']

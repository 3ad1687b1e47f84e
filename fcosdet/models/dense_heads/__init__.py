from .base_dense_head import BaseDenseHead
from .fcos_head import FCOSHead

__all__ = ['BaseDenseHead', 'FCOSHead']

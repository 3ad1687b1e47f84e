from .base_dense_head import BaseDenseHead
from .ddod_head import DDODHead
from .fcos_head import FCOSHead

__all__ = ['BaseDenseHead', 'DDODHead', 'FCOSHead']

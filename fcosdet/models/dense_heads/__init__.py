from .ddod_head import DDODHead
from .fcos_head import FCOSHead

__all__ = ['DDODHead', 'FCOSHead']

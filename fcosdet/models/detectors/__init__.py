from .atss import ATSS
from .fcos import FCOS
from .gfl import GFL
from .vfnet import VFNet

__all__ = ['ATSS', 'FCOS', 'GFL', 'VFNet']

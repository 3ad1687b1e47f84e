from .atss import ATSS
from .ddod import DDOD
from .fcos import FCOS
from .gfl import GFL
from .vfnet import VFNet

__all__ = ['ATSS', 'DDOD', 'FCOS', 'GFL', 'VFNet']

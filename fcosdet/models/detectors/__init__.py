from .atss import ATSS
from .ddod import DDOD
from .fcos import FCOS
from .gfl import GFL
from .tood import TOOD
from .vfnet import VFNet

__all__ = ['ATSS', 'DDOD', 'FCOS', 'GFL', 'TOOD', 'VFNet']

from .atss import ATSS
from .ddod import DDOD
from .fcos import FCOS
from .gfl import GFL

__all__ = ['ATSS', 'DDOD', 'FCOS', 'GFL']

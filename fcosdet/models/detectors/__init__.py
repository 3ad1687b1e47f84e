from .atss import ATSS
from .fcos import FCOS
from .gfl import GFL

__all__ = ['ATSS', 'FCOS', 'GFL']

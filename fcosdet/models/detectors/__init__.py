from .ddod import DDOD
from .fcos import FCOS

__all__ = ['DDOD', 'FCOS']

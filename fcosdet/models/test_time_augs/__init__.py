from .det_tta import DetTTAModel
from .sliced_model import SlicedDetModel

__all__ = ['DetTTAModel', 'SlicedDetModel']

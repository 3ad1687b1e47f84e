from .det_tta import DetTTAModel

__all__ = ['DetTTAModel']

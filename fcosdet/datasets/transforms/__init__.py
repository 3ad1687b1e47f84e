from .filter_annotations import FilterAnnotations
from .formatting import PackDetInputs
from .geometric import RandomChoiceResize, RandomCrop, RandomFlip, RandomResize, Resize
from .loading import LoadAnnotations, LoadImageFromFile

__all__ = [
    'LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomFlip', 'RandomChoiceResize',
    'RandomResize', 'RandomCrop', 'FilterAnnotations', 'PackDetInputs'
]

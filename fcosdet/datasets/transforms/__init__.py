from .filter_annotations import FilterAnnotations
from .formatting import PackDetInputs
from .geometric import RandomChoiceResize, RandomCrop, RandomFlip, RandomResize, Resize
from .loading import LoadAnnotations, LoadImageFromFile
from .wrappers import TestTimeAug

__all__ = [
    'LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomFlip', 'RandomChoiceResize',
    'RandomResize', 'RandomCrop', 'FilterAnnotations', 'PackDetInputs', 'TestTimeAug'
]

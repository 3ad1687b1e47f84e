from .formatting import PackDetInputs
from .geometric import RandomChoiceResize, RandomFlip, Resize
from .loading import LoadAnnotations, LoadImageFromFile
from .wrappers import TestTimeAug

__all__ = [
    'LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomFlip', 'RandomChoiceResize',
    'PackDetInputs', 'TestTimeAug'
]

from .batch_augments import BatchFixedSizePad
from .det_data_preprocessor import DetDataPreprocessor

__all__ = ['DetDataPreprocessor', 'BatchFixedSizePad']

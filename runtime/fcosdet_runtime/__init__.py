"""fcosdet-runtime: fcosdet's end-to-end ONNX detectors in onnxruntime, without PyTorch.

``Detector(onnx_file)(bgr_image)`` → ``dict(bboxes, scores, labels)`` in the image's pixels.
Depends on numpy, onnxruntime and OpenCV only.
"""
from .detector import Detector, open_session
from .metadata import METADATA_KEY, ModelMeta, parse_metadata
from .postprocess import split_detections, to_json_dict
from .preprocess import pad_batch, padded_size, rescale_size, resize_image

__version__ = '0.1.0'

__all__ = ['Detector', 'open_session', 'METADATA_KEY', 'ModelMeta', 'parse_metadata',
           'split_detections', 'to_json_dict', 'pad_batch', 'padded_size', 'rescale_size',
           'resize_image']

"""ONNX export and onnxruntime inference (optional extras: ``pip install -e '.[onnx]'``)."""
from .backends import BACKENDS, check_backend, onnx_file_kind
from .end2end import End2EndDetector
from .end2end_export import end2end_metadata, export_end2end
from .onnx_export import HeadOutputs, export_onnx, output_names
from .onnx_quantize import calibration_inputs, quantize_onnx
from .optional import require
from .ort_detector import ORTDetector, ort_model_cfg
from .ort_end2end import ORTEnd2EndDetector, check_test_resize

__all__ = ['BACKENDS', 'check_backend', 'End2EndDetector', 'end2end_metadata', 'export_end2end',
           'HeadOutputs', 'export_onnx', 'output_names', 'require',
           'ORTDetector', 'ort_model_cfg', 'calibration_inputs', 'quantize_onnx',
           'onnx_file_kind', 'ORTEnd2EndDetector', 'check_test_resize']

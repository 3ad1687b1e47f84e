from .inference import build_test_pipeline, inference_detector, init_detector, init_ort_detector

__all__ = ['init_detector', 'init_ort_detector', 'inference_detector', 'build_test_pipeline']

"""The tiny end-to-end ONNX files (see ``tests/end2end_graph.py``) for the runtime's tests."""
import pytest
from end2end_graph import make_end2end_onnx


@pytest.fixture(scope='module')
def tiny_onnx(tmp_path_factory) -> str:
    """Dynamic N, H, W."""
    return make_end2end_onnx(str(tmp_path_factory.mktemp('end2end') / 'tiny.onnx'))


@pytest.fixture(scope='module')
def static_onnx(tmp_path_factory) -> str:
    """Static N=2, H=64, W=96 (an export with --static)."""
    return make_end2end_onnx(str(tmp_path_factory.mktemp('end2end') / 'static.onnx'),
                             static=(2, 64, 96))

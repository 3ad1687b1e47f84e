"""The inference backends of ``init_detector`` and the tools, and a check of their model file."""
import json
from pathlib import Path

from .optional import require

BACKENDS = ('pytorch', 'onnxruntime')


def check_backend(backend: str, checkpoint: str | None) -> None:
    """Fail early on an unknown backend or a model file that does not suit it.

    The ``pytorch`` backend takes a PyTorch checkpoint (or None: random weights); the
    ``onnxruntime`` backend takes the ``.onnx`` file of ``tools/deployment/pytorch2onnx.py`` in
    place of the checkpoint.

    Args:
        backend: One of :data:`BACKENDS`.
        checkpoint: The checkpoint (pytorch) or ONNX file (onnxruntime) given with it.

    Raises:
        ValueError: An unknown backend, an onnxruntime backend without an ``.onnx`` file, or an
            ``.onnx`` file given to the pytorch backend; the message names the value.
    """
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    is_onnx = checkpoint is not None and str(checkpoint).lower().endswith('.onnx')
    if backend == 'onnxruntime' and not is_onnx:
        raise ValueError("backend 'onnxruntime' needs the .onnx file of "
                         f'tools/deployment/pytorch2onnx.py as checkpoint, got {checkpoint!r}')
    if backend == 'pytorch' and is_onnx:
        raise ValueError(f"checkpoint {checkpoint} is an ONNX file: use backend 'onnxruntime'")


def onnx_file_kind(onnx_file: str) -> str:
    """``'end2end'`` (image batch → detections, run by :mod:`fcosdet_runtime`) or ``'raw'``
    (network outputs, post-processed in PyTorch), from the file's ``fcosdet`` metadata.

    Files without that key (exported before the end-to-end mode) are raw.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The metadata is not JSON or names another kind.
    """
    if not Path(onnx_file).is_file():
        raise FileNotFoundError(f'ONNX file not found: {onnx_file}')
    model = require('onnx').load(str(onnx_file), load_external_data=False)
    props = {prop.key: prop.value for prop in model.metadata_props}
    if 'fcosdet' not in props:
        return 'raw'
    try:
        kind = json.loads(props['fcosdet']).get('kind')
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"{onnx_file}: metadata 'fcosdet' is not a JSON object") from err
    if kind not in ('end2end', 'raw'):
        raise ValueError(f"{onnx_file}: metadata kind must be 'end2end' or 'raw', got {kind!r}")
    return kind

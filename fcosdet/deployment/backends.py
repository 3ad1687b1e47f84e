"""The inference backends of ``init_detector`` and the tools, and a check of their model file."""
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

"""Allow-list of the non-tensor types an fcosdet training checkpoint holds.

torch >= 2.6 loads checkpoints with ``weights_only=True``: only tensors, containers and
explicitly allow-listed classes can be unpickled. mmengine's training checkpoints also store the
message hub (:class:`~mmengine.logging.HistoryBuffer` objects backed by numpy arrays) and numpy
scalars (e.g. the best metric), so ``--resume`` fails unless exactly those types are allowed.
Loading stays ``weights_only=True``; nothing else is allowed.
"""
import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def checkpoint_safe_globals() -> list:
    """The classes and functions a training checkpoint needs to unpickle.

    Returns:
        HistoryBuffer, the numpy array/scalar reconstructors, ``np.ndarray``, ``np.dtype`` and the
        numpy dtype classes of the numeric types mmengine logs (float/int/bool of every width).
    """
    # numpy 2 moved the pickling helpers from np.core to np._core
    core = np._core if hasattr(np, '_core') else np.core
    numeric = (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
               np.uint8, np.bool_)
    dtype_classes = [type(np.dtype(t)) for t in numeric]
    return [HistoryBuffer, np.ndarray, np.dtype, core.multiarray._reconstruct,
            core.multiarray.scalar, *dtype_classes]


def register_checkpoint_safe_globals() -> None:
    """Add :func:`checkpoint_safe_globals` to torch's ``weights_only`` allow-list (idempotent)."""
    known = set(map(id, torch.serialization.get_safe_globals()))
    new = [g for g in checkpoint_safe_globals() if id(g) not in known]
    if new:
        torch.serialization.add_safe_globals(new)

"""Plain-data encoding of the non-tensor parts of a training checkpoint.

torch >= 2.6 loads checkpoints with ``weights_only=True``: only tensors, builtin containers and
allow-listed classes may be unpickled. mmengine stores its message hub as
:class:`~mmengine.logging.HistoryBuffer` objects whose pickled state holds functions rebuilt
through ``builtins.getattr``, plus numpy arrays and scalars. Allow-listing ``getattr`` would
let a crafted checkpoint reach arbitrary attributes, so instead fcosdet writes those values as
tensors, numbers and tagged dicts, and rebuilds the HistoryBuffers after a ``weights_only``
load. A checkpoint written this way needs no allow-list at all.
"""
from collections.abc import Mapping

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

_BUFFER_TAG = '__history_buffer__'
# checkpoint entries that may hold HistoryBuffers or numpy values
ENCODED_KEYS = ('message_hub', 'meta')


def encode_value(value: object) -> object:
    """``value`` with every HistoryBuffer, numpy array and numpy scalar made plain data.

    Args:
        value: Any nesting of dicts, lists and tuples.

    Returns:
        The same nesting; HistoryBuffers become ``{'__history_buffer__': True,
        'log_history': Tensor, 'count_history': Tensor, 'max_length': int}``, arrays become
        tensors and numpy scalars Python numbers.
    """
    if isinstance(value, HistoryBuffer):
        log_history, count_history = value.data
        return {_BUFFER_TAG: True, 'log_history': torch.from_numpy(np.array(log_history)),
                'count_history': torch.from_numpy(np.array(count_history)),
                'max_length': int(value.max_length)}
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(encode_value(v) for v in value)
    return value


def decode_value(value: object) -> object:
    """Inverse of :func:`encode_value` for HistoryBuffers (arrays stay tensors)."""
    if isinstance(value, Mapping):
        if value.get(_BUFFER_TAG) is True:
            return HistoryBuffer(value['log_history'].numpy(), value['count_history'].numpy(),
                                 value['max_length'])
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(decode_value(v) for v in value)
    return value


def encode_checkpoint(checkpoint: dict) -> None:
    """Encode the :data:`ENCODED_KEYS` entries of ``checkpoint`` in place."""
    for key in ENCODED_KEYS:
        if key in checkpoint:
            checkpoint[key] = encode_value(checkpoint[key])


def decode_checkpoint(checkpoint: dict) -> None:
    """Decode the :data:`ENCODED_KEYS` entries of ``checkpoint`` in place."""
    for key in ENCODED_KEYS:
        if key in checkpoint:
            checkpoint[key] = decode_value(checkpoint[key])

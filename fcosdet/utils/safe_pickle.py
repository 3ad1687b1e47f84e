"""Reading results pickles (``tools/test.py --out``) without running code from the file.

A pickle names the functions that rebuild its objects, and a plain unpickler calls whatever it
names (``os.system`` included). The results that ``tools/test.py --out`` writes (mmengine's
``DumpResults``, as in MMDetection) hold only dicts, lists, tuples, strings, numbers, tensors
and numpy arrays, so :func:`load_results_pickle` allows exactly the functions that rebuild those
and refuses any other before calling it. Tensor storages, which torch pickles as a nested
``torch.save`` blob, are read with ``torch.load(weights_only=True)``.
"""
import _compat_pickle
import codecs
import io
import pickle
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch

_NUMPY_CORE = 'numpy._core' if hasattr(np, '_core') else 'numpy.core'


def _latin1_encode(text: str, encoding: str = 'utf-8') -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it to store bytes (latin-1 only)."""
    if codecs.lookup(encoding).name != 'iso8859-1':
        raise pickle.UnpicklingError(f'bytes stored with encoding {encoding!r}')
    return text.encode('latin1')


def _load_storage(blob: bytes) -> object:
    """A tensor storage from its nested ``torch.save`` blob, loaded with ``weights_only``."""
    return torch.load(io.BytesIO(blob), weights_only=True)


# (module, name) -> the object to use; numpy 1.x files name numpy.core, 2.x numpy._core
_ALLOWED: dict[tuple[str, str], Callable | type] = {
    ('builtins', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('builtins', 'complex'): complex,
    ('collections', 'OrderedDict'): OrderedDict,
    ('_codecs', 'encode'): _latin1_encode,
    ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
    ('torch.storage', '_load_from_bytes'): _load_storage,
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): np.dtype,
}
_NUMPY_NAMES = (('multiarray', '_reconstruct'), ('multiarray', 'scalar'),
                ('numeric', '_frombuffer'))


class _ResultsUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the allow-listed names of :data:`_ALLOWED`."""

    def find_class(self, module: str, name: str) -> object:
        """The allowed object named ``module.name``; anything else is refused."""
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)  # protocol 2: __builtin__
        if module.startswith('numpy.core.'):
            module = module.replace('numpy.core', _NUMPY_CORE, 1)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        sub = module.rpartition('.')[2]
        if module.startswith(_NUMPY_CORE) and (sub, name) in _NUMPY_NAMES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refers to '{module}.{name}', which a results file never needs (only tensors, "
            'numpy arrays and plain Python data are read)')


def load_results_pickle(path: str) -> object:
    """Unpickle a results file, refusing anything but tensors, arrays and plain data.

    Args:
        path: A ``.pkl`` of ``tools/test.py --out`` (or MMDetection's ``test.py --out``).

    Returns:
        The unpickled object.

    Raises:
        ValueError: The file names a function outside the allow-list (nothing it names has
            been called) or is not a readable pickle; the message names the file.
    """
    try:
        with open(path, 'rb') as file:
            return _ResultsUnpickler(file).load()
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, TypeError,
            AttributeError, IndexError, KeyError) as err:
        detail = ' '.join(str(err).split()) or type(err).__name__
        raise ValueError(f'{path}: cannot read this results pickle safely: {detail}') from err

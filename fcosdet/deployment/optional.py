"""Import the optional ONNX packages only when they are used, with an install hint."""
import importlib
from types import ModuleType

_PIP_NAMES = {'onnx': 'onnx', 'onnxruntime': 'onnxruntime', 'onnxslim': 'onnxslim'}


def require(module: str) -> ModuleType:
    """Import an optional dependency of :mod:`fcosdet.deployment`.

    Args:
        module: ``'onnx'`` or ``'onnxruntime'``.

    Returns:
        The imported module.

    Raises:
        ImportError: The package is missing, naming what to install.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f'{module} is needed for ONNX export / onnxruntime inference but is not installed; '
            f"run `pip install {_PIP_NAMES.get(module, module)}` (or `pip install -e '.[onnx]'`)"
        ) from err

from . import hooks, optimizers  # noqa: F401
from .runner import DetRunner

__all__ = ['DetRunner']

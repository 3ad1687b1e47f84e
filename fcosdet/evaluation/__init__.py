from . import functional, metrics  # noqa: F401
from .metrics import CocoMetric

__all__ = ['CocoMetric']

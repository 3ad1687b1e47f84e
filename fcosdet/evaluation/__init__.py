from . import metrics  # noqa: F401
from .metrics import CocoMetric

__all__ = ['CocoMetric']

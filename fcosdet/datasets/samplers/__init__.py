from .batch_sampler import AspectRatioBatchSampler

__all__ = ['AspectRatioBatchSampler']

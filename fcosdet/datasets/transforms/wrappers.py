"""``TestTimeAug``: mmcv's transform that turns one image into several augmented views.

Registered in fcosdet's TRANSFORMS, and the inner transforms are built from it, so that
``Resize``, ``RandomFlip`` and ``PackDetInputs`` of a ``tta_pipeline`` are fcosdet's.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from mmcv.transforms import TestTimeAug as MMCVTestTimeAug

from fcosdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class TestTimeAug(MMCVTestTimeAug):
    """Apply every combination of one transform from each group; return all views.

    Example (three scales × flip / no flip = six views of each image)::

        dict(type='TestTimeAug', transforms=[
            [dict(type='Resize', scale=s, keep_ratio=True) for s in [(1333, 800), (666, 400)]],
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
            [dict(type='PackDetInputs', meta_keys=(..., 'flip', 'flip_direction'))]])

    The output is ``dict(inputs=[V images], data_samples=[V samples])``, views in the order of
    ``itertools.product`` over the groups (the first group varies slowest).

    Args:
        transforms: Groups of transform configs (or callables); the config is not modified.

    Raises:
        ValueError: ``transforms`` is not a non-empty list of non-empty lists.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, transforms: Sequence[Sequence[dict | Callable]]) -> None:
        if (not isinstance(transforms, (list, tuple)) or not transforms
                or not all(isinstance(g, (list, tuple)) and g for g in transforms)):
            raise ValueError('TestTimeAug: transforms must be a non-empty list of non-empty '
                             f'lists of transforms, got {transforms!r}')
        built = [[TRANSFORMS.build(copy.deepcopy(t)) if isinstance(t, dict) else t
                  for t in group] for group in transforms]
        super().__init__(built)

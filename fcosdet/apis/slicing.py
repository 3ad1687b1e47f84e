"""Sliced inference in the inference API: a built detector wrapped into ``SlicedDetModel``.

Used by :func:`fcosdet.apis.inference_detector` and :class:`fcosdet.apis.DetInferencer` when
given ``slice_size``; ``tools/test.py --slice-size`` builds the same wrapper from the config.
"""
import copy
from collections.abc import Sequence

from mmengine.config import Config
from torch import nn

from fcosdet.models.test_time_augs.sliced_model import SlicedDetModel, split_slicing_pipeline


def slice_cfg_of(slice_size: Sequence[int], slice_overlap: float = 0.2,
                 slice_merge: str = 'nms', slice_full_image: bool = False) -> dict:
    """The ``slice_cfg`` of :class:`SlicedDetModel` for the API's keyword arguments."""
    return dict(slice_size=tuple(slice_size), overlap=slice_overlap, merge=slice_merge,
                full_image=slice_full_image)


def sliced_detector(model: nn.Module, cfg: Config, **slice_kwargs) -> tuple[nn.Module, Config]:
    """Wrap ``model`` for sliced inference.

    Args:
        model: A built detector (PyTorch or ``ORTDetector``) in eval mode.
        cfg: Its config (``model.cfg``).
        **slice_kwargs: ``slice_size`` ``(h, w)``, ``slice_overlap``, ``slice_merge``,
            ``slice_full_image`` (see :func:`slice_cfg_of`).

    Returns:
        The :class:`SlicedDetModel` around ``model`` (eval mode; ``cfg`` and ``dataset_meta``
        as the model's), and a copy of ``cfg`` whose test pipeline only loads and packs the
        full image (the wrapper resizes each tile).

    Raises:
        ValueError: A bad slice size, overlap or merge mode, or a test pipeline with
            ``TestTimeAug`` or without ``PackDetInputs``.
    """
    image_steps, tile_steps = split_slicing_pipeline(cfg.test_dataloader.dataset.pipeline)
    sliced = SlicedDetModel(module=model, tile_pipeline=tile_steps,
                            slice_cfg=slice_cfg_of(**slice_kwargs)).eval()
    image_cfg = copy.deepcopy(cfg)
    image_cfg.test_dataloader.dataset.pipeline = image_steps
    sliced.cfg = image_cfg
    sliced.dataset_meta = getattr(model, 'dataset_meta', None)
    return sliced, image_cfg

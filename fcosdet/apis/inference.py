"""Build a detector from a config (and checkpoint) and run it on images."""
import copy
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from torch import nn

from fcosdet.datasets.transforms.loading import to_three_channel_uint8
from fcosdet.deployment import (
    ORTEnd2EndDetector,
    check_backend,
    check_test_resize,
    ort_model_cfg,
)
from fcosdet.engine.checkpoint_loading import load_checkpoint_checked
from fcosdet.models.utils import apply_fast_path, config_fast_path, parse_fast_path
from fcosdet.registry import DATASETS, MODELS, TRANSFORMS
from fcosdet.structures import DetDataSample
from fcosdet.utils import load_config, register_all_modules

from .slicing import sliced_detector

ImageInput = str | Path | np.ndarray


def _config_dataset_meta(cfg: Config, model: nn.Module) -> dict:
    """Class names from the test dataset's config or class, else numbered names."""
    dataset_cfg = cfg.get('test_dataloader', {}).get('dataset', {})
    metainfo = dataset_cfg.get('metainfo')
    if metainfo is not None and 'classes' in metainfo:
        return dict(metainfo)
    dataset_type = dataset_cfg.get('type')
    dataset_cls = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else None
    if dataset_cls is not None and 'classes' in getattr(dataset_cls, 'METAINFO', {}):
        return copy.deepcopy(dict(dataset_cls.METAINFO))
    num_classes = model.bbox_head.num_classes
    warnings.warn('no class names in the checkpoint or config; using "0".."'
                  f'{num_classes - 1}"')
    return dict(classes=tuple(str(i) for i in range(num_classes)))


def _build_pytorch(cfg: Config, checkpoint: str | None,
                   allow_partial_load: bool = False) -> tuple[nn.Module, dict | None]:
    """The config's detector with the checkpoint's weights, and the checkpoint's dataset meta."""
    model_cfg = copy.deepcopy(cfg.model)
    if 'init_cfg' in model_cfg.get('backbone', {}):
        model_cfg.backbone.init_cfg = None
    model = MODELS.build(model_cfg)
    if checkpoint is None:
        return model, None
    meta = load_checkpoint_checked(model, checkpoint, allow_partial_load).get('meta', {})
    dataset_meta = meta.get('dataset_meta')
    if dataset_meta is None and 'CLASSES' in meta:  # checkpoints of older MMDetection
        dataset_meta = dict(classes=tuple(meta['CLASSES']))
    return model, dataset_meta


def _build_onnxruntime(cfg: Config, onnx_file: str, device: str) -> tuple[nn.Module,
                                                                          dict | None]:
    """The onnxruntime model of ``onnx_file`` and its dataset meta; ``cfg.model`` becomes its
    config.

    An end-to-end file gives an :class:`ORTEnd2EndDetector` (class names from the file), a
    raw-network file an :class:`ORTDetector`. ``cfg.model`` may be the exported detector's
    config (usual) or already an onnxruntime model config.
    """
    if torch.device(device).type != 'cpu':
        raise ValueError(f"backend 'onnxruntime' runs on the CPU; got device={device!r}")
    if any(parse_fast_path(cfg.get('fast_path')).values()):
        warnings.warn(f"the config's fast_path {dict(cfg.fast_path)} is ignored by backend "
                      "'onnxruntime' (it applies to the PyTorch model only)")
    if cfg.model.get('type') in ('ORTDetector', 'ORTEnd2EndDetector'):
        cfg.model = dict(copy.deepcopy(cfg.model), onnx_file=str(onnx_file))
    else:
        cfg.model = ort_model_cfg(cfg.model, onnx_file)
    model = MODELS.build(cfg.model)
    if isinstance(model, ORTEnd2EndDetector):
        pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', [])
        check_test_resize(pipeline, model.detector.meta, str(onnx_file))
    return model, getattr(model, 'dataset_meta', None)


def init_detector(config: str | Path | Config,
                  checkpoint: str | None = None,
                  device: str = 'cpu',
                  cfg_options: dict | None = None,
                  backend: str = 'pytorch',
                  fast_path: bool = True,
                  allow_partial_load: bool = False) -> nn.Module:
    """Build a detector in eval mode from a config file and an optional checkpoint.

    ``backend='pytorch'``: the backbone's pretrained ``init_cfg`` is dropped (nothing is
    downloaded), the weights come from ``checkpoint``, and after ``model.eval()`` the fast paths
    of the top-level config key ``fast_path=dict(channels_last=..., fuse_bn=..., bf16=...)`` are
    applied (:func:`fcosdet.models.utils.apply_fast_path`); without the key, a model loaded from
    a checkpoint gets the exact fp32 fast path (``fuse_bn`` + ``channels_last``: same detections
    up to float rounding), while one with random weights (being built to be saved, counted or
    trained) stays eager. ``fast_path=False`` keeps the plain eager model (e.g. to export it).

    ``backend='onnxruntime'``: ``checkpoint`` is the ``.onnx`` file of
    ``tools/deployment/pytorch2onnx.py`` (``ort_model_cfg(cfg.model, checkpoint)``). An
    end-to-end file runs whole in onnxruntime through :mod:`fcosdet_runtime`
    (:class:`fcosdet.deployment.ORTEnd2EndDetector`; the config's test pipeline resizes); a
    raw-network file (``--raw``) runs the network in onnxruntime and the post-processing in
    PyTorch (:class:`fcosdet.deployment.ORTDetector`). ``fast_path`` does not apply.

    ``model.cfg`` is the config used; ``model.dataset_meta`` comes from the checkpoint's
    ``meta['dataset_meta']`` (the end-to-end file's metadata) or, failing that, from the
    config's dataset.

    Args:
        config: Config file path or Config object.
        checkpoint: Checkpoint file (ONNX file for onnxruntime), or None for randomly
            initialised weights (pytorch only).
        device: Device of the model, e.g. ``'cpu'`` or ``'cuda:0'`` (onnxruntime: ``'cpu'``).
        cfg_options: Overrides merged into the config (``{'a.b': value}`` style), checked as
            ``--cfg-options`` are (:func:`fcosdet.utils.load_config`).
        backend: ``'pytorch'`` or ``'onnxruntime'``.
        fast_path: Apply the config's fast paths, or the default one (pytorch only).
        allow_partial_load: Load a checkpoint that does not fit the model (other
            ``num_classes``, missing tensors) partially, with a warning, instead of raising
            :class:`~fcosdet.engine.checkpoint_loading.CheckpointError`.

    Returns:
        The detector, with ``cfg`` and ``dataset_meta`` attributes, in eval mode.

    Raises:
        FileNotFoundError: If the config or checkpoint file does not exist.
        ValueError: An unknown backend, a checkpoint that does not suit the backend,
            onnxruntime on a non-CPU device, or a config file that cannot be parsed.
        KeyError, TypeError: A bad ``cfg_options`` key, or a bad ``fast_path`` key or value in
            the config.
    """
    check_backend(backend, checkpoint)
    cfg = load_config(config, cfg_options)
    if 'model' not in cfg:
        raise KeyError(f'config {cfg.filename or "<Config>"} has no `model` key')
    selected = config_fast_path(cfg)  # a bad key fails before building
    if checkpoint is not None and '://' not in checkpoint and not Path(checkpoint).is_file():
        raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')
    register_all_modules(init_default_scope=False)
    if backend == 'onnxruntime':
        model, dataset_meta = _build_onnxruntime(cfg, checkpoint, device)
    else:
        model, dataset_meta = _build_pytorch(cfg, checkpoint, allow_partial_load)
    model.dataset_meta = dataset_meta or _config_dataset_meta(cfg, model)
    model.cfg = cfg
    model.to(device)
    model.eval()
    if backend == 'pytorch' and fast_path and ('fast_path' in cfg or checkpoint is not None):
        apply_fast_path(model, selected)
    return model


def init_ort_detector(config: str | Path | Config, onnx_file: str,
                      cfg_options: dict | None = None,
                      num_threads: int | None = None) -> nn.Module:
    """``init_detector(config, onnx_file, backend='onnxruntime')`` with a thread count.

    Args:
        config: Config file or Config of the exported model.
        onnx_file: ONNX file of that model.
        cfg_options: Overrides merged into the config (checked as in :func:`init_detector`).
        num_threads: onnxruntime intra-op threads (None: ``torch.get_num_threads()``).

    Returns:
        An :class:`fcosdet.deployment.ORTEnd2EndDetector` (end-to-end file) or
        :class:`fcosdet.deployment.ORTDetector` (raw network) in eval mode, with ``cfg`` and
        ``dataset_meta``.
    """
    cfg = load_config(config, cfg_options)
    cfg.model = ort_model_cfg(cfg.get('model', {}), onnx_file, num_threads)
    return init_detector(cfg, onnx_file, backend='onnxruntime')


def check_not_empty(img: np.ndarray) -> None:
    """Reject an image array without pixels (the resize would divide by its zero size)."""
    if img.size == 0:
        raise ValueError(f'an image array must have pixels (height and width >= 1), got shape '
                         f'{tuple(img.shape)}')


def check_image_array(img: np.ndarray) -> None:
    """Reject arrays that are not H×W×3 uint8 BGR or H×W uint8 grayscale, or are empty.

    A CHW tensor layout or a [0, 1] float image would otherwise be taken as pixels and give
    meaningless detections.

    Raises:
        ValueError: Naming the expected layout and the array's shape and dtype.
    """
    check_not_empty(img)
    layout_ok = img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)
    if img.dtype != np.uint8 or not layout_ok:
        raise ValueError('inference_detector: an image array must be H x W x 3 uint8 BGR (or '
                         f'H x W uint8 grayscale), got shape {tuple(img.shape)} {img.dtype}')


class _LoadImageFromArray:
    """Pipeline step replacing ``LoadImageFromFile`` for images given as arrays (BGR).

    Like the file loader, grey, RGBA and non-uint8 arrays become 3-channel uint8.
    """

    def __call__(self, results: dict) -> dict:
        check_not_empty(results['img'])
        img = to_three_channel_uint8(results['img'])
        results['img'] = img
        results['img_path'] = None
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


def build_test_pipeline(cfg: Config, from_array: bool = False) -> Compose:
    """Test pipeline of ``cfg.test_dataloader.dataset.pipeline`` without annotation loading.

    Args:
        cfg: Full config.
        from_array: Replace ``LoadImageFromFile`` with a loader of in-memory arrays.

    Returns:
        The composed pipeline, mapping ``dict(img_path=...)`` (or ``dict(img=...)``) to
        ``dict(inputs=Tensor[3, H, W], data_samples=DetDataSample)``.
    """
    try:
        pipeline_cfg = cfg.test_dataloader.dataset.pipeline
    except AttributeError as err:
        raise KeyError('config has no `test_dataloader.dataset.pipeline`') from err
    steps = []
    for step in pipeline_cfg:
        step_type = step['type'] if isinstance(step['type'], str) else step['type'].__name__
        if step_type.endswith('LoadAnnotations'):
            continue
        if from_array and step_type.endswith('LoadImageFromFile'):
            steps.append(_LoadImageFromArray())
        else:
            steps.append(TRANSFORMS.build(copy.deepcopy(step)))
    return Compose(steps)


def inference_detector(model: nn.Module,
                       imgs: ImageInput | Sequence[ImageInput],
                       slice_size: Sequence[int] | None = None,
                       slice_overlap: float = 0.2,
                       slice_merge: str = 'nms',
                       slice_full_image: bool = False) -> DetDataSample | list[DetDataSample]:
    """Detect objects in one image or a batch of images.

    All images go through ``model.test_step`` as one batch. With ``slice_size``, each image is
    predicted by overlapping tiles instead (sliced inference for large images with small
    objects, :class:`fcosdet.models.test_time_augs.SlicedDetModel`): the tiles go through the
    test pipeline and the detector in batches, their boxes are shifted back and merged.

    Args:
        model: A detector from :func:`init_detector` (needs ``model.cfg``).
        imgs: An image file path or a BGR uint8 array [H, W, 3] (grayscale: [H, W]), or a list
            of them (all paths or all arrays).
        slice_size: Tile ``(h, w)`` in pixels; None: no slicing.
        slice_overlap: Overlap ratio of neighbouring tiles, in [0, 1).
        slice_merge: ``'nms'`` (class-aware NMS) or ``'nmm'`` (greedy non-maximum merging).
        slice_full_image: Add one pass over the whole image (large objects).

    Returns:
        One :class:`DetDataSample` per image (a single one for a single input) whose
        ``pred_instances`` hold ``bboxes`` [K, 4] in original-image pixels, ``scores`` [K] and
        ``labels`` [K].
    """
    if getattr(model, 'cfg', None) is None:
        raise AttributeError('inference_detector needs `model.cfg` (the test pipeline); build '
                             'the model with init_detector')
    single = not isinstance(imgs, (list, tuple))
    images = [imgs] if single else list(imgs)
    if not images:
        raise ValueError('inference_detector got an empty list of images')
    from_array = isinstance(images[0], np.ndarray)
    if any(isinstance(img, np.ndarray) != from_array for img in images):
        raise TypeError('inference_detector needs all images as paths or all as arrays')
    for img in images:
        if from_array:
            check_image_array(img)
        elif not Path(img).is_file():
            raise FileNotFoundError(f'image file not found: {img}')

    cfg = model.cfg
    if slice_size is not None:
        model, cfg = sliced_detector(model, cfg, slice_size=slice_size,
                                     slice_overlap=slice_overlap, slice_merge=slice_merge,
                                     slice_full_image=slice_full_image)
    pipeline = build_test_pipeline(cfg, from_array)
    samples = [pipeline(dict(img=img, img_id=i) if from_array else
                        dict(img_path=str(img), img_id=i)) for i, img in enumerate(images)]
    with torch.no_grad():
        results = model.test_step(pseudo_collate(samples))
    return results[0] if single else results

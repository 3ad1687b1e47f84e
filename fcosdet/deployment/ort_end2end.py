"""A detector that runs an end-to-end ONNX file (image batch → detections) in onnxruntime.

The file's graph normalises, runs the network, decodes and applies NMS
(``tools/deployment/pytorch2onnx.py`` default mode); the run and the mapping of the boxes back
to the original image are :mod:`fcosdet_runtime`'s, so ``tools/test.py``, ``tools/infer.py``
and ``inference_detector`` measure exactly what the torch-free runtime returns.

Shape letters: N images, K detections, H/W padded batch height/width.
"""
import warnings

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import Tensor
from torch.nn import functional as F

from fcosdet.registry import MODELS
from fcosdet.structures import OptSampleList, SampleList

from .optional import require


@MODELS.register_module()
class ORTEnd2EndDetector(BaseModel):
    """Run an end-to-end ONNX file as a detector with FCOS's ``test_step``.

    The data preprocessor only stacks and zero-pads the resized images (to the file's
    ``pad_size_divisor``): normalisation is inside the graph. The predictions are rescaled to
    the original image with each sample's ``scale_factor``, as PyTorch's ``predict`` does.

    Args:
        onnx_file (str): End-to-end ONNX file (metadata ``kind`` ``'end2end'``).
        num_threads (int | None): onnxruntime intra-op threads; None uses
            ``torch.get_num_threads()``.
        init_cfg (dict | None): Unused; for the BaseModel signature.

    Attributes:
        detector (fcosdet_runtime.Detector): The runtime's detector (session and metadata).
        dataset_meta (dict): ``classes`` from the file's metadata.

    Raises:
        ImportError: ``fcosdet_runtime`` is not installed.
        FileNotFoundError, ValueError: As :class:`fcosdet_runtime.Detector`.
    """

    def __init__(self, onnx_file: str, num_threads: int | None = None,
                 init_cfg: dict | None = None) -> None:
        runtime = require('fcosdet_runtime')
        detector = runtime.Detector(str(onnx_file),
                                    num_threads=num_threads or torch.get_num_threads())
        # raw 0-255 values, zero padding: what the graph's inputs are
        preprocessor = MODELS.build(dict(type='DetDataPreprocessor',
                                         pad_size_divisor=detector.meta.pad_size_divisor))
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        self.detector = detector
        self.onnx_file = str(onnx_file)
        self.dataset_meta = dict(classes=detector.classes)

    def forward(self, inputs: Tensor, data_samples: OptSampleList = None,
                mode: str = 'predict') -> SampleList | tuple[Tensor, ...]:
        """'predict' → data samples with ``pred_instances`` in original-image pixels;
        'tensor' → the graph's outputs ``(dets [N, K, 4], scores [N, K], labels [N, K],
        num_dets [N])`` in resized-image pixels.

        Args:
            inputs (Tensor): Resized, zero-padded images ``[N, 3, H, W]`` (0-255, BGR).
            data_samples (list[DetDataSample] | None): Metas with ``img_shape`` (and
                ``scale_factor`` for 'predict'); None in 'tensor' mode means unpadded images.
            mode (str): 'predict' or 'tensor' (inference only).
        """
        if mode not in ('predict', 'tensor'):
            raise ValueError(f"ORTEnd2EndDetector.forward: mode must be 'predict' or 'tensor' "
                             f'(inference only), got {mode!r}')
        if mode == 'predict' and data_samples is None:
            raise ValueError("ORTEnd2EndDetector.forward(mode='predict') needs data_samples")
        metas = ([s.metainfo for s in data_samples] if data_samples is not None
                 else [dict(img_shape=tuple(inputs.shape[-2:]))] * len(inputs))
        outputs = self.detector.run(self._batch(inputs), np.array(
            [meta['img_shape'][:2] for meta in metas], dtype=np.float32))
        if mode == 'tensor':
            return tuple(torch.from_numpy(np.ascontiguousarray(out)) for out in outputs)
        factors = [tuple(meta.get('scale_factor', (1.0, 1.0)))[:2] for meta in metas]
        results = require('fcosdet_runtime').split_detections(*outputs, factors)
        for sample, result in zip(data_samples, results):
            sample.pred_instances = InstanceData(
                **{key: torch.from_numpy(value) for key, value in result.items()})
        return data_samples

    def _batch(self, inputs: Tensor) -> np.ndarray:
        """float32 numpy ``[N, 3, H, W]``, zero-padded to a static file's fixed size."""
        fixed_batch, fixed_size = self.detector.fixed_batch, self.detector.fixed_size
        if fixed_batch is not None and fixed_batch != inputs.shape[0]:
            raise ValueError(f'{self.onnx_file} was exported for batches of {fixed_batch} '
                             f'images (--static), got {inputs.shape[0]}: set the dataloader\'s '
                             f'batch_size to {fixed_batch}')
        if fixed_size is not None:
            height, width = inputs.shape[-2:]
            if height > fixed_size[0] or width > fixed_size[1]:
                raise ValueError(f'{self.onnx_file} takes at most {fixed_size[0]} x '
                                 f'{fixed_size[1]} images (--static), got {height} x {width}')
            inputs = F.pad(inputs, (0, fixed_size[1] - width, 0, fixed_size[0] - height))
        return inputs.detach().to('cpu', torch.float32).contiguous().numpy()


def check_test_resize(pipeline: list[dict], meta: object, onnx_file: str) -> None:
    """Warn when the config's test ``Resize`` is not the one the file was exported with.

    Args:
        pipeline: The config's test pipeline (list of transform configs).
        meta: The file's :class:`fcosdet_runtime.ModelMeta`.
        onnx_file: The file's name, for the message.
    """
    if meta.scale is None:
        return
    for step in pipeline:
        step_type = step['type'] if isinstance(step['type'], str) else step['type'].__name__
        if not step_type.endswith('Resize') or 'scale' not in step:
            continue
        scale = tuple(step['scale']) if not isinstance(step['scale'], int) else (step['scale'],
                                                                                  step['scale'])
        keep_ratio = step.get('keep_ratio', False)
        if scale != tuple(meta.scale) or keep_ratio != meta.keep_ratio:
            warnings.warn(f'the test pipeline resizes to {scale} (keep_ratio={keep_ratio}) but '
                          f'{onnx_file} was exported for {tuple(meta.scale)} '
                          f'(keep_ratio={meta.keep_ratio}): detections will differ from the '
                          "runtime's")

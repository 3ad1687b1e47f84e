"""An FCOS detector whose network runs in onnxruntime; post-processing stays in PyTorch.

Shape letters: N images, L levels, C classes, H/W input height/width, H_l/W_l level size.
"""
import copy
from pathlib import Path

import numpy as np
import torch
from mmengine.model import BaseModel
from torch import Tensor

from fcosdet.registry import MODELS
from fcosdet.structures import OptSampleList, SampleList

from .backends import onnx_file_kind
from .onnx_export import INPUT_NAME, NUM_LEVELS_KEY, output_names
from .optional import require


@MODELS.register_module()
class ORTDetector(BaseModel):
    """Run an ONNX file of :func:`export_onnx` as a detector with FCOS's ``test_step``.

    The data preprocessor and the head's ``predict_by_feat`` are the PyTorch ones (the head is
    built from its config for post-processing only; its weights are not used), so this model
    drops into ``init_detector`` / ``inference_detector`` / ``Runner.test`` unchanged.

    Args:
        onnx_file (str): ONNX file of the network.
        bbox_head (dict): The head config of the exported model (classes, strides, test_cfg).
        test_cfg (dict | None): Post-processing settings, passed into the head.
        data_preprocessor (dict | None): As in the exported model's config.
        num_threads (int | None): onnxruntime intra-op threads; None uses
            ``torch.get_num_threads()``.
        init_cfg (dict | None): Unused; for the BaseModel signature.

    Raises:
        FileNotFoundError: ``onnx_file`` does not exist.
        ValueError: The file's outputs do not match the head (levels or classes).
    """

    def __init__(self, onnx_file: str, bbox_head: dict, test_cfg: dict | None = None,
                 data_preprocessor: dict | None = None, num_threads: int | None = None,
                 init_cfg: dict | None = None) -> None:
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(copy.deepcopy(data_preprocessor))
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        head_cfg = copy.deepcopy(bbox_head)
        if test_cfg is not None:
            head_cfg['test_cfg'] = copy.deepcopy(test_cfg)
        self.bbox_head = MODELS.build(head_cfg)
        self.onnx_file = str(onnx_file)
        self.session = self._open_session(self.onnx_file, num_threads)
        self._check_outputs()

    @staticmethod
    def _open_session(onnx_file: str, num_threads: int | None) -> object:
        """An onnxruntime CPU session with all graph optimisations."""
        ort = require('onnxruntime')
        if not Path(onnx_file).is_file():
            raise FileNotFoundError(f'ORTDetector: onnx_file not found: {onnx_file}')
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        return ort.InferenceSession(onnx_file, sess_options=options,
                                    providers=['CPUExecutionProvider'])

    def _check_outputs(self) -> None:
        """The file must have the output names and class count the head expects."""
        num_levels = len(self.bbox_head.strides)
        names = [out.name for out in self.session.get_outputs()]
        meta = self.session.get_modelmeta().custom_metadata_map
        if names != output_names(num_levels) or meta.get(NUM_LEVELS_KEY) not in (
                None, str(num_levels)):
            raise ValueError(f'ORTDetector: {self.onnx_file} has outputs {names}; the head with '
                             f'strides {self.bbox_head.strides} needs {output_names(num_levels)}')
        channels = self.session.get_outputs()[0].shape[1]
        if isinstance(channels, int) and channels != self.bbox_head.num_classes:
            raise ValueError(f'ORTDetector: {self.onnx_file} predicts {channels} classes but '
                             f'bbox_head.num_classes is {self.bbox_head.num_classes}')

    def forward(self, inputs: Tensor, data_samples: OptSampleList = None,
                mode: str = 'predict') -> SampleList | tuple[list[Tensor], ...]:
        """'tensor' → raw head outputs, 'predict' → data samples with ``pred_instances``.

        Args:
            inputs (Tensor): Preprocessed images ``[N, 3, H, W]``.
            data_samples (list[DetDataSample] | None): Metas; required for 'predict'.
            mode (str): 'tensor' or 'predict' ('loss' is not supported: inference only).
        """
        if mode == 'tensor':
            return self._run(inputs)
        if mode == 'predict':
            if data_samples is None:
                raise ValueError("ORTDetector.forward(mode='predict') needs data_samples")
            metas = [sample.metainfo for sample in data_samples]
            results = self.bbox_head.predict_by_feat(*self._run(inputs), batch_img_metas=metas,
                                                     rescale=True)
            for sample, pred_instances in zip(data_samples, results):
                sample.pred_instances = pred_instances
            return data_samples
        raise ValueError(f"ORTDetector.forward: mode must be 'tensor' or 'predict' (inference "
                         f'only), got {mode!r}')

    def _run(self, inputs: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """One onnxruntime call: per level class logits ``[N, C, H_l, W_l]``, distances
        ``[N, 4, H_l, W_l]`` and centre-ness logits ``[N, 1, H_l, W_l]``."""
        array = inputs.detach().to('cpu', torch.float32).contiguous().numpy()
        try:
            outputs = self.session.run(None, {INPUT_NAME: array})
        except Exception as err:  # onnxruntime raises its own exception types
            raise RuntimeError(f'ORTDetector: {self.onnx_file} failed on an input of shape '
                               f'{tuple(array.shape)} (exported without --dynamic for another '
                               f'shape?): {err}') from err
        maps = [torch.from_numpy(np.ascontiguousarray(out)) for out in outputs]
        num_levels = len(self.bbox_head.strides)
        return (maps[:num_levels], maps[num_levels:2 * num_levels], maps[2 * num_levels:])


def ort_model_cfg(model_cfg: dict, onnx_file: str, num_threads: int | None = None) -> dict:
    """The onnxruntime model config equivalent to a ``model`` config and its ONNX file.

    An end-to-end file (metadata kind ``'end2end'``) needs nothing of the config:
    ``ORTEnd2EndDetector``. A raw-network file: ``ORTDetector`` with the config's head,
    test_cfg and preprocessor.

    Args:
        model_cfg (dict): ``cfg.model`` of the exported detector (needs ``bbox_head``).
        onnx_file (str): ONNX file from ``tools/deployment/pytorch2onnx.py``.
        num_threads (int | None): onnxruntime intra-op threads.

    Returns:
        dict: ``dict(type='ORTEnd2EndDetector', ...)`` or ``dict(type='ORTDetector', ...)``.
    """
    if onnx_file_kind(onnx_file) == 'end2end':
        return dict(type='ORTEnd2EndDetector', onnx_file=str(onnx_file), num_threads=num_threads)
    if 'bbox_head' not in model_cfg:
        raise KeyError('ort_model_cfg: the model config has no `bbox_head`')
    return dict(type='ORTDetector', onnx_file=str(onnx_file),
                bbox_head=copy.deepcopy(model_cfg['bbox_head']),
                test_cfg=copy.deepcopy(model_cfg.get('test_cfg')),
                data_preprocessor=copy.deepcopy(model_cfg.get('data_preprocessor')),
                num_threads=num_threads)

"""The FCOS detector: backbone → neck (FPN) → FCOS head.

Shape letters: N images, L levels, C classes, H/W input height/width, H_l/W_l level size.
"""
import copy

from mmengine.model import BaseModel
from torch import Tensor

from fcosdet.registry import MODELS
from fcosdet.structures import OptSampleList, SampleList

MODES = ('tensor', 'loss', 'predict')


def _build(cfg: dict, key: str) -> object:
    """Build ``cfg`` from MODELS without mutating it; name the detector key on bad input."""
    if not isinstance(cfg, dict):
        raise TypeError(f'FCOS {key} must be a config dict, got {type(cfg).__name__}')
    return MODELS.build(copy.deepcopy(cfg))


@MODELS.register_module()
class FCOS(BaseModel):
    """FCOS one-stage anchor-free detector.

    Args:
        backbone (dict): Backbone config, e.g. ``dict(type='ResNet', depth=50, ...)``.
        neck (dict): Neck config, e.g. ``dict(type='FPN', ...)``.
        bbox_head (dict): Head config (``FCOSHead``); ``train_cfg``/``test_cfg`` below are
            passed into it when given.
        train_cfg (dict | None): Training settings for the head.
        test_cfg (dict | None): Test settings for the head (``nms_pre``, ``score_thr``, ...).
        data_preprocessor (dict | nn.Module | None): Usually ``DetDataPreprocessor``; None
            uses mmengine's plain ``BaseDataPreprocessor``.
        init_cfg (dict | list[dict] | None): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 bbox_head: dict,
                 train_cfg: dict | None = None,
                 test_cfg: dict | None = None,
                 data_preprocessor: dict | None = None,
                 init_cfg: dict | list[dict] | None = None) -> None:
        if isinstance(data_preprocessor, dict):
            data_preprocessor = _build(data_preprocessor, 'data_preprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = _build(backbone, 'backbone')
        self.neck = _build(neck, 'neck')
        if not isinstance(bbox_head, dict):
            raise TypeError(f'FCOS bbox_head must be a config dict, got {type(bbox_head).__name__}')
        head_cfg = copy.deepcopy(bbox_head)
        if train_cfg is not None:
            head_cfg['train_cfg'] = copy.deepcopy(train_cfg)
        if test_cfg is not None:
            head_cfg['test_cfg'] = copy.deepcopy(test_cfg)
        self.bbox_head = MODELS.build(head_cfg)
        self.train_cfg = copy.deepcopy(train_cfg)
        self.test_cfg = copy.deepcopy(test_cfg)

    def extract_feat(self, inputs: Tensor) -> tuple[Tensor, ...]:
        """Backbone + neck features.

        Args:
            inputs (Tensor): Images ``[N, 3, H, W]``.

        Returns:
            tuple[Tensor, ...]: L maps ``[N, C_neck, H_l, W_l]``.
        """
        return self.neck(self.backbone(inputs))

    def forward(self, inputs: Tensor, data_samples: OptSampleList = None,
                mode: str = 'tensor') -> dict[str, Tensor] | SampleList | tuple:
        """Dispatch on ``mode``.

        Args:
            inputs (Tensor): Images ``[N, 3, H, W]`` (already normalised and padded).
            data_samples (list[DetDataSample] | None): Annotations / metas; required for
                'loss' and 'predict'.
            mode (str): 'tensor' → raw head outputs, 'loss' → loss dict, 'predict' → the data
                samples with ``pred_instances`` set.
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise ValueError(f'FCOS.forward: invalid mode {mode!r}; expected one of {MODES}')

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict[str, Tensor]:
        """Head losses (``loss_cls``, ``loss_bbox``, ``loss_centerness``) for a batch."""
        self._require_samples(data_samples, 'loss')
        return self.bbox_head.loss(self.extract_feat(inputs), data_samples)

    def predict(self, inputs: Tensor, data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Detect objects; sets ``pred_instances`` (``bboxes [K, 4]``, ``scores [K]``,
        ``labels [K]``) on every data sample, in original-image pixels when ``rescale``."""
        self._require_samples(data_samples, 'predict')
        results = self.bbox_head.predict(self.extract_feat(inputs), data_samples,
                                         rescale=rescale)
        for data_sample, pred_instances in zip(data_samples, results):
            data_sample.pred_instances = pred_instances
        return data_samples

    def _forward(self, inputs: Tensor,
                 data_samples: OptSampleList = None) -> tuple[list[Tensor], ...]:
        """Raw head outputs: per-level class logits, distances and centre-ness logits."""
        return self.bbox_head(self.extract_feat(inputs))

    @staticmethod
    def _require_samples(data_samples: OptSampleList, mode: str) -> None:
        if data_samples is None:
            raise ValueError(f"FCOS.forward(mode='{mode}') needs data_samples (image metas"
                             f"{' and gt_instances' if mode == 'loss' else ''})")

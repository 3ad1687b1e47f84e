"""The per-image container passed between datasets, models, metrics and visualizers."""
from mmengine.structures import BaseDataElement, InstanceData


class DetDataSample(BaseDataElement):
    """Annotations and predictions of one image.

    Fields (each an :class:`InstanceData`):
        gt_instances: ``bboxes`` Tensor[M, 4] (x1, y1, x2, y2 in pixels of the
            network input), ``labels`` long[M] in [0, C).
        ignored_instances: boxes that must never become positives (COCO crowd), same keys.
        pred_instances: ``bboxes`` Tensor[K, 4], ``labels`` long[K], ``scores`` float[K].

    Meta keys (set by ``PackDetInputs``): ``img_id``, ``img_path``, ``ori_shape``,
    ``img_shape``, ``pad_shape``, ``batch_input_shape``, ``scale_factor``, ``flip``,
    ``flip_direction``.
    """

    @property
    def gt_instances(self) -> InstanceData:
        return self._gt_instances

    @gt_instances.setter
    def gt_instances(self, value: InstanceData) -> None:
        self.set_field(value, '_gt_instances', dtype=InstanceData)

    @gt_instances.deleter
    def gt_instances(self) -> None:
        del self._gt_instances

    @property
    def pred_instances(self) -> InstanceData:
        return self._pred_instances

    @pred_instances.setter
    def pred_instances(self, value: InstanceData) -> None:
        self.set_field(value, '_pred_instances', dtype=InstanceData)

    @pred_instances.deleter
    def pred_instances(self) -> None:
        del self._pred_instances

    @property
    def ignored_instances(self) -> InstanceData:
        return self._ignored_instances

    @ignored_instances.setter
    def ignored_instances(self, value: InstanceData) -> None:
        self.set_field(value, '_ignored_instances', dtype=InstanceData)

    @ignored_instances.deleter
    def ignored_instances(self) -> None:
        del self._ignored_instances


SampleList = list[DetDataSample]
OptSampleList = list[DetDataSample] | None

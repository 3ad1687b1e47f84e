"""Draws ground-truth and predicted boxes of a :class:`DetDataSample` on its image.

Shape letters: M gt boxes, K detections, H, W image height/width.
"""
import mmcv
import numpy as np
from mmengine.dist import master_only
from mmengine.structures import InstanceData
from mmengine.visualization import Visualizer

from fcosdet.registry import VISUALIZERS
from fcosdet.structures import DetDataSample

from .palette import get_palette


@VISUALIZERS.register_module()
class DetLocalVisualizer(Visualizer):
    """Visualizer of detection results, headless (matplotlib Agg canvas).

    Boxes are drawn in per-class colours taken from ``dataset_meta['palette']`` or, without
    one, from a generated palette; each box gets a ``class`` (gt) or ``class score`` (prediction)
    label at its top-left corner. With both gt and predictions, the gt panel is on the left.

    Args:
        name: Instance name (mmengine ``ManagerMixin``).
        image: Optional RGB image to start drawing on, uint8 [H, W, 3].
        vis_backends: Configs of the visualization backends that receive ``add_image``.
        save_dir: Folder of the backends' files.
        line_width: Box edge width in pixels.
        alpha: Opacity of the box edges.
        text_color: Colour of the label text (the label background takes the class colour).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: np.ndarray | None = None,
                 vis_backends: list[dict] | None = None,
                 save_dir: str | None = None,
                 line_width: float = 2,
                 alpha: float = 0.8,
                 text_color: tuple[int, int, int] = (255, 255, 255)) -> None:
        super().__init__(name=name, image=image, vis_backends=vis_backends, save_dir=save_dir)
        self.line_width = line_width
        self.alpha = alpha
        self.text_color = text_color

    def _class_info(self, labels: np.ndarray) -> tuple[list[str], list[tuple[int, int, int]]]:
        """Class names and colours covering every label in ``labels``."""
        meta = self.dataset_meta or {}
        classes = list(meta.get('classes') or [])
        num_classes = max(len(classes), int(labels.max()) + 1 if labels.size else 0)
        classes += [str(i) for i in range(len(classes), num_classes)]
        return classes, get_palette(meta.get('palette'), num_classes)

    def draw_instances(self, image: np.ndarray, instances: InstanceData) -> np.ndarray:
        """Draw the boxes of ``instances`` on a copy of ``image``.

        Args:
            image: RGB uint8 [H, W, 3].
            instances: ``bboxes`` [K, 4] x1y1x2y2 pixels, ``labels`` long [K], optional
                ``scores`` float [K] (printed after the class name).

        Returns:
            The drawn RGB uint8 image [H, W, 3].
        """
        self.set_image(image)
        if len(instances) == 0:
            return self.get_image()
        height, width = image.shape[:2]
        bboxes = np.asarray(instances.bboxes.detach().cpu(), dtype=np.float64)
        # Edges on the far border (x2 = W, as boxes are clipped to [0, W]) stay visible.
        bboxes[:, 0::2] = bboxes[:, 0::2].clip(0, width - 1)
        bboxes[:, 1::2] = bboxes[:, 1::2].clip(0, height - 1)
        labels = instances.labels.detach().cpu().numpy().astype(np.int64)
        classes, palette = self._class_info(labels)
        colours = [palette[label] for label in labels]
        self.draw_bboxes(bboxes, edge_colors=colours, line_widths=self.line_width,
                         alpha=self.alpha)

        texts = [classes[label] for label in labels]
        if 'scores' in instances:
            scores = instances.scores.detach().cpu().numpy()
            texts = [f'{text} {score:.2f}' for text, score in zip(texts, scores)]
        positions = bboxes[:, :2]
        backgrounds = [dict(facecolor=tuple(c / 255 for c in colour), alpha=0.8, pad=0.7,
                            edgecolor='none') for colour in colours]
        self.draw_texts(texts, positions, colors=self.text_color, bboxes=backgrounds)
        return self.get_image()

    # mmengine draws on rank 0 only (its set_image/get_image return None elsewhere), so the
    # other ranks of a distributed test must skip drawing too.
    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: DetDataSample | None = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: str | None = None,
                       pred_score_thr: float = 0.3,
                       step: int = 0) -> None:
        """Draw gt (left) and/or predictions (right) of one image and save, show or log it.

        Args:
            name: Image identifier for the vis backends.
            image: Original RGB image, uint8 [H, W, 3].
            data_sample: Holds ``gt_instances`` and/or ``pred_instances`` in the pixel
                coordinates of ``image``; None draws the bare image.
            draw_gt: Draw the ``gt_instances`` panel when present.
            draw_pred: Draw the ``pred_instances`` panel (scores > ``pred_score_thr``) when present.
            show: Show the result in a window.
            wait_time: Seconds the window stays open (0: until a key press).
            out_file: Write the result here as an image (BGR, e.g. PNG) instead of sending it
                to the vis backends.
            pred_score_thr: Predictions with a score at or below this are not drawn.
            step: Global step for the vis backends.
        """
        image = np.ascontiguousarray(image).clip(0, 255).astype(np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'add_datasample needs an RGB image [H, W, 3], got shape '
                             f'{image.shape}')
        panels = []
        if data_sample is not None and draw_gt and 'gt_instances' in data_sample:
            panels.append(self.draw_instances(image, data_sample.gt_instances))
        if data_sample is not None and draw_pred and 'pred_instances' in data_sample:
            preds = data_sample.pred_instances
            if 'scores' in preds:
                preds = preds[preds.scores > pred_score_thr]
            panels.append(self.draw_instances(image, preds))
        drawn = np.concatenate(panels, axis=1) if panels else image

        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)

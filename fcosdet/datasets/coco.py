"""COCO-format detection dataset (COCO itself and users' own COCO-format files).

Shape letters: M annotations (boxes) of one image, A annotations of the whole file,
C classes.
"""
from __future__ import annotations

import os.path as osp
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from mmengine.dataset import BaseDataset

from fcosdet.registry import DATASETS
from fcosdet.visualization.palette import generate_palette

from .coco_ann import CocoAnnotations, read_coco_json

COCO_CLASSES: tuple[str, ...] = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat',
    'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack',
    'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball',
    'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket',
    'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
    'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair',
    'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse',
    'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier',
    'toothbrush')


@DATASETS.register_module()
class CocoDataset(BaseDataset):
    """Detection dataset read from a COCO-format annotation file.

    Each ``data_list`` entry is ``dict(img_path, img_id, height, width, instances)`` with
    ``instances`` a list of ``dict(bbox=[x1, y1, x2, y2], bbox_label=int, ignore_flag=0|1)``;
    crowd annotations (``iscrowd=1``) get ``ignore_flag=1`` and never become positives.
    Category ids are mapped to contiguous labels 0..C-1 in the order of
    ``metainfo['classes']``. When ``metainfo`` names no ``classes``, the classes are the
    file's categories in id order (for COCO itself these are :data:`COCO_CLASSES`); a custom
    ``classes`` tuple selects categories by name and drops annotations of the others.

    Annotations are parsed with ``json`` and numpy, vectorised over the whole file, so that
    every bad entry can be reported by name; scoring uses pycocotools (see ``CocoMetric``).

    Args:
        ann_file: COCO-format JSON file (joined to ``data_root`` when relative).
        metainfo: Optional ``dict(classes=(...), palette=[...])``.
        data_root: Root folder of annotations and images.
        data_prefix: ``dict(img=...)``, the image folder (joined to ``data_root``).
        filter_cfg: ``dict(filter_empty_gt=True, min_size=32)``: in training, drop images
            with no non-crowd box, or whose shorter side is below ``min_size``.
        backend_args: mmengine file backend arguments used to read the annotation file.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments (``test_mode``,
            ``pipeline``, ``serialize_data``, ``indices``, ``lazy_init``, ...).
    """

    METAINFO: dict = dict(classes=COCO_CLASSES, palette=generate_palette(len(COCO_CLASSES)))

    def __init__(self,
                 ann_file: str = '',
                 metainfo: Mapping | None = None,
                 data_root: str = '',
                 data_prefix: dict | None = None,
                 filter_cfg: dict | None = None,
                 backend_args: dict | None = None,
                 **kwargs) -> None:
        self.backend_args = None if backend_args is None else dict(backend_args)
        self._user_meta_keys = frozenset(metainfo.keys()) if metainfo else frozenset()
        self._check_filter_cfg(filter_cfg)
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=dict(img='') if data_prefix is None else dict(data_prefix),
            filter_cfg=filter_cfg,
            **kwargs)

    @staticmethod
    def _check_filter_cfg(filter_cfg: dict | None) -> None:
        """Reject unknown ``filter_cfg`` keys early, naming them."""
        if filter_cfg is None:
            return
        unknown = set(filter_cfg) - {'filter_empty_gt', 'min_size'}
        if unknown:
            raise KeyError(f'CocoDataset: unknown filter_cfg key(s) {sorted(unknown)}; '
                           "expected 'filter_empty_gt' and/or 'min_size'")

    def load_data_list(self) -> list[dict]:
        """Read, check and convert the annotation file into ``data_list`` entries.

        Returns:
            One dict per image of the file, in the file's image order.

        Raises:
            FileNotFoundError: If the annotation file is missing.
            ValueError: If the file is malformed, an annotation refers to an unknown image or
                category, or a class of ``metainfo['classes']`` is not in the file.
        """
        if not self.ann_file:
            raise ValueError('CocoDataset: `ann_file` is required')
        raw = read_coco_json(self.ann_file, self.backend_args)
        anns = CocoAnnotations.from_json(raw, self.ann_file)
        cat_ids = self._select_categories(anns)
        self.cat_ids = cat_ids
        self.cat2label = {cat_id: label for label, cat_id in enumerate(cat_ids)}
        self._num_boxes = len(anns.boxes)
        non_finite, num_bad = anns.drop_invalid_boxes()
        if non_finite:
            warnings.warn(f'CocoDataset: dropped {len(non_finite)} annotation(s) of '
                          f'{self.ann_file} whose bbox is not finite (NaN/Infinity): id(s) '
                          f'{non_finite[:10]}', stacklevel=2)
        if num_bad:
            warnings.warn(f'CocoDataset: dropped {num_bad} annotation(s) of {self.ann_file} '
                          'with width or height <= 0 or lying wholly outside their image',
                          stacklevel=2)
        self._num_dropped = len(non_finite) + num_bad
        per_image = anns.instances_per_image(np.asarray(cat_ids, dtype=np.int64))
        img_dir = self.data_prefix.get('img', '')
        return [
            dict(img_path=osp.join(img_dir, name), img_id=img_id, height=height, width=width,
                 instances=instances)
            for name, img_id, height, width, instances in zip(
                anns.file_names, anns.img_ids.tolist(), anns.heights.tolist(),
                anns.widths.tolist(), per_image)
        ]

    def _select_categories(self, anns: CocoAnnotations) -> list[int]:
        """Choose the category ids of the classes, in label order, and fix the metainfo.

        Args:
            anns: Parsed annotation file.

        Returns:
            ``cat_ids`` with ``cat_ids[label]`` the file's category id of that label.
        """
        if 'classes' not in self._user_meta_keys:
            order = np.argsort(anns.cat_ids, kind='stable')
            classes = tuple(anns.cat_names[i] for i in order)
            cat_ids = anns.cat_ids[order].tolist()
        else:
            if not _is_str_seq(self._metainfo['classes']):
                raise ValueError("CocoDataset: metainfo['classes'] must be a list or tuple of "
                                 f"names, got {self._metainfo['classes']!r:.80}")
            classes = tuple(self._metainfo['classes'])
            cat_ids = [anns.cat_id_of(name, key="metainfo['classes']") for name in classes]
        self._metainfo['classes'] = classes
        self._fix_palette(len(classes))
        return cat_ids

    def _fix_palette(self, num_classes: int) -> None:
        """Keep a user palette if it fits the classes, else generate one."""
        palette = self._metainfo.get('palette')
        if palette is not None and len(palette) == num_classes:
            return
        if 'palette' in self._user_meta_keys:
            raise ValueError(f"CocoDataset: metainfo['palette'] has {len(palette or [])} "
                             f'colours for {num_classes} classes')
        self._metainfo['palette'] = generate_palette(num_classes)

    def filter_data(self) -> list[dict]:
        """Drop images without usable boxes or too small (training only).

        Returns:
            The kept ``data_list`` entries.

        Raises:
            ValueError: No image is left, naming the annotation file and why.
        """
        if self.test_mode or not self.filter_cfg:
            kept = self.data_list
        else:
            filter_empty = self.filter_cfg.get('filter_empty_gt', False)
            min_size = self.filter_cfg.get('min_size', 0)
            kept = [
                info for info in self.data_list
                if min(info['width'], info['height']) >= min_size and not (
                    filter_empty
                    and not any(inst['ignore_flag'] == 0 for inst in info['instances']))
            ]
        if not kept:
            raise ValueError(f'CocoDataset: {self._empty_reason()}')
        return kept

    def _empty_reason(self) -> str:
        """Why no image is left (for the error of :meth:`filter_data`)."""
        if not self.data_list:
            return f'annotation file {self.ann_file} has no images'
        dropped = getattr(self, '_num_dropped', 0)
        return (f'no image of {self.ann_file} is left after filter_cfg={self.filter_cfg}: '
                f'{len(self.data_list)} image(s) with {self._num_boxes} annotation(s) in the '
                f'file, {dropped} dropped as invalid boxes, none of the selected classes '
                f'{tuple(self._metainfo["classes"])} left on a large enough image')

    def get_cat_ids(self, idx: int) -> list[int]:
        """Labels present in image ``idx`` (crowd boxes included).

        Args:
            idx: Dataset index.

        Returns:
            Sorted distinct labels in [0, C).
        """
        return sorted({inst['bbox_label'] for inst in self.get_data_info(idx)['instances']})


def _is_str_seq(value: object) -> bool:
    """True for a list or tuple of strings."""
    return isinstance(value, Sequence) and not isinstance(value, str) and all(
        isinstance(v, str) for v in value)

"""Dataset format converters: YOLO, Pascal VOC and LabelMe to COCO, and COCO to YOLO and VOC.

The tools ``tools/dataset_converters/*.py`` are thin command lines over these functions; every
format goes through :class:`~.records.ImageRecord` (see :mod:`.records` for the box convention).
"""
from .image_files import decoded_size
from .labelme import read_labelme
from .records import (
    Box,
    ConversionError,
    ImageRecord,
    class_list,
    parse_classes,
    read_coco_records,
    summary,
    to_coco,
    write_coco,
)
from .voc import DIFFICULT_MODES, read_voc, write_voc
from .yolo import read_yolo, write_yolo

__all__ = ['Box', 'ConversionError', 'DIFFICULT_MODES', 'ImageRecord', 'class_list',
           'decoded_size', 'parse_classes', 'read_coco_records', 'read_labelme', 'read_voc',
           'read_yolo', 'summary', 'to_coco', 'write_coco', 'write_voc', 'write_yolo']

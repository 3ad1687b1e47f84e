# FCOS, caffe ResNet-50, FPN, GN head, 1x (COCO val2017 box AP 36.6 in MMDetection's model zoo).
_base_ = [
    '../_base_/models/fcos_r50-caffe_fpn_gn-head.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime.py',
]

# FCOS, caffe ResNet-101, multi-scale 640-800, 2x (box AP 40.8 in MMDetection's model zoo).
_base_ = './fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://detectron/resnet101_caffe')))

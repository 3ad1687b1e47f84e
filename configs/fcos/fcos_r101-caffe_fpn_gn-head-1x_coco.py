# FCOS, caffe ResNet-101, 1x (box AP 39.1 in MMDetection's model zoo).
_base_ = './fcos_r50-caffe_fpn_gn-head_1x_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://detectron/resnet101_caffe')))

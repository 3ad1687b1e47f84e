# FCOS, ResNeXt-101 64x4d (pytorch style, RGB, ImageNet mean/std), multi-scale 640-800, 2x
# (box AP 42.6 in MMDetection's model zoo).
_base_ = './fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py'

model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        type='ResNeXt',
        depth=101,
        groups=64,
        base_width=4,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnext101_64x4d')))

# FCOS, caffe ResNet-50, FPN, GN head, 1x (COCO val2017 box AP 36.6 in MMDetection's model zoo).
_base_ = [
    '../_base_/models/fcos_r50-caffe_fpn_gn-head.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime.py',
]

# FCOS's recipe on the 1x schedule: lr 0.01 for 16 images, constant warm-up at lr/3 for 500
# iterations, biases at twice the lr without weight decay, gradients clipped at norm 35.
param_scheduler = [
    dict(type='ConstantLR', factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
optim_wrapper = dict(
    optimizer=dict(lr=0.01),
    paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=35, norm_type=2))

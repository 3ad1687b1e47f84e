# VarifocalNet, ResNet-50 (torchvision weights), FPN, 1x (COCO val2017 box AP 41.6 in
# MMDetection's model zoo). Star-shaped deformable refinement with pure-PyTorch deformable convs.
# Same backbone, data, ATSS train_cfg and test_cfg as ATSS; ReLU before the extra FPN convs.
_base_ = '../atss/atss_r50_fpn_1x_coco.py'

model = dict(
    type='VFNet',
    neck=dict(relu_before_extra_convs=True),
    bbox_head=dict(
        _delete_=True,
        type='VFNetHead',
        num_classes=80,
        in_channels=256,
        stacked_convs=3,
        feat_channels=256,
        strides=[8, 16, 32, 64, 128],
        center_sampling=False,
        dcn_on_last_conv=False,
        use_atss=True,
        use_vfl=True,
        loss_cls=dict(
            type='VarifocalLoss',
            use_sigmoid=True,
            alpha=0.75,
            gamma=2.0,
            iou_weighted=True,
            loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=1.5),
        loss_bbox_refine=dict(type='GIoULoss', loss_weight=2.0)))

# 1x schedule: linear warm-up from lr/10 over 500 iterations, lr x0.1 after epochs 8 and 11;
# biases get twice the lr and no weight decay.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
optim_wrapper = dict(paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0), clip_grad=None)

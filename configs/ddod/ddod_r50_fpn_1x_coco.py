# DDOD (Chen et al., "Disentangle Your Dense Object Detector", ACM MM 2021), ResNet-50
# (torchvision weights), FPN, 1x (COCO val2017 box AP 41.7 in MMDetection's model zoo; not
# reproduced here): the ATSS config (same backbone, neck, anchors, test settings and schedule)
# with the DDOD head, whose classification and regression get their own cost-based ATSS
# assignment (cost = score^(1 - alpha) * IoU^alpha).
_base_ = '../atss/atss_r50_fpn_1x_coco.py'
model = dict(
    type='DDOD',
    bbox_head=dict(
        _delete_=True,
        type='DDODHead',
        num_classes=80,
        in_channels=256,
        stacked_convs=4,
        feat_channels=256,
        anchor_generator=dict(
            type='AnchorGenerator',
            ratios=[1.0],
            octave_base_scale=8,
            scales_per_octave=1,
            strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_iou=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(type='ATSSAssigner', topk=9, alpha=0.8),
        reg_assigner=dict(type='ATSSAssigner', topk=9, alpha=0.5)))

# TOOD, ResNet-50 (torchvision weights), FPN, 1x (COCO val2017 box AP 42.4 in MMDetection's
# model zoo): the ATSS config (same backbone, neck, data, test settings and schedule) with the
# TOOD head, its two-phase assignment and the hook that tells the head the epoch.
_base_ = '../atss/atss_r50_fpn_1x_coco.py'
model = dict(
    type='TOOD',
    bbox_head=dict(
        _delete_=True,
        type='TOODHead',
        num_classes=80,
        in_channels=256,
        stacked_convs=6,
        feat_channels=256,
        anchor_type='anchor_free',
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
        # the first initial_epoch epochs: focal loss on the aligned probabilities
        initial_loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            activated=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_cls=dict(
            type='QualityFocalLoss',
            use_sigmoid=True,
            activated=True,
            beta=2.0,
            loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        _delete_=True,
        # ATSS assignment for the first 4 epochs, task-aligned assignment afterwards
        initial_epoch=4,
        initial_assigner=dict(type='ATSSAssigner', topk=9),
        assigner=dict(type='TaskAlignedAssigner', topk=13),
        alpha=1,
        beta=6,
        allowed_border=-1,
        pos_weight=-1,
        debug=False))

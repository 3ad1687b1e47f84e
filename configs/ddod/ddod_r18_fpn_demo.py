# DDOD on the generated demo dataset: the FCOS demo's backbone (half-width ResNet-18 from
# scratch), neck, data, schedule and optimizer, with a DDOD head of the same width and depth.
# `python tools/train.py configs/ddod/ddod_r18_fpn_demo.py` (generates data/fcos_demo/ on first
# use); results in docs/model_zoo.md.
_base_ = '../fcos/fcos_r18_fpn_gn-head_demo.py'

model = dict(
    type='DDOD',
    bbox_head=dict(
        _delete_=True,
        type='DDODHead',
        num_classes=4,
        in_channels={{_base_.feat_channels}},
        stacked_convs=2,
        feat_channels={{_base_.feat_channels}},
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
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
        reg_assigner=dict(type='ATSSAssigner', topk=9, alpha=0.5),
        allowed_border=-1,
        pos_weight=-1,
        debug=False))

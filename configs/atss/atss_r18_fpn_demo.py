# ATSS on the generated demo dataset, with the FCOS demo's backbone, neck, data and schedule
# (configs/fcos/fcos_r18_fpn_gn-head_demo.py): only the head and its assignment change.
# `python tools/train.py configs/atss/atss_r18_fpn_demo.py`: 0.614 mAP after 40 epochs, about
# 9 minutes on 2 idle CPU cores in float32 (docs/model_zoo.md).
_base_ = '../fcos/fcos_r18_fpn_gn-head_demo.py'
feat_channels = 64

model = dict(
    type='ATSS',
    bbox_head=dict(
        _delete_=True,
        type='ATSSHead',
        num_classes=4,
        in_channels=feat_channels,
        stacked_convs=2,
        feat_channels=feat_channels,
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        # the default anchors: one 8 x stride square per point, strides 8-128
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False))

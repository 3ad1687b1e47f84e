# TOOD on the generated demo dataset: the ATSS demo (itself the FCOS demo's backbone, neck, data
# and 40-epoch schedule) with the TOOD head and its two assignment phases.
# `python tools/train.py configs/tood/tood_r18_fpn_demo.py`
_base_ = '../atss/atss_r18_fpn_demo.py'
feat_channels = 64

model = dict(
    type='TOOD',
    bbox_head=dict(
        _delete_=True,
        type='TOODHead',
        num_classes=4,
        in_channels=feat_channels,
        # one shared stack as deep as the ATSS demo's two towers together
        stacked_convs=4,
        feat_channels=feat_channels,
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        # anchors, coder and the three losses: the head's defaults, MMDetection's TOOD values
        anchor_type='anchor_free'),
    train_cfg=dict(
        _delete_=True,
        # MMDetection warms up with ATSS for 4 of 12 epochs; the same third of this 40-epoch
        # schedule is 13 epochs
        initial_epoch=13,
        initial_assigner=dict(type='ATSSAssigner', topk=9),
        assigner=dict(type='TaskAlignedAssigner', topk=13),
        alpha=1,
        beta=6,
        allowed_border=-1,
        pos_weight=-1,
        debug=False))

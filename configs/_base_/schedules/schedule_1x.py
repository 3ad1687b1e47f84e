# MMDetection's 1x schedule: 12 epochs at batch 16 (8 GPUs x 2 images), lr x0.1 after epochs 8
# and 11, linear warm-up from lr x 0.001 over 500 iterations. Detector configs set their own lr
# (and FCOS its bias multipliers, clipping and warm-up) on top.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001))

# `tools/train.py --auto-scale-lr` rescales lr by (GPUs x batch size) / base_batch_size.
auto_scale_lr = dict(enable=False, base_batch_size=16)

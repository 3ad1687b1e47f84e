# Runtime shared by every fcosdet config.
default_scope = 'fcosdet'
# fcosdet's Runner: atomic checkpoint writes, safe `--resume`, gloo on CPU-only machines.
runner_type = 'DetRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='coco/bbox_mAP',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
# stop with a clear error as soon as a loss term is NaN/Inf (before a checkpoint is written),
# and before the first iteration when bbox_head.num_classes != len(dataset classes); train in
# channels-last memory (same numbers, faster convolutions: docs/benchmark.md)
custom_hooks = [dict(type='CheckInvalidLossHook', interval=1), dict(type='NumClassCheckHook'),
                dict(type='ChannelsLastHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # DetRunner uses gloo instead when CUDA is not available
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False

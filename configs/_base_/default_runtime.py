default_scope = 'instseg'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # A checkpoint every epoch, plus the best one by segm mAP.
    checkpoint=dict(type='CheckpointHook', interval=1, save_best='coco/segm_mAP', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # draw=True sends sample validation predictions to the vis backends (tools/test.py
    # --show-dir switches it on for testing)
    visualization=dict(type='DetVisualizationHook'),
    # loss_curve.png and metric_curve.png in the work dir when training ends
    curves=dict(type='TrainingCurvesHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

# Scalars (and, with default_hooks.visualization.draw=True, sample predictions) go to every
# backend. TensorBoard (pip install tensorboard; tensorboard --logdir work_dirs), in your config:
# visualizer = dict(
#     vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
vis_backends = [dict(type='LocalVisBackend')]
# No fixed `name`: the runner names it after the run, so runs in one process don't share it.
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends)
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False

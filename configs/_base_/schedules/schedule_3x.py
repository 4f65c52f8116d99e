# 36 epochs: SGD lr 0.02 (batch 16), linear warmup over 500 iterations, lr x0.1 at epochs 27 and 33.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=36, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]

optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
)

# Scales the lr with the real batch size when training runs with --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=16)

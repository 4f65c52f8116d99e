# Mask R-CNN, Swin-T FPN, 12 epochs, AdamW (mmdetection: COCO box 42.7 / mask 39.3): the 3x recipe
# with single-scale training (coco_instance.py's pipeline) and the 1x schedule's length.
_base_ = './mask_rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
train_cfg = dict(max_epochs=12)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]

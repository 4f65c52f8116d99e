# mmdetection 2.x dialect: Swin-S Cascade Mask R-CNN for one custom class (nuclei), with small
# anchors, many proposals and detections per tile, AdamW and a 3x schedule.
_base_ = [
    '../_base_/models/cascade_mask_rcnn_swin_fpn.py',
    '../_base_/datasets/nuclei.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime.py',
]

num_classes = 1
model = dict(
    pretrained='checkpoints/swin_small_patch4_window7_224.pth',
    backbone=dict(depths=[2, 2, 18, 2]),
    rpn_head=dict(anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_head=[
            dict(
                type='Shared4Conv1FCBBoxHead',
                in_channels=256,
                conv_out_channels=256,
                fc_out_channels=1024,
                roi_feat_size=7,
                num_classes=num_classes,
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=[0.0, 0.0, 0.0, 0.0],
                    target_stds=stds,
                ),
                reg_class_agnostic=False,
                reg_decoded_bbox=True,
                norm_cfg=dict(type='SyncBN', requires_grad=True),
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='GIoULoss', loss_weight=10.0),
            )
            for stds in (
                [0.1, 0.1, 0.2, 0.2],
                [0.05, 0.05, 0.1, 0.1],
                [0.033, 0.033, 0.067, 0.067],
            )
        ],
        mask_head=dict(num_classes=num_classes),
    ),
    train_cfg=dict(rpn_proposal=dict(nms_pre=4000, max_per_img=2000)),
    test_cfg=dict(rpn=dict(nms_pre=4000, max_per_img=2000), rcnn=dict(max_per_img=1000)),
)

optimizer = dict(
    _delete_=True,
    type='AdamW',
    lr=0.0001,
    betas=(0.9, 0.999),
    weight_decay=0.05,
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
        }
    ),
)
# 20 tiles at batch 2 are 10 iterations per epoch: warm up over the first 10 epochs
lr_config = dict(warmup_iters=100, step=[27, 33])
runner = dict(type='EpochBasedRunner', max_epochs=36)
auto_scale_lr = dict(base_batch_size=2)

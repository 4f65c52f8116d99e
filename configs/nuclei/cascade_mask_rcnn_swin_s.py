# Cascade Mask R-CNN with a Swin-S backbone for H&E nuclei (one class, up to ~1,900 small
# instances per 1000x1000 tile): the Swin cascade recipe (4conv1fc box heads with SyncBN, GIoU,
# AdamW) with smaller anchors and up to 1,000 detections per image.
_base_ = [
    '../_base_/models/cascade_mask_rcnn_r50_fpn.py',
    '../_base_/datasets/nuclei.py',
    '../_base_/schedules/schedule_3x.py',
    '../_base_/default_runtime.py',
]

num_classes = 1
# ImageNet-1k Swin-S weights (swin_small_patch4_window7_224.pth from the Swin Transformer
# release), downloaded beforehand: nothing is fetched at run time.
pretrained = 'checkpoints/swin_small_patch4_window7_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        embed_dims=96,
        depths=[2, 2, 18, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.2,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
    neck=dict(in_channels=[96, 192, 384, 768]),
    # The median nucleus is ~16 px across: 32 px anchors would overlap it with IoU 0.25, below
    # the RPN's min_pos_iou of 0.3, so the smallest anchors are 16 px.
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
    # enough proposals and detections for the most crowded tiles
    test_cfg=dict(rpn=dict(nms_pre=4000, max_per_img=2000), rcnn=dict(max_per_img=1000)),
)

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
        }
    ),
)
# 20 training tiles at batch 2 are 10 iterations per epoch: warm up over the first 10 epochs.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
auto_scale_lr = dict(base_batch_size=2)

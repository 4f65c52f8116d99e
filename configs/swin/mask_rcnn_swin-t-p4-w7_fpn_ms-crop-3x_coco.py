# Mask R-CNN, Swin-T FPN, 36 epochs of multi-scale / crop training, AdamW
# (mmdetection: COCO box 46.0 / mask 41.6).
_base_ = [
    '../_base_/models/mask_rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance_ms_crop.py',
    '../_base_/schedules/schedule_3x.py',
    '../_base_/default_runtime.py',
]

# ImageNet-1k Swin-T from the Swin Transformer release, downloaded beforehand (nothing is fetched
# at run time): https://github.com/SwinTransformer/storage/releases/download/v1.0.0/
# swin_tiny_patch4_window7_224.pth. timm / Hugging Face files (model.safetensors) load too.
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        embed_dims=96,
        depths=[2, 2, 6, 2],
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
        with_cp=False,  # True: recompute blocks in backward, less activation memory
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
    neck=dict(in_channels=None),  # the backbone's out_channels: [96, 192, 384, 768]
)

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    # no weight decay on Swin's position tables and on any LayerNorm
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
        }
    ),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
